# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory model of a tenant's hardware OATH tokens, for the property tests of the planners
(test_inventory_properties.py), and ModelApi: HardwareOathApi as hardware_oath_inventory and its executors use it,
backed by the model.

The model holds the inventory's tokens (status, holder, fields, secret) and the users (members and guests, with the
OATH methods the inventory does not show: authenticator apps and legacy tokens of the old CSV upload, which count
towards a user's five). Each write does what Graph documents for it (graph-api.md 3.5) or is refused as Graph refuses
it: a token is created with a serial number nobody uses, and changed or deleted only while nobody holds it; it is
assigned only while available, to a member below five OATH methods; it is activated for its holder (or assigned and
activated in one call) with a code of its secret, never with a time step already used; unassigning it makes it
available. Every write ModelApi is sent is recorded in ``Tenant.sent``, refused or not: the writes the executors
really send."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import threading
import typing as t
from dataclasses import dataclass

import pyotp

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, WriteOutcomeUnknown
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    CREATE,
    DELETE,
    SET_DISPLAY_NAME,
    UNASSIGN,
    UPDATE,
    Action,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    READ_AFTER_WRITE_WAIT,
    CodeRefused,
    HardwareOathApi,
    TokenExists,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery

# Entra's limit, written down here on its own (not the planner's constant): the model must not share what it tests.
MAX_OATH_METHODS = 5
# Graph's fields of a device and the model's names of them.
DEVICE_FIELDS = {
    "manufacturer": "manufacturer",
    "model": "model",
    "timeIntervalInSeconds": "time_interval",
    "hashFunction": "hash_function",
    "displayName": "display_name",
}
# Graph accepts a code of a time step near its clock (a day either way at activation; a few steps are enough here).
CODE_WINDOW = (-2, 4)
DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
T = t.TypeVar("T")


def secret_of(serial: str) -> str:
    """The secret seed of the token of ``serial`` (base32, 160 bits): each token its own, whatever the case."""
    return base64.b32encode(hashlib.sha1(serial.casefold().encode()).digest()).decode()


def code_of(secret: str, step: int, hash_function: str) -> str:
    """The code a token shows at time step ``step`` (pyotp, not the collection's own code)."""
    return pyotp.TOTP(secret, digits=6, digest=DIGESTS[hash_function]).generate_otp(step)


@dataclass(frozen=True)
class User:
    id: str
    user_principal_name: str
    display_name: str
    guest: bool = False
    other_methods: int = 0  # authenticator apps and legacy tokens: not in the inventory, counted towards five

    def view(self) -> UserView:
        """The user as Graph's /users answers it."""
        return UserView(self.id, self.user_principal_name, self.display_name, "Guest" if self.guest else "Member")


@dataclass(frozen=True)
class Token:
    id: str
    serial_number: str
    secret: str
    manufacturer: str
    model: str
    time_interval: int = 30
    hash_function: str = "hmacsha1"
    display_name: str | None = None
    status: str = "available"
    holder: str | None = None  # a user's id
    last_step: int | None = None  # the time step of the last code accepted

    def view(self, users: t.Mapping[str, User]) -> TokenView:
        """The token as Graph's inventory lists it."""
        return TokenView(
            id=self.id,
            serial_number=self.serial_number,
            status=self.status,
            assigned_to_id=self.holder,
            assigned_to_name=users[self.holder].display_name if self.holder else None,
            display_name=self.display_name,
            hash_function=self.hash_function,
            time_interval=self.time_interval,
            manufacturer=self.manufacturer,
            model=self.model,
        )


@dataclass(frozen=True)
class Sent:
    """One write sent to the model: the token's serial number (case-folded), the kind of write, whose method it
    touches (a creation: the user it is assigned to) and, for an update, the fields it sets."""

    serial: str
    kind: str
    user_id: str | None
    fields: tuple[str, ...] = ()


def refused(message: str, status: int = 400) -> GraphError:
    return GraphError(f"{message} (the model answered {status})", status=status, code="badRequest")


class Tenant:
    """The users and the inventory, changed only by the writes of Graph's lifecycle (thread-safe: the inventory's
    applier writes for several tokens at a time). ``now``: the model's clock (the one the code sources are given);
    ``lose``: the serial numbers (case-folded) whose writes take effect but lose their answer."""

    def __init__(
        self, users: t.Iterable[User], tokens: t.Iterable[Token], *, now: float, lose: t.Iterable[str] = ()
    ) -> None:
        self.users = {user.id: user for user in users}
        self.tokens = {token.id: token for token in tokens}
        self.now = now
        self.lose = frozenset(lose)
        self.sent: list[Sent] = []
        self.refusals: list[str] = []
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ state
    def inventory(self) -> dict[str, Token]:
        """The tokens by case-folded serial number."""
        with self._lock:
            return {token.serial_number.casefold(): token for token in self.tokens.values()}

    def by_serial(self, serial: str) -> Token | None:
        return self.inventory().get(serial.casefold())

    def methods(self, user_id: str) -> int:
        """The OATH methods the user holds, the inventory's tokens and the others."""
        held = sum(1 for token in self.tokens.values() if token.holder == user_id)
        return held + self.users[user_id].other_methods

    def sent_by_serial(self) -> dict[str, list[tuple[str, str | None, tuple[str, ...]]]]:
        """Each token's writes (kind, user, fields), in the order sent (one token's writes are sent one after the
        other)."""
        result: dict[str, list[tuple[str, str | None, tuple[str, ...]]]] = {}
        for sent in self.sent:
            result.setdefault(sent.serial, []).append((sent.kind, sent.user_id, sent.fields))
        return result

    # ------------------------------------------------------------------ writes
    def write(
        self, serial: str, kind: str, user_id: str | None, change: t.Callable[[], T], fields: tuple[str, ...] = ()
    ) -> T:
        """Record the write, then make it (or refuse it as Graph would); its answer lost when ``serial`` is lost."""
        with self._lock:
            self.sent.append(Sent(serial.casefold(), kind, user_id, fields))
            try:
                answer = change()
            except GraphError as exc:
                self.refusals.append(f"{kind} {serial}: {exc.message}")
                raise
        if serial.casefold() in self.lose:
            raise WriteOutcomeUnknown(f"{kind} {serial}: the connection failed after the request was sent")
        return answer

    def _token(self, token_id: str) -> Token:
        token = self.tokens.get(token_id)
        if token is None:
            raise refused(f"token {token_id} is not in the inventory", 404)
        return token

    def _member(self, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise refused(f"user {user_id} is not in the tenant", 404)
        if user.guest:
            raise refused(f"{user.user_principal_name} is a guest: no hardware OATH token for guests")
        return user

    def _assignable(self, token: Token, user_id: str) -> None:
        self._member(user_id)
        if token.holder is not None:
            raise refused(f"token {token.serial_number} is assigned to {token.holder} already", 409)
        if self.methods(user_id) >= MAX_OATH_METHODS:
            raise refused(f"user {user_id} holds {MAX_OATH_METHODS} OATH methods already")

    def _unassigned(self, token: Token, what: str) -> None:
        if token.holder is not None:
            raise refused(f"token {token.serial_number} is assigned to a user; unassign it before {what}")

    def create(self, body: dict[str, t.Any]) -> Token:
        """POST (or one item of the bulk PATCH) hardwareOathDevices."""
        serial = body["serialNumber"]
        if self.by_serial(serial) is not None:
            raise refused(f"a token with serial number {serial} exists", 409).as_kind(TokenExists)
        for name in ("manufacturer", "model", "secretKey", "timeIntervalInSeconds"):
            if body.get(name) in (None, ""):
                raise refused(f"{name} is required to create a token")
        token = Token(
            id=f"id-{serial.casefold()}",
            serial_number=serial,
            secret=body["secretKey"],
            manufacturer=body["manufacturer"],
            model=body["model"],
            time_interval=body["timeIntervalInSeconds"],
            hash_function=body.get("hashFunction") or "hmacsha1",
            display_name=body.get("displayName"),
        )
        holder = (body.get("assignTo") or {}).get("id")
        if holder is not None:
            self._assignable(token, holder)
            token = dataclasses.replace(token, holder=holder, status="assigned")
        self.tokens[token.id] = token
        return token

    def update(self, token_id: str, body: dict[str, t.Any]) -> None:
        """PATCH hardwareOathDevices/{id}: an unassigned token's fields."""
        token = self._token(token_id)
        self._unassigned(token, "updating it")
        unknown = set(body) - set(DEVICE_FIELDS)
        if unknown:
            raise refused(f"{', '.join(sorted(unknown))} can't be updated")
        self.tokens[token_id] = dataclasses.replace(token, **{DEVICE_FIELDS[k]: v for k, v in body.items()})

    def delete(self, token_id: str) -> None:
        self._unassigned(self._token(token_id), "deleting it")
        del self.tokens[token_id]

    def unassign(self, user_id: str, token_id: str) -> None:
        """DELETE users/{id}/authentication/hardwareOathMethods/{id}: the token goes back to the inventory."""
        token = self._token(token_id)
        if token.holder != user_id:
            raise refused(f"user {user_id} has no method {token_id}", 404)
        self.tokens[token_id] = dataclasses.replace(token, holder=None, status="available")

    def assign(self, user_id: str, token_id: str) -> None:
        """POST users/{id}/authentication/hardwareOathMethods with the device."""
        token = self._token(token_id)
        self._assignable(token, user_id)
        self.tokens[token_id] = dataclasses.replace(token, holder=user_id, status="assigned")

    def activate(self, user_id: str, token_id: str, code: str | None, display_name: str | None) -> None:
        """POST .../hardwareOathMethods/{id}/activate: the holder's token, with a code of its secret."""
        token = self._token(token_id)
        if token.holder != user_id:
            raise refused(f"user {user_id} has no method {token_id}", 404)
        failed = token if token.status == "activated" else dataclasses.replace(token, status="failedActivation")
        self._activated(token, code, display_name, refused_as=failed)

    def assign_and_activate(self, user_id: str, token_id: str, code: str | None, display_name: str | None) -> None:
        """POST .../hardwareOathMethods/assignAndActivate: an available token, atomically (a wrong code assigns
        nothing)."""
        token = self._token(token_id)
        if token.holder == user_id:
            self.activate(user_id, token_id, code, display_name)
            return
        self._assignable(token, user_id)
        self._activated(dataclasses.replace(token, holder=user_id), code, display_name, refused_as=token)

    def _activated(self, token: Token, code: str | None, display_name: str | None, *, refused_as: Token) -> None:
        """``token`` activated with ``code``; refused, the token is left ``refused_as``."""
        step = self._accepted_step(token, code)
        if step is None:
            self.tokens[token.id] = refused_as
            raise refused(f"the verification code of token {token.serial_number} is not valid").as_kind(CodeRefused)
        name = token.display_name if display_name is None else display_name
        self.tokens[token.id] = dataclasses.replace(token, status="activated", last_step=step, display_name=name)

    def _accepted_step(self, token: Token, code: str | None) -> int | None:
        """The time step of ``code`` when Graph accepts it: near the clock, after the last one used."""
        if code is None or len(code) != 6 or not code.isdigit():
            return None
        now = int(self.now // token.time_interval)
        for step in range(now + CODE_WINDOW[0], now + CODE_WINDOW[1] + 1):
            if code == code_of(token.secret, step, token.hash_function):
                return step if token.last_step is None or step > token.last_step else None
        return None

    def set_display_name(self, token_id: str, display_name: str | None) -> None:
        """PATCH hardwareOathDevices/{id} with the display name alone."""
        self.update(token_id, {"displayName": display_name})


class ModelApi:
    """HardwareOathApi as hardware_oath_inventory's run() and the inventory's executors use it, on ``tenant``. Reads
    answer the model's state; writes go through ``Tenant.write``. ``poll`` is the real one (its waits recorded, not
    slept)."""

    poll = HardwareOathApi.poll
    wait = READ_AFTER_WRITE_WAIT

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.warnings: list[str] = []
        self.sleeps: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def warn_once(self, kind: str, message: str) -> None:
        self.warnings.append(message)

    def _view(self, token: Token) -> TokenView:
        return token.view(self.tenant.users)

    # ------------------------------------------------------------------ reads
    def users_by_refs(self, refs: t.Sequence[str]) -> dict[str, UserView]:
        """The users named by object id or user principal name, keyed by the reference as given (case-folded)."""
        known = {}
        for user in self.tenant.users.values():
            known[user.id.casefold()] = known[user.user_principal_name.casefold()] = user.view()
        return {ref.casefold(): known[ref.casefold()] for ref in refs if ref.casefold() in known}

    def list_tokens(self, query: TokenQuery | None = None) -> list[TokenView]:
        views = [self._view(token) for token in self.tenant.inventory().values()]
        return [view for view in views if query is None or query.matches(view)]

    def find_token(self, serial: str) -> TokenView | None:
        token = self.tenant.by_serial(serial)
        return self._view(token) if token else None

    def token_by_id(self, device_id: str, *, wait: bool = False) -> TokenView:
        token = self.tenant.tokens.get(device_id)
        if token is None:
            raise refused(f"token {device_id} is not in the inventory", 404)
        return self._view(token)

    def token_exists(self, device_id: str) -> bool:
        return device_id in self.tenant.tokens

    def reread(self, token: TokenView, me: bool = False) -> TokenView:
        return self.token_by_id(token.id)

    # ------------------------------------------------------------------ writes
    def create_token(self, body: dict[str, t.Any], *, while_deleted: bool = False) -> TokenView:
        holder = (body.get("assignTo") or {}).get("id")
        return self._view(self.tenant.write(body["serialNumber"], CREATE, holder, lambda: self.tenant.create(body)))

    def create_tokens(self, bodies: t.Sequence[dict[str, t.Any]]) -> tuple[list[TokenView], dict[int, GraphError]]:
        """The bulk creation as HardwareOathApi.create_tokens returns it: the tokens created (the answer lists them
        all) and the refusal of each item refused. Its answer is lost when any of its tokens' answers is."""
        made: list[TokenView] = []
        refusals: dict[int, GraphError] = {}
        for number, body in enumerate(bodies):
            try:
                made.append(self.create_token(body))
            except WriteOutcomeUnknown:  # created: the request's answer is lost below
                made.append(t.cast(TokenView, self.find_token(body["serialNumber"])))
            except GraphError as exc:
                refusals[number] = exc
        if any(body["serialNumber"].casefold() in self.tenant.lose for body in bodies):
            raise WriteOutcomeUnknown(
                f"Creating {len(bodies)} tokens: the connection failed after the request was sent"
            )
        return made, refusals

    def update_token(self, token: TokenView, body: dict[str, t.Any]) -> None:
        fields = tuple(DEVICE_FIELDS.get(name, name) for name in body)
        self.tenant.write(token.serial_number, UPDATE, None, lambda: self.tenant.update(token.id, body), fields)

    def delete_token(self, token: TokenView) -> None:
        self.tenant.write(token.serial_number, DELETE, None, lambda: self.tenant.delete(token.id))

    def write(
        self,
        action: Action,
        token: TokenView,
        user: UserView | None,
        code: str | None,
        display_name: str | None,
        *,
        by_serial: bool,
        me: bool,
    ) -> None:
        user_id = t.cast(str, action.user_id)
        changes = {
            UNASSIGN: functools.partial(self.tenant.unassign, user_id, token.id),
            SET_DISPLAY_NAME: functools.partial(self.tenant.set_display_name, token.id, display_name),
            ASSIGN: functools.partial(self.tenant.assign, user_id, token.id),
            ACTIVATE: functools.partial(self.tenant.activate, user_id, token.id, code, display_name),
            ASSIGN_AND_ACTIVATE: functools.partial(
                self.tenant.assign_and_activate, user_id, token.id, code, display_name
            ),
        }
        self.tenant.write(token.serial_number, action.kind, action.user_id, changes[action.kind])
