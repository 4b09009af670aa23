# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The inventory entry of one hardware OATH token, pure: what is wanted of it, the plan from its current state
(shared by the single-token and the bulk modules), the bodies of its writes, and the snake_case results. No I/O here."""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

from .._common.errors import PlanError
from .._domain.actions import ASSIGN, CREATE, DELETE, UNASSIGN, UPDATE, Action, Plan
from .._domain.tokens import TokenView, UserView

# The fields Graph lets an unassigned token change, and their Graph names.
MUTABLE_FIELDS = {
    "manufacturer": "manufacturer",
    "model": "model",
    "time_interval": "timeIntervalInSeconds",
    "hash_function": "hashFunction",
    "display_name": "displayName",
}
DEFAULT_TIME_INTERVAL = 30
DEFAULT_HASH_FUNCTION = "hmacsha1"


@dataclass(frozen=True)
class TokenSpec:
    """What is wanted of one inventory entry. ``None`` fields are left as they are (defaults apply on creation)."""

    serial_number: str
    state: str = "present"  # present | absent
    has_secret: bool = False  # the secret itself never enters a plan
    manufacturer: str | None = None
    model: str | None = None
    time_interval: int | None = None
    hash_function: str | None = None
    display_name: str | None = None
    assigned_to: UserView | None = None
    force_unassign: bool = False
    rotate: bool = False

    def wanted(self) -> dict[str, t.Any]:
        return {name: getattr(self, name) for name in MUTABLE_FIELDS if getattr(self, name) is not None}

    @property
    def label(self) -> str:
        return f"token {self.serial_number}"


def holder_result(token: TokenView, user_principal_name: str | None = None) -> dict[str, t.Any] | None:
    if not token.assigned_to_id:
        return None
    return {
        "id": token.assigned_to_id,
        "display_name": token.assigned_to_name,
        "user_principal_name": user_principal_name,
    }


def token_result(token: TokenView, user_principal_name: str | None = None) -> dict[str, t.Any]:
    """The token as modules return it: Graph's properties in snake_case, never the secret."""
    return {
        "device_id": token.id or None,
        "serial_number": token.serial_number,
        "display_name": token.display_name,
        "manufacturer": token.manufacturer,
        "model": token.model,
        "time_interval": token.time_interval,
        "hash_function": token.hash_function,
        "status": token.status,
        "assigned_to": holder_result(token, user_principal_name),
        "last_used_date_time": token.last_used,
    }


def _who(user_id: str, name: str | None) -> str:
    return f"{name} ({user_id})" if name else user_id


def created_view(
    spec: TokenSpec, holder: UserView | None, holder_id: str | None = None, holder_name: str | None = None
) -> TokenView:
    """The token a creation makes (its id is known only after the request), held by ``holder`` (or by the user of
    ``holder_id`` and ``holder_name``)."""
    holder_id = holder.id if holder and holder_id is None else holder_id
    return TokenView(
        id="",
        serial_number=spec.serial_number,
        status="assigned" if holder_id else "available",
        assigned_to_id=holder_id,
        assigned_to_name=holder.display_name if holder else holder_name,
        display_name=spec.display_name,
        hash_function=spec.hash_function or DEFAULT_HASH_FUNCTION,
        time_interval=spec.time_interval or DEFAULT_TIME_INTERVAL,
        manufacturer=spec.manufacturer,
        model=spec.model,
    )


def plan_token(current: TokenView | None, spec: TokenSpec) -> Plan:
    """The writes that take the inventory entry from ``current`` (None: not in the inventory) to ``spec``. Pure.

    Graph changes and deletes only unassigned tokens. With ``force_unassign`` an assigned token is unassigned first
    and, unless it is deleted, given back to its holder (or to ``spec.assigned_to``) afterwards, assigned but no
    longer activated. Raises PlanError when the spec can't be reached without an option the caller did not give."""
    target = spec.assigned_to if spec.state == "present" else None
    if spec.rotate and not spec.has_secret:
        raise PlanError(f"{spec.label}: rotate=true recreates the token with a new secret; give secret_key.")
    if target is not None and target.user_type == "Guest":
        raise PlanError(
            f"{spec.label}: {target.user_principal_name} is a guest user; Entra ID does not allow "
            "hardware OATH tokens for guest users."
        )
    if current is None:
        return Plan((), {}, {}) if spec.state == "absent" else _plan_creation(spec, target)
    if spec.state == "absent":
        return _plan_deletion(current, spec)

    holder = current.assigned_to_id
    changes = tuple(name for name, value in spec.wanted().items() if getattr(current, name) != value)
    new_holder = target.id if target else holder
    actions = _unassign_first(current, spec, target, changes, new_holder)
    name = target.display_name if target and new_holder == target.id else current.assigned_to_name
    if spec.rotate:
        actions.append(Action(DELETE, None, "rotate=true: the secret can't be changed, so the token is recreated"))
        actions.append(
            Action(
                CREATE,
                new_holder,
                "rotate=true: recreated with the new secret",
                changes=_created_fields(recreation_spec(current, spec), bool(new_holder)),
            )
        )
        after = created_view(recreation_spec(current, spec), None, new_holder, name)
    else:
        if changes:
            actions.append(
                Action(
                    UPDATE,
                    None,
                    f"{', '.join(changes)} {'differs' if len(changes) == 1 else 'differ'}",
                    changes=changes,
                )
            )
        if new_holder and (new_holder != holder or actions):
            actions.append(
                Action(
                    ASSIGN,
                    new_holder,
                    "given back to its holder, not activated"
                    if new_holder == holder
                    else f"user is {_who(new_holder, target.user_principal_name if target else None)}",
                )
            )
        status = current.status if not actions else ("assigned" if new_holder else "available")
        after = dataclasses.replace(
            current,
            **spec.wanted(),
            status=status,
            assigned_to_id=new_holder,
            assigned_to_name=name if new_holder else None,
        )
    upn = target.user_principal_name if target and new_holder == target.id else None
    return Plan(tuple(actions), token_result(current, upn if holder == new_holder else None), token_result(after, upn))


def _unassign_first(
    current: TokenView, spec: TokenSpec, target: UserView | None, changes: tuple[str, ...], new_holder: str | None
) -> list[Action]:
    """An assigned token that must be rotated, changed or given to someone else is unassigned first (Graph changes
    only unassigned tokens), with ``force_unassign``."""
    holder = current.assigned_to_id
    if not holder or not (spec.rotate or changes or new_holder != holder):
        return []
    holder_text = _who(holder, current.assigned_to_name)
    if spec.rotate:
        why = "rotating the secret deletes and recreates it, which Graph allows only while it is unassigned"
    elif changes:
        why = f"Graph changes {', '.join(changes)} only while a token is unassigned"
    else:
        target = t.cast(UserView, target)  # the holder differs from the one given
        why = (
            f"it should be assigned to {_who(target.id, target.user_principal_name)}; to hand it over with "
            "activation, use tokenops.entra.hardware_oath_assignment with reassign=true"
        )
    _require_force(spec, f"{spec.label} is assigned to {holder_text}; {why}")
    return [Action(UNASSIGN, holder, f"{spec.label} is assigned to {holder_text}; force_unassign=true")]


def _plan_creation(spec: TokenSpec, target: UserView | None) -> Plan:
    """A token not in the inventory is created, assigned to ``target`` in the same request when given."""
    given = (("secret_key", spec.has_secret), ("manufacturer", spec.manufacturer), ("model", spec.model))
    missing = [name for name, value in given if not value]
    if missing:
        raise PlanError(f"{spec.label} is not in the inventory; creating it needs {', '.join(missing)}.")
    created = created_view(spec, target)
    action = Action(
        CREATE,
        target.id if target else None,
        f"{spec.label} is not in the inventory",
        changes=_created_fields(spec, target is not None),
    )
    return Plan((action,), {}, token_result(created, target.user_principal_name if target else None))


def _plan_deletion(current: TokenView, spec: TokenSpec) -> Plan:
    """Graph deletes only unassigned tokens: an assigned one is unassigned first, with ``force_unassign``."""
    actions: list[Action] = []
    holder = current.assigned_to_id
    if holder:
        holder_text = _who(holder, current.assigned_to_name)
        _require_force(spec, f"{spec.label} is assigned to {holder_text}; Graph deletes only unassigned tokens")
        actions.append(Action(UNASSIGN, holder, f"{spec.label} is assigned to {holder_text}; force_unassign=true"))
    actions.append(Action(DELETE, None, "state=absent"))
    return Plan(tuple(actions), token_result(current), {})


def _created_fields(spec: TokenSpec, assigned: bool) -> tuple[str, ...]:
    """What a creation sets: the secret, every given field and the defaults of interval and hash."""
    given = [
        name for name in MUTABLE_FIELDS if getattr(spec, name) is not None or name in ("time_interval", "hash_function")
    ]
    return tuple(["secret_key", *given] + (["assigned_to"] if assigned else []))


def _require_force(spec: TokenSpec, problem: str) -> None:
    if not spec.force_unassign:
        raise PlanError(
            f"{problem}. Set force_unassign=true to unassign it first (its holder loses the activation "
            "and must activate it again)."
        )


def recreation_spec(current: TokenView, spec: TokenSpec) -> TokenSpec:
    """``spec`` with the fields it leaves alone taken from ``current``: what a rotation recreates."""
    kept = {name: getattr(current, name) for name in MUTABLE_FIELDS if getattr(spec, name) is None}
    return dataclasses.replace(spec, **kept)


def create_body(spec: TokenSpec, secret_b32: str, assign_to: str | None) -> dict[str, t.Any]:
    """The body of ``POST hardwareOathDevices`` (carries the secret: never log or return it)."""
    body: dict[str, t.Any] = {
        "serialNumber": spec.serial_number,
        "manufacturer": spec.manufacturer,
        "model": spec.model,
        "secretKey": secret_b32,
        "timeIntervalInSeconds": spec.time_interval or DEFAULT_TIME_INTERVAL,
        "hashFunction": spec.hash_function or DEFAULT_HASH_FUNCTION,
    }
    if spec.display_name is not None:
        body["displayName"] = spec.display_name
    if assign_to:
        body["assignTo"] = {"id": assign_to}
    return body


def update_body(spec: TokenSpec, changes: t.Iterable[str]) -> dict[str, t.Any]:
    return {MUTABLE_FIELDS[name]: getattr(spec, name) for name in changes}
