# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""A whole declared inventory, pure: the checks of the list, the plan of every token (composed from the shared
per-token planners: ``plan_token`` for the inventory entry, ``plan_assignment`` for who holds it), the prune within
an explicit scope, the outcome of each token, and the report. No I/O here."""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

from .._common.errors import InputError, ModuleFailure, PlanError
from .._domain.actions import (
    NO_PLAN,
    UNASSIGN,
    UPDATE,
    Action,
    Plan,
    outcome_of,
)
from .._domain.tokens import MAX_METHODS_PER_USER, TokenView, UserView
from .assignment import Desired, plan_assignment
from .token import TokenSpec, created_view, plan_token, token_result

STATES = ("activated", "assigned", "available", "absent")
HOLDING_STATES = ("activated", "assigned")
PRUNE_ACTIONS = ("unassign", "delete")


@dataclass(frozen=True)
class Entry:
    """One entry of the declared list. The secret and the code are not here: they never enter a plan."""

    index: int
    serial_number: str
    state: str = "activated"
    user: str | None = None  # as given: a user principal name or an object id
    has_secret: bool = False
    has_code: bool = False
    manufacturer: str | None = None
    model: str | None = None
    time_interval: int | None = None
    hash_function: str | None = None
    display_name: str | None = None

    @property
    def label(self) -> str:
        return f"tokens[{self.index}] ({self.serial_number})"


@dataclass(frozen=True)
class PruneScope:
    """Which tokens the list speaks for: every condition given must hold (text compares without regard to case)."""

    action: str  # unassign | delete
    serial_number_prefix: str | None = None
    manufacturer: str | None = None
    model: str | None = None

    def covers(self, token: TokenView) -> bool:
        def same(wanted: str | None, actual: str | None) -> bool:
            return wanted is None or (actual or "").casefold() == wanted.casefold()

        prefix = (self.serial_number_prefix or "").casefold()
        return (
            token.serial_number.casefold().startswith(prefix)
            and same(self.manufacturer, token.manufacturer)
            and same(self.model, token.model)
        )


@dataclass(frozen=True)
class TokenPlan:
    """The plan of one token, whole: what the applier needs and nothing it must rebuild. ``spec``: what the
    inventory writes were planned from; ``inventory``: those writes (``plan_token``); ``assignment``: who is to hold
    it (``plan_assignment`` for ``user`` as ``desired``), planned against ``view``, the token as the inventory writes
    leave it. ``before`` and ``after``: the token's result before and after both. ``error``: why it can't be reached
    (the token fails, the others go on)."""

    serial_number: str
    entry: Entry | None  # None: a token the list does not name (prune)
    user: UserView | None
    spec: TokenSpec
    inventory: Plan = NO_PLAN
    assignment: Plan = NO_PLAN
    desired: Desired | None = None  # None: nobody is to hold it
    before: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    after: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    current: TokenView | None = None  # as listed
    view: TokenView | None = None  # as the inventory writes leave it (None: deleted, or not planned)
    secret_later: bool = False  # planned without the secret it needs (see plan_inventory's secrets_later)

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.inventory.actions + self.assignment.actions

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def creates(self) -> bool:
        return self.inventory.creates

    @property
    def needs_code(self) -> bool:
        return self.assignment.needs_code

    @property
    def outcome(self) -> str:
        return "failed" if self.error else outcome_of(self.actions)


# ---------------------------------------------------------------------- checks of the list
def check_entries(entries: t.Sequence[Entry]) -> None:
    """Refuse, before any request, a list that contradicts itself: a serial number twice (for one user or two), a
    holding state without a user or a user with a state that holds nothing, more than five tokens for one user.
    Names every entry concerned."""
    problems: list[str] = []
    by_serial: dict[str, list[Entry]] = {}
    for entry in entries:
        by_serial.setdefault(entry.serial_number.casefold(), []).append(entry)
        if entry.state in HOLDING_STATES and not entry.user:
            problems.append(f"{entry.label} has state={entry.state} but no user")
        if entry.state not in HOLDING_STATES and entry.user:
            problems.append(
                f"{entry.label} has state={entry.state} and a user; only activated and assigned tokens "
                "are held by someone"
            )
    for same in by_serial.values():
        if len(same) > 1:
            users = sorted({entry.user for entry in same if entry.user})
            whose = f" (for {' and '.join(users)})" if len(users) > 1 else ""
            problems.append(
                f"serial number {same[0].serial_number} is declared {len(same)} times{whose}: "
                + ", ".join(f"tokens[{entry.index}]" for entry in same)
            )
    problems += _too_many_per_user(entries, lambda entry: entry.user.casefold() if entry.user else None)
    if problems:
        raise InputError("The tokens list contradicts itself; nothing was changed: " + "; ".join(problems) + ".")


def check_users(entries: t.Sequence[Entry], users: t.Mapping[str, UserView]) -> None:
    """The five tokens per user again, once the users are looked up (``users``: by the reference given, case-folded):
    check_entries ran before any request, so one user named two ways (a user principal name in some entries, the
    object id in others) shows only now. Refuses the list, naming the entries."""
    problems = _too_many_per_user(entries, lambda entry: user.id if (user := _user_of(entry, users)) else None)
    if problems:
        raise InputError(
            "The tokens list gives one user too many tokens; nothing was changed: " + "; ".join(problems) + "."
        )


def _too_many_per_user(entries: t.Sequence[Entry], user_key: t.Callable[[Entry], str | None]) -> list[str]:
    """A problem for each user (by ``user_key``) given more tokens than a user may hold."""
    by_user: dict[str, list[Entry]] = {}
    for entry in entries:
        key = user_key(entry)
        if key is not None and entry.state in HOLDING_STATES:
            by_user.setdefault(key, []).append(entry)
    return [
        f"user {held[0].user} is given {len(held)} tokens ("
        + ", ".join(f"tokens[{entry.index}]" for entry in held)
        + f"); a user holds at most {MAX_METHODS_PER_USER} OATH methods"
        for held in by_user.values()
        if len(held) > MAX_METHODS_PER_USER
    ]


# ---------------------------------------------------------------------- plans
def plan_inventory(
    entries: t.Sequence[Entry],
    tokens: t.Iterable[TokenView],
    users: t.Mapping[str, UserView],
    *,
    force_unassign: bool = False,
    prune: PruneScope | None = None,
    secrets_later: bool = False,
) -> list[TokenPlan]:
    """The plan of every declared token (in list order), then of every token the prune scope covers that the list
    does not name. ``tokens``: the whole inventory as listed; ``users``: the declared users by the reference given
    (case-folded). ``secrets_later``: a token whose secret is not given is planned as if it were (a plan made
    without the seeds, which only an apply needs); a plan that needs it has ``secret_later``."""
    current = {token.serial_number.casefold(): token for token in tokens}
    plans = [
        plan_entry(
            entry,
            current.get(entry.serial_number.casefold()),
            _user_of(entry, users),
            force_unassign=force_unassign,
            secrets_later=secrets_later,
        )
        for entry in entries
    ]
    if prune is not None:
        named = {entry.serial_number.casefold() for entry in entries}
        plans += [
            plan_pruned(token, prune)
            for key, token in sorted(current.items())
            if key not in named and prune.covers(token)
        ]
    return plans


def _user_of(entry: Entry, users: t.Mapping[str, UserView]) -> UserView | None:
    return users.get(entry.user.casefold()) if entry.user else None


def plan_entry(
    entry: Entry,
    current: TokenView | None,
    user: UserView | None,
    *,
    force_unassign: bool = False,
    secrets_later: bool = False,
) -> TokenPlan:
    """The plan of one declared token; a token that can't be reached gets ``error`` instead of actions. With
    ``secrets_later``, a missing secret is taken as given, and the plan says whether it needs it."""
    try:
        if secrets_later and not entry.has_secret:
            plan = _plan_entry(dataclasses.replace(entry, has_secret=True), current, user, force_unassign)
            needs = plan.creates or plan.spec.rotate or (plan.needs_code and not entry.has_code)
            return dataclasses.replace(plan, entry=entry, secret_later=needs)
        return _plan_entry(entry, current, user, force_unassign)
    except ModuleFailure as exc:
        before = token_result(current) if current else {}
        return TokenPlan(
            entry.serial_number,
            entry,
            user,
            entry_spec(entry),
            before=before,
            after=before,
            error=exc.message,
            current=current,
        )


def _plan_entry(entry: Entry, current: TokenView | None, user: UserView | None, force_unassign: bool) -> TokenPlan:
    if entry.state in HOLDING_STATES:
        if user is None:
            raise PlanError(f"{entry.label}: user {entry.user} was not found in the tenant")
        if user.user_type == "Guest":  # said first: no other option of the entry would help
            raise PlanError(
                f"{entry.label}: {user.user_principal_name} is a guest user; Entra ID does not allow hardware OATH "
                "tokens for guest users."
            )
    holds = entry.state in HOLDING_STATES
    view: TokenView | None = None  # deleted
    if entry.state == "absent":
        spec = entry_spec(entry, state="absent", force_unassign=True)
        inventory = plan_token(current, spec)
    elif current is None:  # created with every declared field, assigned in the same request when held
        spec = entry_spec(entry, assigned_to=user if holds else None)
        inventory = plan_token(None, spec)
        view = created_view(spec, spec.assigned_to)
    else:
        # A held token's display name is set by its activation (Graph changes a held token's fields no other way).
        spec = entry_spec(entry, display_name=None if holds else entry.display_name)
        inventory, view = _plan_existing(entry, current, spec, force_unassign)
    after = inventory.after or (token_result(view) if view else {})
    assignment, desired = NO_PLAN, None
    if holds:
        user, view = t.cast(UserView, user), t.cast(TokenView, view)
        desired = Desired(activate=entry.state == "activated", display_name=entry.display_name, reassign=True)
        assignment = plan_assignment(view, user, desired)
        if assignment.needs_code and not (entry.has_secret or entry.has_code):
            raise PlanError(
                f"{entry.label} must be activated for {user.user_principal_name}: give its secret_key "
                "(to compute the code) or a verification_code read from the token"
            )
        after = _after_assignment(after, assignment.after, user)
    # The token's result before is its inventory plan's: one dict per token, not a copy (10,000 tokens are planned).
    return TokenPlan(
        entry.serial_number,
        entry,
        user,
        spec,
        inventory,
        assignment,
        desired,
        before=inventory.before,
        after=after,
        current=current,
        view=view,
    )


def _plan_existing(entry: Entry, current: TokenView, spec: TokenSpec, force_unassign: bool) -> tuple[Plan, TokenView]:
    """The inventory writes of a token in the inventory, and the token as they leave it. Graph changes only
    unassigned tokens: a held token whose fields differ is unassigned first (with ``force_unassign``), and a token
    declared available is unassigned."""
    changes = [name for name, value in spec.wanted().items() if getattr(current, name) != value]
    unassign = current.assigned_to_id is not None and (bool(changes) or entry.state == "available")
    if not unassign:
        plan = plan_token(current, spec)
        return plan, _view_after(current, spec, plan.actions)
    if changes and entry.state != "available" and not force_unassign:
        holder = f"{current.assigned_to_name or 'its holder'} ({current.assigned_to_id})"
        raise PlanError(
            f"{entry.label}: {', '.join(changes)} differ{'s' if len(changes) == 1 else ''}, and Graph "
            f"changes a token only while it is unassigned; it is held by {holder}. Set "
            "force_unassign=true to unassign it first (it is then assigned and activated again as "
            "declared), or declare the token as it is"
        )
    unassigned = dataclasses.replace(current, assigned_to_id=None, assigned_to_name=None, status="available")
    plan = plan_token(unassigned, spec)
    first = Action(UNASSIGN, current.assigned_to_id, _unassign_reason(entry, changes))
    combined = Plan((first, *plan.actions), token_result(current), plan.after)
    return combined, _view_after(unassigned, spec, plan.actions)


def _unassign_reason(entry: Entry, changes: t.Sequence[str]) -> str:
    if entry.state == "available":
        return f"{entry.label} is declared available"
    return f"{', '.join(changes)} can change only while the token is unassigned; force_unassign=true"


def _view_after(current: TokenView, spec: TokenSpec, actions: t.Sequence[Action]) -> TokenView:
    return dataclasses.replace(current, **spec.wanted()) if any(a.kind == UPDATE for a in actions) else current


def _after_assignment(after: dict[str, t.Any], assignment_after: dict[str, t.Any], user: UserView) -> dict[str, t.Any]:
    """The token result after both plans: the inventory's fields, the assignment's holder, status and name."""
    holder = assignment_after.get("assigned_to")
    return {
        **after,
        "status": assignment_after["status"],
        "display_name": assignment_after["display_name"],
        "assigned_to": {**holder, "user_principal_name": user.user_principal_name} if holder else None,
    }


def entry_spec(entry: Entry, **changes: t.Any) -> TokenSpec:
    fields = {
        "serial_number": entry.serial_number,
        "has_secret": entry.has_secret,
        "manufacturer": entry.manufacturer,
        "model": entry.model,
        "time_interval": entry.time_interval,
        "hash_function": entry.hash_function,
        "display_name": entry.display_name,
    }
    return TokenSpec(**{**fields, **changes})


def plan_pruned(token: TokenView, scope: PruneScope) -> TokenPlan:
    """A token in the scope that the list does not name: unassigned, or deleted (unassigned first when held)."""
    before = token_result(token)
    spec = TokenSpec(serial_number=token.serial_number, state="absent", force_unassign=True)
    if scope.action == "delete":
        plan = plan_token(token, spec)
        return TokenPlan(
            token.serial_number, None, None, spec, plan, before=plan.before, after=plan.after, current=token
        )
    spec = dataclasses.replace(spec, state="present")
    if not token.assigned_to_id:
        return TokenPlan(token.serial_number, None, None, spec, before=before, after=before, current=token, view=token)
    unassign = Action(UNASSIGN, token.assigned_to_id, "not in the tokens list, within the prune scope")
    after = {**before, "status": "available", "assigned_to": None}
    unassigned = dataclasses.replace(token, assigned_to_id=None, assigned_to_name=None, status="available")
    plan = Plan((unassign,), before, after)
    return TokenPlan(
        token.serial_number, None, None, spec, plan, before=before, after=after, current=token, view=unassigned
    )


def report_row(
    plan: TokenPlan,
    *,
    outcome: str | None = None,
    error: str | None = None,
    request_id: str | None = None,
    done: t.Sequence[Action] | None = None,
) -> dict[str, t.Any]:
    """One token's row of the report: what was declared, what happened, the state before and after. Never a
    secret. ``outcome``/``error``/``done``: what the run found (default: what the plan predicts)."""
    actions = plan.actions if done is None else done
    row: dict[str, t.Any] = {
        "serial_number": plan.serial_number,
        "entry": plan.entry.index if plan.entry else None,
        "declared_state": plan.entry.state if plan.entry else None,
        "user": plan.user.user_principal_name if plan.user else (plan.entry.user if plan.entry else None),
        "outcome": outcome or plan.outcome,
        "actions": [action.to_result() for action in actions],
        "before": plan.before,
        "after": plan.after,
    }
    if error or plan.error:
        row["error"] = error or plan.error
    if request_id:
        row["request_id"] = request_id
    return row
