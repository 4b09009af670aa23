# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Properties of the pure planners (plan_inventory, with plan_token and plan_assignment beneath it), checked with
hypothesis on generated tenants and declared lists, through hardware_oath_inventory's run() and the real executors
(apply_inventory, execute.py) on an in-memory model of the tenant (tenant_model.ModelApi). For every tenant and every
valid list (with or without prune, in each action and scope; with or without force_unassign; some writes losing their
answer), applying the plan:

- reaches the declared state, for every token but those the plan refuses (each with its reason), which are left as
  they were;
- leaves a second plan empty;
- sends the writes check mode's plan reports, token by token and in order (but for the tokens whose apply needs the
  secret the check was planned without: check mode names them, and their apply fails before any write);
- writes nothing outside the prune scope: a token the list does not name is left as it was unless the scope covers it.

And a list that contradicts itself is refused before any request.

The generated states are those the apply reaches whatever the order the tokens are worked on (several at a time):
each user's OATH methods, those held before and those declared together, are at most five. (A user at five whose
list swaps a token for another is left out here: the applier makes the token that takes a place wait for those that
only free one, which test_inventory_apply.py tests; a swap through hand-overs between two users at five can still
need a second run.)

Profiles, chosen by the environment variable TOKENOPS_HYPOTHESIS_PROFILE: ``ci``, the default (derandomized: the
same examples every run; 300 tenants, about 5 s on one core: what make test runs), and ``thorough`` (random
examples, 1,000 a property, about a minute; a failure prints the blob that replays it). From the collection's root,
with hypothesis installed:

    TOKENOPS_HYPOTHESIS_PROFILE=thorough python -m pytest -p no:cacheprovider --import-mode=importlib \\
        tests/unit/plugins/module_utils/_planning/test_inventory_properties.py --hypothesis-show-statistics

(--hypothesis-show-statistics also shows how often each declared state met each outcome and writes.)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing as t
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import CodeSource
from ansible_collections.tokenops.entra.plugins.module_utils._execution import inventory_apply
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_inventory as module_under_test
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    Exited,
    Failed,
    FakeModule,
    module_spec,
    task_options,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.module_utils._planning.tenant_model import (
    MAX_OATH_METHODS,
    ModelApi,
    Tenant,
    Token,
    User,
    code_of,
    secret_of,
)

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=1000,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile(os.environ.get("TOKENOPS_HYPOTHESIS_PROFILE", "ci"))

NOW = 1_800_000_000.0  # the clock of the model and of every code source
HOLDING = ("activated", "assigned")
STATES = ("activated", "assigned", "available", "absent")
FIELDS = ("manufacturer", "model", "time_interval", "hash_function")  # what a declared token may change, its name aside
OPTIONS = module_spec(module_under_test)["tokens"]["options"]
TASK = task_options(module_under_test)  # every option of the module at its default
T = t.TypeVar("T")

# ---------------------------------------------------------------------------------------------------- the universe
AMY = User("e55cb360-e3ee-4757-bdd2-04b1e5a00e32", "amy.masters@contoso.com", "Amy Masters")
ADELE = User("0a1b2c3d-0000-4000-8000-00000000abcd", "adele.vance@contoso.com", "Adele Vance")
ZOE = User("5e5e5e5e-1111-4111-8111-5e5e5e5e5e5e", "zoe.ford@contoso.com", "Zoe Ford")  # holds tokens, never declared
GUEST = User("99999999-9999-4999-8999-999999999999", "grady_fabrikam.com#EXT#@contoso.onmicrosoft.com", "Grady", True)
MEMBERS = (AMY, ADELE, ZOE)
HOLDERS = (None, AMY, ADELE, ZOE)
# How a list names a user: a user principal name or an object id, in any case; rarely a guest, or nobody the tenant
# knows.
REFS = (
    *(AMY.user_principal_name, AMY.id.upper(), "Amy.Masters@Contoso.com", AMY.id) * 2,
    *(ADELE.user_principal_name, ADELE.id, "ADELE.VANCE@contoso.com") * 2,
    GUEST.user_principal_name,
    "nobody@contoso.com",
)
SERIALS = tuple(f"{prefix}{n:02d}" for prefix in ("T2-", "GALT", "sp-") for n in range(8))
MANUFACTURERS = ("Token2", "Contoso", "token2")
MODELS = ("C202", "OATH-TOTP")
INTERVALS = (30, 60)
HASHES = ("hmacsha1", "hmacsha256")
NAMES = ("Lobby", "Spare", "Front desk")


@dataclasses.dataclass(frozen=True)
class Declared:
    """One entry of the list, as the test declares it (its secret and code are the token's own)."""

    serial_number: str
    state: str
    user: str | None = None
    has_secret: bool = True
    has_code: bool = False
    manufacturer: str | None = None
    model: str | None = None
    time_interval: int | None = None
    hash_function: str | None = None
    display_name: str | None = None


@dataclasses.dataclass(frozen=True)
class World:
    """A generated tenant and the task that converges it."""

    users: tuple[User, ...]
    tokens: tuple[Token, ...]
    entries: tuple[Declared, ...]
    force_unassign: bool
    prune: dict[str, t.Any] | None
    lose: frozenset[str]  # serial numbers (case-folded) whose writes lose their answer
    concurrency: int

    def user(self, ref: str | None) -> User | None:
        """The user a reference names (by id or user principal name, whatever the case), or None."""
        if ref is None:
            return None
        return next((u for u in self.users if ref.casefold() in (u.id, u.user_principal_name.casefold())), None)

    def before(self) -> dict[str, Token]:
        return {token.serial_number.casefold(): token for token in self.tokens}

    def in_scope(self, token: Token) -> bool:
        """Whether the prune scope covers ``token`` (every condition given holds, case aside)."""
        if self.prune is None:
            return False
        prefix, manufacturer, model = (self.prune[k] for k in ("serial_number_prefix", "manufacturer", "model"))
        return (
            (prefix is None or token.serial_number.casefold().startswith(prefix.casefold()))
            and (manufacturer is None or token.manufacturer.casefold() == manufacturer.casefold())
            and (model is None or token.model.casefold() == model.casefold())
        )


# ---------------------------------------------------------------------------------------------------- strategies
# Each choice is an index into a tuple whose first value is the simplest (what a failing example shrinks to); the
# strategies are built once (building one per draw doubles the time an example takes).
INDEXES = {n: st.integers(0, n - 1) for n in range(1, 64)}
OFTEN = (True, True, True, False)


def pick(draw: st.DrawFn, values: t.Sequence[T]) -> T:
    return values[draw(INDEXES[len(values)])]


@st.composite
def tokens_of(draw: st.DrawFn, users: tuple[User, ...]) -> tuple[Token, ...]:
    """The inventory: available tokens and tokens held (assigned, activated, failedActivation) by members, each
    member below five OATH methods."""
    serials = draw(st.lists(st.sampled_from(SERIALS), max_size=10, unique_by=str.casefold))
    held = {user.id: user.other_methods for user in users}
    tokens = []
    for number, serial in enumerate(serials):
        holder = pick(draw, HOLDERS)
        if holder is not None and held[holder.id] >= MAX_OATH_METHODS:
            holder = None
        if holder is not None:
            held[holder.id] += 1
        tokens.append(
            Token(
                id=f"dev-{number}",
                serial_number=serial,
                secret=secret_of(serial),
                manufacturer=pick(draw, MANUFACTURERS),
                model=pick(draw, MODELS),
                time_interval=pick(draw, INTERVALS),
                hash_function=pick(draw, HASHES),
                display_name=pick(draw, (None, *NAMES)),
                status=pick(draw, ("activated", "assigned", "failedActivation", "activated"))
                if holder
                else "available",
                holder=holder.id if holder else None,
            )
        )
    return tuple(tokens)


@st.composite
def declared(draw: st.DrawFn, serial: str, token: Token | None) -> Declared:
    """An entry for ``serial`` (maybe spelt in another case), mostly with its secret. For a new token (``token``
    None), mostly with what creating it takes; for one in the inventory, often with its holder and fields as they
    are, so that one difference at a time is tried as often as many."""
    state = pick(draw, STATES)
    holder = next((u for u in (AMY, ADELE) if token and token.holder == u.id), None)
    refs = (holder.user_principal_name, holder.id.upper()) * 3 + REFS if holder else REFS

    def field(name: str, values: tuple[t.Any, ...]) -> t.Any:
        if token is None:
            return pick(draw, values) if pick(draw, OFTEN) else pick(draw, (None, *values))
        # Integers are drawn near their bounds more often: both are "as it is".
        return pick(draw, (None, *values, getattr(token, name)))

    return Declared(
        serial_number=pick(draw, (serial, serial.swapcase())),
        state=state,
        user=pick(draw, refs) if state in HOLDING else None,
        has_secret=pick(draw, OFTEN),
        has_code=pick(draw, (False, True)),
        manufacturer=field("manufacturer", MANUFACTURERS),
        model=field("model", MODELS),
        time_interval=field("time_interval", INTERVALS),
        hash_function=field("hash_function", HASHES),
        display_name=field("display_name", NAMES),
    )


@st.composite
def prunes(draw: st.DrawFn) -> dict[str, t.Any] | None:
    if not pick(draw, (False, True)):
        return None
    scope = {
        "action": pick(draw, ("unassign", "delete")),
        "serial_number_prefix": pick(draw, (None, "T2-", "t2", "GALT0", "SP-", "X")),
        "manufacturer": pick(draw, (None, "token2", "CONTOSO", "Other")),
        "model": pick(draw, (None, "c202", "OATH-totp")),
    }
    if not any(scope[k] for k in ("serial_number_prefix", "manufacturer", "model")):
        scope["serial_number_prefix"] = "T2-"  # the module requires one condition at least
    return scope


@st.composite
def worlds(draw: st.DrawFn) -> World:
    users = (*(dataclasses.replace(u, other_methods=pick(draw, (0, 1, 2))) for u in MEMBERS), GUEST)
    tokens = draw(tokens_of(users))
    listed = [token.serial_number for token in tokens]
    named = [serial for serial in listed if pick(draw, OFTEN)]
    new = draw(st.lists(st.sampled_from([s for s in SERIALS if s not in listed]), max_size=3, unique=True))
    serials = draw(st.permutations(named + new))
    by_serial = {token.serial_number: token for token in tokens}
    entries = [draw(declared(serial, by_serial.get(serial))) for serial in serials]
    world = World(
        users=users,
        tokens=tokens,
        entries=(),
        force_unassign=pick(draw, (False, True, True)),
        prune=draw(prunes()),
        lose=frozenset(serial.casefold() for serial in (*listed, *new) if not pick(draw, (*OFTEN, *OFTEN))),
        concurrency=pick(draw, (1, 4)),
    )
    return dataclasses.replace(world, entries=within_limits(world, entries))


# What check_entries says of each way a list contradicts itself.
CONTRADICTIONS = {
    "twice": "is declared 2 times",
    "no user": "but no user",
    "a user": "and a user; only activated and assigned tokens are held by someone",
    "six": "a user holds at most 5 OATH methods",
}


@st.composite
def contradicting(draw: st.DrawFn) -> tuple[World, str]:
    """A generated world whose list contradicts itself in one way (a key of CONTRADICTIONS), anywhere in it."""
    world = draw(worlds())
    entries = list(world.entries)
    kind = pick(draw, tuple(CONTRADICTIONS) if entries else ("six",))
    if kind == "six":
        free = [s for s in SERIALS if s.casefold() not in {e.serial_number.casefold() for e in entries}]
        user = pick(draw, REFS)
        entries += [Declared(serial, pick(draw, HOLDING), user) for serial in free[:6]]
    else:
        entry = pick(draw, entries)
        if kind == "twice":  # a copy, its serial number in another case
            entries.insert(
                pick(draw, range(len(entries) + 1)),
                dataclasses.replace(entry, serial_number=entry.serial_number.swapcase()),
            )
        elif kind == "no user":
            entries[entries.index(entry)] = dataclasses.replace(entry, state=pick(draw, HOLDING), user=None)
        else:
            state = pick(draw, ("available", "absent"))
            entries[entries.index(entry)] = dataclasses.replace(entry, state=state, user=pick(draw, REFS))
    return dataclasses.replace(world, entries=tuple(entries)), kind


def within_limits(world: World, entries: list[Declared]) -> tuple[Declared, ...]:
    """``entries`` with each member's OATH methods, held before or declared, at most five: the last entries over the
    limit declared available instead. (A state the apply reaches in one run whatever the order of its writes.)"""
    entries = list(entries)
    for user in world.users:
        start = {token.serial_number.casefold() for token in world.tokens if token.holder == user.id}
        while True:
            mine = [n for n, e in enumerate(entries) if e.state in HOLDING and world.user(e.user) == user]
            if (
                user.other_methods + len(start | {entries[n].serial_number.casefold() for n in mine})
                <= MAX_OATH_METHODS
            ):
                break
            last = next(n for n in reversed(mine) if entries[n].serial_number.casefold() not in start)
            entries[last] = dataclasses.replace(entries[last], state="available", user=None)
    return tuple(entries)


# ---------------------------------------------------------------------------------------------------- running the task
def item(world: World, entry: Declared) -> dict[str, t.Any]:
    """The entry as Ansible hands the module an element of ``tokens``."""
    given: dict[str, t.Any] = {f: getattr(entry, f) for f in ("state", "user", *FIELDS, "display_name")}
    if entry.has_secret:
        given["secret_key"] = secret_of(entry.serial_number)
    if entry.has_code:
        given["verification_code"] = code_now(world, entry)
    return {
        **{name: option.get("default") for name, option in OPTIONS.items()},
        "serial_number": entry.serial_number,
        **given,
    }


def code_now(world: World, entry: Declared) -> str:
    """The code the token shows now, read off it: of its secret, with its interval and hash as they will be."""
    token = world.before().get(entry.serial_number.casefold())
    interval = entry.time_interval or (token.time_interval if token else 30)
    hash_function = entry.hash_function or (token.hash_function if token else "hmacsha1")
    return code_of(secret_of(entry.serial_number), int(NOW // interval), hash_function)


@dataclasses.dataclass(frozen=True)
class Run:
    """What one run of the task answered: its rows by serial number (case-folded) and its warnings."""

    rows: dict[str, dict[str, t.Any]]
    warnings: list[str]


def run_task(world: World, api: t.Callable[..., t.Any], *, check: bool) -> tuple[dict[str, t.Any], list[str]]:
    """Run hardware_oath_inventory's run() on ``world``'s list and options (check mode or not), its API built by
    ``api``, its codes computed at NOW: the result (of exit_json or fail_json) and the module's logs."""
    params = {
        **TASK,
        "tokens": [item(world, entry) for entry in world.entries],
        "prune": world.prune,
        "force_unassign": world.force_unassign,
        "concurrency": world.concurrency,
        "report": "all",
    }
    module = FakeModule(params, check_mode=check)
    clock = functools.partial(CodeSource, clock=lambda: NOW)
    with mock.patch.object(module_under_test, "hardware_oath_api", api), mock.patch.object(
        inventory_apply, "CodeSource", clock
    ):
        try:
            module.run(module_under_test.run)
        except (Exited, Failed) as exc:
            return exc.args[0], module.logs
    raise AssertionError("the module neither exited nor failed")


def converge(world: World, tenant: Tenant, *, check: bool) -> Run:
    """Run the task on ``tenant``, through the real executors on ModelApi."""
    api = ModelApi(tenant)
    result, logs = run_task(world, lambda module, **options: api, check=check)
    assert "tokens" in result, f"the task failed as a whole: {result['msg']} {result.get('exception', '')}"
    rows = {row["serial_number"].casefold(): row for row in result["tokens"]}
    return Run(rows, [log for log in logs if log.startswith("warning: ")] + api.warnings)


def planned(row: dict[str, t.Any]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """The writes of a row (kind, user, and the fields of an update), as Tenant.sent_by_serial gives them."""
    return [
        (a["action"], a["user_id"], tuple(a.get("changes", ())) if a["action"] == "update" else ())
        for a in row["actions"]
    ]


# ---------------------------------------------------------------------------------------------------- the oracle
def refusal(world: World, entry: Declared, *, check: bool) -> str | None:
    """Why the plan refuses ``entry`` on the tenant as generated (a text its error holds), or None when the declared
    state can be reached: the rules of Graph and of the module's options, stated on their own. In check mode a
    missing secret is taken as given."""
    token = world.before().get(entry.serial_number.casefold())
    user = world.user(entry.user)
    secret = entry.has_secret or check
    if entry.state in HOLDING and user is None:
        return "was not found in the tenant"
    if entry.state in HOLDING and t.cast(User, user).guest:
        return "is a guest user"
    if entry.state == "absent":
        return None
    if token is None:
        missing = not (secret and entry.manufacturer and entry.model)
        return "is not in the inventory; creating it needs" if missing else None
    if entry.state == "available":
        return None
    user = t.cast(User, user)
    changes = [f for f in FIELDS if getattr(entry, f) is not None and getattr(entry, f) != getattr(token, f)]
    if token.holder is not None and changes and not world.force_unassign:
        return "force_unassign=true"
    holder, status = (None, "available") if changes else (token.holder, token.status)
    if holder != user.id:
        holder = None  # taken from its holder (reassign)
    renamed = entry.display_name is not None and entry.display_name != token.display_name
    activates = entry.state == "activated"
    if holder is None:
        needs_code = activates
    elif status == "activated":
        needs_code = renamed  # a held token is renamed by activating it again
    elif activates:
        needs_code = True
    elif renamed:
        return "its display name can only be set while activating it"
    else:
        needs_code = False
    if needs_code and not (secret or entry.has_code):
        return "give its secret_key"
    return None


def refusals(world: World, *, check: bool) -> dict[str, str]:
    """The entries the plan refuses, by case-folded serial number, with a text of the reason."""
    found = {e.serial_number.casefold(): refusal(world, e, check=check) for e in world.entries}
    return {key: why for key, why in found.items() if why}


def declared_state_problems(world: World, tenant: Tenant, refused: t.Container[str]) -> list[str]:
    """How the tenant differs from the declared state: every token declared (but those refused, left as they were),
    every token the prune scope covers, and every other token left as it was."""
    before, after = world.before(), tenant.inventory()
    problems = []
    for entry in world.entries:
        key = entry.serial_number.casefold()
        now, was = after.get(key), before.get(key)
        if key in refused:
            if now != was:
                problems.append(f"{entry.serial_number}: refused, yet changed from {was} to {now}")
            continue
        problems += [f"{entry.serial_number} ({entry.state}): {p}" for p in token_problems(world, entry, was, now)]
    declared = {entry.serial_number.casefold() for entry in world.entries}
    for key, was in before.items():
        if key in declared:
            continue
        now = after.get(key)
        if not world.in_scope(was):
            wanted: Token | None = was
        elif t.cast(dict, world.prune)["action"] == "delete":
            wanted = None
        else:
            wanted = dataclasses.replace(was, holder=None, status="available")
        if now != wanted:
            problems.append(f"{was.serial_number} (not declared): {now} instead of {wanted}")
    return problems


def token_problems(world: World, entry: Declared, was: Token | None, now: Token | None) -> list[str]:
    if entry.state == "absent":
        return [] if now is None else ["still in the inventory"]
    if now is None:
        return ["not in the inventory"]
    problems = []
    user = world.user(entry.user)
    if entry.state == "available" and now.holder is not None:
        problems.append(f"held by {now.holder}")
    if entry.state in HOLDING and now.holder != t.cast(User, user).id:
        problems.append(f"held by {now.holder}, not by {entry.user}")
    if entry.state == "activated" and now.status != "activated":
        problems.append(f"status {now.status}")
    if entry.state == "assigned" and now.status == "available":
        problems.append("status available")
    defaults = {"time_interval": 30, "hash_function": "hmacsha1", "display_name": None}
    for name in (*FIELDS, "display_name"):
        wanted = getattr(entry, name)
        if wanted is None:
            wanted = getattr(was, name) if was else defaults.get(name, getattr(entry, name))
        if getattr(now, name) != wanted:
            problems.append(f"{name} {getattr(now, name)!r}, not {wanted!r}")
    if now.secret != secret_of(entry.serial_number):
        problems.append("created with another token's secret")
    return problems


# ---------------------------------------------------------------------------------------------------- properties
@PROFILE
@given(worlds())
def test_applying_the_plan_reaches_the_declared_state_and_nothing_else(world):
    tenant = Tenant(world.users, world.tokens, now=NOW, lose=world.lose)
    refused = refusals(world, check=False)
    needs_secret = set(refused) - set(refusals(world, check=True))  # planned in check mode as if it were given

    check = converge(world, tenant, check=True)
    assert tenant.sent == [], "check mode wrote"
    assert tenant.inventory() == world.before()
    for key, row in check.rows.items():
        why = None if key in needs_secret else refused.get(key)
        assert (row["outcome"] == "failed") is bool(why), (row, why)
        assert not why or why in row["error"], (row, why)
    # Check mode names the tokens whose apply needs the secret it was planned without.
    named = [w.split(": ")[-1].split(", ") for w in check.warnings if "planned without their secret_key" in w]
    assert sorted(named[0] if named else []) == sorted(
        e.serial_number for e in world.entries if e.serial_number.casefold() in needs_secret
    )

    applied = converge(world, tenant, check=False)
    sent = tenant.sent_by_serial()
    for key, row in applied.rows.items():
        event(f"declared {row['declared_state']}: {row['outcome']} {[a[0] for a in planned(row)]}")
        assert (row["outcome"] == "failed") is (key in refused), (row, refused.get(key), tenant.refusals)
        assert key not in refused or refused[key] in row["error"], (row, refused[key])
    # The writes sent are check mode's plan, token by token; those of a token refused for want of its secret, none.
    for key, row in check.rows.items():
        assert sent.get(key, []) == ([] if key in needs_secret else planned(row)), (key, row, tenant.refusals)
        assert planned(applied.rows[key]) == sent.get(key, []), "the report says what was sent"
    # Writes touch nothing outside the list and the prune scope.
    covered = {e.serial_number.casefold() for e in world.entries}
    covered |= {key for key, token in world.before().items() if world.in_scope(token)}
    assert set(sent) <= covered, (set(sent) - covered, world.prune)
    assert tenant.refusals == [], tenant.refusals  # Graph refused none of the writes
    assert declared_state_problems(world, tenant, refused) == []

    tenant.sent.clear()
    again = converge(world, tenant, check=True)
    left = {key: planned(row) for key, row in again.rows.items() if row["actions"] and key not in needs_secret}
    assert left == {}, "a second plan is not empty"


@settings(PROFILE, max_examples=PROFILE.max_examples // 3)
@given(contradicting())
def test_a_list_that_contradicts_itself_is_refused_before_any_request(case):
    world, kind = case

    def no_api(module: t.Any, **options: t.Any) -> t.NoReturn:
        raise AssertionError("the API was built: the list must be refused before any request")

    for check in (True, False):
        result, _logs = run_task(world, no_api, check=check)
        assert result["msg"].startswith("The tokens list contradicts itself; nothing was changed: "), result["msg"]
        assert CONTRADICTIONS[kind] in result["msg"], (kind, result["msg"])
        assert not result.get("changed"), result
