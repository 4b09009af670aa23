# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The writes a plan is made of, pure: the kinds of action, ``Action`` and ``Plan``, the one word a token's outcome
gets, and the words results, failure messages and reports use for each. No I/O here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

# The writes under a user's authentication methods, in the order a plan runs them.
UNASSIGN = "unassign"
SET_DISPLAY_NAME = "set_display_name"  # PATCH the inventory entry; only possible while unassigned
ASSIGN = "assign"
ACTIVATE = "activate"
ASSIGN_AND_ACTIVATE = "assign_and_activate"
CODE_ACTIONS = frozenset({ACTIVATE, ASSIGN_AND_ACTIVATE})
# The writes of the token inventory (hardwareOathDevices).
CREATE = "create"
UPDATE = "update"
DELETE = "delete"

# What happened to a token, in the order reports name them (counts, summaries).
OUTCOMES = (
    "created",
    "updated",
    "assigned",
    "activated",
    "reassigned",
    "unassigned",
    "deleted",
    "failed",
    "unchanged",
)
# A report's text of each write (the user, when there is one, follows the text).
ACTION_TEXTS = {
    CREATE: "create",
    UPDATE: "update",
    SET_DISPLAY_NAME: "set display_name",
    DELETE: "delete",
    UNASSIGN: "unassign from",
    ASSIGN: "assign to",
    ACTIVATE: "activate for",
    ASSIGN_AND_ACTIVATE: "assign and activate for",
}
# A failure message's text of each write that took effect before it ({who}: the user; {changes}: the fields).
DONE_TEXTS = {
    UNASSIGN: "unassigned it from {who}",
    SET_DISPLAY_NAME: "set its display name",
    ASSIGN: "assigned it to {who}",
    ACTIVATE: "activated it for {who}",
    ASSIGN_AND_ACTIVATE: "assigned and activated it for {who}",
    CREATE: "created it",
    UPDATE: "updated {changes}",
    DELETE: "deleted it",
}


@dataclass(frozen=True)
class Action:
    kind: str
    user_id: str | None  # whose method it touches (for UNASSIGN, the current holder); None for inventory writes
    reason: str
    changes: tuple[str, ...] = ()  # the inventory fields an update or a creation sets

    def to_result(self) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {"action": self.kind, "user_id": self.user_id, "reason": self.reason}
        if self.changes:
            result["changes"] = list(self.changes)
        return result


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    before: dict[str, t.Any]
    after: dict[str, t.Any]

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def needs_code(self) -> bool:
        return any(a.kind in CODE_ACTIONS for a in self.actions)

    @property
    def creates(self) -> bool:
        """The plan creates the token (a creation is always its plan's first write)."""
        return bool(self.actions) and self.actions[0].kind == CREATE


NO_PLAN = Plan((), {}, {})


def outcome_of(actions: t.Sequence[Action]) -> str:
    """The one word a report gives a token for what its writes do."""
    kinds = [action.kind for action in actions]
    if not kinds:
        return "unchanged"
    if DELETE in kinds:
        return "deleted"
    if CREATE in kinds:
        return "created"
    gives = [a for a in actions if a.kind in (ASSIGN, ACTIVATE, ASSIGN_AND_ACTIVATE)]
    if gives and any(a.kind == UNASSIGN and a.user_id != gives[-1].user_id for a in actions):
        return "reassigned"
    if ACTIVATE in kinds or ASSIGN_AND_ACTIVATE in kinds:
        return "activated"
    if ASSIGN in kinds:
        return "assigned"
    if UNASSIGN in kinds:
        return "unassigned"
    return "updated"  # UPDATE, SET_DISPLAY_NAME


def counts(outcomes: t.Iterable[str]) -> dict[str, int]:
    """How many tokens ended with each outcome (every outcome listed, zeros included)."""
    result = dict.fromkeys(OUTCOMES, 0)
    for outcome in outcomes:
        result[outcome] += 1
    return result
