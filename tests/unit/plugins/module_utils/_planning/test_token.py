# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The inventory entry of one token (_planning/token.py), pure: the plan from its current state, the bodies of its
writes and the snake_case results."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ASSIGN,
    CREATE,
    DELETE,
    UNASSIGN,
    UPDATE,
    Action,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView
from ansible_collections.tokenops.entra.plugins.module_utils._planning.token import (
    TokenSpec,
    create_body,
    plan_token,
    recreation_spec,
    token_result,
    update_body,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import (
    ADELE,
    AMY,
    GUEST,
    RESULT_KEYS,
    SECRET,
    SERIAL,
    inv,
    res,
)

LABEL = f"token {SERIAL}"


ADELE_WHO = f"Adele Vance ({ADELE.id})"


AMY_WHO = f"amy.masters@contoso.com ({AMY.id})"


FORCE_HINT = (
    "Set force_unassign=true to unassign it first (its holder loses the activation and must activate it again)."
)


ALL_CREATED_FIELDS = ("secret_key", "manufacturer", "model", "time_interval", "hash_function", "display_name")


def spec(**kwargs) -> TokenSpec:
    return TokenSpec(serial_number=SERIAL, **kwargs)


def new_spec(**kwargs) -> TokenSpec:
    """What creating a token needs."""
    return spec(has_secret=True, manufacturer="Contoso", model="OATH-TOTP", **kwargs)


def new_result(**overrides) -> dict:
    result = {
        "device_id": None,
        "serial_number": SERIAL,
        "display_name": None,
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "time_interval": 30,
        "hash_function": "hmacsha1",
        "status": "available",
        "assigned_to": None,
        "last_used_date_time": None,
    }
    return {**result, **overrides}


# ---------------------------------------------------------------------------------------------------- create
@pytest.mark.parametrize(
    "has_secret, manufacturer, model, missing",
    [
        (False, None, None, "secret_key, manufacturer, model"),
        (False, "Contoso", "OATH-TOTP", "secret_key"),
        (True, None, "OATH-TOTP", "manufacturer"),
        (True, "Contoso", None, "model"),
        (True, "", "", "manufacturer, model"),
        (False, "Contoso", None, "secret_key, model"),
    ],
)
def test_create_needs_the_secret_manufacturer_and_model(has_secret, manufacturer, model, missing):
    with pytest.raises(PlanError) as info:
        plan_token(None, spec(has_secret=has_secret, manufacturer=manufacturer, model=model, display_name="x"))
    assert info.value.message == f"token {SERIAL} is not in the inventory; creating it needs {missing}."


def test_create_with_defaults():
    plan = plan_token(None, new_spec())
    assert plan.actions == (
        Action(
            CREATE,
            None,
            f"token {SERIAL} is not in the inventory",
            changes=("secret_key", "manufacturer", "model", "time_interval", "hash_function"),
        ),
    )
    assert plan.changed is True
    assert plan.needs_code is False
    assert plan.before == {}
    assert plan.after == new_result()
    assert plan.actions[0].to_result() == {
        "action": "create",
        "user_id": None,
        "reason": f"token {SERIAL} is not in the inventory",
        "changes": ["secret_key", "manufacturer", "model", "time_interval", "hash_function"],
    }


def test_create_with_every_field():
    plan = plan_token(None, new_spec(time_interval=60, hash_function="hmacsha256", display_name="Lobby"))
    assert plan.actions == (
        Action(CREATE, None, f"token {SERIAL} is not in the inventory", changes=ALL_CREATED_FIELDS),
    )
    assert plan.after == new_result(time_interval=60, hash_function="hmacsha256", display_name="Lobby")


def test_create_assigned_to_a_user_is_one_create_carrying_the_user_id():
    plan = plan_token(None, new_spec(assigned_to=AMY))
    assert plan.actions == (
        Action(
            CREATE,
            AMY.id,
            f"token {SERIAL} is not in the inventory",
            changes=("secret_key", "manufacturer", "model", "time_interval", "hash_function", "assigned_to"),
        ),
    )
    assert plan.before == {}
    assert plan.after == new_result(
        status="assigned",
        assigned_to={"id": AMY.id, "display_name": "Amy Masters", "user_principal_name": "amy.masters@contoso.com"},
    )


def test_create_with_rotate_is_a_plain_creation():
    assert plan_token(None, new_spec(rotate=True)).actions == plan_token(None, new_spec()).actions


@pytest.mark.parametrize("current", [None, inv(), inv("activated", ADELE)])
def test_guest_user_is_refused(current):
    with pytest.raises(PlanError) as info:
        plan_token(current, new_spec(assigned_to=GUEST, force_unassign=True))
    assert info.value.message == (
        f"token {SERIAL}: grady_fabrikam.com#EXT#@contoso.onmicrosoft.com is a guest user; "
        "Entra ID does not allow hardware OATH tokens for guest users."
    )


def test_guest_user_is_not_checked_when_deleting():
    plan = plan_token(inv(), spec(state="absent", assigned_to=GUEST))
    assert [a.kind for a in plan.actions] == [DELETE]


# ---------------------------------------------------------------------------------------------------- absent
def test_absent_and_not_in_the_inventory_is_no_action():
    plan = plan_token(None, spec(state="absent"))
    assert plan.actions == ()
    assert plan.changed is False
    assert (plan.before, plan.after) == ({}, {})


def test_absent_available_is_deleted():
    plan = plan_token(inv(), spec(state="absent"))
    assert plan.actions == (Action(DELETE, None, "state=absent"),)
    assert plan.before == res()
    assert plan.after == {}


@pytest.mark.parametrize("status", ["assigned", "activated", "failedActivation"])
def test_absent_assigned_without_force_names_the_holder(status):
    with pytest.raises(PlanError) as info:
        plan_token(inv(status, ADELE), spec(state="absent"))
    assert info.value.message == (
        f"token {SERIAL} is assigned to {ADELE_WHO}; Graph deletes only unassigned tokens. " + FORCE_HINT
    )


def test_absent_assigned_holder_without_a_name_is_named_by_id():
    current = TokenView(**{**inv("activated", ADELE).__dict__, "assigned_to_name": None})
    with pytest.raises(PlanError) as info:
        plan_token(current, spec(state="absent"))
    assert info.value.message.startswith(f"token {SERIAL} is assigned to {ADELE.id}; Graph deletes only")


def test_absent_assigned_with_force_unassigns_then_deletes():
    plan = plan_token(inv("activated", ADELE), spec(state="absent", force_unassign=True))
    assert plan.actions == (
        Action(UNASSIGN, ADELE.id, f"token {SERIAL} is assigned to {ADELE_WHO}; force_unassign=true"),
        Action(DELETE, None, "state=absent"),
    )
    assert plan.before == res("activated", ADELE)
    assert plan.after == {}


# ---------------------------------------------------------------------------------------------------- unchanged
@pytest.mark.parametrize(
    "wanted",
    [
        {},
        {
            "manufacturer": "Contoso",
            "model": "OATH-TOTP",
            "time_interval": 30,
            "hash_function": "hmacsha1",
            "display_name": "Front desk",
        },
        {"display_name": "Front desk", "has_secret": True},  # a secret alone changes nothing (Graph can't compare it)
    ],
)
def test_unchanged_available(wanted):
    plan = plan_token(inv(), spec(**wanted))
    assert plan.actions == ()
    assert plan.changed is False
    assert plan.before == plan.after == res()


def test_unchanged_assigned_needs_no_force():
    plan = plan_token(inv("activated", ADELE), spec(display_name="Front desk"))
    assert plan.actions == ()
    assert plan.before == plan.after == res("activated", ADELE)


def test_unchanged_assigned_to_its_holder_shows_the_upn():
    plan = plan_token(inv("activated", AMY), spec(assigned_to=AMY, model="OATH-TOTP"))
    assert plan.actions == ()
    assert plan.before == plan.after == res("activated", AMY, upn=True)


# ---------------------------------------------------------------------------------------------------- update
@pytest.mark.parametrize(
    "field, value, key",
    [
        ("manufacturer", "Fabrikam", "manufacturer"),
        ("model", "OATH-TOTP-2", "model"),
        ("time_interval", 60, "time_interval"),
        ("hash_function", "hmacsha256", "hash_function"),
        ("display_name", "Lobby", "display_name"),
    ],
)
def test_update_of_each_mutable_field(field, value, key):
    wanted = spec(**{field: value})
    plan = plan_token(inv(), wanted)
    assert plan.actions == (Action(UPDATE, None, f"{field} differs", changes=(field,)),)
    assert plan.before == res()
    assert plan.after == res(**{key: value})
    assert plan.actions[0].to_result() == {
        "action": "update",
        "user_id": None,
        "reason": f"{field} differs",
        "changes": [field],
    }


def test_update_only_the_differing_fields_in_field_order():
    wanted = spec(
        display_name="Lobby", manufacturer="Contoso", model="X2", time_interval=30, hash_function="hmacsha256"
    )
    plan = plan_token(inv(), wanted)
    assert plan.actions == (
        Action(
            UPDATE,
            None,
            "model, hash_function, display_name differ",
            changes=("model", "hash_function", "display_name"),
        ),
    )
    assert plan.after == res(model="X2", hash_function="hmacsha256", display_name="Lobby")
    assert update_body(wanted, plan.actions[0].changes) == {
        "model": "X2",
        "hashFunction": "hmacsha256",
        "displayName": "Lobby",
    }


def test_update_a_display_name_that_was_never_set():
    plan = plan_token(inv(display_name=None), spec(display_name="Lobby"))
    assert plan.actions == (Action(UPDATE, None, "display_name differs", changes=("display_name",)),)
    assert plan.before == res(display_name=None)
    assert plan.after == res(display_name="Lobby")


@pytest.mark.parametrize("status", ["assigned", "activated", "failedActivation"])
def test_update_while_assigned_without_force(status):
    with pytest.raises(PlanError) as info:
        plan_token(inv(status, ADELE), spec(display_name="Lobby", model="X2"))
    assert info.value.message == (
        f"token {SERIAL} is assigned to {ADELE_WHO}; Graph changes model, display_name only "
        "while a token is unassigned. " + FORCE_HINT
    )


def test_update_while_assigned_with_force_gives_it_back_to_its_holder():
    plan = plan_token(inv("activated", ADELE), spec(display_name="Lobby", force_unassign=True))
    assert plan.actions == (
        Action(UNASSIGN, ADELE.id, f"token {SERIAL} is assigned to {ADELE_WHO}; force_unassign=true"),
        Action(UPDATE, None, "display_name differs", changes=("display_name",)),
        Action(ASSIGN, ADELE.id, "given back to its holder, not activated"),
    )
    assert plan.before == res("activated", ADELE)
    assert plan.after == res("assigned", ADELE, display_name="Lobby")


def test_update_while_assigned_to_the_wanted_user_with_force():
    plan = plan_token(inv("activated", AMY), spec(assigned_to=AMY, time_interval=60, force_unassign=True))
    assert [(a.kind, a.user_id) for a in plan.actions] == [(UNASSIGN, AMY.id), (UPDATE, None), (ASSIGN, AMY.id)]
    assert plan.actions[2].reason == "given back to its holder, not activated"
    assert plan.before == res("activated", AMY, upn=True)
    assert plan.after == res("assigned", AMY, upn=True, time_interval=60)


def test_force_alone_changes_nothing():
    plan = plan_token(inv("activated", ADELE), spec(force_unassign=True, display_name="Front desk"))
    assert plan.actions == ()
    assert plan.after == res("activated", ADELE)


# ---------------------------------------------------------------------------------------------------- assignment
def test_assigned_to_on_an_available_token_assigns_it():
    plan = plan_token(inv(), spec(assigned_to=AMY))
    assert plan.actions == (Action(ASSIGN, AMY.id, f"user is {AMY_WHO}"),)
    assert plan.before == res()
    assert plan.after == res("assigned", AMY, upn=True)


def test_assigned_to_with_an_update_on_an_available_token():
    plan = plan_token(inv(), spec(assigned_to=AMY, display_name="Amy's"))
    assert plan.actions == (
        Action(UPDATE, None, "display_name differs", changes=("display_name",)),
        Action(ASSIGN, AMY.id, f"user is {AMY_WHO}"),
    )
    assert plan.after == res("assigned", AMY, upn=True, display_name="Amy's")


@pytest.mark.parametrize("status", ["assigned", "activated", "failedActivation"])
def test_assigned_to_another_user_without_force_mentions_reassign(status):
    with pytest.raises(PlanError) as info:
        plan_token(inv(status, ADELE), spec(assigned_to=AMY))
    assert info.value.message == (
        f"token {SERIAL} is assigned to {ADELE_WHO}; it should be assigned to {AMY_WHO}; to hand it over with "
        "activation, use tokenops.entra.hardware_oath_assignment with reassign=true. " + FORCE_HINT
    )


def test_assigned_to_another_user_with_force_unassigns_the_holder_and_assigns_the_new_one():
    plan = plan_token(inv("activated", ADELE), spec(assigned_to=AMY, force_unassign=True))
    assert plan.actions == (
        Action(UNASSIGN, ADELE.id, f"token {SERIAL} is assigned to {ADELE_WHO}; force_unassign=true"),
        Action(ASSIGN, AMY.id, f"user is {AMY_WHO}"),
    )
    assert plan.before == res("activated", ADELE)  # the holder's UPN is not known
    assert plan.after == res("assigned", AMY, upn=True)


def test_assigned_to_another_user_with_force_and_an_update():
    plan = plan_token(inv("assigned", ADELE), spec(assigned_to=AMY, model="X2", force_unassign=True))
    assert [(a.kind, a.user_id) for a in plan.actions] == [(UNASSIGN, ADELE.id), (UPDATE, None), (ASSIGN, AMY.id)]
    assert plan.actions[0].reason == (f"token {SERIAL} is assigned to {ADELE_WHO}; force_unassign=true")
    assert plan.after == res("assigned", AMY, upn=True, model="X2")


# ---------------------------------------------------------------------------------------------------- rotate
@pytest.mark.parametrize("current", [inv(), inv("activated", ADELE)])
def test_rotate_needs_the_secret(current):
    with pytest.raises(PlanError) as info:
        plan_token(current, spec(rotate=True, force_unassign=True))
    assert info.value.message == f"token {SERIAL}: rotate=true recreates the token with a new secret; give secret_key."


def test_rotate_without_the_secret_says_so_before_asking_for_force_unassign():
    with pytest.raises(PlanError) as info:
        plan_token(inv("activated", ADELE), spec(rotate=True))
    assert info.value.message == f"token {SERIAL}: rotate=true recreates the token with a new secret; give secret_key."


def test_rotate_available_deletes_and_recreates_keeping_the_fields():
    plan = plan_token(inv(), spec(rotate=True, has_secret=True))
    assert plan.actions == (
        Action(DELETE, None, "rotate=true: the secret can't be changed, so the token is recreated"),
        Action(CREATE, None, "rotate=true: recreated with the new secret", changes=ALL_CREATED_FIELDS),
    )
    assert plan.before == res()
    assert plan.after == res(device_id=None, last_used_date_time=None)


def test_rotate_with_a_changed_field():
    plan = plan_token(inv(display_name=None), spec(rotate=True, has_secret=True, time_interval=60))
    assert plan.actions == (
        Action(DELETE, None, "rotate=true: the secret can't be changed, so the token is recreated"),
        Action(
            CREATE,
            None,
            "rotate=true: recreated with the new secret",
            changes=("secret_key", "manufacturer", "model", "time_interval", "hash_function"),
        ),
    )
    assert plan.after == res(device_id=None, last_used_date_time=None, display_name=None, time_interval=60)


def test_rotate_available_and_assign():
    plan = plan_token(inv(), spec(rotate=True, has_secret=True, assigned_to=AMY))
    assert [(a.kind, a.user_id) for a in plan.actions] == [(DELETE, None), (CREATE, AMY.id)]
    assert plan.actions[1].changes == ALL_CREATED_FIELDS + ("assigned_to",)
    assert plan.after == res("assigned", AMY, upn=True, device_id=None, last_used_date_time=None)


def test_rotate_assigned_without_force():
    with pytest.raises(PlanError) as info:
        plan_token(inv("activated", ADELE), spec(rotate=True, has_secret=True))
    assert info.value.message == (
        f"token {SERIAL} is assigned to {ADELE_WHO}; rotating the secret deletes and recreates "
        "it, which Graph allows only while it is unassigned. " + FORCE_HINT
    )


def test_rotate_assigned_with_force_recreates_it_assigned_to_the_holder():
    plan = plan_token(inv("activated", ADELE), spec(rotate=True, has_secret=True, force_unassign=True))
    assert plan.actions == (
        Action(UNASSIGN, ADELE.id, f"token {SERIAL} is assigned to {ADELE_WHO}; force_unassign=true"),
        Action(DELETE, None, "rotate=true: the secret can't be changed, so the token is recreated"),
        Action(
            CREATE,
            ADELE.id,
            "rotate=true: recreated with the new secret",
            changes=ALL_CREATED_FIELDS + ("assigned_to",),
        ),
    )
    assert plan.before == res("activated", ADELE)
    assert plan.after == res("assigned", ADELE, device_id=None, last_used_date_time=None)


def test_rotate_assigned_with_force_to_another_user():
    plan = plan_token(inv("activated", ADELE), spec(rotate=True, has_secret=True, force_unassign=True, assigned_to=AMY))
    assert [(a.kind, a.user_id) for a in plan.actions] == [(UNASSIGN, ADELE.id), (DELETE, None), (CREATE, AMY.id)]
    assert plan.after == res("assigned", AMY, upn=True, device_id=None, last_used_date_time=None)


# ---------------------------------------------------------------------------------------------------- before / after
PLANS = [
    (None, new_spec()),
    (None, new_spec(assigned_to=AMY, display_name="x")),
    (inv(), spec(state="absent", has_secret=True)),
    (inv(), spec(display_name="Lobby", has_secret=True)),
    (inv("activated", ADELE), spec(assigned_to=AMY, force_unassign=True, has_secret=True)),
    (inv("activated", ADELE), spec(rotate=True, has_secret=True, force_unassign=True)),
    (inv(), spec(rotate=True, has_secret=True)),
]


@pytest.mark.parametrize("current, wanted", PLANS)
def test_before_and_after_are_snake_case_and_never_hold_a_secret(current, wanted):
    plan = plan_token(current, wanted)
    for state in (plan.before, plan.after):
        assert list(state) in ([], RESULT_KEYS)
        assert not any(k.startswith("secret") or k != k.lower() for k in state)
    assert SECRET not in repr(plan)


@pytest.mark.parametrize("current, wanted", [p for p in PLANS if p[0] is None or p[1].rotate])
def test_new_tokens_have_no_id_yet(current, wanted):
    assert plan_token(current, wanted).after["device_id"] is None


# ---------------------------------------------------------------------------------------------------- bodies
def test_recreation_spec_takes_what_the_spec_leaves_alone_from_the_token():
    current = inv("activated", ADELE, display_name="Front desk", time_interval=60, hash_function="hmacsha256")
    wanted = spec(rotate=True, has_secret=True, model="X2", force_unassign=True, assigned_to=AMY)
    assert recreation_spec(current, wanted) == TokenSpec(
        serial_number=SERIAL,
        rotate=True,
        has_secret=True,
        model="X2",
        force_unassign=True,
        assigned_to=AMY,
        manufacturer="Contoso",
        time_interval=60,
        hash_function="hmacsha256",
        display_name="Front desk",
    )


def test_recreation_spec_keeps_a_missing_display_name_missing():
    assert recreation_spec(inv(display_name=None), spec()).display_name is None


def test_create_body_defaults():
    assert create_body(new_spec(), SECRET, None) == {
        "serialNumber": SERIAL,
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "secretKey": SECRET,
        "timeIntervalInSeconds": 30,
        "hashFunction": "hmacsha1",
    }


def test_create_body_with_every_field_and_assign_to():
    wanted = new_spec(time_interval=60, hash_function="hmacsha256", display_name="Lobby")
    assert create_body(wanted, SECRET, AMY.id) == {
        "serialNumber": SERIAL,
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "secretKey": SECRET,
        "timeIntervalInSeconds": 60,
        "hashFunction": "hmacsha256",
        "displayName": "Lobby",
        "assignTo": {"id": AMY.id},
    }


def test_create_body_display_name_only_when_given():
    assert "displayName" not in create_body(new_spec(display_name=None), SECRET, None)
    assert create_body(new_spec(display_name=""), SECRET, None)["displayName"] == ""
    assert "assignTo" not in create_body(new_spec(), SECRET, "")


@pytest.mark.parametrize(
    "changes, expected",
    [
        ((), {}),
        (("manufacturer",), {"manufacturer": "Fabrikam"}),
        (("model",), {"model": "X2"}),
        (("time_interval",), {"timeIntervalInSeconds": 60}),
        (("hash_function",), {"hashFunction": "hmacsha256"}),
        (("display_name",), {"displayName": "Lobby"}),
        (("display_name", "time_interval"), {"displayName": "Lobby", "timeIntervalInSeconds": 60}),
    ],
)
def test_update_body(changes, expected):
    wanted = spec(
        manufacturer="Fabrikam", model="X2", time_interval=60, hash_function="hmacsha256", display_name="Lobby"
    )
    assert update_body(wanted, changes) == expected


# ---------------------------------------------------------------------------------------------------- results
def test_token_result_with_a_holder():
    assert token_result(inv("activated", AMY), "amy.masters@contoso.com") == res("activated", AMY, upn=True)
    assert token_result(inv("activated", AMY)) == res("activated", AMY)


def test_token_result_without_a_holder_or_an_id():
    view = TokenView(
        id="", serial_number=SERIAL, status="available", assigned_to_id=None, assigned_to_name=None, display_name=None
    )
    assert token_result(view, "ignored@contoso.com") == {
        "device_id": None,
        "serial_number": SERIAL,
        "display_name": None,
        "manufacturer": None,
        "model": None,
        "time_interval": 30,
        "hash_function": "hmacsha1",
        "status": "available",
        "assigned_to": None,
        "last_used_date_time": None,
    }


def test_token_spec_wanted_and_label():
    assert spec().wanted() == {}
    assert spec(display_name="", time_interval=60, assigned_to=AMY, has_secret=True).wanted() == {
        "time_interval": 60,
        "display_name": "",
    }
    assert spec().label == LABEL
