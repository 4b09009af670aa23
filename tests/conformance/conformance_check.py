# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real-tenant conformance check (``make conformance``; docs/real-tenant.md): run every Graph operation the
modules use against a tenant, on throwaway tokens, and compare each answer with what Microsoft documents
(fixtures/graph-operations.yml).

    python tests/conformance/conformance_check.py [--report FILE]       the check (writes to the tenant)
    python tests/conformance/conformance_check.py --cleanup PREFIX      remove what an interrupted run left

Configuration, from the environment: AZURE_TENANT_ID, AZURE_CLIENT_ID and a credential (AZURE_CLIENT_SECRET, or
AZURE_CLIENT_CERTIFICATE_PATH with AZURE_CLIENT_CERTIFICATE_PASSWORD if its key is encrypted, or
AZURE_FEDERATED_TOKEN_FILE); AZURE_AUTHORITY_HOST, TOKENOPS_GRAPH_ENDPOINT and TOKENOPS_CA_PATH to use another sign-in
host, Graph endpoint or CA (the simulator); TOKENOPS_CONFORMANCE_USERS, two test users (UPN or object id, comma
separated); and TOKENOPS_CONFORMANCE_WRITES=yes, the consent to write to the tenant.

Exit status: 0 no difference, 1 differences (printed as "documented: X; your tenant: Y"), 2 the run failed (or was
refused, or interrupted). Secrets (seeds, codes, the client secret, access tokens) never reach the output or the
report; ids are hashed."""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import re
import secrets
import signal
import sys
import time
import typing as t
import uuid
from pathlib import Path

# First: makes this checkout importable as ansible_collections.tokenops.entra.
import collection_path  # noqa: F401  pylint: disable=unused-import
import conformance_shapes
import httpx
import pyotp

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import TokenProvider, resolve_credential
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import GraphClient
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import Destinations, origin_of
from ansible_collections.tokenops.entra.plugins.module_utils._graph.odata import odata_string, segment
from ansible_collections.tokenops.entra.plugins.module_utils._graph.transport import (
    COLLECTION_VERSION,
    Transport,
    graph_error,
    tls_context,
)

EXIT_SAME, EXIT_DIFFERENT, EXIT_FAILED = 0, 1, 2
CONSENT = "TOKENOPS_CONFORMANCE_WRITES"
USERS = "TOKENOPS_CONFORMANCE_USERS"
GRAPH_ENDPOINT = "TOKENOPS_GRAPH_ENDPOINT"
CA_PATH = "TOKENOPS_CA_PATH"
SERIAL_PREFIX = "TOKENOPS-CONF-"
MANUFACTURER = "tokenops-conformance"
MODEL = "throwaway"
DEVICES = "/directory/authenticationMethodDevices/hardwareOathDevices"
POLICY = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath"
POLICY_TYPE = "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration"
USER_SELECT = "id,userPrincipalName,displayName,userType"
EVERY_STATUS = tuple(range(100, 600))  # the client returns every answer; the check judges it
INTERVAL = 30
DRIFT_STEPS = 2880  # a day of 30 s steps each way: Entra's activation window; a wrong code is outside it
WAIT = 20.0  # seconds a step waits for an earlier write to show (the directory is eventually consistent)
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
OBJECT_ID = re.compile(r"(?<!request-id )" + GUID.pattern)  # a request-id is kept: it is what support traces
EMAIL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._%+#-]*[A-Za-z0-9#])?@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
REPORT_HEADERS = ("retry-after", "x-ms-throttle-scope", "x-ms-throttle-information")
# Answers that say the run can't go on (sign-in, permissions, Graph's own failures): reported as the failure, not
# compared with the documented answer.
NOT_SHAPES = frozenset({401, 403, *range(500, 600)})


class ConfigError(Exception):
    """The environment does not allow the run (nothing was sent)."""


class StepFailed(Exception):
    """A step got an answer the run can't go on from."""


class Interrupted(BaseException):
    """SIGTERM, handled like Ctrl-C (KeyboardInterrupt): the run stops, the cleanup runs."""


def hashed(value: str) -> str:
    """An id as the report gives it: tells ids apart, names none."""
    return "sha256:" + hashlib.sha256(value.lower().encode()).hexdigest()[:12]


class Secrets:
    """Every secret of the run, masked in whatever is printed or written."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self.values.update({value, value.upper(), value.lower()})

    def redact(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


# ---------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class Config:
    tenant_id: str
    client_id: str
    users: tuple[str, str]
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    federated_token_file: str | None = None
    authority_host: str | None = None
    graph_endpoint: str | None = None
    ca_path: str | None = None

    def params(self) -> dict[str, t.Any]:
        """The connection options as the modules take them (their credential and endpoint checks apply)."""
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_certificate_path": self.certificate_path,
            "client_certificate_password": self.certificate_password,
            "federated_token_file": self.federated_token_file,
            "authority_host": self.authority_host,
            "graph_endpoint": self.graph_endpoint,
            "cloud": "public",
            "auth_method": "auto",
        }


def load_config(environ: t.Mapping[str, str], *, need_users: bool = True) -> Config:
    def get(name: str) -> str | None:
        return (environ.get(name) or "").strip() or None

    if (get(CONSENT) or "").lower() != "yes":
        raise ConfigError(
            f"Refusing to run: set {CONSENT}=yes to allow the check to write to the tenant. It creates throwaway "
            "hardware OATH tokens (serial numbers starting with " + SERIAL_PREFIX + "), assigns, activates, unassigns "
            "and deletes them for the two users of " + USERS + ", and writes the hardware OATH policy's state back "
            "unchanged (docs/real-tenant.md)."
        )
    missing = [name for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID") if not get(name)]
    if not any(
        get(name) for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE")
    ):
        missing.append("AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE)")
    users = tuple(user.strip() for user in (get(USERS) or "").split(",") if user.strip())
    if need_users and (len(users) != 2 or users[0].lower() == users[1].lower()):
        missing.append(f"{USERS} (two different test users, by user principal name or object id, comma separated)")
    if missing:
        raise ConfigError("Missing from the environment: " + "; ".join(missing) + ".")
    return Config(
        tenant_id=t.cast(str, get("AZURE_TENANT_ID")),
        client_id=t.cast(str, get("AZURE_CLIENT_ID")),
        users=(users[0], users[1]) if len(users) == 2 else ("", ""),
        client_secret=get("AZURE_CLIENT_SECRET"),
        certificate_path=get("AZURE_CLIENT_CERTIFICATE_PATH"),
        certificate_password=get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        federated_token_file=get("AZURE_FEDERATED_TOKEN_FILE"),
        authority_host=get("AZURE_AUTHORITY_HOST"),
        graph_endpoint=get(GRAPH_ENDPOINT),
        ca_path=get(CA_PATH),
    )


# ---------------------------------------------------------------------- what goes over the wire
@dataclasses.dataclass
class Exchange:
    """One Graph answer, as recorded (the body only in memory: the report keeps its shape)."""

    operation: str
    method: str
    status: int
    headers: dict[str, str]
    body: t.Any
    has_body: bool
    latency_ms: float
    role: str = "answer"  # answer (compared with its operation), retried (a 429, 503, 504), tolerated, cleanup


class Recorder:
    """httpx event hooks on the transport's client: every answer from the Graph endpoint, named after the operation
    the run is in. Sign-in answers (which hold access tokens) are not looked at."""

    def __init__(self, graph_endpoint: str) -> None:
        self.graph = origin_of(graph_endpoint)
        self.operation = "unnamed"
        self.exchanges: list[Exchange] = []
        self._started: dict[int, float] = {}

    def hooks(self) -> dict[str, list[t.Callable[..., None]]]:
        return {"request": [self._request], "response": [self._response]}

    def _request(self, request: httpx.Request) -> None:
        self._started[id(request)] = time.monotonic()

    def _response(self, response: httpx.Response) -> None:
        request = response.request
        started = self._started.pop(id(request), time.monotonic())
        if origin_of(str(request.url)) != self.graph or not request.url.path.startswith(("/beta/", "/v1.0/")):
            return
        response.read()
        body: t.Any = None
        has_body = bool(response.content)
        if has_body:
            try:
                body = response.json()
            except ValueError:
                body = "<not JSON>"
        self.exchanges.append(
            Exchange(
                operation=self.operation,
                method=request.method,
                status=response.status_code,
                headers={key.lower(): value for key, value in response.headers.items()},
                body=body,
                has_body=has_body,
                latency_ms=round((time.monotonic() - started) * 1000, 1),
            )
        )

    @contextlib.contextmanager
    def named(self, operation: str) -> t.Iterator[None]:
        before, self.operation = self.operation, operation
        try:
            yield
        finally:
            self.operation = before


@dataclasses.dataclass
class Token:
    """A throwaway token of the run. Its seed stays in memory and goes to Graph only."""

    number: int
    serial: str
    seed: str
    id: str | None = None
    last_step: int = 0  # the latest time step whose code was sent: the next code is of a later one (no replay)
    creation: str = ""  # "sent": a creation of it was sent (it may exist); "accepted": Graph answered it 2xx

    @property
    def label(self) -> str:
        return f"token {self.number}"


@dataclasses.dataclass
class Outcome:
    differences: list[conformance_shapes.Difference] = dataclasses.field(default_factory=list)
    observations: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    failure: str | None = None


class Check:
    """One run against one tenant."""

    def __init__(self, config: Config, *, out: t.TextIO, secrets_: Secrets, prefix: str | None = None) -> None:
        self.config = config
        self.out = out
        self.secrets = secrets_
        self.fixtures = conformance_shapes.Fixtures.load()
        self.prefix = prefix or f"{SERIAL_PREFIX}{secrets.token_hex(4).upper()}-"
        self.secrets.add(config.client_secret)
        self.secrets.add(config.certificate_password)
        credential = resolve_credential(config.params(), {})
        self.credential = credential
        self.recorder = Recorder(credential.graph_endpoint)
        self.transport = Transport(
            destinations=Destinations(credential.graph_endpoint, credential.authority_host),
            verify=tls_context(True, config.ca_path),
            timeout=30.0,
            max_retries=4,
            max_retry_wait=60.0,
        )
        self.transport.client.event_hooks = self.recorder.hooks()
        provider = TokenProvider(credential, self.transport.send)

        def token(force_refresh: bool) -> str:
            value = provider.token(force_refresh)
            self.secrets.add(value)
            return value

        self.client = GraphClient(self.transport, credential.graph_endpoint, token)
        self.tokens: list[Token] = []
        self.users: list[dict[str, t.Any]] = []
        self.observations: dict[str, t.Any] = {}

    def say(self, text: str) -> None:
        print(self.secrets.redact(text), file=self.out, flush=True)

    # ------------------------------------------------------------------ requests
    def send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: t.Any = None,
        params: dict[str, str] | None = None,
        absolute_url: str | None = None,
        tolerate: tuple[int, ...] = (),
        role: str = "answer",
    ) -> Exchange:
        """One request of ``operation``; its last answer (statuses in ``tolerate`` are not compared with the
        operation's answer, but with the error envelope)."""
        first = len(self.recorder.exchanges)
        with self.recorder.named(operation):
            try:
                self.client.request(
                    method,
                    path,
                    action=operation,
                    json=json_body,
                    params=params,
                    absolute_url=absolute_url,
                    expected=EVERY_STATUS,
                )
            except GraphError as exc:
                if len(self.recorder.exchanges) == first:  # no answer at all: connection, TLS, sign-in
                    raise StepFailed(f"step {operation} failed: {exc.message}") from None
        answers = self.recorder.exchanges[first:]
        for earlier in answers[:-1]:
            earlier.role = "cleanup" if role == "cleanup" else "retried"
        last = answers[-1]
        last.role = "tolerated" if last.status in tolerate else role
        return last

    def expect(self, exchange: Exchange, *statuses: int) -> Exchange:
        if exchange.status in statuses:
            return exchange
        body = exchange.body if isinstance(exchange.body, dict) else None
        error = graph_error(exchange.operation, exchange.status, exchange.headers, body)
        raise StepFailed(
            f"step {exchange.operation} failed: Graph answered {exchange.status} {error.code or ''}"
            + (f": {error.graph_message}" if error.graph_message else "")
            + f" (request-id {error.request_id or 'none'}, date {error.date or exchange.headers.get('date', 'none')})"
        )

    def poll(self, read: t.Callable[[], Exchange], done: t.Callable[[Exchange], bool], what: str) -> Exchange:
        """``read()`` until ``done``, for at most WAIT seconds (the directory is eventually consistent)."""
        started, wait = time.monotonic(), 0.25
        answer = read()
        while not done(answer):
            if time.monotonic() - started > WAIT:
                raise StepFailed(f"step {answer.operation} failed: {what}: not seen within {WAIT:g} s")
            time.sleep(wait)
            wait = min(wait * 2, 4.0)
            answer = read()
        waits = self.observations.setdefault("read_after_write_ms", {})
        waits[what] = max(waits.get(what, 0), round((time.monotonic() - started) * 1000))
        return answer

    # ------------------------------------------------------------------ codes
    def code(self, token: Token) -> str:
        """The code of the token's next unused time step (inside Entra's activation window, never replayed)."""
        step = max(int(time.time()) // INTERVAL + 1, token.last_step + 1)
        token.last_step = step
        code = str(pyotp.TOTP(token.seed, digits=6, interval=INTERVAL).generate_otp(step))
        self.secrets.add(code)
        return code

    def wrong_code(self, token: Token) -> str:
        """Six digits that are no code of the token anywhere in the activation window."""
        totp = pyotp.TOTP(token.seed, digits=6, interval=INTERVAL)
        now = int(time.time()) // INTERVAL
        window = {totp.generate_otp(step) for step in range(now - DRIFT_STEPS - 2, now + DRIFT_STEPS + 3)}
        return next(f"{n:06d}" for n in range(secrets.randbelow(900000), 10**6) if f"{n:06d}" not in window)

    # ------------------------------------------------------------------ the run
    def new_token(self, number: int) -> Token:
        seed = base64.b32encode(secrets.token_bytes(20)).decode("ascii")  # 160 bits, 32 base32 characters
        self.secrets.add(seed)
        token = Token(number=number, serial=f"{self.prefix}{number}", seed=seed)
        self.tokens.append(token)
        return token

    def item(self, token: Token, content_id: str) -> dict[str, t.Any]:
        return {
            "@contentId": content_id,
            "serialNumber": token.serial,
            "manufacturer": MANUFACTURER,
            "model": MODEL,
            "secretKey": token.seed,
            "timeIntervalInSeconds": INTERVAL,
            "hashFunction": "hmacsha1",
        }

    def methods(self, user: dict[str, t.Any]) -> str:
        return f"/users/{segment(user['id'])}/authentication/hardwareOathMethods"

    def find(self, token: Token, operation: str = "list_inventory_by_serial", role: str = "answer") -> Exchange:
        return self.send(
            operation, "GET", DEVICES, params={"$filter": f"serialNumber eq {odata_string(token.serial)}"}, role=role
        )

    def read_token(self, token: Token, role: str = "answer") -> Exchange:
        return self.send("get_token", "GET", f"{DEVICES}/{segment(t.cast(str, token.id))}", tolerate=(404,), role=role)

    def run(self) -> None:
        self.say(
            f"==> conformance check against {self.credential.graph_endpoint}, throwaway serial prefix {self.prefix}"
        )
        self.step_policy()
        self.step_users()
        first, second, third = self.new_token(1), self.new_token(2), self.new_token(3)
        self.step_bulk_create(first, second)
        self.step_single_token(third)
        self.step_listings()
        one, two = self.users
        self.step_assign_and_activate(first, second, one, two)
        self.step_unassign_and_reassign(first, second, one, two)
        self.step_bulk_refusal()
        for token in (first, second, third):
            self.wait_unassigned(token)
            self.expect(self.send("delete_token", "DELETE", f"{DEVICES}/{segment(t.cast(str, token.id))}"), 204)
            self.say(f"    deleted {token.serial}")
        self.send("error_envelope", "GET", f"{DEVICES}/{uuid.uuid4()}")

    def step_policy(self) -> None:
        policy = self.expect(self.send("get_policy", "GET", POLICY), 200).body or {}
        state = policy.get("state") if isinstance(policy, dict) else None
        if state != "enabled":
            raise StepFailed(
                f"step get_policy: the hardware OATH method is {state or 'not readable'} in the tenant's "
                "authentication methods policy; enable it for the test users first "
                "(tokenops.entra.hardware_oath_policy)"
            )
        patch = {"@odata.type": POLICY_TYPE, "state": state}  # its state written back unchanged
        self.expect(self.send("update_policy", "PATCH", POLICY, json_body=patch), 204, 200)
        self.say("    policy read, its state written back unchanged")

    def step_users(self) -> None:
        for ref in self.config.users:
            answer = self.expect(
                self.send("get_user", "GET", f"/users/{segment(ref)}", params={"$select": USER_SELECT}), 200
            )
            if not isinstance(answer.body, dict) or not answer.body.get("id"):
                raise StepFailed("step get_user failed: Graph's answer holds no user id")
            self.users.append(answer.body)
        ids = ", ".join(odata_string(user["id"]) for user in self.users)
        self.expect(
            self.send(
                "list_users_by_ids", "GET", "/users", params={"$filter": f"id in ({ids})", "$select": USER_SELECT}
            ),
            200,
        )
        requests = [
            {
                "id": str(number),
                "method": "GET",
                "url": f"/users/{segment(user['id'])}/authentication/hardwareOathMethods",
            }
            for number, user in enumerate(self.users)
        ]
        batch = self.expect(self.send("batch", "POST", "/$batch", json_body={"requests": requests}), 200)
        counts = []
        for user in self.users:  # a refusal is only a difference here: the count is a courtesy
            answer = self.send("list_user_all_methods", "GET", f"/users/{segment(user['id'])}/authentication/methods")
            methods = answer.body.get("value", []) if answer.status == 200 and isinstance(answer.body, dict) else []
            counts.append(sum(1 for m in methods if "oath" in str(m.get("@odata.type", "")).lower()))
        for user in self.users:  # what refuse_directory_role_holders reads (a test user need hold no role)
            self.expect(
                self.send("list_user_memberships", "GET", f"/users/{segment(user['id'])}/transitiveMemberOf"), 200
            )
        if any(count >= 5 for count in counts):
            raise StepFailed(
                "step list_user_all_methods: a test user already holds five OATH methods (hardware tokens and "
                "authenticator apps), the most Entra ID allows; give two users with room for one more"
            )
        self.say(f"    two test users found; batch answered {batch.status}")

    def step_bulk_create(self, first: Token, second: Token) -> None:
        payload = {"@context": "#$delta", "value": [self.item(first, "1"), self.item(second, "2")]}
        first.creation = second.creation = "sent"
        answer = self.send("bulk_create", "PATCH", DEVICES, json_body=payload)
        self.expect(answer, 200, 201, 204)
        first.creation = second.creation = "accepted"
        listed = answer.body.get("value") if isinstance(answer.body, dict) else None
        forms = {_bulk_form(item) for item in listed or []}
        self.observations["bulk_answer"] = {"status": answer.status, "items": sorted(forms) or ["none listed"]}
        by_serial = {}
        for item in listed or []:
            device = item.get("device") if isinstance(item.get("device"), dict) else item
            if isinstance(device, dict) and device.get("serialNumber"):
                by_serial[str(device["serialNumber"]).lower()] = item.get("id") or device.get("id")
        for token in (first, second):
            found = self.poll(
                functools.partial(self.find, token), _lists_some, f"{token.label} listed after the bulk creation"
            )
            token.id = by_serial.get(token.serial.lower()) or found.body["value"][0].get("id")
        self.say(f"    bulk creation answered {answer.status}; both tokens listed")

    def step_single_token(self, token: Token) -> None:
        body = {key: value for key, value in self.item(token, "").items() if key != "@contentId"}
        token.creation = "sent"
        answer = self.expect(self.send("create_token", "POST", DEVICES, json_body=body), 201, 200)
        token.creation = "accepted"
        token.id = answer.body.get("id") if isinstance(answer.body, dict) else None
        if not token.id:
            listed = self.poll(
                functools.partial(self.find, token), _lists_some, f"{token.label} listed after its creation"
            )
            token.id = listed.body["value"][0]["id"]
        self.poll(lambda: self.read_token(token), lambda a: a.status == 200, f"{token.label} read by id")
        patch = {"displayName": "tokenops conformance"}
        self.expect(self.send("update_token", "PATCH", f"{DEVICES}/{segment(token.id)}", json_body=patch), 204, 200)
        self.say(f"    {token.serial} created alone, read and renamed")

    def step_listings(self) -> None:
        self.expect(self.send("list_inventory_all", "GET", DEVICES, params={"$top": "999"}), 200)  # its first page
        self.expect(
            self.send(
                "list_inventory_by_status", "GET", DEVICES, params={"$filter": "status eq 'available'", "$top": "999"}
            ),
            200,
        )
        first_page = self.expect(self.send("list_inventory_first_page", "GET", DEVICES, params={"$top": "1"}), 200)
        link = first_page.body.get("@odata.nextLink") if isinstance(first_page.body, dict) else None
        if link:
            self.expect(self.send("list_inventory_next_page", "GET", "", absolute_url=str(link)), 200)
        self.say("    inventory listed by status and in pages of one")

    def step_assign_and_activate(self, first: Token, second: Token, one: dict, two: dict) -> None:
        self.expect(self.send("assign", "POST", self.methods(one), json_body={"device": {"id": first.id}}), 201, 200)
        self.send(
            "list_inventory_by_holder",
            "GET",
            DEVICES,
            params={"$filter": f"assignedTo/id eq {odata_string(one['id'])}", "$top": "999"},
        )
        self.poll(
            lambda: self.send("list_user_methods", "GET", self.methods(one)),
            lambda a: (
                first.id in {m.get("id") for m in (a.body or {}).get("value", [])}
                if isinstance(a.body, dict)
                else False
            ),
            f"{first.label} among the user's methods after its assignment",
        )
        method = f"{self.methods(one)}/{segment(t.cast(str, first.id))}"
        self.expect(self.send("get_user_method", "GET", method), 200)
        self.expect(self.send("get_method_device", "GET", f"{method}/device"), 200)
        wrong = self.send(
            "activate_wrong_code", "POST", f"{method}/activate", json_body={"verificationCode": self.wrong_code(first)}
        )
        self.observations["wrong_code"] = _error_summary(wrong)
        activate = {"verificationCode": self.code(first), "displayName": "tokenops conformance"}
        self.expect(self.send("activate", "POST", f"{method}/activate", json_body=activate), 204, 200)
        both = {"device": {"id": second.id}, "verificationCode": self.code(second)}
        self.expect(
            self.send("assign_and_activate", "POST", f"{self.methods(two)}/assignAndActivate", json_body=both), 204, 200
        )
        self.say(
            "    assigned and activated for the first user (one wrong code first), assigned and activated for "
            "the second"
        )

    def step_unassign_and_reassign(self, first: Token, second: Token, one: dict, two: dict) -> None:
        for token, user in ((second, two), (first, one)):
            self.expect(
                self.send("unassign", "DELETE", f"{self.methods(user)}/{segment(t.cast(str, token.id))}"), 204, 200
            )
            self.wait_unassigned(token)
        by_serial = {"serialNumber": first.serial, "verificationCode": self.code(first)}
        self.expect(
            self.send(
                "assign_and_activate_by_serial",
                "POST",
                f"{self.methods(two)}/assignAndActivateBySerialNumber",
                json_body=by_serial,
            ),
            204,
            200,
        )
        self.expect(self.send("unassign", "DELETE", f"{self.methods(two)}/{segment(t.cast(str, first.id))}"), 204, 200)
        self.say("    unassigned both, reassigned the first to the second user by serial number, unassigned it")

    def step_bulk_refusal(self) -> None:
        bad = self.new_token(4)
        bad.creation = "sent"  # if Graph took it after all, the cleanup removes it
        item = {**self.item(bad, "1"), "secretKey": "1" * 32}  # "1" is no base32 digit
        answer = self.send("bulk_refusal", "PATCH", DEVICES, json_body={"@context": "#$delta", "value": [item]})
        summary = _error_summary(answer)
        details = (answer.body or {}).get("error", {}).get("details") if isinstance(answer.body, dict) else None
        summary["names_the_token"] = any(
            str((d or {}).get("target")) == "1" for d in details or [] if isinstance(d, dict)
        )
        self.observations["bulk_refusal"] = summary
        self.say(f"    a bulk creation with an invalid secret answered {answer.status}")

    def wait_unassigned(self, token: Token, role: str = "answer") -> None:
        self.poll(
            lambda: self.read_token(token, role),
            lambda a: a.status == 404 or (a.status == 200 and not (a.body or {}).get("assignedTo")),
            f"{token.label} unassigned",
        )

    # ------------------------------------------------------------------ cleanup
    def cleanup(self, *, everything_listed: bool = False) -> list[str]:
        """Remove every token of the run (unassigned first): those it knows, and those the inventory lists with its
        serial prefix. Returns the serial numbers it could not remove."""
        found: dict[str, str] = {}  # id -> serial
        for token in self.tokens:
            if token.id:
                found[token.id.lower()] = token.serial
        if everything_listed:
            found.update(self.listed_with_prefix())
        else:
            for token in self.tokens:
                if token.creation and not token.id:
                    found.update(self.looked_up(token))
        left = []
        for device_id, serial in found.items():
            try:
                if self.remove(device_id):
                    self.say(f"    cleanup: {serial} removed")
            except StepFailed as exc:
                self.say(f"    cleanup: {serial} NOT removed: {exc}")
                left.append(serial)
        return left

    def looked_up(self, token: Token) -> dict[str, str]:
        """The token of this serial number (id -> serial), if any; one whose creation Graph accepted is waited for."""
        started = time.monotonic()
        while True:
            answer = self.find(token, "cleanup", "cleanup")
            devices = (answer.body or {}).get("value", []) if isinstance(answer.body, dict) else []
            if devices or token.creation != "accepted" or time.monotonic() - started > WAIT:
                return {str(device.get("id")).lower(): token.serial for device in devices}
            time.sleep(1.0)

    def listed_with_prefix(self) -> dict[str, str]:
        found: dict[str, str] = {}
        answer = self.expect(self.send("cleanup", "GET", DEVICES, params={"$top": "999"}, role="cleanup"), 200)
        while True:
            body = answer.body if isinstance(answer.body, dict) else {}
            for device in body.get("value", []):
                serial = str(device.get("serialNumber") or (device.get("device") or {}).get("serialNumber") or "")
                if serial.upper().startswith(self.prefix.upper()):
                    found[str(device.get("id")).lower()] = serial
            link = body.get("@odata.nextLink")
            if not link:
                return found
            answer = self.expect(self.send("cleanup", "GET", "", absolute_url=str(link), role="cleanup"), 200)

    def remove(self, device_id: str) -> bool:
        """Unassign (if held) and delete one token; False when it was gone already."""
        path = f"{DEVICES}/{segment(device_id)}"
        state = self.send("cleanup", "GET", path, role="cleanup")
        if state.status == 404:
            return False
        holder = ((state.body or {}).get("assignedTo") or {}).get("id") if isinstance(state.body, dict) else None
        if holder:
            methods = f"/users/{segment(str(holder))}/authentication/hardwareOathMethods/{segment(device_id)}"
            self.expect(self.send("cleanup", "DELETE", methods, role="cleanup"), 204, 200, 404)
            started = time.monotonic()
            while time.monotonic() - started < WAIT:
                state = self.send("cleanup", "GET", path, role="cleanup")
                if state.status == 404 or not (
                    (state.body or {}).get("assignedTo") if isinstance(state.body, dict) else None
                ):
                    break
                time.sleep(1.0)
        return self.expect(self.send("cleanup", "DELETE", path, role="cleanup"), 204, 200, 404).status != 404

    # ------------------------------------------------------------------ the comparison
    def compare(self) -> list[conformance_shapes.Difference]:
        differences: list[conformance_shapes.Difference] = []
        for exchange in self.recorder.exchanges:
            if exchange.role == "cleanup" or exchange.operation not in self.fixtures.operations:
                continue
            if exchange.status == 429:
                name = "throttled"
            elif exchange.role == "tolerated":
                name = "error_envelope"
            elif exchange.role == "answer" and exchange.status not in NOT_SHAPES:
                name = exchange.operation
            else:
                continue
            found = self.fixtures.check_answer(
                name, exchange.status, exchange.headers, exchange.body, has_body=exchange.has_body
            )
            if name == "throttled":  # which request Graph throttled
                found = [dataclasses.replace(d, operation=f"throttled ({exchange.operation})") for d in found]
            differences += [difference for difference in found if difference not in differences]
        return differences

    def report(self, outcome: Outcome, started: datetime.datetime, left: list[str]) -> dict[str, t.Any]:
        operations: dict[str, t.Any] = {}
        throttling = []
        for exchange in self.recorder.exchanges:
            if exchange.role == "cleanup":
                continue
            entry = operations.setdefault(exchange.operation, {"basis": self._basis(exchange.operation), "answers": []})
            answer: dict[str, t.Any] = {
                "method": exchange.method,
                "status": exchange.status,
                "role": exchange.role,
                "latency_ms": exchange.latency_ms,
                "shape": conformance_shapes.shape_of(exchange.body) if exchange.has_body else None,
            }
            if exchange.status >= 400 and isinstance(exchange.body, dict):
                answer["error"] = _error_summary(exchange)
            seen = {name: exchange.headers[name] for name in REPORT_HEADERS if name in exchange.headers}
            if exchange.status == 429 or any(name.startswith("x-ms-throttle") for name in seen):
                throttling.append({"operation": exchange.operation, "status": exchange.status, **seen})
            entry["answers"].append(answer)
        return self._scrubbed(
            {
                "format": "tokenops.entra conformance report 1",
                "collection_version": COLLECTION_VERSION,
                "started": started.isoformat(timespec="seconds"),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "graph_endpoint": self.credential.graph_endpoint,
                "tenant": hashed(self.config.tenant_id),
                "client": hashed(self.config.client_id),
                "credential": self.credential.method,
                "fixtures_sha256": hashlib.sha256(conformance_shapes.FIXTURES.read_bytes()).hexdigest()[:16],
                "result": "failed" if outcome.failure else ("differences" if outcome.differences else "no differences"),
                "failure": outcome.failure,
                "differences": [
                    {**dict(zip(("operation", "where", "basis", "documented", "actual"), _fields(d))), "line": d.line()}
                    for d in outcome.differences
                ],
                "observations": self.observations,
                "throttling": throttling,
                "operations": operations,
                "cleanup": {"tokens": len([tok for tok in self.tokens if tok.creation]), "left": len(left)},
            }
        )

    def _basis(self, name: str) -> str:
        op = self.fixtures.operations.get(name)
        return str(op["basis"]) if op else "none"

    def _scrub(self, text: str) -> str:
        """Free text (an error message, a header) as the report keeps it: secrets masked, ids hashed, user names and
        the run's serial numbers left out."""
        text = self.secrets.redact(str(text))
        text = OBJECT_ID.sub(lambda match: hashed(match.group(0)), text)
        text = EMAIL.sub("<user>", text)
        return re.sub(re.escape(self.prefix) + r"\d*", "<serial>", text, flags=re.IGNORECASE)

    def _scrubbed(self, value: t.Any) -> t.Any:
        if isinstance(value, dict):
            return {key: self._scrubbed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrubbed(item) for item in value]
        return self._scrub(value) if isinstance(value, str) else value


def _fields(difference: conformance_shapes.Difference) -> tuple[str, str, str, str, str]:
    return (difference.operation, difference.where, difference.basis, difference.documented, difference.actual)


def _lists_some(answer: Exchange) -> bool:
    """Does this listing hold an item?"""
    return isinstance(answer.body, dict) and bool(answer.body.get("value"))


def _bulk_form(item: t.Any) -> str:
    if not isinstance(item, dict):
        return "not an object"
    if isinstance(item.get("device"), dict):
        return "method wrapping its device"
    if "serialNumber" in item:
        return "device" + (" with @contentId" if "@contentId" in item else "")
    return "other"


def _error_summary(exchange: Exchange) -> dict[str, t.Any]:
    """A refusal as the report keeps it: status, Graph's code, and its message (scrubbed by the report)."""
    error = exchange.body.get("error") if isinstance(exchange.body, dict) else None
    error = error if isinstance(error, dict) else {}
    return {"status": exchange.status, "code": error.get("code"), "message": str(error.get("message") or "")[:300]}


# ---------------------------------------------------------------------- main
@contextlib.contextmanager
def _signals(handler: t.Any) -> t.Iterator[None]:
    """SIGINT and SIGTERM handled by ``handler`` inside, as before after."""
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _interrupt(signum: int, _frame: t.Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(
    argv: t.Sequence[str] | None = None, environ: t.Mapping[str, str] | None = None, out: t.TextIO | None = None
) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--report", default="tokenops-conformance-report.json", help="where the JSON report goes")
    parser.add_argument("--cleanup", metavar="PREFIX", help="only remove the tokens whose serial number starts so")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    found = Secrets()
    for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        found.add(environ.get(name))
    try:
        config = load_config(environ, need_users=not args.cleanup)
        if args.cleanup and not args.cleanup.upper().startswith(SERIAL_PREFIX):
            raise ConfigError(f"--cleanup takes a prefix of this check's serial numbers, starting with {SERIAL_PREFIX}")
        check = Check(config, out=out, secrets_=found, prefix=args.cleanup)
    except (ConfigError, GraphError, OSError, ValueError) as exc:  # OSError, ValueError: a CA file that won't load
        print(found.redact(f"conformance: {exc}"), file=out)
        return EXIT_FAILED
    if args.cleanup:
        with _signals(signal.SIG_IGN):
            try:
                left = check.cleanup(everything_listed=True)
            except StepFailed as exc:
                check.say(f"conformance: cleanup failed: {exc}")
                return EXIT_FAILED
        check.say(f"==> cleanup of {args.cleanup}: {'nothing left' if not left else 'left ' + ', '.join(left)}")
        return EXIT_FAILED if left else EXIT_SAME
    return _run(check, Path(args.report))


def _run(check: Check, report_path: Path) -> int:
    started = datetime.datetime.now(datetime.timezone.utc)
    outcome = Outcome()
    left: list[str] = []
    try:
        with _signals(_interrupt):
            check.run()
    except StepFailed as exc:
        outcome.failure = str(exc)
    except (KeyboardInterrupt, Interrupted) as exc:
        outcome.failure = f"interrupted ({exc or 'SIGINT'})"
    except GraphError as exc:  # the transport gave up (a lost write, a time-out), or sign-in failed
        outcome.failure = f"step {check.recorder.operation} failed: {exc.message}"
    except Exception as exc:  # pylint: disable=broad-exception-caught  # a surprise: said without a traceback
        outcome.failure = f"step {check.recorder.operation} failed: {type(exc).__name__}: {exc}"
    finally:
        check.say("==> cleanup: removing the run's throwaway tokens (Ctrl-C is ignored until it is done)")
        with _signals(signal.SIG_IGN):
            try:
                left = check.cleanup()
            except (StepFailed, GraphError) as exc:
                check.say(f"    cleanup failed: {exc}")
                left = [token.serial for token in check.tokens if token.creation]
    outcome.differences = check.compare()
    outcome.observations = check.observations
    report = check.report(outcome, started, left)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(check.secrets.redact(json.dumps(report, indent=2, sort_keys=False)) + "\n", encoding="utf-8")
    if outcome.differences:
        check.say(f"==> {len(outcome.differences)} difference(s) from Microsoft's documentation:")
        for difference in outcome.differences:
            check.say("    " + difference.line())
    if left:
        check.say(
            "==> NOT removed from the tenant: " + ", ".join(left) + f". Run again with --cleanup {check.prefix} "
            "(make conformance CONFORMANCE_ARGS='--cleanup "
            + check.prefix
            + "'), or delete them in the Entra admin center."
        )
    check.say(f"==> report: {report_path}")
    if outcome.failure or left:
        check.say(f"==> FAILED: {outcome.failure or 'the cleanup left tokens behind'}")
        return EXIT_FAILED
    check.say("==> " + ("differences found (see above)" if outcome.differences else "no differences"))
    return EXIT_DIFFERENT if outcome.differences else EXIT_SAME


if __name__ == "__main__":
    sys.exit(main())
