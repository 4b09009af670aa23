# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The inventory entry of one hardware OATH token, pure: what is wanted of it, the plan from its current state
(shared by the single-token and the bulk modules), the filters of inventory listings, and the snake_case results.
No I/O here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ._graph_client import odata_string
from ._hardware_oath import ASSIGN, UNASSIGN, Action, Plan, PlanError, TokenView, UserView

CREATE = "create"
UPDATE = "update"
DELETE = "delete"

# The fields Graph lets an unassigned token change, and their Graph names.
MUTABLE_FIELDS = {"manufacturer": "manufacturer", "model": "model", "time_interval": "timeIntervalInSeconds",
                  "hash_function": "hashFunction", "display_name": "displayName"}
DEFAULT_TIME_INTERVAL = 30
DEFAULT_HASH_FUNCTION = "hmacsha1"
STATUSES = ("available", "assigned", "activated", "failedActivation")
# No Microsoft page gives the longest serial number, manufacturer, model or display name Graph accepts; the modules
# refuse longer values before any request. 128 characters for serial numbers, manufacturers and models: the one length
# Entra's documentation gives for the fields of a token upload ("Secret keys are limited to 128 characters", upload
# hardware OATH tokens in CSV format). 256 for display names: Entra ID's limit for the display names of directory
# objects (the user and group resources).
TEXT_LIMITS = {"serial_number": 128, "manufacturer": 128, "model": 128, "display_name": 256}
# "When using the in operator, requests are limited to 15 expressions in a filter clause" (Graph's filter docs for
# directory objects, which document `in` for users); every value of an in list is one expression.
MAX_FILTER_EXPRESSIONS = 15
T = t.TypeVar("T")


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
    return {"id": token.assigned_to_id, "display_name": token.assigned_to_name, "user_principal_name": user_principal_name}


def token_result(token: TokenView, user_principal_name: str | None = None) -> dict[str, t.Any]:
    """The token as modules return it: Graph's properties in snake_case, never the secret."""
    return {"id": token.id or None, "serial_number": token.serial_number, "display_name": token.display_name,
            "manufacturer": token.manufacturer, "model": token.model, "time_interval_in_seconds": token.time_interval,
            "hash_function": token.hash_function, "status": token.status,
            "assigned_to": holder_result(token, user_principal_name), "last_used_date_time": token.last_used}


def _who(user_id: str, name: str | None) -> str:
    return f"{name} ({user_id})" if name else user_id


def _created(spec: TokenSpec, holder: UserView | None, holder_id: str | None, holder_name: str | None) -> TokenView:
    """The token a creation makes (its id is known only after the request)."""
    return TokenView(id="", serial_number=spec.serial_number, status="assigned" if holder_id else "available",
                     assigned_to_id=holder_id, assigned_to_name=holder.display_name if holder else holder_name,
                     display_name=spec.display_name, hash_function=spec.hash_function or DEFAULT_HASH_FUNCTION,
                     time_interval=spec.time_interval or DEFAULT_TIME_INTERVAL, manufacturer=spec.manufacturer,
                     model=spec.model)


def plan_token(current: TokenView | None, spec: TokenSpec) -> Plan:
    """The writes that take the inventory entry from ``current`` (None: not in the inventory) to ``spec``. Pure.

    Graph changes and deletes only unassigned tokens. With ``force_unassign`` an assigned token is unassigned first
    and, unless it is deleted, given back to its holder (or to ``spec.assigned_to``) afterwards, assigned but no
    longer activated. Raises PlanError when the spec can't be reached without an option the caller did not give."""
    target = spec.assigned_to if spec.state == "present" else None
    if spec.rotate and not spec.has_secret:
        raise PlanError(f"{spec.label}: rotate=true recreates the token with a new secret; give secret_key.")
    if target is not None and target.user_type == "Guest":
        raise PlanError(f"{spec.label}: {target.user_principal_name} is a guest user; Entra ID does not allow "
                        "hardware OATH tokens for guest users.")
    if current is None:
        if spec.state == "absent":
            return Plan((), {}, {})
        missing = [name for name, given in (("secret_key", spec.has_secret), ("manufacturer", spec.manufacturer),
                                            ("model", spec.model)) if not given]
        if missing:
            raise PlanError(f"{spec.label} is not in the inventory; creating it needs {', '.join(missing)}.")
        created = _created(spec, target, target.id if target else None, None)
        action = Action(CREATE, target.id if target else None, f"{spec.label} is not in the inventory",
                        changes=_created_fields(spec, target is not None))
        return Plan((action,), {}, token_result(created, target.user_principal_name if target else None))

    holder = current.assigned_to_id
    holder_text = _who(holder, current.assigned_to_name) if holder else ""
    actions: list[Action] = []
    if spec.state == "absent":
        if holder:
            _require_force(spec, f"{spec.label} is assigned to {holder_text}; Graph deletes only unassigned tokens")
            actions.append(Action(UNASSIGN, holder, f"{spec.label} is assigned to {holder_text}; force_unassign=true"))
        actions.append(Action(DELETE, None, "state=absent"))
        return Plan(tuple(actions), token_result(current), {})

    changes = tuple(name for name, value in spec.wanted().items() if getattr(current, name) != value)
    new_holder = target.id if target else holder
    if holder and (spec.rotate or changes or new_holder != holder):
        if spec.rotate:
            why = "rotating the secret deletes and recreates it, which Graph allows only while it is unassigned"
        elif changes:
            why = f"Graph changes {', '.join(changes)} only while a token is unassigned"
        else:
            why = (f"it should be assigned to {_who(target.id, target.user_principal_name)}; to hand it over with "
                   "activation, use tokenops.entra.hardware_oath_assignment with reassign=true")
        _require_force(spec, f"{spec.label} is assigned to {holder_text}; {why}")
        actions.append(Action(UNASSIGN, holder, f"{spec.label} is assigned to {holder_text}; force_unassign=true"))

    name = target.display_name if target and new_holder == target.id else current.assigned_to_name
    if spec.rotate:
        actions.append(Action(DELETE, None, "rotate=true: the secret can't be changed, so the token is recreated"))
        actions.append(Action(CREATE, new_holder, "rotate=true: recreated with the new secret",
                              changes=_created_fields(recreation_spec(current, spec), bool(new_holder))))
        after = _created(recreation_spec(current, spec), None, new_holder, name)
    else:
        if changes:
            actions.append(Action(UPDATE, None, f"{', '.join(changes)} {'differs' if len(changes) == 1 else 'differ'}",
                                  changes=changes))
        if new_holder and (new_holder != holder or actions):
            actions.append(Action(ASSIGN, new_holder, "given back to its holder, not activated" if new_holder == holder
                                  else f"assigned_to is {_who(new_holder, target.user_principal_name if target else None)}"))
        status = current.status if not actions else ("assigned" if new_holder else "available")
        after = TokenView(**{**current.__dict__, **spec.wanted(), "status": status, "assigned_to_id": new_holder,
                             "assigned_to_name": name if new_holder else None})
    upn = target.user_principal_name if target and new_holder == target.id else None
    return Plan(tuple(actions), token_result(current, upn if holder == new_holder else None), token_result(after, upn))


def _created_fields(spec: TokenSpec, assigned: bool) -> tuple[str, ...]:
    """What a creation sets: the secret, every given field and the defaults of interval and hash."""
    given = [name for name in MUTABLE_FIELDS if getattr(spec, name) is not None or name in ("time_interval", "hash_function")]
    return tuple(["secret_key", *given] + (["assigned_to"] if assigned else []))


def _require_force(spec: TokenSpec, problem: str) -> None:
    if not spec.force_unassign:
        raise PlanError(f"{problem}. Set force_unassign=true to unassign it first (its holder loses the activation "
                        "and must activate it again).")


def recreation_spec(current: TokenView, spec: TokenSpec) -> TokenSpec:
    """``spec`` with the fields it leaves alone taken from ``current``: what a rotation recreates."""
    kept = {name: getattr(current, name) for name in MUTABLE_FIELDS if getattr(spec, name) is None}
    return TokenSpec(**{**spec.__dict__, **kept})


def create_body(spec: TokenSpec, secret_b32: str, assign_to: str | None) -> dict[str, t.Any]:
    """The body of ``POST hardwareOathDevices`` (carries the secret: never log or return it)."""
    body: dict[str, t.Any] = {"serialNumber": spec.serial_number, "manufacturer": spec.manufacturer, "model": spec.model,
                              "secretKey": secret_b32,
                              "timeIntervalInSeconds": spec.time_interval or DEFAULT_TIME_INTERVAL,
                              "hashFunction": spec.hash_function or DEFAULT_HASH_FUNCTION}
    if spec.display_name is not None:
        body["displayName"] = spec.display_name
    if assign_to:
        body["assignTo"] = {"id": assign_to}
    return body


def update_body(spec: TokenSpec, changes: t.Iterable[str]) -> dict[str, t.Any]:
    return {MUTABLE_FIELDS[name]: getattr(spec, name) for name in changes}


# ---------------------------------------------------------------------- listings
def _clause(prop: str, values: t.Sequence[str]) -> str:
    if len(values) == 1:
        return f"{prop} eq {odata_string(values[0])}"
    return f"{prop} in ({', '.join(odata_string(v) for v in values)})"


def unique(values: t.Iterable[str]) -> list[str]:
    """Values without case-insensitive duplicates, in their first order."""
    seen: set[str] = set()
    out = []
    for value in values:
        if value.lower() not in seen:
            seen.add(value.lower())
            out.append(value)
    return out


@dataclass(frozen=True)
class TokenQuery:
    """What an inventory read asks for. Graph documents ``$filter`` on the inventory with one ``eq`` comparison only,
    and may ignore an unsupported filter silently, so a query becomes ``eq`` listings of one property and every
    condition is checked again, locally, on what comes back (:meth:`matches`): a filter Graph ignored can never widen
    a result. Strings compare without regard to case, as the directory does."""

    serial_numbers: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    manufacturer: str | None = None
    model: str | None = None
    assigned_to_id: str | None = None

    def matches(self, token: TokenView) -> bool:
        def same(wanted: str | None, actual: str | None) -> bool:
            return wanted is None or (actual or "").casefold() == wanted.casefold()
        return ((not self.serial_numbers or token.serial_number.casefold() in {s.casefold() for s in self.serial_numbers})
                and (not self.statuses or token.status in self.statuses)
                and same(self.manufacturer, token.manufacturer) and same(self.model, token.model)
                and same(self.assigned_to_id, token.assigned_to_id))

    def lookups(self) -> list[Lookup]:
        """One ``eq`` listing per value of the most selective condition: serial numbers (one token each), then the
        holder (five at most), then statuses, model, manufacturer. Empty: list everything."""
        for field, prop, values in (("serial_number", "serialNumber", unique(self.serial_numbers)),
                                    ("assigned_to_id", "assignedTo/id", [self.assigned_to_id]),
                                    ("status", "status", unique(self.statuses)), ("model", "model", [self.model]),
                                    ("manufacturer", "manufacturer", [self.manufacturer])):
            values = [v for v in values if v]
            if values:
                return [Lookup(field, value, f"{prop} eq {odata_string(value)}") for value in values]
        return []


class Lookup(t.NamedTuple):
    """One ``eq`` listing of the inventory: the TokenView field it compares, the value, the ``$filter``."""

    field: str
    value: str
    filter: str

    def answers(self, token: TokenView) -> bool:
        """Could this listing, filtered as asked, have answered ``token``?"""
        return (getattr(token, self.field) or "").casefold() == self.value.casefold()


def chunks(values: t.Sequence[T], size: int) -> list[list[T]]:
    return [list(values[i:i + size]) for i in range(0, len(values), size)]


def users_filter(user_ids: t.Sequence[str]) -> str:
    """``$filter`` for up to MAX_FILTER_EXPRESSIONS user ids."""
    return _clause("id", list(user_ids))
