# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Hardware OATH tokens, pure: normalised views of Graph objects, the per-token assignment plan shared by the
single-token and bulk modules, secret normalisation and TOTP codes. No I/O here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import typing as t
from dataclasses import dataclass, field

from ._errors import GraphError

try:
    import pyotp
except ImportError:  # reported by GraphModule through missing_required_lib
    pyotp = None

ASSIGNED_STATUSES = frozenset({"assigned", "activated", "failedActivation"})

# Action kinds, in the order a plan runs them.
UNASSIGN = "unassign"
SET_DISPLAY_NAME = "set_display_name"  # PATCH the inventory entry; only possible while unassigned
ASSIGN = "assign"
ACTIVATE = "activate"
ASSIGN_AND_ACTIVATE = "assign_and_activate"
CODE_ACTIONS = frozenset({ACTIVATE, ASSIGN_AND_ACTIVATE})


class PlanError(GraphError):
    """The desired state can't be reached from the current one without an option the user did not give."""


@dataclass(frozen=True)
class TokenView:
    id: str
    serial_number: str
    status: str
    assigned_to_id: str | None
    assigned_to_name: str | None
    display_name: str | None
    hash_function: str = "hmacsha1"
    time_interval: int = 30
    manufacturer: str | None = None
    model: str | None = None
    last_used: str | None = None

    @classmethod
    def from_graph(cls, device: dict[str, t.Any]) -> "TokenView":
        """A device object of Graph. One with a holder but status ``available`` (how Entra's documentation shows a
        token created with ``assignTo``) is taken as ``assigned``: a holder means assigned."""
        assigned = device.get("assignedTo") or {}
        status = device.get("status") or ""
        if status == "available" and assigned.get("id"):
            status = "assigned"
        return cls(id=device["id"], serial_number=device.get("serialNumber") or "", status=status,
                   assigned_to_id=(assigned.get("id") or "").lower() or None, assigned_to_name=assigned.get("displayName"),
                   display_name=device.get("displayName"), hash_function=device.get("hashFunction") or "hmacsha1",
                   time_interval=int(device.get("timeIntervalInSeconds") or 30), manufacturer=device.get("manufacturer"),
                   model=device.get("model"), last_used=device.get("lastUsedDateTime"))

    @classmethod
    def from_method(cls, method: dict[str, t.Any], holder: "UserView | None") -> "TokenView":
        """The token of a user's hardwareOathAuthenticationMethod (its id is the token's). Graph may leave the
        device's ``assignedTo`` empty there: the user whose method it is holds it."""
        device = dict(method.get("device") or {})
        if not device.get("assignedTo") and holder is not None:
            device["assignedTo"] = {"id": holder.id, "displayName": holder.display_name}
        return cls.from_graph({**device, "id": method["id"]})

    @property
    def label(self) -> str:
        return f"token {self.serial_number or self.id}"


@dataclass(frozen=True)
class UserView:
    id: str
    user_principal_name: str
    display_name: str | None = None
    user_type: str | None = None

    @classmethod
    def from_graph(cls, user: dict[str, t.Any]) -> "UserView":
        return cls(id=user["id"].lower(), user_principal_name=user.get("userPrincipalName") or user["id"],
                   display_name=user.get("displayName"), user_type=user.get("userType"))


@dataclass(frozen=True)
class Desired:
    state: str = "present"  # present | absent
    activate: bool = True
    display_name: str | None = None  # None: leave as it is
    reassign: bool = False


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


def assignment_state(token: TokenView) -> dict[str, t.Any]:
    """What the diff shows: who holds the token, its status and display name. Never a secret."""
    holder = {"id": token.assigned_to_id, "display_name": token.assigned_to_name} if token.assigned_to_id else None
    return {"serial_number": token.serial_number, "device_id": token.id, "assigned_to": holder,
            "status": token.status, "display_name": token.display_name}


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
        raise PlanError(f"{token.label}: {who} is a guest user; Entra ID does not allow hardware OATH tokens for "
                        "guest users.")
    if holder is not None and holder != user.id:
        other = f"{token.assigned_to_name or 'another user'} ({holder})"
        if not desired.reassign:
            raise PlanError(f"{token.label} is assigned to {other}, not to {who}. Set reassign=true to take it from "
                            f"{other} and give it to {user.user_principal_name}.")
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
        raise PlanError(f"{token.label} is assigned to {who} but not activated; its display name can only be set "
                        "while activating it (activate=true) or while it is unassigned.")
    if wants_name and any(a.kind in CODE_ACTIONS | {SET_DISPLAY_NAME} for a in actions):
        name = desired.display_name
    return _plan(token, actions, status, name, holder={"id": user.id, "display_name": user.display_name})


def _plan(token: TokenView, actions: list[Action], status: str, name: str | None,
          holder: dict[str, t.Any] | None) -> Plan:
    after = {"serial_number": token.serial_number, "device_id": token.id, "status": status, "display_name": name,
             "assigned_to": holder}
    return Plan(actions=tuple(actions), before=assignment_state(token), after=after)


# ---------------------------------------------------------------------- secrets and codes
_BASE32_RE = re.compile(r"^[A-Z2-7]+$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
MIN_SECRET_BITS = 112


def normalize_secret(secret: str, secret_format: str = "base32") -> str:
    """Base32 as Graph wants it (upper case, no spaces, dashes or padding). ``hex`` seeds are converted.
    Raises ValueError naming the problem, never the secret."""
    if secret_format == "hex":
        cleaned = re.sub(r"[\s:-]", "", secret)
        if cleaned.lower().startswith("0x"):
            cleaned = cleaned[2:]
        if not cleaned or not _HEX_RE.match(cleaned) or len(cleaned) % 2:
            raise ValueError("secret_key is not valid hex (an even number of 0-9, a-f characters)")
        cleaned = base64.b32encode(binascii.unhexlify(cleaned)).decode("ascii").rstrip("=")
    else:
        cleaned = re.sub(r"[\s-]", "", secret).upper().rstrip("=")
        if not cleaned or not _BASE32_RE.match(cleaned):
            bad = sorted({c for c in cleaned if not _BASE32_RE.match(c)})
            raise ValueError("secret_key is not valid base32 (only A-Z and 2-7)"
                             + (f"; it contains {len(bad)} other character(s)" if bad else ""))
    if len(cleaned) > 128:
        raise ValueError("secret_key is longer than the 128 base32 characters Entra ID accepts")
    try:
        base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error as exc:
        raise ValueError("secret_key has an impossible base32 length") from exc
    return cleaned


def totp_code(secret_b32: str, step: int, hash_function: str = "hmacsha1") -> str:
    """The 6-digit RFC 6238 code of time step ``step``, from pyotp (a string: leading zeros matter)."""
    return pyotp.TOTP(secret_b32, digits=6, digest=DIGESTS[hash_function]).generate_otp(step)


def check_secret_for_codes(secret_b32: str) -> None:
    """Fail before any request when codes can't be computed from this secret."""
    bits = len(secret_b32) * 5 // 8 * 8
    if bits < MIN_SECRET_BITS:
        raise ValueError(f"secret_key decodes to {bits} bits; computing codes needs at least {MIN_SECRET_BITS} "
                         "(pyotp's minimum). Give verification_code, read from the token, instead.")


def normalize_code(code: t.Any) -> str:
    """A verification code as Graph wants it: a string of 6 digits. YAML integers are zero-padded."""
    if isinstance(code, bool):
        raise ValueError("verification_code must be 6 digits")
    if isinstance(code, int):
        if not 0 <= code <= 999_999:
            raise ValueError("verification_code must be 6 digits")
        return f"{code:06d}"
    text = str(code).strip()
    if re.fullmatch(r"[0-9]{1,5}", text):  # an integer that Ansible turned into a string for a str option
        text = text.zfill(6)
    if not re.fullmatch(r"[0-9]{6}", text):
        raise ValueError("verification_code must be a string of 6 digits")
    return text


# Computed codes are for the time step after the current one. The code a token shows now, which its previous holder
# or another run may have just used, is then never sent: Graph refuses a code whose step was already accepted, and
# accepts a later step within its drift window (a day either way at activation).
CODE_LEAD_STEPS = 1


@dataclass
class CodeSource:
    """Where activation codes come from. A given code is handed out once; codes computed from the secret are
    always for a time step later than the current one and than the last one used, so no code is ever replayed."""

    verification_code: str | None = None
    secret_b32: str | None = None
    clock: t.Callable[[], float] = time.time
    redact: t.Callable[[str], None] = lambda code: None  # registers each code so Ansible masks it everywhere
    _given_used: bool = False
    _last_step: int | None = None
    used: list[str] = field(default_factory=list)  # kinds of code used ("given" / "computed"); never the codes

    @property
    def available(self) -> bool:
        return self.computes or (self.verification_code is not None and not self._given_used)

    @property
    def computes(self) -> bool:
        """Codes come from the secret: a refused code can be followed by one of a later step."""
        return self.secret_b32 is not None

    def next_code(self, token: TokenView) -> str:
        if self.secret_b32 is not None:
            step = int(self.clock() // token.time_interval) + CODE_LEAD_STEPS
            if self._last_step is not None and step <= self._last_step:
                step = self._last_step + 1
            self._last_step = step
            self.used.append("computed")
            code = totp_code(self.secret_b32, step, token.hash_function)
            self.redact(code)
            return code
        if self.verification_code is not None and not self._given_used:
            self._given_used = True
            self.used.append("given")
            return self.verification_code
        raise PlanError(f"{token.label}: the given verification_code was already used once and is never sent twice; "
                        "run again with a fresh code from the token, or give secret_key to compute codes.")
