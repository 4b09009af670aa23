"""In-memory tenant state: seed loading, the hardware OATH token lifecycle and its rules.

Everything here is transport-free. Callers hold ``Tenant.lock`` around any sequence of reads and writes
that must be atomic (the HTTP layer takes it once per Graph request).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import copy
import datetime
import hashlib
import itertools
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterable, Iterator

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import totp
from .errors import ErrorAnswer, bad_request, conflict, not_found, user_not_found
from .settings import Settings

STATUSES = ("available", "assigned", "activated", "failedActivation")
HASH_FUNCTIONS = ("hmacsha1", "hmacsha256")
TIME_INTERVALS = (30, 60)
# "Up to five OATH hardware tokens or authenticator applications" per user (Entra's upload page): hardware tokens
# and a user's other OATH methods (User.other_oath_methods) count together.
MAX_METHODS_PER_USER = 5
MAX_SECRET_LENGTH = 128
# RFC 4226 R6: at least 128 bits of shared secret (26 base32 characters). Entra's own minimum is undocumented.
MIN_SECRET_LENGTH = 26
BASE32_RE = re.compile(r"^[A-Za-z2-7]+$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Directory roles that make a user an "admin target": acting on their methods needs a privileged role.
ADMIN_ROLES = frozenset(
    {
        "Global Administrator",
        "Privileged Authentication Administrator",
        "Authentication Administrator",
        "Authentication Policy Administrator",
        "Global Reader",
        "User Administrator",
        "Security Administrator",
        "Privileged Role Administrator",
        "Helpdesk Administrator",
    }
)


# libyaml's safe loader when PyYAML has it: a seed of ten thousand tokens and users loads in a second, not thirty.
SEED_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SeedError(ValueError):
    """The seed file is invalid; the message names the offending entry."""


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_secret(secret: Any) -> str:
    """Graph's rule (base32, a-z A-Z 2-7, at most 128 characters) plus the simulator's 128-bit minimum."""
    if not isinstance(secret, str) or not secret:
        raise bad_request("The secretKey property is required and must be a string.")
    if not BASE32_RE.match(secret):
        bad = next(c for c in secret if not BASE32_RE.match(c))
        raise bad_request(f"Invalid base32 encoding due to illegal character '{bad}' in secretKey.")
    if len(secret) > MAX_SECRET_LENGTH:
        raise bad_request(f"The secretKey must be at most {MAX_SECRET_LENGTH} characters long.")
    if len(secret) < MIN_SECRET_LENGTH:
        raise bad_request(f"The secretKey must be at least {MIN_SECRET_LENGTH} base32 characters (128 bits) long.")
    return secret.upper()


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    user_type: str = "Member"
    roles: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # ids of the seed's groups the user is a direct member of
    password: str | None = None
    account_enabled: bool = True
    other_oath_methods: int = 0  # authenticator apps and other OATH methods the user holds besides hardware tokens

    @property
    def is_guest(self) -> bool:
        return self.user_type == "Guest"

    @property
    def is_admin(self) -> bool:
        return bool(ADMIN_ROLES.intersection(self.roles))


@dataclass
class Certificate:
    pem: str
    public_key: Any
    sha1: bytes
    sha256: bytes


@dataclass
class FederatedCredential:
    issuer: str
    subject: str
    audiences: list[str]
    name: str = ""


@dataclass
class App:
    client_id: str
    display_name: str
    client_secrets: list[str] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    application_permissions: list[str] = field(default_factory=list)
    delegated_permissions: list[str] = field(default_factory=list)
    public_client: bool = False
    object_id: str = ""


@dataclass
class ManagedIdentity:
    client_id: str
    object_id: str
    display_name: str
    application_permissions: list[str] = field(default_factory=list)
    system_assigned: bool = False


@dataclass
class Group:
    id: str
    display_name: str


@dataclass
class Token:
    """A hardwareOathTokenAuthenticationMethodDevice; when assigned, also the user's method (same id).

    ``legacy``: uploaded with the old CSV flow (a user's ``legacy_oath_tokens`` in the seed). Entra's how-to
    "Troubleshoot duplicate tokens" (ED ``docs/identity/authentication/how-to-mfa-manage-oath-tokens.md``): such a token
    is a method of its user but is not in the inventory's listing or filter, and may share its serial number with an
    inventory token; it is found by its id (unassigned by DELETE of the method, then deleted by DELETE of the device).
    It is therefore kept out of the serial number index.
    """

    id: str
    serial_number: str
    secret_key: str
    manufacturer: str
    model: str
    hash_function: str = "hmacsha1"
    time_interval: int = 30
    display_name: str | None = None
    status: str = "available"
    assigned_to: str | None = None
    order: int = 0
    method_created: float | None = None
    last_used: float | None = None
    last_accepted_step: int | None = None
    activations: dict = field(default_factory=lambda: {"accepted": 0, "rejected": 0, "replayed": 0})
    legacy: bool = False


@dataclass
class Journal:
    """What one Graph request did to the inventory, for its request log entry (docs/simulator.md, "Admin API"):
    the tokens it addressed (``targets``: ``{"token": id, "serial_number"}``, either may be None when the request
    named only the other), the changes it made (``effects``: ``{"token", "serial_number", "before", "after"}``, each
    side the token's public state, or None when it did not exist) and the result of the verification code it carried
    (``verification``: accepted, rejected or replayed). Filled while the request holds the tenant's lock."""

    targets: list[dict] = field(default_factory=list)
    effects: list[dict] = field(default_factory=list)
    verification: str | None = None
    handled: int | None = None  # Tenant.next_handled() when the request took the lock

    def target(self, token_id: str | None = None, serial_number: str | None = None) -> None:
        entry = {"token": token_id.lower() if token_id else None, "serial_number": serial_number}
        if entry not in self.targets:
            self.targets.append(entry)

    def log_fields(self) -> dict:
        """The request log's fields: only those with something in them."""
        out: dict[str, Any] = {}
        if self.handled is not None:
            out["handled"] = self.handled
        if self.targets:
            out["targets"] = self.targets
        if self.effects:
            out["effects"] = self.effects
        if self.verification is not None:
            out["verification"] = self.verification
        return out


def public_state(token: Token | None) -> dict | None:
    """A token's state as an effect in the request log shows it (no secret), or None for no token."""
    if token is None:
        return None
    return {
        "status": token.status,
        "holder": token.assigned_to,
        "display_name": token.display_name,
        "manufacturer": token.manufacturer,
        "model": token.model,
        "hash_function": token.hash_function,
        "time_interval": token.time_interval,
    }


@dataclass
class Policy:
    state: str = "disabled"
    include_targets: list[dict] = field(
        default_factory=lambda: [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}]
    )
    exclude_targets: list[dict] = field(default_factory=list)


def _certificate(entry: Any, base_dir: str, where: str) -> Certificate:
    pem = entry
    if isinstance(entry, dict):
        pem = entry.get("pem") or entry.get("path")
    if not isinstance(pem, str):
        raise SeedError(f"{where}: a certificate is a PEM string or a path to a PEM file")
    if "-----BEGIN" not in pem:
        path = pem if os.path.isabs(pem) else os.path.join(base_dir, pem)
        try:
            with open(path, encoding="ascii") as handle:
                pem = handle.read()
        except OSError as exc:
            raise SeedError(f"{where}: cannot read certificate {path}: {exc}") from exc
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError as exc:
        raise SeedError(f"{where}: not a PEM certificate: {exc}") from exc
    der = cert.public_bytes(encoding=serialization.Encoding.DER)
    return Certificate(
        pem=pem, public_key=cert.public_key(), sha1=hashlib.sha1(der).digest(), sha256=hashlib.sha256(der).digest()
    )


def _require(entry: dict, key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise SeedError(f"{where}: '{key}' is required")
    return entry[key]


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeedError(f"{where}: expected a list of strings")
    return list(value)


def _seed_user(entry: dict, where: str) -> User:
    uid = str(_require(entry, "id", where)).lower()
    if not GUID_RE.match(uid):
        raise SeedError(f"{where}: id must be a GUID")
    user_type = entry.get("user_type", "Member")
    if user_type not in ("Member", "Guest"):
        raise SeedError(f"{where}: user_type must be Member or Guest")
    others = entry.get("other_oath_methods", 0)
    if not isinstance(others, int) or isinstance(others, bool) or not 0 <= others <= MAX_METHODS_PER_USER:
        raise SeedError(f"{where}: other_oath_methods must be an integer from 0 to {MAX_METHODS_PER_USER}")
    return User(
        id=uid,
        user_principal_name=str(_require(entry, "user_principal_name", where)),
        display_name=str(_require(entry, "display_name", where)),
        user_type=user_type,
        roles=_str_list(entry.get("roles"), f"{where}.roles"),
        password=entry.get("password"),
        account_enabled=bool(entry.get("account_enabled", True)),
        other_oath_methods=others,
    )


def _seed_federated_credential(entry: dict, where: str) -> FederatedCredential:
    return FederatedCredential(
        issuer=str(_require(entry, "issuer", where)),
        subject=str(_require(entry, "subject", where)),
        audiences=_str_list(entry.get("audiences", ["api://AzureADTokenExchange"]), f"{where}.audiences"),
        name=str(entry.get("name", "")),
    )


def _seed_managed_identity(entry: dict, where: str) -> ManagedIdentity:
    cid = str(_require(entry, "client_id", where)).lower()
    return ManagedIdentity(
        client_id=cid,
        object_id=str(entry.get("object_id") or uuid.uuid5(uuid.NAMESPACE_URL, "mi:" + cid)).lower(),
        display_name=str(entry.get("display_name", cid)),
        application_permissions=_str_list(entry.get("application_permissions"), f"{where}.application_permissions"),
        system_assigned=bool(entry.get("system_assigned", False)),
    )


class Tenant:
    """The whole simulated tenant. Build with :meth:`from_seed_file`; :meth:`reset` restores the seed.

    ``config`` holds the runtime settings (entrasim.settings), the seed's over the defaults at start; the server
    changes and restores them (a reset of the tenant leaves them alone).

    Reads lag writes by ``config.read_after_write_delay_ms``: every write to a token is remembered in
    ``versions`` (token id -> ``[(time.monotonic() of the write, the token as it was then or None), ...]``, the
    first entry being the state before the first remembered write) for as long as the delay needs it, and reads
    (``visible_*``) show the newest version at least that old. Writes and their checks always see the current
    state (``tokens``), and so does the admin view.

    Indexes keep lookups and filtered reads from scanning the whole tenant; the methods here keep them in step with
    every change (anything changing ``users`` or a user's id or UPN from outside calls :meth:`users_changed`):

    - ``tokens`` itself is kept in ``order`` (insertion order: a token's order is taken when it is created, and
      tokens are only ever added at the end or removed), so listings never sort the inventory;
    - ``_serials``: serial number (lower case, as the directory compares) -> the inventory token holding it (legacy
      tokens are not in it: they may share an inventory token's serial number);
    - ``_holders``: user id -> the ids of the tokens assigned to the user;
    - ``_upns``: user principal name (lower case) -> user; ``_users_by_id``: the users sorted by id (listings);
    - ``_writes``: ``(time.monotonic(), token id)`` of every remembered write, oldest first (what to forget when);
      ``_deleted_serials``: serial (lower case) -> ids of deleted tokens whose deletion reads may not see yet.

    ``examined`` counts the tokens and users turned into their Graph representation (each evaluated by a
    ``$filter`` or answered): a debug counter of how much of the tenant reads look at (``GET /_admin/stats``).
    """

    def __init__(self, seed: dict, base_dir: str = ".") -> None:
        self.lock = threading.RLock()
        # The journal of the Graph request being handled (set by the Graph API under the lock), else None.
        self.journal: Journal | None = None
        # The order in which Graph requests were decided: processed under the lock, or answered without it.
        self._handled = itertools.count(1)
        self.clock_offset = 0.0
        self.examined = {"tokens": 0, "users": 0}
        self._seed = seed
        self._base_dir = base_dir
        settings = seed.get("settings") if isinstance(seed, dict) else None
        if settings is not None and not isinstance(settings, dict):
            raise SeedError("settings must be a mapping")
        try:
            self.config = Settings.from_seed(settings or {})
        except ValueError as exc:
            raise SeedError(str(exc)) from exc
        self._load(seed)

    @classmethod
    def from_seed_file(cls, path: str) -> Tenant:
        try:
            with open(path, encoding="utf-8") as handle:
                seed = yaml.load(handle, Loader=SEED_LOADER)
        except (OSError, yaml.YAMLError) as exc:
            raise SeedError(f"cannot load seed {path}: {exc}") from exc
        return cls(seed, os.path.dirname(os.path.abspath(path)))

    def now(self) -> float:
        return time.time() + self.clock_offset

    def next_handled(self) -> int:
        """The next number of the order in which Graph requests are decided (the request log's ``handled``)."""
        return next(self._handled)

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = 0.0
            self._load(self._seed)

    # ------------------------------------------------------------------ seed
    def _load(self, seed: Any) -> None:
        if not isinstance(seed, dict):
            raise SeedError("the seed must be a mapping")
        self._load_tenant(seed)
        self._load_groups(seed.get("groups") or [])
        self._load_users(seed.get("users") or [])
        self._load_apps(seed.get("apps") or [])
        self._load_managed_identities(seed.get("managed_identities") or [])
        self._load_tokens(seed.get("tokens") or [], seed.get("users") or [])
        self._load_policy(((seed.get("policy") or {}).get("hardware_oath")) or {})

    def _load_tenant(self, seed: dict) -> None:
        """The tenant's id and name, the seed's settings, and the bookkeeping every load starts afresh."""
        tenant = seed.get("tenant") or {}
        self.tenant_id = str(_require(tenant, "id", "tenant")).lower()
        if not GUID_RE.match(self.tenant_id):
            raise SeedError("tenant.id must be a GUID")
        self.display_name = tenant.get("display_name", "Simulated tenant")
        self.settings = dict(seed.get("settings") or {})
        self.activation_window_steps = int(
            self.settings.get("activation_window_steps", totp.DEFAULT_ACTIVATION_WINDOW_STEPS)
        )
        self._order = itertools.count(1)
        self.versions: dict[str, list[tuple[float, Token | None]]] = {}
        self._writes: collections.deque[tuple[float, str]] = collections.deque()
        self._deleted_serials: dict[str, set[str]] = {}
        self._deleted_ids: dict[str, str] = {}
        # Every verification of a code since the seed was loaded, deleted tokens' too (the admin view's activations).
        self.activations = {totp.ACCEPTED: 0, totp.REJECTED: 0, totp.REPLAYED: 0}

    def _load_groups(self, entries: list) -> None:
        self.groups: dict[str, Group] = {}
        for i, entry in enumerate(entries):
            where = f"groups[{i}]"
            gid = str(_require(entry, "id", where)).lower()
            self.groups[gid] = Group(id=gid, display_name=str(entry.get("display_name", gid)))

    def _load_users(self, entries: list) -> None:
        self.users: dict[str, User] = {}
        self._upns: dict[str, User] = {}
        self._users_by_id: list[User] | None = None
        for i, entry in enumerate(entries):
            where = f"users[{i}]"
            user = _seed_user(entry, where)
            user.groups = self._seed_memberships(entry, where)
            if user.id in self.users or self.find_user_by_upn(user.user_principal_name):
                raise SeedError(f"{where}: duplicate user id or user_principal_name")
            self.users[user.id] = user
            self._upns[user.user_principal_name.lower()] = user

    def _seed_memberships(self, entry: dict, where: str) -> list[str]:
        """A user's ``groups``: ids of the seed's top-level groups (lower-cased), each at most once."""
        groups: list[str] = []
        for j, given in enumerate(_str_list(entry.get("groups"), f"{where}.groups")):
            gid = given.lower()
            if gid not in self.groups:
                raise SeedError(f"{where}.groups[{j}]: unknown group id {gid} (not in the seed's groups)")
            if gid in groups:
                raise SeedError(f"{where}.groups[{j}]: duplicate group id {gid}")
            groups.append(gid)
        return groups

    def users_changed(self) -> None:
        """Rebuild the user indexes after ``users`` changed (a user added or removed, an id or a UPN changed)."""
        self._upns = {u.user_principal_name.lower(): u for u in self.users.values()}
        self._users_by_id = None

    def _load_apps(self, entries: list) -> None:
        self.apps: dict[str, App] = {}
        for i, entry in enumerate(entries):
            app = self._seed_app(entry, f"apps[{i}]")
            self.apps[app.client_id] = app

    def _seed_app(self, entry: dict, where: str) -> App:
        cid = str(_require(entry, "client_id", where)).lower()
        secrets = _str_list(entry.get("client_secrets"), f"{where}.client_secrets")
        if entry.get("client_secret"):
            secrets.append(str(entry["client_secret"]))
        certs = [
            _certificate(c, self._base_dir, f"{where}.certificates[{j}]")
            for j, c in enumerate(entry.get("certificates") or [])
        ]
        feds = [
            _seed_federated_credential(fed, f"{where}.federated_credentials[{j}]")
            for j, fed in enumerate(entry.get("federated_credentials") or [])
        ]
        return App(
            client_id=cid,
            display_name=str(entry.get("display_name", cid)),
            client_secrets=secrets,
            certificates=certs,
            federated_credentials=feds,
            application_permissions=_str_list(entry.get("application_permissions"), f"{where}.application_permissions"),
            delegated_permissions=_str_list(entry.get("delegated_permissions"), f"{where}.delegated_permissions"),
            public_client=bool(entry.get("public_client", False)),
            object_id=str(entry.get("object_id") or uuid.uuid5(uuid.NAMESPACE_URL, cid)),
        )

    def _load_managed_identities(self, entries: list) -> None:
        self.managed_identities: dict[str, ManagedIdentity] = {}
        for i, entry in enumerate(entries):
            identity = _seed_managed_identity(entry, f"managed_identities[{i}]")
            self.managed_identities[identity.client_id] = identity
        if sum(1 for mi in self.managed_identities.values() if mi.system_assigned) > 1:
            raise SeedError("managed_identities: at most one may be system_assigned")

    def _load_tokens(self, entries: list, users: list) -> None:
        """The users' legacy tokens (uploaded before the inventory existed, so first), then the inventory."""
        self.tokens: dict[str, Token] = {}
        self._serials: dict[str, Token] = {}
        self._holders: dict[str, set[str]] = {}
        self._load_legacy_tokens(users)
        for i, entry in enumerate(entries):
            self._seed_token(entry, f"tokens[{i}]")

    def _load_legacy_tokens(self, users: list) -> None:
        legacy_serials: set[str] = set()
        for i, user_entry in enumerate(users):
            entries = user_entry.get("legacy_oath_tokens") or []
            if not isinstance(entries, list):
                raise SeedError(f"users[{i}].legacy_oath_tokens: expected a list")
            user = self.users[str(user_entry["id"]).lower()]
            for j, entry in enumerate(entries):
                where = f"users[{i}].legacy_oath_tokens[{j}]"
                token = self._seed_legacy_token(entry, user, where)
                if token.serial_number.lower() in legacy_serials:
                    raise SeedError(f"{where}: duplicate legacy serial number {token.serial_number}")
                legacy_serials.add(token.serial_number.lower())
                self._add_token(token)

    def _seed_legacy_token(self, entry: Any, user: User, where: str) -> Token:
        """A token the old CSV flow uploaded for ``user``: held by the user, activated unless the entry says
        otherwise. Without an ``id`` its id derives from the user and the serial number, so a reset keeps it."""
        if not isinstance(entry, dict):
            raise SeedError(f"{where}: expected a mapping")
        secret = entry.get("secret_key") or base64.b32encode(os.urandom(20)).decode("ascii")
        fields = self._seed_fields(entry, where, secret)
        token_id = entry.get("id") or uuid.uuid5(uuid.NAMESPACE_URL, f"legacy-oath:{user.id}:{fields['serialNumber']}")
        token = self._new_token(fields, token_id=str(token_id))
        token.legacy = True
        status = entry.get("status", "activated")
        if status not in STATUSES or status == "available":
            raise SeedError(f"{where}: status must be assigned, activated or failedActivation")
        self._check_seed_holder(user, where)
        if token.id in self.tokens:
            raise SeedError(f"{where}: duplicate id {token.id}")
        token.assigned_to, token.status, token.method_created = user.id, status, self.now()
        return token

    def _seed_fields(self, entry: dict, where: str, secret: Any) -> dict:
        """A seeded token's properties, validated as a create validates them."""
        try:
            return self.validate_device_fields(
                {
                    "serialNumber": _require(entry, "serial_number", where),
                    "secretKey": secret,
                    "manufacturer": _require(entry, "manufacturer", where),
                    "model": _require(entry, "model", where),
                    "timeIntervalInSeconds": entry.get("time_interval", 30),
                    "hashFunction": entry.get("hash_function", "hmacsha1"),
                    "displayName": entry.get("display_name"),
                },
                creating=True,
            )
        except ErrorAnswer as exc:
            raise SeedError(f"{where}: {exc.message}") from exc

    def _check_seed_holder(self, user: User, where: str) -> None:
        """A seeded token may go to ``user``: a member with fewer than five OATH methods."""
        if user.is_guest:
            raise SeedError(f"{where}: hardware tokens can't be assigned to guest users")
        if self.oath_method_count(user) >= MAX_METHODS_PER_USER:
            raise SeedError(
                f"{where}: {user.user_principal_name} already has {MAX_METHODS_PER_USER} OATH methods "
                "(hardware tokens and other_oath_methods)"
            )

    def _load_policy(self, policy: dict) -> None:
        """``policy.hardware_oath`` of the seed over the default (disabled, all users included)."""
        self.policy = Policy()
        if "state" in policy:
            if policy["state"] not in ("enabled", "disabled"):
                raise SeedError("policy.hardware_oath.state must be enabled or disabled")
            self.policy.state = policy["state"]
        if "include_targets" in policy:
            self.policy.include_targets = list(policy["include_targets"])
        if "exclude_targets" in policy:
            self.policy.exclude_targets = list(policy["exclude_targets"])

    def _seed_token(self, entry: dict, where: str) -> None:
        fields = self._seed_fields(entry, where, _require(entry, "secret_key", where))
        token = self._new_token(fields, token_id=entry.get("id"))
        status = entry.get("status", "assigned" if entry.get("assigned_to") else "available")
        if status not in STATUSES:
            raise SeedError(f"{where}: status must be one of {', '.join(STATUSES)}")
        if entry.get("assigned_to"):
            user = self.find_user(str(entry["assigned_to"]))
            if user is None:
                raise SeedError(f"{where}: assigned_to names an unknown user")
            self._check_seed_holder(user, where)
            if status == "available":
                raise SeedError(f"{where}: an assigned token can't have status 'available'")
            token.assigned_to = user.id
            token.method_created = self.now()
        elif status != "available":
            raise SeedError(f"{where}: status '{status}' needs assigned_to")
        token.status = status
        if token.serial_number.lower() in self._serials:
            raise SeedError(f"{where}: duplicate serial number {token.serial_number}")
        if token.id in self.tokens:
            raise SeedError(f"{where}: duplicate id {token.id}")
        self._add_token(token)

    # ------------------------------------------------------------------ indexes
    def _add_token(self, token: Token) -> None:
        """A new token into ``tokens`` (after every other: its order is the newest) and the indexes."""
        self.tokens[token.id] = token
        if not token.legacy:
            self._serials[token.serial_number.lower()] = token
        if token.assigned_to is not None:
            self._holders.setdefault(token.assigned_to, set()).add(token.id)

    def _remove_token(self, token: Token) -> None:
        del self.tokens[token.id]
        if not token.legacy:
            del self._serials[token.serial_number.lower()]
        self._set_holder(token, None)

    def _set_holder(self, token: Token, user_id: str | None) -> None:
        """``token.assigned_to``, with the holder index."""
        if token.assigned_to is not None:
            held = self._holders.get(token.assigned_to)
            if held is not None:
                held.discard(token.id)
                if not held:
                    del self._holders[token.assigned_to]
        token.assigned_to = user_id
        if user_id is not None:
            self._holders.setdefault(user_id, set()).add(token.id)

    def token_ids_by_serial(self, serials: Iterable[str]) -> set[str]:
        """The ids of the tokens holding any of ``serials`` (case-insensitive)."""
        found = (self._serials.get(serial.lower()) for serial in serials)
        return {token.id for token in found if token is not None}

    def token_ids_by_holder(self, user_ids: Iterable[str]) -> set[str]:
        """The ids of the tokens assigned to any of ``user_ids`` (case-insensitive)."""
        return set().union(*(self._holders.get(user_id.lower(), ()) for user_id in user_ids))

    def users_by_id(self) -> list[User]:
        """Every user, sorted by id (cached until the users change)."""
        if self._users_by_id is None:
            self._users_by_id = sorted(self.users.values(), key=attrgetter("id"))
        return self._users_by_id

    def check_indexes(self) -> list[str]:
        """What is wrong with the indexes (rebuilt from scratch and compared); empty when they are consistent."""
        problems = []
        orders = [t.order for t in self.tokens.values()]
        if orders != sorted(orders):
            problems.append("tokens are not in order")
        if self._serials != {t.serial_number.lower(): t for t in self.tokens.values() if not t.legacy}:
            problems.append("the serial number index is stale")
        holders: dict[str, set[str]] = {}
        for token in self.tokens.values():
            if token.assigned_to is not None:
                holders.setdefault(token.assigned_to, set()).add(token.id)
        if self._holders != holders:
            problems.append("the holder index is stale")
        if self._upns != {u.user_principal_name.lower(): u for u in self.users.values()}:
            problems.append("the user principal name index is stale")
        if self._users_by_id is not None and self._users_by_id != sorted(self.users.values(), key=attrgetter("id")):
            problems.append("the sorted users are stale")
        deleted: dict[str, set[str]] = {}
        for token_id, history in self.versions.items():
            held = next((t for _at, t in reversed(history) if t is not None), None)
            if history[-1][1] is None and held is not None and not held.legacy:
                deleted.setdefault(held.serial_number.lower(), set()).add(token_id)
        if self._deleted_serials != deleted or self._deleted_ids != {
            token_id: serial for serial, ids in deleted.items() for token_id in ids
        }:
            problems.append("the deleted serial index is stale")
        if {token_id for _at, token_id in self._writes} - set(self.versions):
            problems.append("a remembered write has no versions")
        return problems

    # ------------------------------------------------------------------ lookups
    def find_user(self, ref: str) -> User | None:
        """By object id (GUID, any case) or user principal name (case-insensitive)."""
        user = self.users.get(ref.lower())
        return user if user is not None else self.find_user_by_upn(ref)

    def find_user_by_upn(self, upn: str) -> User | None:
        return self._upns.get(upn.lower())

    def require_user(self, ref: str) -> User:
        user = self.find_user(ref)
        if user is None:
            raise user_not_found(ref)
        return user

    def find_token_by_serial(self, serial: str) -> Token | None:
        return self._serials.get(serial.lower())

    def require_token(self, token_id: str) -> Token:
        token = self.tokens.get(token_id.lower())
        if token is None:
            raise not_found(f"Hardware OATH token '{token_id}' was not found.")
        return token

    def methods_of(self, user_id: str) -> list[Token]:
        return sorted((self.tokens[i] for i in self._holders.get(user_id, ())), key=attrgetter("order"))

    def require_method(self, user: User, method_id: str) -> Token:
        return self._method_or_404(user, method_id, self.tokens.get(method_id.lower()))

    @staticmethod
    def _method_or_404(user: User, method_id: str, token: Token | None) -> Token:
        if token is None or token.assigned_to != user.id:
            raise not_found(f"Hardware OATH authentication method '{method_id}' was not found for this user.")
        return token

    def oath_method_count(self, user: User) -> int:
        """The OATH methods the user holds: hardware tokens and the seed's other_oath_methods."""
        return len(self._holders.get(user.id, ())) + user.other_oath_methods

    def serial_taken(self, serial: str) -> bool:
        """Whether a create of ``serial`` conflicts: a token holds it (visible to reads or not yet), or one deleted
        less than ``read_after_write_delay_ms`` ago held it (Graph answers 409 while a delete replicates)."""
        if self.find_token_by_serial(serial):
            return True
        serial, cutoff = serial.lower(), self._read_cutoff()
        for token_id in self._deleted_serials.get(serial, ()):
            history = self.versions[token_id]
            deleted_at, now_state = history[-1]
            if now_state is None and deleted_at > cutoff:
                held = next((t for _at, t in reversed(history) if t is not None), None)
                if held is not None and held.serial_number.lower() == serial:
                    return True
        return False

    # ------------------------------------------------------------------ reads (read_after_write_delay_ms)
    def _read_cutoff(self) -> float:
        """Writes made after this (time.monotonic()) are not visible to reads yet."""
        return time.monotonic() - self.config.read_after_write_delay_ms / 1000

    def visible_token(self, token_id: str) -> Token | None:
        """The token as reads see it: its newest version older than the delay (None: absent for reads)."""
        token_id = token_id.lower()
        history = self.versions.get(token_id)
        if history is None:
            return self.tokens.get(token_id)
        return self._version_at(history, self._read_cutoff())

    @staticmethod
    def _version_at(history: list[tuple[float, Token | None]], cutoff: float) -> Token | None:
        state = history[0][1]  # the oldest remembered, if even that is too recent (the delay was raised)
        for written, version in history:
            if written > cutoff:
                break
            state = version
        return state

    def visible_tokens(self, among: Iterable[str] | None = None) -> list[Token]:
        """The tokens reads see, in order: all of them, or those among the ids ``among`` (of current tokens, from
        an index) and any token whose versions are remembered (reads may see an older version of it)."""
        if among is not None:
            ids = set(among)
            ids.update(self.versions)
            return sorted((t for t in map(self.visible_token, ids) if t is not None), key=attrgetter("order"))
        if not self.versions:
            return list(self.tokens.values())
        cutoff = self._read_cutoff()
        seen = {token_id: self._version_at(history, cutoff) for token_id, history in self.versions.items()}
        out = [t for t in self.tokens.values() if t.id not in seen]
        out.extend(t for t in seen.values() if t is not None)
        out.sort(key=attrgetter("order"))
        return out

    def require_visible_token(self, token_id: str) -> Token:
        token = self.visible_token(token_id)
        if token is None:
            raise not_found(f"Hardware OATH token '{token_id}' was not found.")
        return token

    def visible_methods_of(self, user_id: str) -> list[Token]:
        return [t for t in self.visible_tokens(self._holders.get(user_id, ())) if t.assigned_to == user_id]

    def require_visible_method(self, user: User, method_id: str) -> Token:
        return self._method_or_404(user, method_id, self.visible_token(method_id))

    @contextlib.contextmanager
    def _change(self, token: Token) -> Iterator[None]:
        """Around every write to a token (its creation and deletion too): remembers its versions for reads. The
        version after is recorded even when the write fails halfway (a wrong code still sets failedActivation)."""
        before = self.tokens.get(token.id)
        history = self.versions.setdefault(token.id, [(float("-inf"), copy.copy(before))])
        journal, shown_before = self.journal, public_state(before)
        try:
            yield
        finally:
            after = self.tokens.get(token.id)
            if journal is not None and public_state(after) != shown_before:
                journal.effects.append(
                    {
                        "token": token.id,
                        "serial_number": token.serial_number,
                        "before": shown_before,
                        "after": public_state(after),
                    }
                )
            written = time.monotonic()
            history.append((written, copy.copy(after)))
            self._writes.append((written, token.id))
            if after is None and before is not None and not token.legacy:  # a legacy serial number was never taken
                serial = token.serial_number.lower()
                self._deleted_serials.setdefault(serial, set()).add(token.id)
                self._deleted_ids[token.id] = serial
            self._forget_settled()

    def _forget_settled(self) -> None:
        """Drop the versions reads no longer need: those older than the newest one past the delay, and a whole
        history once its last version is past the delay (reads then see the current state). Only the histories
        with a write that got past the delay since the last time can change (``_writes``, oldest first)."""
        cutoff = self._read_cutoff()
        while self._writes and self._writes[0][0] <= cutoff:
            token_id = self._writes.popleft()[1]
            history = self.versions.get(token_id)
            if history is None:
                continue
            settled = [i for i, (written, _version) in enumerate(history) if written <= cutoff]
            if settled:
                del history[: settled[-1]]
            if len(history) == 1 and history[0][0] <= cutoff:
                del self.versions[token_id]
                serial = self._deleted_ids.pop(token_id, None)
                if serial is not None:
                    ids = self._deleted_serials[serial]
                    ids.discard(token_id)
                    if not ids:
                        del self._deleted_serials[serial]

    # ------------------------------------------------------------------ validation
    def validate_device_fields(self, body: dict, creating: bool) -> dict:
        """Validate inventory properties; returns the normalised subset present in ``body``."""
        out: dict = {}
        if creating:
            for key in ("serialNumber", "manufacturer", "model", "secretKey", "timeIntervalInSeconds"):
                if body.get(key) in (None, ""):
                    raise bad_request(f"The property '{key}' is required to create a hardware OATH token.")
        for key in ("serialNumber", "manufacturer", "model", "displayName"):
            if key in body and body[key] is not None:
                if not isinstance(body[key], str):
                    raise bad_request(f"The property '{key}' must be a string.")
                if key != "displayName" and not body[key].strip():
                    raise bad_request(f"The property '{key}' must not be empty.")
                out[key] = body[key]
        if "displayName" in body and body["displayName"] is None:
            out["displayName"] = None
        if body.get("secretKey") is not None:
            out["secretKey"] = validate_secret(body["secretKey"])
        if body.get("timeIntervalInSeconds") is not None:
            value = body["timeIntervalInSeconds"]
            # The documented bulk example sends the interval as a string; accept numeric strings too.
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or value not in TIME_INTERVALS:
                raise bad_request(
                    f"Invalid timeIntervalInSeconds '{body['timeIntervalInSeconds']}'. Supported values are 30 and 60."
                )
            out["timeIntervalInSeconds"] = value
        if body.get("hashFunction") is not None:
            if body["hashFunction"] not in HASH_FUNCTIONS:
                raise bad_request(
                    f"Invalid hashFunction '{body['hashFunction']}'. Supported values are hmacsha1 and hmacsha256."
                )
            out["hashFunction"] = body["hashFunction"]
        elif creating:
            out["hashFunction"] = "hmacsha1"
        return out

    def _new_token(self, fields: dict, token_id: str | None = None) -> Token:
        tid = str(token_id or uuid.uuid4()).lower()
        if not GUID_RE.match(tid):
            raise SeedError(f"token id {tid} must be a GUID")
        return Token(
            id=tid,
            serial_number=fields["serialNumber"],
            secret_key=fields["secretKey"],
            manufacturer=fields["manufacturer"],
            model=fields["model"],
            hash_function=fields.get("hashFunction", "hmacsha1"),
            time_interval=fields["timeIntervalInSeconds"],
            display_name=fields.get("displayName"),
            order=next(self._order),
        )

    def check_assignable(self, token: Token, user: User) -> None:
        if user.is_guest:
            raise bad_request(f"Hardware OATH tokens can't be assigned to guest users ({user.user_principal_name}).")
        if token.assigned_to == user.id:
            raise conflict(f"The hardware OATH token '{token.serial_number}' is already assigned to this user.")
        if token.assigned_to is not None:
            raise conflict(f"The hardware OATH token '{token.serial_number}' is already assigned to another user.")
        if self.oath_method_count(user) >= MAX_METHODS_PER_USER:
            raise method_limit(user)

    # ------------------------------------------------------------------ inventory operations
    def create_device(self, fields: dict, assign_to: User | None) -> Token:
        if self.serial_taken(fields["serialNumber"]):
            raise conflict(f"A hardware OATH token with serial number '{fields['serialNumber']}' already exists.")
        token = self._new_token(fields)
        if assign_to is not None:
            self.check_assignable(token, assign_to)
        with self._change(token):
            self._add_token(token)
            if assign_to is not None:
                self._assign(token, assign_to)
                # The Entra page's example answers "available" with assignedTo filled; the token is still the
                # user's in every other way (create_assign_status).
                token.status = self.config.create_assign_status
        return token

    def update_device(self, token: Token, fields: dict) -> None:
        if token.assigned_to is not None:
            raise bad_request(
                f"The hardware OATH token '{token.serial_number}' is assigned to a user; "
                "unassign it before updating it."
            )
        with self._change(token):
            for key, attr in (
                ("manufacturer", "manufacturer"),
                ("model", "model"),
                ("displayName", "display_name"),
                ("timeIntervalInSeconds", "time_interval"),
                ("hashFunction", "hash_function"),
            ):
                if key in fields:
                    setattr(token, attr, fields[key])

    def delete_device(self, token: Token) -> None:
        if token.assigned_to is not None:
            raise bad_request(
                f"The hardware OATH token '{token.serial_number}' is assigned to a user; "
                "unassign it before deleting it."
            )
        with self._change(token):
            self._remove_token(token)

    # ------------------------------------------------------------------ user method operations
    def _assign(self, token: Token, user: User) -> None:
        self._set_holder(token, user.id)
        token.status = "assigned"
        token.method_created = self.now()

    def assign(self, token: Token, user: User) -> None:
        self.check_assignable(token, user)
        with self._change(token):
            self._assign(token, user)

    def unassign(self, token: Token) -> None:
        with self._change(token):
            self._set_holder(token, None)
            token.status = "available"
            token.method_created = None

    def _verify_code(self, token: Token, code: Any) -> bool:
        """Verify a code; records the attempt. Returns True when accepted."""
        if not isinstance(code, str):
            raise bad_request(
                "Cannot convert the literal to the expected type 'Edm.String' for 'verificationCode'.",
                code="BadRequest",
            )
        if not re.fullmatch(r"[0-9]{6}", code):
            raise bad_request("The verification code must be a string of 6 digits.")
        result, step = totp.verify(
            token.secret_key,
            token.hash_function,
            token.time_interval,
            code,
            self.now(),
            window_steps=self.activation_window_steps,
            last_accepted_step=token.last_accepted_step,
        )
        token.activations[result] += 1
        self.activations[result] += 1
        if self.journal is not None:
            self.journal.target(token.id, token.serial_number)
            self.journal.verification = result
        if result == totp.ACCEPTED:
            token.last_accepted_step = step
            if self.config.activation_last_used == "set":
                token.last_used = self.now()
            return True
        return False

    def activate(self, token: Token, code: Any, display_name: str | None) -> None:
        if token.status == "activated" and self.config.reactivate_activated == "refuse":
            raise bad_request("The hardware OATH token is already activated.")
        with self._change(token):
            if self._verify_code(token, code):
                token.status = "activated"
                if display_name is not None:
                    token.display_name = display_name
                return
            if token.status != "activated":
                token.status = "failedActivation"
            raise bad_request("Invalid verification code.", code="invalidVerificationCode")

    def deactivate(self, token: Token) -> None:
        with self._change(token):
            token.status = "assigned"

    def assign_and_activate(self, token: Token, user: User, code: Any, display_name: str | None) -> None:
        """Assign (unless already this user's) and activate, atomically: a wrong code assigns nothing."""
        if token.assigned_to == user.id:
            self.activate(token, code, display_name)
            return
        self.check_assignable(token, user)
        if not self._verify_code(token, code):
            raise bad_request("Invalid verification code.", code="invalidVerificationCode")
        with self._change(token):
            self._assign(token, user)
            token.status = "activated"
            if display_name is not None:
                token.display_name = display_name

    # ------------------------------------------------------------------ representations
    def device_json(self, token: Token) -> dict:
        self.examined["tokens"] += 1
        assigned = None
        if token.assigned_to:
            user = self.users.get(token.assigned_to)
            assigned = {"id": token.assigned_to, "displayName": user.display_name if user else None}
        return {
            "id": token.id,
            "displayName": token.display_name,
            "serialNumber": token.serial_number,
            "manufacturer": token.manufacturer,
            "model": token.model,
            "secretKey": None,
            "timeIntervalInSeconds": token.time_interval,
            "status": token.status,
            "lastUsedDateTime": iso(token.last_used),
            "hashFunction": token.hash_function,
            "assignedTo": assigned,
        }

    def method_json(self, token: Token) -> dict:
        return {
            "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethod",
            "id": token.id,
            "createdDateTime": iso(token.method_created),
            "lastUsedDateTime": iso(token.last_used),
            "device": self.device_json(token),
        }

    def user_json(self, user: User) -> dict:
        self.examined["users"] += 1
        return {
            "id": user.id,
            "userPrincipalName": user.user_principal_name,
            "displayName": user.display_name,
            "userType": user.user_type,
            "accountEnabled": user.account_enabled,
        }

    def policy_json(self) -> dict:
        return {
            "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
            "id": "HardwareOath",
            "state": self.policy.state,
            "includeTargets": self.policy.include_targets,
            "excludeTargets": self.policy.exclude_targets,
        }

    def state_json(self) -> dict:
        """The admin view: everything a test may assert on, secrets omitted."""
        every = sorted(self.tokens.values(), key=lambda t: t.order)
        tokens = [self._token_state(token) for token in every if not token.legacy]
        legacy_tokens = [self._token_state(token) for token in every if token.legacy]
        return {
            "tenant_id": self.tenant_id,
            "clock_offset": self.clock_offset,
            "users": [
                {
                    "id": u.id,
                    "user_principal_name": u.user_principal_name,
                    "display_name": u.display_name,
                    "user_type": u.user_type,
                    "roles": list(u.roles),
                    "groups": list(u.groups),
                    "hardware_oath_methods": [t.id for t in self.methods_of(u.id)],
                    "other_oath_methods": u.other_oath_methods,
                }
                for u in self.users.values()
            ],
            "apps": [
                {
                    "client_id": a.client_id,
                    "display_name": a.display_name,
                    "application_permissions": list(a.application_permissions),
                    "delegated_permissions": list(a.delegated_permissions),
                }
                for a in self.apps.values()
            ],
            "managed_identities": [
                {
                    "client_id": m.client_id,
                    "object_id": m.object_id,
                    "display_name": m.display_name,
                    "application_permissions": list(m.application_permissions),
                }
                for m in self.managed_identities.values()
            ],
            "groups": [{"id": g.id, "display_name": g.display_name} for g in self.groups.values()],
            "tokens": tokens,  # the inventory's
            "legacy_tokens": legacy_tokens,  # the users' tokens of the old CSV upload (not in the inventory)
            # Every code verified since the seed was loaded (a reset loads it again), deleted tokens' included.
            "activations": dict(self.activations),
            "policy": {
                "hardware_oath": {
                    "state": self.policy.state,
                    "include_targets": self.policy.include_targets,
                    "exclude_targets": self.policy.exclude_targets,
                }
            },
        }

    def _token_state(self, token: Token) -> dict:
        """One token in the admin view, without its secret."""
        user = self.users.get(token.assigned_to) if token.assigned_to else None
        return {
            "id": token.id,
            "serial_number": token.serial_number,
            "display_name": token.display_name,
            "manufacturer": token.manufacturer,
            "model": token.model,
            "hash_function": token.hash_function,
            "time_interval": token.time_interval,
            "status": token.status,
            "assigned_to": {
                "id": user.id,
                "user_principal_name": user.user_principal_name,
                "display_name": user.display_name,
            }
            if user
            else None,
            "method_created": iso(token.method_created),
            "activations": dict(token.activations),
        }


def method_limit(user: User) -> ErrorAnswer:
    """The refusal of a sixth OATH method (assign, assignAndActivate*, create or bulk create with assignTo)."""
    return bad_request(
        f"The user {user.user_principal_name} already has the maximum of {MAX_METHODS_PER_USER} OATH "
        "methods (hardware tokens and authenticator apps)."
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
