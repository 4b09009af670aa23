# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of hardware_oath_policy's run(): targets refused before any request, the PATCH sent (or, in check
mode, only shown) through the real PolicyApi over a fakes.FakeClient, and the result."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._execution.policy_api import PolicyApi
from ansible_collections.tokenops.entra.plugins.module_utils._planning.policy import POLICY_PATH, POLICY_TYPE
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_policy as module_under_test
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import Failed, FakeClient, FakeModule, task_options
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import G1, G2, POLICY_OFF, POLICY_ON

# The module as a task giving these options would run it.
task = functools.partial(FakeModule, task_options(module_under_test))
READ = ("GET", POLICY_PATH, "Reading the hardwareOath authentication method policy", {})
ALL_USERS = {"id": "all_users", "target_type": "group", "is_registration_required": False}
ON = {"id": "HardwareOath", "state": "enabled", "include_targets": [ALL_USERS], "exclude_targets": []}
OFF = {**ON, "state": "disabled"}


def patched(patch):
    """The PATCH request of ``patch``, as PolicyApi sends it."""
    return (
        "PATCH",
        POLICY_PATH,
        "Updating the hardwareOath authentication method policy",
        {
            "json": patch,
            "expected": (204, 200),
        },
    )


@pytest.fixture
def graph(patch_api):
    """``graph(*answers)``: the module's PolicyApi is the real one, over a FakeClient giving ``answers``; returns
    the FakeClient."""
    return lambda *answers: patch_api(module_under_test, PolicyApi(FakeClient(*answers)), factory="policy_api").client


# ------------------------------------------------------------------------------------------- refused before any request
@pytest.mark.parametrize(
    "given, message",
    [
        ({"include_targets": ["sales"]}, "include_targets: 'sales' is neither a group object id (GUID) nor all_users"),
        ({"exclude_targets": [G1, "x"]}, "exclude_targets: 'x' is neither a group object id (GUID) nor all_users"),
        ({"exclude_targets": [G1, "All_Users"]}, "exclude_targets: all_users can only be included, not excluded"),
    ],
)
def test_run_refuses_a_target_that_is_not_a_group(patch_api, given, message):
    patch_api(module_under_test, factory="policy_api")  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(**given).run(module_under_test.run)
    assert info.value.args[0] == {"msg": message}


def test_run_refuses_a_group_both_included_and_excluded(patch_api):
    patch_api(module_under_test, factory="policy_api")  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(include_targets=[G1, G2], exclude_targets=[G2.upper()]).run(module_under_test.run)
    assert info.value.args[0] == {
        "msg": f"Group {G2} would be both included in and excluded from the hardwareOath policy (in include_targets "
        "and in exclude_targets); a group excluded is excluded even when included. Remove it from one of the lists "
        "(give both include_targets and exclude_targets to set both). Nothing was changed."
    }


def test_run_refuses_excluding_a_group_the_tenant_includes(graph):
    client = graph({**POLICY_ON, "includeTargets": [{"id": G1, "targetType": "group"}]})
    with pytest.raises(Failed) as info:
        task(exclude_targets=[G1]).run(module_under_test.run)
    assert "in the task's targets and, for the other list, in the tenant's current policy" in info.value.args[0]["msg"]
    assert client.calls == [READ]  # read, never written


# --------------------------------------------------------------------------------------- check mode, unchanged, changed
def test_run_check_mode_writes_nothing(graph):
    client = graph(POLICY_ON)
    result = module_under_test.run(task(state="disabled", check_mode=True))
    assert client.calls == [READ]
    assert result == {"changed": True, "policy": OFF}


def test_run_unchanged(graph):
    client = graph(POLICY_ON)
    result = module_under_test.run(task(state="enabled", include_targets=["ALL_USERS"], exclude_targets=[]))
    assert client.calls == [READ]
    assert result == {"changed": False, "policy": ON}


@pytest.mark.parametrize("diff", [False, True])
def test_run_patches_only_what_differs_and_shows_the_diff_only_in_diff_mode(graph, diff):
    client = graph(POLICY_ON, None)
    result = module_under_test.run(task(state="disabled", include_targets=["all_users"], diff=diff))
    assert client.calls == [READ, patched({"@odata.type": POLICY_TYPE, "state": "disabled"})]
    assert result["changed"] is True
    assert result["policy"] == OFF
    if diff:
        assert result["diff"] == {"before": ON, "after": OFF}
    else:
        assert "diff" not in result
    assert set(result) == {"changed", "policy"} | ({"diff"} if diff else set())


def test_run_sets_the_targets(graph):
    client = graph(POLICY_OFF, None)
    result = module_under_test.run(task(include_targets=[G1.upper()], exclude_targets=[G2]))
    assert client.calls == [
        READ,
        patched(
            {
                "@odata.type": POLICY_TYPE,
                "includeTargets": [{"targetType": "group", "id": G1, "isRegistrationRequired": False}],
                "excludeTargets": [{"targetType": "group", "id": G2}],
            }
        ),
    ]
    assert result["policy"] == {
        **OFF,
        "include_targets": [{"id": G1, "target_type": "group", "is_registration_required": False}],
        "exclude_targets": [{"id": G2, "target_type": "group"}],
    }


# ---------------------------------------------------------------------------------------------------- failures
def test_run_a_refused_patch_names_the_permission(graph):
    client = graph(POLICY_ON, GraphError("Updating the policy: Graph answered 403", status=403, code="accessDenied"))
    module = task(state="disabled")
    with pytest.raises(Failed) as info:
        module.run(module_under_test.run)
    assert info.value.args[0] == {
        "msg": "Updating the policy: Graph answered 403. The caller needs the Microsoft Graph permission "
        "Policy.ReadWrite.AuthenticationMethod and, when signed in as a user, the Authentication Policy "
        "Administrator role",
        "graph_error": {"status": 403, "code": "accessDenied"},
    }
    assert [c[0] for c in client.calls] == ["GET", "PATCH"]
    assert module.closed is True
