# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The assignment of one token to one user (_planning/assignment.py), pure: the table of every current state and
wish, and the plans' reasons, before and after."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import ModuleFailure, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    SET_DISPLAY_NAME,
    UNASSIGN,
    Action,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._planning.assignment import Desired, plan_assignment
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE as OTHER
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import AMY as THIS
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import DEVICE_ID, GUEST, NAME, SERIAL, token

OLD_NAME = "Amy's token"


NEW_NAME = NAME


HOLDERS = {"none": None, "this": THIS, "other": OTHER}


THIS_WHO = f"amy.masters@contoso.com ({THIS.id})"


OTHER_WHO = f"Adele Vance ({OTHER.id})"


def make_token(status: str, holder: str, display_name: str | None = OLD_NAME) -> TokenView:
    """The token in ``status``, held by HOLDERS[holder]."""
    return token(status, HOLDERS[holder], display_name)


def holder_dict(user: UserView | None) -> dict | None:
    return {"id": user.id, "display_name": user.display_name} if user else None


def state_dict(status: str, holder: UserView | None, name: str | None) -> dict:
    return {
        "serial_number": SERIAL,
        "device_id": DEVICE_ID,
        "status": status,
        "display_name": name,
        "assigned_to": holder_dict(holder),
    }


# ---------------------------------------------------------------------------------------------------- the plan table
# The consistent current states: an available token has no holder; an assigned one has one.
CURRENT = [
    ("available", "none"),
    ("assigned", "this"),
    ("activated", "this"),
    ("failedActivation", "this"),
    ("assigned", "other"),
    ("activated", "other"),
    ("failedActivation", "other"),
]


NAMES = {"none": None, "same": OLD_NAME, "new": NEW_NAME}


# From an unassigned token (available, or just unassigned from another user with reassign=true):
# (activate, name) -> (kinds, status after, display name after)
FROM_UNASSIGNED = {
    (True, "none"): ([ASSIGN_AND_ACTIVATE], "activated", OLD_NAME),
    (True, "same"): ([ASSIGN_AND_ACTIVATE], "activated", OLD_NAME),
    (True, "new"): ([ASSIGN_AND_ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([ASSIGN], "assigned", OLD_NAME),
    (False, "same"): ([ASSIGN], "assigned", OLD_NAME),
    (False, "new"): ([SET_DISPLAY_NAME, ASSIGN], "assigned", NEW_NAME),
}


# Held by this user, assigned or failedActivation (not activated)
FROM_THIS_NOT_ACTIVATED = {
    (True, "none"): ([ACTIVATE], "activated", OLD_NAME),
    (True, "same"): ([ACTIVATE], "activated", OLD_NAME),
    (True, "new"): ([ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([], None, OLD_NAME),  # None: status unchanged
    (False, "same"): ([], None, OLD_NAME),
    (False, "new"): "rename-not-activated",
}


# Held by this user, activated: a rename re-activates, whatever activate says
FROM_THIS_ACTIVATED = {
    (True, "none"): ([], "activated", OLD_NAME),
    (True, "same"): ([], "activated", OLD_NAME),
    (True, "new"): ([ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([], "activated", OLD_NAME),
    (False, "same"): ([], "activated", OLD_NAME),
    (False, "new"): ([ACTIVATE], "activated", NEW_NAME),
}


def _present_rows():
    for status, holder in CURRENT:
        for activate in (True, False):
            for name in ("none", "same", "new"):
                for reassign in (False, True):
                    key = (activate, name)
                    if holder == "none":
                        kinds, after_status, after_name = FROM_UNASSIGNED[key]
                    elif holder == "other":
                        if not reassign:
                            yield status, holder, activate, name, reassign, "other-holder"
                            continue
                        kinds, after_status, after_name = FROM_UNASSIGNED[key]
                        kinds = [UNASSIGN] + kinds
                    elif status == "activated":
                        kinds, after_status, after_name = FROM_THIS_ACTIVATED[key]
                    else:
                        expected = FROM_THIS_NOT_ACTIVATED[key]
                        if isinstance(expected, str):
                            yield status, holder, activate, name, reassign, expected
                            continue
                        kinds, after_status, after_name = expected
                    yield status, holder, activate, name, reassign, (kinds, after_status or status, "this", after_name)


PRESENT_ROWS = list(_present_rows())


def _row_id(row):
    status, holder, activate, name, reassign, _expected = row
    return f"{status}-held_by_{holder}-activate_{activate}-name_{name}-reassign_{reassign}"


def test_the_table_covers_every_combination():
    assert len(PRESENT_ROWS) == len(CURRENT) * 2 * 3 * 2 == 84
    assert sum(1 for r in PRESENT_ROWS if r[-1] == "other-holder") == 3 * 6
    assert sum(1 for r in PRESENT_ROWS if r[-1] == "rename-not-activated") == 2 * 2


@pytest.mark.parametrize("row", PRESENT_ROWS, ids=[_row_id(r) for r in PRESENT_ROWS])
def test_plan_present(row):
    status, holder, activate, name, reassign, expected = row
    token = make_token(status, holder)
    desired = Desired(state="present", activate=activate, display_name=NAMES[name], reassign=reassign)
    if expected == "other-holder":
        with pytest.raises(PlanError) as info:
            plan_assignment(token, THIS, desired)
        assert info.value.message == (
            f"token {SERIAL} is assigned to {OTHER_WHO}, not to {THIS_WHO}. Set reassign=true to take it from "
            f"{OTHER_WHO} and give it to amy.masters@contoso.com."
        )
        return
    if expected == "rename-not-activated":
        with pytest.raises(PlanError) as info:
            plan_assignment(token, THIS, desired)
        assert info.value.message == (
            f"token {SERIAL} is assigned to {THIS_WHO} but not activated; its display name can only be set while "
            "activating it (activate=true) or while it is unassigned."
        )
        return
    kinds, after_status, after_holder, after_name = expected
    plan = plan_assignment(token, THIS, desired)
    assert [a.kind for a in plan.actions] == kinds
    assert plan.changed is bool(kinds)
    assert plan.needs_code is any(k in (ACTIVATE, ASSIGN_AND_ACTIVATE) for k in kinds)
    assert plan.before == state_dict(status, HOLDERS[holder], OLD_NAME)
    assert plan.after == state_dict(after_status, HOLDERS[after_holder], after_name)
    # every action touches this user's methods, except taking the token from the other user
    assert [a.user_id for a in plan.actions] == [OTHER.id if k == UNASSIGN else THIS.id for k in kinds]


ABSENT_ROWS = [
    # status, holder, expected kinds, after
    ("available", "none", [], ("available", None)),
    ("assigned", "this", [UNASSIGN], ("available", None)),
    ("activated", "this", [UNASSIGN], ("available", None)),
    ("failedActivation", "this", [UNASSIGN], ("available", None)),
    # someone else's token is left alone, and the predicted state is the current one: still theirs
    ("assigned", "other", [], ("assigned", OTHER)),
    ("activated", "other", [], ("activated", OTHER)),
    ("failedActivation", "other", [], ("failedActivation", OTHER)),
]


# Every desired variation of state=absent: display_name, activate and reassign play no part in it.
ABSENT_VARIATIONS = [
    Desired(state="absent", activate=activate, display_name=NAMES[name], reassign=reassign)
    for name in NAMES
    for activate in (True, False)
    for reassign in (False, True)
]


@pytest.mark.parametrize(
    "status, holder, kinds, after", ABSENT_ROWS, ids=[f"{r[0]}-held_by_{r[1]}" for r in ABSENT_ROWS]
)
def test_plan_absent(status, holder, kinds, after):
    assert len(ABSENT_VARIATIONS) == 12
    token = make_token(status, holder)
    for desired in ABSENT_VARIATIONS:
        plan = plan_assignment(token, THIS, desired)
        assert [a.kind for a in plan.actions] == kinds, desired
        assert [a.user_id for a in plan.actions] == [THIS.id] * len(kinds), desired
        assert plan.changed is bool(kinds), desired
        assert plan.needs_code is False, desired
        assert plan.before == state_dict(status, HOLDERS[holder], OLD_NAME), desired
        assert plan.after == state_dict(after[0], after[1], OLD_NAME), desired  # absent never renames


NO_CHANGE_CANDIDATES = [
    Desired(),
    Desired(activate=False),
    Desired(display_name=OLD_NAME),
    Desired(activate=False, display_name=OLD_NAME),
] + ABSENT_VARIATIONS


@pytest.mark.parametrize("status, holder", CURRENT)
def test_a_plan_without_actions_predicts_the_current_state(status, holder):
    token = make_token(status, holder)
    unchanged = 0
    for desired in NO_CHANGE_CANDIDATES:
        try:
            plan = plan_assignment(token, THIS, desired)
        except PlanError:
            continue
        if not plan.changed:
            unchanged += 1
            assert plan.after == plan.before, desired
    assert unchanged > 0


def test_plan_absent_with_a_token_held_by_someone_else_names_the_holder_after():
    plan = plan_assignment(make_token("activated", "other"), THIS, Desired(state="absent"))
    assert plan.actions == ()
    assert plan.after["assigned_to"] == {"id": OTHER.id, "display_name": "Adele Vance"}


def test_plan_reasons_and_results():
    plan = plan_assignment(make_token("activated", "other"), THIS, Desired(reassign=True, display_name=NEW_NAME))
    assert [a.to_result() for a in plan.actions] == [
        {
            "action": "unassign",
            "user_id": OTHER.id,
            "reason": f"token {SERIAL} is assigned to {OTHER_WHO}; reassign=true",
        },
        {"action": "assign_and_activate", "user_id": THIS.id, "reason": f"token {SERIAL} is available"},
    ]
    plan = plan_assignment(make_token("available", "none"), THIS, Desired(activate=False, display_name=NEW_NAME))
    assert [a.to_result() for a in plan.actions] == [
        {"action": "set_display_name", "user_id": THIS.id, "reason": "the display name differs"},
        {"action": "assign", "user_id": THIS.id, "reason": f"token {SERIAL} is available; activate=false"},
    ]
    plan = plan_assignment(make_token("failedActivation", "this"), THIS, Desired())
    assert plan.actions == (Action(ACTIVATE, THIS.id, f"token {SERIAL} is failedActivation, not activated"),)
    plan = plan_assignment(make_token("activated", "this"), THIS, Desired(display_name=NEW_NAME))
    assert plan.actions == (Action(ACTIVATE, THIS.id, "the display name differs; it is set by re-activating"),)
    plan = plan_assignment(make_token("assigned", "this"), THIS, Desired(state="absent"))
    assert plan.actions == (Action(UNASSIGN, THIS.id, f"token {SERIAL} is assigned to {THIS_WHO}"),)


def test_plan_other_holder_without_a_name():
    token = TokenView(
        id=DEVICE_ID,
        serial_number=SERIAL,
        status="activated",
        assigned_to_id=OTHER.id,
        assigned_to_name=None,
        display_name=None,
    )
    with pytest.raises(PlanError) as info:
        plan_assignment(token, THIS, Desired())
    message = info.value.message
    assert message == (
        f"token {SERIAL} is assigned to another user ({OTHER.id}), not to {THIS_WHO}. Set reassign=true "
        f"to take it from another user ({OTHER.id}) and give it to amy.masters@contoso.com."
    )
    assert isinstance(info.value, ModuleFailure)
    assert info.value.to_result() == {}


@pytest.mark.parametrize("status, holder", CURRENT)
def test_plan_refuses_guest_users(status, holder):
    for desired in (Desired(), Desired(activate=False), Desired(reassign=True, display_name=NEW_NAME)):
        with pytest.raises(PlanError) as info:
            plan_assignment(make_token(status, holder), GUEST, desired)
        assert info.value.message == (
            f"token {SERIAL}: grady_fabrikam.com#EXT#@contoso.onmicrosoft.com ({GUEST.id}) is a guest user; Entra ID "
            "does not allow hardware OATH tokens for guest users."
        )


def test_plan_absent_for_a_guest_who_holds_the_token_unassigns():
    token = TokenView(
        id=DEVICE_ID,
        serial_number=SERIAL,
        status="activated",
        assigned_to_id=GUEST.id,
        assigned_to_name="Grady",
        display_name=None,
    )
    plan = plan_assignment(token, GUEST, Desired(state="absent"))
    assert [a.kind for a in plan.actions] == [UNASSIGN]


def test_plan_name_set_on_a_token_without_a_name():
    token = make_token("available", "none", display_name=None)
    plan = plan_assignment(token, THIS, Desired(display_name=NEW_NAME))
    assert [a.kind for a in plan.actions] == [ASSIGN_AND_ACTIVATE]
    assert plan.before["display_name"] is None
    assert plan.after["display_name"] == NEW_NAME


def test_plan_is_pure():
    token = make_token("activated", "other")
    first = plan_assignment(token, THIS, Desired(reassign=True))
    second = plan_assignment(token, THIS, Desired(reassign=True))
    assert first == second
    assert token == make_token("activated", "other")
