# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The assignment of one token to one user, pure: the actions that take a token from its current state to the one
wanted for a user (shared by the single-token and bulk modules). No I/O here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .._common.errors import PlanError
from .._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    CODE_ACTIONS,
    SET_DISPLAY_NAME,
    UNASSIGN,
    Action,
    Plan,
)
from .._domain.tokens import TokenView, UserView


@dataclass(frozen=True)
class Desired:
    state: str = "present"  # present | absent
    activate: bool = True
    display_name: str | None = None  # None: leave as it is
    reassign: bool = False


def assignment_state(token: TokenView) -> dict[str, t.Any]:
    """What the diff shows: who holds the token, its status and display name. Never a secret."""
    holder = {"id": token.assigned_to_id, "display_name": token.assigned_to_name} if token.assigned_to_id else None
    return {
        "serial_number": token.serial_number,
        "device_id": token.id,
        "assigned_to": holder,
        "status": token.status,
        "display_name": token.display_name,
    }


def plan_assignment(token: TokenView, user: UserView, desired: Desired) -> Plan:
    """The actions that take ``token`` from its current state to ``desired`` for ``user``. Pure."""
    actions: list[Action] = []
    holder, status, name = token.assigned_to_id, token.status, token.display_name
    who = f"{user.user_principal_name} ({user.id})"
    if desired.state == "absent":
        if holder == user.id:
            actions.append(Action(UNASSIGN, user.id, f"{token.label} is assigned to {who}"))
            holder, status = None, "available"
        return _plan(token, actions, status, name, holder=None if actions else assignment_state(token)["assigned_to"])

    if user.user_type == "Guest":
        raise PlanError(
            f"{token.label}: {who} is a guest user; Entra ID does not allow hardware OATH tokens for guest users."
        )
    if holder is not None and holder != user.id:
        other = f"{token.assigned_to_name or 'another user'} ({holder})"
        if not desired.reassign:
            raise PlanError(
                f"{token.label} is assigned to {other}, not to {who}. Set reassign=true to take it from "
                f"{other} and give it to {user.user_principal_name}."
            )
        actions.append(Action(UNASSIGN, holder, f"{token.label} is assigned to {other}; reassign=true"))
        holder, status = None, "available"

    wants_name = desired.display_name is not None and desired.display_name != name
    if holder is None:
        if desired.activate:
            actions.append(Action(ASSIGN_AND_ACTIVATE, user.id, f"{token.label} is available"))
            status = "activated"
        else:
            if wants_name:
                actions.append(Action(SET_DISPLAY_NAME, user.id, "the display name differs"))
            actions.append(Action(ASSIGN, user.id, f"{token.label} is available; activate=false"))
            status = "assigned"
        holder = user.id
    elif status == "activated":
        if wants_name:
            # An assigned token's display name changes only through activation (Graph refuses a PATCH).
            actions.append(Action(ACTIVATE, user.id, "the display name differs; it is set by re-activating"))
    elif desired.activate:
        actions.append(Action(ACTIVATE, user.id, f"{token.label} is {status}, not activated"))
        status = "activated"
    elif wants_name:
        raise PlanError(
            f"{token.label} is assigned to {who} but not activated; its display name can only be set "
            "while activating it (activate=true) or while it is unassigned."
        )
    if wants_name and any(a.kind in CODE_ACTIONS | {SET_DISPLAY_NAME} for a in actions):
        name = desired.display_name
    return _plan(token, actions, status, name, holder={"id": user.id, "display_name": user.display_name})


def _plan(
    token: TokenView, actions: list[Action], status: str, name: str | None, holder: dict[str, t.Any] | None
) -> Plan:
    after = {
        "serial_number": token.serial_number,
        "device_id": token.id,
        "status": status,
        "display_name": name,
        "assigned_to": holder,
    }
    return Plan(actions=tuple(actions), before=assignment_state(token), after=after)
