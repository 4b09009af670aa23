# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""How long applying an inventory's plan takes, and how far an apply has got.

The estimate comes from the plan's requests and the limits they are paced to: the creations go in bulk (one write
per MAX_BULK_CREATE tokens), every other write is one request, and the assignments, activations and unassignments
are under users' authentication methods. An apply is held to the longest of: the write quota (its bucket goes at
once, the rest at its rate), a lane's rate when Graph limits it, and the requests on the wire (``in_flight``, each
taking about REQUEST_SECONDS). Check mode states it for the whole plan; a running apply recomputes it for what is
left, with the limits the pacer has learned, and takes the longer of that and what its own pace so far gives.

``Progress`` counts what the apply's threads finish and writes snapshots of it (``_common.progress``) for the
collection's action plugin to show: at most every PROGRESS_SECONDS, from whichever thread finishes something (and from
the thread that waits for them), never failing the task when the file can't be written."""

from __future__ import annotations

import math
import threading
import time
import typing as t
from dataclasses import dataclass, replace

from .._common.progress import Snapshot, duration_text, write_snapshot
from .._domain.actions import ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, CREATE, UNASSIGN
from .._graph.pacer import METHODS_STRICT_LIMIT, Pacer, parse_quota
from .._planning.inventory import TokenPlan
from .hardware_oath_api import MAX_BULK_CREATE

# An assumed round trip of one write to Graph: the requests on the wire bound a run that the quota does not. A
# running apply measures its own pace instead (OBSERVED_AFTER).
REQUEST_SECONDS = 0.3
# A running apply's own pace is trusted after this many seconds of writes (before, the bucket's burst flatters it).
OBSERVED_AFTER = 10.0
PROGRESS_SECONDS = 1.0  # a snapshot at most this often
# The writes sent under /users/{id}/authentication/: the pacer's methods lane.
METHODS_KINDS = frozenset({UNASSIGN, ASSIGN, ACTIVATE, ASSIGN_AND_ACTIVATE})


@dataclass(frozen=True)
class Workload:
    """The requests an apply sends: ``bulk`` creations (one write each), ``directory`` writes to the inventory
    (update, display name, delete: one each), ``methods`` writes under users' authentication methods (assign,
    activate, unassign: one each)."""

    bulk: int = 0
    directory: int = 0
    methods: int = 0

    @property
    def writes(self) -> int:
        return self.bulk + self.directory + self.methods

    def __add__(self, other: Workload) -> Workload:
        return Workload(self.bulk + other.bulk, self.directory + other.directory, self.methods + other.methods)

    def __sub__(self, other: Workload) -> Workload:
        """What is left of this once ``other`` is done (never below zero)."""
        return Workload(
            max(0, self.bulk - other.bulk),
            max(0, self.directory - other.directory),
            max(0, self.methods - other.methods),
        )


def token_work(plan: TokenPlan) -> Workload:
    """One token's writes, but its creation (sent in bulk: see ``workload``)."""
    kinds = [action.kind for action in plan.actions if action.kind != CREATE]
    methods = sum(kind in METHODS_KINDS for kind in kinds)
    return Workload(directory=len(kinds) - methods, methods=methods)


def workload(plans: t.Iterable[TokenPlan]) -> Workload:
    """The requests that applying ``plans`` (those with writes) sends."""
    total, creating = Workload(), 0
    for plan in plans:
        total += token_work(plan)
        creating += plan.creates
    return total + Workload(bulk=math.ceil(creating / MAX_BULK_CREATE))


def to_apply(plans: t.Iterable[TokenPlan]) -> list[TokenPlan]:
    """The plans an apply sends (writes to make, not failed in planning)."""
    return [plan for plan in plans if plan.changed and not plan.error]


@dataclass(frozen=True)
class Limits:
    """What paces an apply: the write quota's bucket (``burst`` writes go at once, then ``rate`` a second), the requests
    on the wire (``in_flight``), and a lane's own limit when Graph has one: ``methods_burst`` requests under users'
    authentication methods at once, then ``methods_rate`` a second; ``directory_rate`` for the others."""

    burst: float
    rate: float
    in_flight: int
    methods_burst: float = 0.0
    methods_rate: float | None = None
    directory_rate: float | None = None

    @classmethod
    def of_quota(cls, quota: str, in_flight: int) -> Limits:
        """The limits of a fresh pacer: the bucket of ``quota`` (``WRITES/SECONDS``) full."""
        writes, seconds = parse_quota(quota)
        return cls(burst=writes, rate=writes / seconds, in_flight=max(1, in_flight))

    def methods_strictly_limited(self) -> Limits:
        """These limits, with the strict reading of Graph's limit of users' authentication methods."""
        writes, seconds = parse_quota(METHODS_STRICT_LIMIT)
        return replace(self, methods_burst=writes, methods_rate=writes / seconds)


def seconds_for(work: Workload, limits: Limits) -> float:
    """How long ``work`` takes under ``limits``: the longest of what each limit allows."""
    quota = max(0.0, work.writes - limits.burst) / limits.rate
    methods = max(0.0, work.methods - limits.methods_burst) / limits.methods_rate if limits.methods_rate else 0.0
    directory = (work.bulk + work.directory) / limits.directory_rate if limits.directory_rate else 0.0
    wire = work.writes * REQUEST_SECONDS / limits.in_flight
    return max(quota, methods, directory, wire)


def estimate(plans: t.Sequence[TokenPlan], *, quota: str, in_flight: int) -> dict[str, t.Any]:
    """The result's ``estimate``: how long applying ``plans`` takes at ``quota`` with ``in_flight`` requests on the
    wire, and at most, should Graph hold the requests under users' authentication methods to the strict reading of its
    limit for them."""
    work = workload(to_apply(plans))
    limits = Limits.of_quota(quota, in_flight)
    seconds = seconds_for(work, limits)
    strict = seconds_for(work, limits.methods_strictly_limited())
    if not work.writes:
        text = "nothing to write"
    else:
        text = f"about {duration_text(seconds)} ({work.writes:,} writes at write_quota {quota})"
        if round(strict) > round(seconds):
            writes, per = parse_quota(METHODS_STRICT_LIMIT)
            text += (
                f"; up to {duration_text(strict)} if Graph holds the {work.methods:,} requests under users' "
                f"authentication methods to {writes} per {per:g} s"
            )
    return {
        "seconds": round(seconds, 1),
        "text": text,
        "writes": work.writes,
        "methods_requests": work.methods,
        "methods_limit_seconds": round(strict, 1),
    }


class Progress:
    """How far an apply of ``plans`` has got, counted by the threads that apply it (thread-safe), with the time left
    (see this file's docstring); written to ``path`` (None: counted only) as a snapshot at most every ``every``
    seconds. ``pacer``: the task's (the writes sent, the 429s, the limits it learned). ``clock`` (monotonic) and
    ``wall`` (``time.time``) are injectable for tests."""

    def __init__(
        self,
        plans: t.Sequence[TokenPlan],
        limits: Limits,
        *,
        pacer: Pacer | None = None,
        path: str | None = None,
        every: float = PROGRESS_SECONDS,
        clock: t.Callable[[], float] = time.monotonic,
        wall: t.Callable[[], float] = time.time,
    ) -> None:
        todo = to_apply(plans)
        self.total = len(todo)
        self.every = every
        self._planned = workload(todo)
        self._limits = limits
        self._pacer = pacer
        self._path = path
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._done = 0
        self._done_work = Workload()
        self._started = clock()
        self._written = -math.inf

    def start(self) -> None:
        """The writes begin: the first snapshot."""
        with self._lock:
            self._started = self._clock()
            self._write()

    def created(self) -> None:
        """A bulk creation was answered."""
        with self._lock:
            self._done_work += Workload(bulk=1)
            self._when_due()

    def token_done(self, plan: TokenPlan) -> None:
        """A token's writes are over (made, or failed)."""
        with self._lock:
            self._done += 1
            self._done_work += token_work(plan)
            self._when_due()

    def tick(self) -> None:
        """A snapshot, when one is due (the waiting thread calls this while nothing else finishes)."""
        with self._lock:
            self._when_due()

    def finish(self) -> None:
        """The writes are over: the last snapshot."""
        with self._lock:
            self._write()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        elapsed = max(0.0, self._clock() - self._started)
        stats = self._pacer.stats() if self._pacer is not None else {}
        return Snapshot(
            done=self._done,
            total=self.total,
            writes=int(stats.get("writes", 0)),
            throttled=int(stats.get("throttled", 0)),
            elapsed=round(elapsed, 1),
            left=round(self._left(elapsed, stats), 1),
            at=self._wall(),
        )

    def _left(self, elapsed: float, stats: t.Mapping[str, float]) -> float:
        """The seconds still expected: the longer of what the limits now allow for the work left, and the work left
        at the pace so far (once there is one to trust)."""
        if self._done >= self.total:
            return 0.0
        left = self._planned - self._done_work
        limits = self._limits
        if self._pacer is not None:
            limits = replace(
                limits,
                burst=max(0.0, self._pacer.available()),
                rate=stats.get("rate", limits.rate),
                methods_rate=stats.get("rate_methods"),
                directory_rate=stats.get("rate_directory"),
            )
        else:
            limits = replace(limits, burst=max(0.0, limits.burst - self._done_work.writes))
        seconds = seconds_for(left, limits)
        done = self._done_work.writes
        if elapsed >= OBSERVED_AFTER and done:
            seconds = max(seconds, elapsed * left.writes / done)
        return seconds

    def _when_due(self) -> None:
        if self._path is not None and self._clock() - self._written >= self.every:
            self._write()

    def _write(self) -> None:
        if self._path is None:
            return
        self._written = self._clock()
        try:
            write_snapshot(self._path, self._snapshot())
        except OSError:
            self._path = None  # progress is for show: a file that can't be written never fails the task
