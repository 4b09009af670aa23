# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._planning.policy import (
    ALL_USERS,
    POLICY_PATH,
    POLICY_TYPE,
    PolicyPlan,
    PolicySpec,
    check_no_overlap,
    normalize_targets,
    plan_policy,
    policy_result,
    reached,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import G1, G2, G3

CONFIG = {
    "@odata.context": "https://graph.microsoft.com/beta/$metadata#authenticationMethodConfigurations/$entity",
    "@odata.type": POLICY_TYPE,
    "id": "HardwareOath",
    "state": "disabled",
    "includeTargets": [
        {"targetType": "group", "id": G1, "isRegistrationRequired": True},
        {"targetType": "group", "id": G2.upper(), "isRegistrationRequired": False},
    ],
    "excludeTargets": [],
}
BEFORE = {
    "id": "HardwareOath",
    "state": "disabled",
    "include_targets": [
        {"id": G1, "target_type": "group", "is_registration_required": True},
        {"id": G2, "target_type": "group", "is_registration_required": False},
    ],
    "exclude_targets": [],
}


def config(**changes) -> dict:
    return {**copy.deepcopy(CONFIG), **changes}


def test_constants():
    assert POLICY_PATH == "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath"
    assert POLICY_TYPE == "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration"
    assert ALL_USERS == "all_users"


# ---------------------------------------------------------------------------------------------------- normalize_targets
@pytest.mark.parametrize(
    "targets, expected",
    [
        (None, None),
        ([], ()),
        (["all_users"], ("all_users",)),
        (["ALL_USERS"], ("all_users",)),
        ([" All_Users "], ("all_users",)),
        ([G1.upper()], (G1,)),
        ([G2, " " + G1 + " ", G2.upper(), G1], (G2, G1)),
        (["all_users", G3, "All_Users"], ("all_users", G3)),
    ],
)
def test_normalize_targets(targets, expected):
    assert normalize_targets(targets, "include_targets") == expected


@pytest.mark.parametrize(
    "target",
    [
        "everyone",
        "",
        "11111111-1111-4111-8111-11111111111",
        "11111111111141118111111111111111",
        "{11111111-1111-4111-8111-111111111111}",
        "g" * 8 + G1[8:],
        "all users",
        5,
    ],
)
@pytest.mark.parametrize("option", ["include_targets", "exclude_targets"])
def test_normalize_targets_refuses_anything_else(target, option):
    with pytest.raises(ValueError) as info:
        normalize_targets([G1, target], option)
    assert str(info.value) == f"{option}: '{target}' is neither a group object id (GUID) nor all_users"


@pytest.mark.parametrize("targets", [["all_users"], [G1, "ALL_USERS"]])
def test_all_users_can_not_be_excluded(targets):
    with pytest.raises(ValueError) as info:
        normalize_targets(targets, "exclude_targets")
    assert str(info.value) == "exclude_targets: all_users can only be included, not excluded"


def test_exclude_targets_groups():
    assert normalize_targets([G3.upper(), G3], "exclude_targets") == (G3,)


# ---------------------------------------------------------------------------------------------------- policy_result
def test_policy_result():
    assert policy_result(CONFIG) == BEFORE


def test_policy_result_defaults():
    answer = {
        "id": "HardwareOath",
        "state": "enabled",
        "includeTargets": [{"id": "ALL_USERS"}],
        "excludeTargets": [{"id": G3.upper()}, {"id": G1, "targetType": "group"}],
    }
    assert policy_result(answer) == {
        "id": "HardwareOath",
        "state": "enabled",
        "include_targets": [{"id": "all_users", "target_type": "group", "is_registration_required": False}],
        "exclude_targets": [{"id": G3, "target_type": "group"}, {"id": G1, "target_type": "group"}],
    }


def test_policy_result_without_targets():
    assert policy_result({"id": "HardwareOath", "state": "disabled", "includeTargets": None}) == {
        "id": "HardwareOath",
        "state": "disabled",
        "include_targets": [],
        "exclude_targets": [],
    }
    assert policy_result({}) == {"id": None, "state": None, "include_targets": [], "exclude_targets": []}


# ---------------------------------------------------------------------------------------------------- plan_policy
@pytest.mark.parametrize(
    "spec",
    [
        PolicySpec(),
        PolicySpec(state="disabled"),
        PolicySpec(include_targets=(G1, G2)),
        PolicySpec(include_targets=(G2, G1)),
        PolicySpec(include_targets=normalize_targets([G2.upper(), G1.upper()], "include_targets")),
        PolicySpec(exclude_targets=()),
        PolicySpec(state="disabled", include_targets=(G2, G1), exclude_targets=()),
    ],
)
def test_no_change(spec):
    plan = plan_policy(CONFIG, spec)
    assert plan.patch == {}
    assert plan.changed is False
    assert plan.before == plan.after == BEFORE


def test_state_only():
    plan = plan_policy(CONFIG, PolicySpec(state="enabled", include_targets=(G2, G1)))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "state": "enabled"}
    assert plan.changed is True
    assert plan.before == BEFORE
    assert plan.after == {**BEFORE, "state": "enabled"}


def test_include_replaced_keeps_registration_required_of_the_kept_targets_in_the_given_order():
    plan = plan_policy(CONFIG, PolicySpec(include_targets=(G3, G1)))
    assert plan.patch == {
        "@odata.type": POLICY_TYPE,
        "includeTargets": [
            {"targetType": "group", "id": G3, "isRegistrationRequired": False},
            {"targetType": "group", "id": G1, "isRegistrationRequired": True},
        ],
    }
    assert plan.after == {
        **BEFORE,
        "include_targets": [
            {"id": G3, "target_type": "group", "is_registration_required": False},
            {"id": G1, "target_type": "group", "is_registration_required": True},
        ],
    }
    assert plan.before == BEFORE


def test_include_all_users():
    plan = plan_policy(CONFIG, PolicySpec(state="enabled", include_targets=("all_users",)))
    assert plan.patch == {
        "@odata.type": POLICY_TYPE,
        "state": "enabled",
        "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}],
    }
    assert list(plan.patch) == ["@odata.type", "state", "includeTargets"]


def test_include_cleared():
    plan = plan_policy(CONFIG, PolicySpec(include_targets=()))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "includeTargets": []}
    assert plan.after["include_targets"] == []


def test_exclude_set():
    plan = plan_policy(CONFIG, PolicySpec(exclude_targets=(G3,)))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "excludeTargets": [{"targetType": "group", "id": G3}]}
    assert plan.after == {**BEFORE, "exclude_targets": [{"id": G3, "target_type": "group"}]}


def test_exclude_cleared():
    current = config(excludeTargets=[{"targetType": "group", "id": G3.upper()}])
    plan = plan_policy(current, PolicySpec(exclude_targets=()))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "excludeTargets": []}
    assert plan.before["exclude_targets"] == [{"id": G3, "target_type": "group"}]
    assert plan.after == {**BEFORE, "exclude_targets": []}


def test_exclude_same_in_another_case_is_no_change():
    current = config(excludeTargets=[{"targetType": "group", "id": G3.upper()}, {"targetType": "group", "id": G2}])
    assert plan_policy(current, PolicySpec(exclude_targets=(G2, G3))).patch == {}


def test_everything_differs():
    plan = plan_policy(CONFIG, PolicySpec(state="enabled", include_targets=("all_users",), exclude_targets=(G1,)))
    assert list(plan.patch) == ["@odata.type", "state", "includeTargets", "excludeTargets"]
    assert plan.patch == {
        "@odata.type": POLICY_TYPE,
        "state": "enabled",
        "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}],
        "excludeTargets": [{"targetType": "group", "id": G1}],
    }
    assert plan.after == {
        "id": "HardwareOath",
        "state": "enabled",
        "include_targets": [{"id": "all_users", "target_type": "group", "is_registration_required": False}],
        "exclude_targets": [{"id": G1, "target_type": "group"}],
    }


def test_plan_leaves_the_config_alone():
    current = config()
    plan_policy(current, PolicySpec(state="enabled", include_targets=(G3,), exclude_targets=(G1,)))
    assert current == CONFIG


def test_policy_plan_changed():
    assert PolicyPlan(patch={}, before={}, after={}).changed is False
    assert PolicyPlan(patch={"state": "enabled"}, before={}, after={}).changed is True


# ---------------------------------------------------------------------------------------------------- reached
def applied(current: dict, patch: dict) -> dict:
    """What Graph holds after the PATCH."""
    return {**current, **{k: v for k, v in patch.items() if not k.startswith("@")}}


@pytest.mark.parametrize(
    "spec",
    [
        PolicySpec(state="enabled"),
        PolicySpec(include_targets=(G3, G1)),
        PolicySpec(exclude_targets=(G3,)),
        PolicySpec(state="enabled", include_targets=("all_users",), exclude_targets=(G1, G2)),
    ],
)
def test_reached_after_the_patch_and_not_before(spec):
    plan = plan_policy(CONFIG, spec)
    assert reached(applied(CONFIG, plan.patch), plan) is True
    assert reached(CONFIG, plan) is False


def test_reached_without_change():
    plan = plan_policy(CONFIG, PolicySpec())
    assert reached(CONFIG, plan) is True


def test_reached_ignores_order_and_case():
    plan = plan_policy(CONFIG, PolicySpec(include_targets=(G3, G1), exclude_targets=(G2,)))
    fresh = config(
        includeTargets=[{"targetType": "group", "id": G1.upper()}, {"targetType": "group", "id": G3.upper()}],
        excludeTargets=[{"targetType": "group", "id": G2.upper()}],
    )
    assert reached(fresh, plan) is True


@pytest.mark.parametrize(
    "fresh",
    [
        config(state="disabled", includeTargets=[{"id": G3}, {"id": G1}], excludeTargets=[{"id": G2}]),
        config(state="enabled", includeTargets=[{"id": G3}], excludeTargets=[{"id": G2}]),
        config(state="enabled", includeTargets=[{"id": G3}, {"id": G1}], excludeTargets=[]),
        config(state="enabled", includeTargets=[{"id": G3}, {"id": G1}, {"id": G2}], excludeTargets=[{"id": G2}]),
    ],
)
def test_not_reached_when_anything_differs(fresh):
    plan = plan_policy(CONFIG, PolicySpec(state="enabled", include_targets=(G3, G1), exclude_targets=(G2,)))
    assert reached(fresh, plan) is False


# -------------------------------------------------------------------------------------------------- include and exclude
def test_a_group_included_and_excluded_by_the_task_is_refused():
    with pytest.raises(InputError) as info:
        check_no_overlap((G1, G2), (G3, G1), given_both=True)
    assert info.value.message == (
        f"Group {G1} would be both included in and excluded from the hardwareOath policy (in include_targets and in "
        "exclude_targets); a group excluded is excluded even when included. Remove it from one of the lists (give both "
        "include_targets and exclude_targets to set both). Nothing was changed."
    )
    check_no_overlap((ALL_USERS,), (G1,), given_both=True)  # everyone but a group is fine


def test_plan_refuses_excluding_a_group_the_tenant_includes():
    with pytest.raises(InputError) as info:
        plan_policy(config(), PolicySpec(exclude_targets=(G2,)))
    assert f"Group {G2} would be both included in and excluded from" in info.value.message
    assert "in the task's targets and, for the other list, in the tenant's current policy" in info.value.message


def test_plan_refuses_both_lists_overlapping():
    with pytest.raises(InputError, match=f"Groups {G1}, {G3} would be both"):
        plan_policy(config(), PolicySpec(include_targets=(G1, G3), exclude_targets=(G3, G1)))


def test_plan_leaves_an_overlap_made_elsewhere_alone_when_only_the_state_changes():
    overlapping = config(excludeTargets=[{"targetType": "group", "id": G1}])
    plan = plan_policy(overlapping, PolicySpec(state="enabled"))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "state": "enabled"}


def test_plan_may_end_an_overlap_made_elsewhere():
    overlapping = config(excludeTargets=[{"targetType": "group", "id": G1}])
    plan = plan_policy(overlapping, PolicySpec(exclude_targets=()))
    assert plan.patch == {"@odata.type": POLICY_TYPE, "excludeTargets": []}
