"""The soak's tenant, its declared inventory and its faults (docs/reliability.md).

The tenant is the demo tenant (tests/simulator/seeds/demo.yml) plus, for N declared tokens, N declared users (token i
is declared for user i), one former holder for every four tokens held by someone else, and the tokens already in the
tenant in the state each kind of work starts from. Every kind of work is in the mix (``KINDS``); the declared list is
shuffled, so that the kinds interleave. The same N gives the same tenant and list: the fault seed changes the faults
only. Secrets and users come from bench/seeds.py; every secret is a throwaway value of the simulator, which holds
each token's secret (the seed's, or the declared one a creation sends), so that it checks every code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from seeds import DEMO_SEED, secret, user

MANUFACTURER = "Contoso"
MODEL = "Soak Key"
OLD_MODEL = "Old Key"  # the model of the tokens whose fields the run updates
SERIAL_PREFIX = "SOAK"
INVENTORY_SEED = 20  # the shuffle of the declared list: fixed, so every fault seed converges the same list


@dataclass(frozen=True)
class Kind:
    """A kind of work: the token as the tenant holds it first (None: not in the tenant; its status and whether its
    holder is the declared user or someone else; its model), and as declared."""

    name: str
    share: int  # per cent of the tokens
    status: str | None  # in the tenant at the start
    holder: str | None  # "declared" (its declared user), "other" (a former holder) or None
    declared: str  # the declared state
    model: str = MODEL


KINDS = (
    Kind("create and activate", 25, None, None, "activated"),
    Kind("create, available", 5, None, None, "available"),
    Kind("assign", 5, "available", None, "assigned"),
    Kind("assign and activate", 10, "available", None, "activated"),
    Kind("update, assign and activate", 5, "available", None, "activated", model=OLD_MODEL),
    Kind("activate", 10, "assigned", "declared", "activated"),
    Kind("activate after a failed activation", 5, "failedActivation", "declared", "activated"),
    Kind("reassign", 10, "activated", "other", "activated"),
    Kind("unassign", 5, "activated", "other", "available"),
    Kind("unassign and delete", 5, "activated", "other", "absent"),
    Kind("delete", 5, "available", None, "absent"),
    Kind("already right", 10, "activated", "declared", "activated"),
)
HELD_BY_OTHERS_PER_USER = 4  # a former holder holds at most this many (Entra's limit is five OATH methods)


@dataclass
class Token:
    """One declared token: its entry in the task's list, the kind of work it needs, and what it must end as."""

    serial_number: str
    kind: str
    entry: dict[str, Any]
    initial: dict[str, Any] | None  # the seed's token, None when it is to be created

    @property
    def declared(self) -> str:
        return str(self.entry.get("state", "activated"))

    @property
    def user(self) -> str | None:
        return self.entry.get("user")


@dataclass
class World:
    tokens: list[Token]
    users: list[dict[str, str]]
    former_holders: list[dict[str, str]]

    @property
    def declared(self) -> list[dict[str, Any]]:
        """The task's ``tokens`` (with their secrets: only ever written to a file of mode 0600)."""
        return [token.entry for token in self.tokens]

    def by_serial(self) -> dict[str, Token]:
        return {token.serial_number.lower(): token for token in self.tokens}

    def user_ids(self) -> dict[str, str]:
        """User principal name (lower case) -> object id, of every user the soak adds."""
        return {u["user_principal_name"].lower(): u["id"] for u in self.users + self.former_holders}

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for token in self.tokens:
            out[token.kind] = out.get(token.kind, 0) + 1
        return out


def counts(total: int) -> list[tuple[Kind, int]]:
    """How many tokens of each kind make ``total``: each kind's share, the rounding left over to the first kind."""
    numbers = [(kind, total * kind.share // 100) for kind in KINDS]
    numbers[0] = (numbers[0][0], numbers[0][1] + total - sum(n for _kind, n in numbers))
    return numbers


def build(total: int) -> World:
    """The tenant and the declared list for ``total`` tokens."""
    users = [user(i) for i in range(total)]
    former: list[dict[str, str]] = []
    held_by_former = 0
    tokens: list[Token] = []
    number = 0
    for kind, count in counts(total):
        for _index in range(count):
            serial = f"{SERIAL_PREFIX}-{number:05d}"
            declared_user = users[number]["user_principal_name"]
            entry: dict[str, Any] = {
                "serial_number": serial,
                "secret_key": secret(serial),
                "manufacturer": MANUFACTURER,
                "model": MODEL,
            }
            if kind.declared in ("activated", "assigned"):
                entry["user"] = declared_user
            if kind.declared != "activated":
                entry["state"] = kind.declared
            initial = None
            if kind.status is not None:
                initial = {
                    "serial_number": serial,
                    "secret_key": secret(serial),
                    "manufacturer": MANUFACTURER,
                    "model": kind.model,
                    "status": kind.status,
                }
                if kind.holder == "declared":
                    initial["assigned_to"] = declared_user
                elif kind.holder == "other":
                    if held_by_former % HELD_BY_OTHERS_PER_USER == 0:
                        former.append(user(total + len(former)))
                    held_by_former += 1
                    initial["assigned_to"] = former[-1]["user_principal_name"]
            tokens.append(Token(serial, kind.name, entry, initial))
            number += 1
    random.Random(INVENTORY_SEED).shuffle(tokens)
    return World(tokens, users, former)


def write_seed(world: World, path: Path, read_after_write_delay_ms: int) -> Path:
    """The simulator's seed: the demo tenant, the soak's users and the tokens already in the tenant; reads lag writes
    by ``read_after_write_delay_ms`` (a seed setting, so that a reset keeps it)."""
    with open(DEMO_SEED, encoding="utf-8") as handle:
        seed = yaml.safe_load(handle)
    seed["settings"]["read_after_write_delay_ms"] = read_after_write_delay_ms
    seed["users"] += world.users + world.former_holders
    seed["tokens"] += [token.initial for token in world.tokens if token.initial is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(seed, handle, Dumper=dumper, sort_keys=False)
    return path


# ---------------------------------------------------------------------- the faults, all at once
@dataclass(frozen=True)
class Faults:
    """Every fault of the soak, each share of the Graph requests it applies to (429 and 503 and resets: every
    request but the ``$batch`` envelope for the 429s, which Graph throttles item by item; commit-then-drop: writes)."""

    latency_ms: int = 25
    jitter_ms: int = 20
    throttled: float = 0.10  # 429, split evenly over RETRY_AFTER_FORMS
    unavailable: float = 0.05  # 503, half with a Retry-After
    resets: float = 0.02  # the connection dropped before the request is processed
    commit_then_drop: float = 0.03  # of writes: processed, then the connection dropped
    read_after_write_delay_ms: int = 1500
    # The task's read_after_write_wait: how long it reads again for a write to show. Its default (10 s) is meant for
    # Graph's directory; here it is scaled to the simulated delay, with room (a lost write that did not take effect
    # is sent again once this has passed, so it must be well above the delay).
    read_after_write_wait_s: float = 4.0
    write_quota: tuple[int, float] = (300, 1.5)  # Graph's 3,000 per 150 s, scaled 10x (as make bench)
    # Requests under users' methods (Graph's 5 per 10 s, scaled): below the module's own pace, so that it is throttled.
    methods_rate: tuple[int, float] | None = (20, 0.5)


# No fault at all (run.py --calm): to see the soak pass where the module does what it must (diagnosis).
CALM = Faults(
    jitter_ms=0, throttled=0.0, unavailable=0.0, resets=0.0, commit_then_drop=0.0, read_after_write_delay_ms=0,
    methods_rate=None,
)  # fmt: skip


# Retry-After as Graph may send it: whole seconds, a fraction, an HTTP date, none at all.
RETRY_AFTER_FORMS: tuple[dict[str, Any], ...] = (
    {"retry_after": 1},
    {"retry_after": 0.5},
    {"retry_after": 2, "retry_after_format": "http-date"},
    {"retry_after": None},
)
NOT_BATCH = r"^/(beta|v1\.0)/(?!\$batch$)"
WRITE_METHODS = ("POST", "PATCH", "DELETE")


def fault_spec(faults: Faults) -> dict[str, Any]:
    """The simulator's fault specification (``--faults``). The first status or reset rule that matches wins, so each
    rule's probability is its share of what the rules before it let through: every share is of all requests."""
    shares: list[tuple[str, dict[str, Any], dict[str, Any], float]] = []
    for number, form in enumerate(RETRY_AFTER_FORMS):
        action = {"type": "status", "status": 429, **form}
        shares.append((f"429-{number + 1}", {"kind": "graph", "path": NOT_BATCH}, action, faults.throttled / 4))
    unavailable = {"type": "status", "status": 503}
    shares.append(("503-retry-after", {"kind": "graph"}, {**unavailable, "retry_after": 1}, faults.unavailable / 2))
    shares.append(("503", {"kind": "graph"}, {**unavailable, "retry_after": None}, faults.unavailable / 2))
    shares.append(("reset", {"kind": "graph"}, {"type": "reset"}, faults.resets))
    rules = []
    taken = 0.0
    for name, match, action, share in shares:
        rules.append({"name": name, "match": match, "probability": round(share / (1 - taken), 6), "action": action})
        taken += share
    # Writes only (the rules above took their share of writes too).
    rules += [
        {
            "name": f"commit-then-drop-{method.lower()}",
            "match": {"kind": "graph", "method": method, "path": NOT_BATCH},
            "probability": round(faults.commit_then_drop / (1 - taken), 6),
            "action": {"type": "commit_then_drop"},
        }
        for method in WRITE_METHODS
    ]
    return {
        "rules": [rule for rule in rules if rule["probability"] > 0],
        "latency": {"ms": faults.latency_ms, "jitter_ms": faults.jitter_ms},
    }


def simulator_options(faults: Faults, spec_path: Path, fault_seed: int) -> list[str]:
    return [
        "--faults",
        str(spec_path),
        "--fault-seed",
        str(fault_seed),
        "--write-quota",
        f"{faults.write_quota[0]}/{faults.write_quota[1]:g}",
        "--methods-rate",
        f"{faults.methods_rate[0]}/{faults.methods_rate[1]:g}" if faults.methods_rate else "off",
    ]
