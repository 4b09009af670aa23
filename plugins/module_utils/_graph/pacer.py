# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Pacing shared by every thread that sends through one Transport: a token bucket for writes (or, once Graph's
429s show that it counts its write quota over a window, a log of the writes of the last window), one "paused until"
instant that Graph's write-quota ``Retry-After`` moves forward for everyone, a rate learned per lane of requests
from the other quotas' 429s, and at most ``in_flight`` requests on the wire. Pure stdlib, thread-safe."""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import math
import re
import threading
import time
import typing as t
from dataclasses import dataclass, field

# Graph's identity write quota: 3,000 writes per 150 seconds per app and tenant.
DEFAULT_QUOTA = "3000/150"
# Graph counts a write when it arrives. Writes sent exactly at the quota's pace may arrive closer together than they
# were sent (the one before took longer: a busy client, a new connection) and find the quota one write short. So the
# pacer keeps this many seconds of writes in hand: its bucket holds that many fewer than the quota's burst (at most
# a tenth of it), and a write counted over a window is sent that much after the write it replaces left the window.
MARGIN_SECONDS = 0.25
# Under a token bucket Graph's 429 is over once a write or two have been refilled: its Retry-After, rounded up to
# whole seconds, is 1 or 2 s (or the refill of the writes on the wire, for a slow quota). See Pacer.throttled.
BUCKET_RETRY_AFTER = 2.0
# Seconds a window's Retry-After may be off the pacer's own log: it is rounded up to whole seconds, and Graph counts a
# write when it arrives. A Retry-After that ends more than this before the log would let a write go says that Graph's
# window starts afresh then (windows of fixed times, not the last SECONDS): the writes before it no longer count.
WINDOW_SLACK = 2.0
# A wait this short is none: rounding leaves a token at 0.9999999999, and a sleep of 1e-16 may not move a clock on.
NO_WAIT = 1e-9
# A rate learned for a lane doubles for every this many seconds without a 429 in that lane: a limit that has gone
# (another app's burst on the tenant's quota ended) stops slowing the run, and one that is still there is measured
# again by the 429 that the faster pace then meets.
LANE_DOUBLING_SECONDS = 60.0
LANE_MIN_RATE = 0.05  # requests a second: the slowest a lane is paced
# Requests under a user's authentication methods: Graph's throttling page lists a separate, much lower limit for
# authenticationMethod (5 requests per 10 s per app and tenant) beside the identity write quota.
_METHODS_PATH = re.compile(r"/(?:me|users/[^/?#]+)/authentication/", re.IGNORECASE)
METHODS, DIRECTORY = "methods", "directory"
# That limit, read strictly (every request under users' authentication methods, per app and tenant): a pacer learns
# it from Graph's 429s; estimates use it for the longest an apply may take.
METHODS_STRICT_LIMIT = "5/10"


def pacing_lane(url: str) -> str:
    """The lane of a request, by its URL: ``methods`` (a user's authentication methods) or ``directory``."""
    return METHODS if _METHODS_PATH.search(url.split("?", 1)[0]) else DIRECTORY


@dataclass
class _Lane:
    """What one lane's 429s showed. At each 429 Graph's bucket for the lane is empty; between two of them it served
    exactly what it refilled, so the answers counted between them, over the time between them, is its rate (a little
    less, never more, when the bucket filled up in between)."""

    since: float  # the 429 that started the count
    served: int = 0  # answers that were not 429 since then
    rate: float | None = None  # requests a second, once measured
    measured: float = 0.0  # when
    next_send: float = -math.inf
    paused_until: float = -math.inf
    one_at_a_time: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))

    def wait_until(self, send: bool) -> float:
        """Until when a request of this lane waits: its pause, and its turn in the pace when it is to be sent."""
        return max(self.paused_until, self.next_send) if send else self.paused_until

    def rate_at(self, now: float) -> float | None:
        if self.rate is None:
            return None
        return self.rate * 2 ** (max(0.0, now - self.measured) / LANE_DOUBLING_SECONDS)


@dataclass
class _Logged:
    """A write (of ``writes`` writes: a $batch may carry several) in the log: when it went (or is to go, while it
    waits), and whether it took its place in the window rather than in the bucket."""

    when: float
    writes: int
    in_window: bool


def parse_quota(text: str) -> tuple[int, float]:
    """``(writes, seconds)`` from a quota written ``WRITES/SECONDS`` (``"3000/150"``, ``"300/1.5"``). ValueError
    names the text and the expected form."""
    parts = text.split("/") if isinstance(text, str) else []
    try:
        if len(parts) != 2:
            raise ValueError
        writes, seconds = int(parts[0].strip()), float(parts[1].strip())
    except ValueError:
        writes, seconds = 0, 0.0
    if writes < 1 or not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"write quota {text!r}: expected WRITES/SECONDS, a whole number of writes (at least 1) per a number of "
            "seconds (more than 0), e.g. '3000/150'"
        )
    return writes, seconds


class Pacer:
    """Paces the requests of every thread sharing it.

    Writes take a token from a bucket that refills at ``rate`` per second and holds at most ``burst`` tokens, less
    ``margin`` seconds of its rate (at most a tenth of them): ``Pacer.from_quota("3000/150")`` holds 2995 tokens
    and refills 20 a second, the default. Reads take none. A bucket lets ``burst + rate * T`` writes through in any
    T seconds, as Graph's documented token bucket does.

    Graph may count the quota over a window instead: at most ``burst`` writes in the last ``window`` seconds, or in
    each window of fixed times. Its 429 then comes once this pacer has sent ``burst`` writes within a window, and
    asks for up to a window (a bucket's asks for a write's refill, ``BUCKET_RETRY_AFTER``). From that 429 on, the
    pacer keeps to a log of the writes it sent instead of its bucket: a write goes when fewer than ``burst`` were
    sent in the last ``window`` (plus ``margin``) seconds, and no sooner than a window after the answer to the write
    it replaces. A window's Retry-After that ends well before the log would let a write go (by ``WINDOW_SLACK``) says
    that the window starts afresh then: the writes before it are forgotten.

    ``throttled(seconds, write)`` records a ``Retry-After``: every request of every thread (reads too) then waits
    until ``seconds`` from now (a later Retry-After may move that instant further, never back). For a 429 to a write
    (``write=True``) under the bucket, the bucket is also emptied and its rate learned: Graph served the ``n``
    writes this pacer let through in the last quota window (``burst / rate`` seconds, the first of them ``span``
    seconds ago) and asks for ``seconds`` more before the next, so it sustains about ``n / (span + seconds)`` writes a
    second; when that is below the current rate, it becomes the rate (never below ``min_rate``, default 1% of
    ``rate``). The rate is never raised by a Retry-After; once the pause is over it climbs back linearly, by ``rate /
    recovery`` per second (``recovery``, default four quota windows: the seconds to climb from 0 to the configured
    rate), up to ``rate``.

    ``throttled_lane(lane, seconds)`` records a 429 of another quota (one with ``x-ms-throttle-scope`` that is not the
    write quota, such as the authentication-methods limit): only the requests of that lane (see ``pacing_lane``) wait
    until then, and from the second such 429 on they are spaced at the rate measured between the two (see ``_Lane``),
    which doubles for every LANE_DOUBLING_SECONDS without another. A 429 without a scope is not a quota's: the
    request that got it waits on its own, and the pacer is not told.

    Between a lane's first 429 and its measured rate, its requests are sent one at a time (``sending(lane)``): that
    spends what Graph refilled during the pause and meets the second 429 with one request, not a burst of them.

    ``in_flight``: at most this many requests on the wire at once (``sending()``); a request waiting for its
    Retry-After holds no place, so other requests go on meanwhile. ``progress()`` counts the answers that were not
    429, for retries that go on while others get through; ``since_last_answer()`` says how long ago the last answer
    came.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable for tests; sleeping is done outside the lock."""

    def __init__(
        self,
        rate: float = 20.0,
        burst: int = 3000,
        *,
        min_rate: float | None = None,
        recovery: float | None = None,
        in_flight: int | None = None,
        margin: float = MARGIN_SECONDS,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0) or burst < 1:
            raise ValueError(f"pacer: rate ({rate}) must be more than 0 and burst ({burst}) at least 1")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"pacer: margin ({margin}) must be 0 or more")
        self.configured_rate = float(rate)
        self.burst = burst
        self.window = burst / self.configured_rate  # the quota's window, over which writes are counted
        self.margin = margin
        self.capacity = burst - min(burst / 10, margin * self.configured_rate)  # what the bucket holds at most
        self.min_rate = min(self.configured_rate, self.configured_rate / 100 if min_rate is None else min_rate)
        self.recovery = 4 * self.window if recovery is None else recovery
        if not (self.min_rate > 0 and self.recovery > 0):
            raise ValueError(f"pacer: min_rate ({min_rate}) and recovery ({recovery}) must be more than 0")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = self.configured_rate
        self._tokens = self.capacity
        self._updated = clock()
        self._paused_until = -math.inf
        self._sent: collections.deque[tuple[float, int]] = collections.deque()  # (when, writes) in the last window
        self._sent_writes = 0
        # Every write as long as it may count in a window, by when it went (a heap: the first to leave the window
        # first), and the writes they carry. A write that waits is logged when it is to go, then when it went, and
        # later when its answer came late (_answered_write): an entry whose time moved on is put back in its place
        # when it comes first (see _first).
        self._log: list[tuple[float, int, _Logged]] = []
        self._logged = 0
        self._order = itertools.count()  # of entries logged at the same time
        self._last_placed = -math.inf  # when the last write placed in a window is to go
        self._windowed = False  # Graph counts the write quota over a window: writes keep to the log, not the bucket
        self._refilled_early: float | None = None  # refilled since a write left the full bucket, before an answer
        self._in_flight = in_flight
        self._stats = {"writes": 0, "waits": 0, "waited": 0.0, "pauses": 0, "paused": 0.0, "lowered": 0, "throttled": 0}
        self._lanes: dict[str, _Lane] = {}
        self._answered = 0
        self._last_answer: float | None = None
        self._slots = threading.BoundedSemaphore(in_flight) if in_flight else None

    @classmethod
    def from_quota(cls, quota: str = DEFAULT_QUOTA, **kwargs: t.Any) -> Pacer:
        """A pacer for a quota of ``WRITES/SECONDS``: a bucket of WRITES tokens refilled at WRITES/SECONDS a
        second. ValueError for text of another form."""
        writes, seconds = parse_quota(quota)
        return cls(writes / seconds, writes, **kwargs)

    @property
    def rate(self) -> float:
        """The bucket's refill rate now (writes a second): the configured one, or lower while learned."""
        with self._lock:
            self._refill(self._clock())
            return self._rate

    def acquire(self, write: bool, count: int = 1, lane: str | None = None, *, send: bool = True) -> float:
        """Wait until the shared pause is over, and the pause and pace of ``lane`` (if it learned any); for a write,
        until the quota has room (see :meth:`_place`); take it. ``count``: the writes the request carries (a $batch of
        writes); it waits for room for that many (at most ``burst``) and takes it all. ``send=False``: only wait out
        the pauses (a retry's wait), taking no place in the lane's pace. Returns the seconds it waited."""
        return self._acquire(write, count, lane, send)[0]

    def _acquire(self, write: bool, count: int, lane: str | None, send: bool) -> tuple[float, _Logged | None]:
        """:meth:`acquire`, and the write's line of the log (None for a read)."""
        need = max(1, count) if write else 0
        start: float | None = None
        entry: _Logged | None = None  # the write's line of the log, once it has its place
        while True:
            with self._lock:
                now = self._clock()
                start = now if start is None else start
                self._refill(now)
                learned = self._lanes.get(lane) if lane else None
                lane_until = learned.wait_until(send) if learned is not None else -math.inf
                wait = 0.0
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif lane_until > now:
                    wait = lane_until - now
                elif need:
                    if entry is not None and entry.in_window != self._windowed:  # placed by the bucket, then a window
                        self._cancel(entry)
                        entry = None
                    if entry is None:
                        entry = self._place(need, now)
                    wait = entry.when - now
                if wait <= NO_WAIT:
                    if entry is not None:
                        entry.when = max(entry.when, now)
                    if learned is not None and send:
                        rate = learned.rate_at(now)
                        if rate is not None:
                            learned.next_send = max(now, learned.next_send) + 1 / rate
                    if now > start:
                        self._stats["waits"] += 1
                        self._stats["waited"] += now - start
                    return now - start, entry
            self._sleep(wait)

    def _place(self, need: int, now: float) -> _Logged:
        """Take the room of a write of ``need`` writes, and log it, with when it is to go. In the bucket, its
        tokens are taken at once, as a reservation when the bucket has too few: it goes below zero and the write
        goes once it is back at zero (each waiting thread wakes once, at its own time, rather than all at every
        refill). In a window, it goes once fewer than ``burst`` writes are logged in the window (and ``margin``)
        before it, and after the writes placed before it."""
        self._stats["writes"] += need
        self._sent.append((now, need))
        self._sent_writes += need
        self._forget(now)
        span = self.window + self.margin
        if self._windowed:
            when = max(now, self._last_placed)  # after the writes placed before it, as they took the room before it
            self._drop(when - span)
            while self._logged + need > self.burst and (first := self._first()) is not None:
                when = max(when, first.when + span)
                self._pop_first()
            self._last_placed = when
        else:
            if self._tokens >= self.capacity:
                self._refilled_early = 0.0  # its refill counts from the next answer (see _answered_write)
            self._tokens -= need
            when = now + max(0.0, (min(need, self.capacity) - need - self._tokens) / self._rate)
            self._drop(now - span)
        entry = _Logged(when, need, self._windowed)
        heapq.heappush(self._log, (when, next(self._order), entry))
        self._logged += need
        return entry

    def _cancel(self, entry: _Logged) -> None:
        """Give a write's place back: it takes another (Graph showed a window while it waited in the bucket)."""
        self._logged -= entry.writes
        entry.writes = 0

    def _drop(self, until: float) -> None:
        """Forget the logged writes sent at ``until`` or before."""
        while (first := self._first()) is not None and first.when <= until:
            self._pop_first()

    def _first(self) -> _Logged | None:
        """The logged write that leaves the window first (None when there is none)."""
        while self._log:
            when, _order, entry = self._log[0]
            if not entry.writes:  # given back
                heapq.heappop(self._log)
            elif entry.when > when:  # went, or was answered, later than it was logged: back in its place
                heapq.heapreplace(self._log, (entry.when, next(self._order), entry))
            else:
                return entry
        return None

    def _pop_first(self) -> None:
        """Forget the logged write that leaves the window first (see :meth:`_first`)."""
        self._cancel(heapq.heappop(self._log)[2])  # out of the log: a write still waiting with it gives back nothing

    @contextlib.contextmanager
    def sending(self, write: bool = False, count: int = 1, lane: str | None = None) -> t.Iterator[float]:
        """Everything a request waits for before it goes, held while it is sent and answered: :meth:`acquire`
        (pauses, pace, write tokens); while ``lane`` measures its rate, its turn (one at a time); a place on the wire
        (see ``in_flight``). Gives the seconds it waited for the pacer. A write's line of the log is settled when its
        answer comes (see :meth:`_answered_write`)."""
        with contextlib.ExitStack() as held:
            waited, entry = self._acquire(write, count, lane, True)
            turn = None  # the lane's turn, once taken
            while True:
                measuring = self._measuring(lane)
                if measuring is not None and turn is None:
                    turn = held.enter_context(measuring.one_at_a_time)
                    waited += self.acquire(False, lane=lane, send=False)  # a 429 while it waited for its turn
                if self._slots is None:
                    break
                self._slots.acquire()
                waited += self.acquire(False, lane=lane, send=False)  # a 429 while it waited for its place
                if turn is None and self._measuring(lane) is not None:  # its lane met its first 429 meanwhile
                    self._slots.release()
                    continue
                if entry is not None and self._replaced(entry):  # a window showed while it waited for its place
                    self._slots.release()
                    more, entry = self._acquire(write, count, lane, True)
                    waited += more
                    continue
                held.callback(self._slots.release)
                break
            if entry is not None:
                held.callback(self._answered_write, entry)
            yield waited

    def _replaced(self, entry: _Logged) -> bool:
        """Whether a write that took its place in the bucket gave it back, as Graph has shown a window since: it
        takes its place in the window."""
        with self._lock:
            if entry.in_window == self._windowed:
                return False
            self._cancel(entry)
            return True

    def _answered_write(self, entry: _Logged) -> None:
        """A write was sent and answered (or failed): Graph counted it at the latest now. It leaves the window's log
        ``margin`` after a window from when it went, and no sooner than a window after now: one that took longer to
        reach Graph than the margin (a new connection, a busy client) would leave Graph's window after the log. The
        bucket counts its refill from the first answer after it was full: Graph's bucket began to refill when the
        first write of the burst arrived, at the latest now, and a first write that took longer to arrive than the
        next ones would leave those a write short."""
        with self._lock:
            now = self._clock()
            entry.when = max(entry.when, now - self.margin)
            if self._refilled_early is not None:
                self._refill(now)
                self._tokens -= self._refilled_early  # what it refilled before Graph's began to
                self._refilled_early = None

    def _measuring(self, lane: str | None) -> _Lane | None:
        """The lane, while it is between its first 429 and a measured rate."""
        with self._lock:
            learned = self._lanes.get(lane) if lane else None
            return learned if learned is not None and learned.rate is None else None

    def answered(self, lane: str | None, throttled: bool) -> None:
        """An answer came: ``throttled`` when it was 429 (counted as such). The others count as progress and as served
        by the lane."""
        with self._lock:
            self._last_answer = self._clock()
            if throttled:
                self._stats["throttled"] += 1
                return
            self._answered += 1
            learned = self._lanes.get(lane) if lane else None
            if learned is not None:
                learned.served += 1

    def progress(self) -> int:
        """How many answers that were not 429 every thread has had so far."""
        with self._lock:
            return self._answered

    def since_last_answer(self) -> float | None:
        """Seconds since the last answer came (None before any)."""
        with self._lock:
            return None if self._last_answer is None else self._clock() - self._last_answer

    def throttled_lane(self, lane: str, retry_after_seconds: float) -> None:
        """Record a 429 of a quota other than the write quota, to a request of ``lane``: that lane waits
        ``retry_after_seconds`` and, from the second such 429, is paced at the rate measured (see the class)."""
        seconds = float(retry_after_seconds)
        if not (math.isfinite(seconds) and seconds > 0):
            return
        with self._lock:
            now = self._clock()
            self._stats["pauses"] += 1
            learned = self._lanes.setdefault(lane, _Lane(since=now))
            # Measured once the last 429's pause is over: the 429s and answers of requests that were already on the
            # wire when it came belong to it.
            if learned.served and now >= learned.paused_until:
                learned.rate = max(LANE_MIN_RATE, learned.served / max(now - learned.since, NO_WAIT))
                learned.measured, learned.since, learned.served = now, now, 0
                self._stats["lowered"] += 1
            if now + seconds > learned.paused_until:
                self._stats["paused"] += now + seconds - max(now, learned.paused_until)
                learned.paused_until = now + seconds

    def throttled(self, retry_after_seconds: float, write: bool = False, longest: float = math.inf) -> None:
        """Record a ``Retry-After`` of ``retry_after_seconds``: every request waits until then, or ``longest``
        seconds at most. ``write``: it answered a write with 429 (the write quota is used up): empty the bucket and
        learn its rate, or, for a Retry-After that says a window, keep to the window from now on (see the class). A
        Retry-After that is not a positive finite number is ignored."""
        seconds = float(retry_after_seconds)
        if not (math.isfinite(seconds) and seconds > 0):
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._stats["pauses"] += 1
            pause = min(seconds, longest)
            until = now + pause
            if until > self._paused_until:
                self._stats["paused"] += until - max(now, self._paused_until)
                self._paused_until = until
            if write and not self._windowed and self._counts_a_window(now, seconds):
                self._windowed = True
            if write and self._windowed:
                if now + seconds + WINDOW_SLACK < self._log_ready(now):
                    self._drop(now + seconds)  # the window starts afresh then
            elif write:
                self._forget(now)
                if self._sent_writes:
                    span = now - self._sent[0][0]
                    learned = max(self.min_rate, self._sent_writes / (span + pause))
                    if learned < self._rate:
                        self._rate = learned
                        self._stats["lowered"] += 1
                self._tokens = min(self._tokens, 0.0)

    def _counts_a_window(self, now: float, seconds: float) -> bool:
        """Whether a write 429 asking for ``seconds`` says that Graph counts the quota over a window: longer than a
        token bucket's (a write or two, or the refill of the writes on the wire), no longer than a window, and this
        pacer sent ``burst`` writes within the last window. Otherwise (a Retry-After longer than a window, or the
        quota used up by others as well) the bucket learns the rate Graph sustains."""
        bucket = max(BUCKET_RETRY_AFTER, (self._in_flight or 1) / self.configured_rate)
        if not bucket < seconds <= self.window + WINDOW_SLACK:
            return False
        recent = sum(
            entry.writes for _when, _order, entry in self._log if now - self.window - self.margin < entry.when <= now
        )
        return recent >= self.burst

    def _log_ready(self, now: float) -> float:
        """When the log lets one more write go: once as many writes as it holds beyond ``burst`` left the window."""
        over, when = self._logged + 1 - self.burst, now
        for sent, writes in sorted((entry.when, entry.writes) for _when, _order, entry in self._log if entry.writes):
            if over <= 0:
                break
            over -= writes
            when = max(when, sent + self.window + self.margin)
        return when

    def available(self) -> float:
        """The writes the quota lets through now without waiting (below 0: writes already wait for room): the
        bucket's tokens, or, in a window, the writes not logged in it."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if self._windowed:
                self._drop(now - self.window - self.margin)
                return float(self.burst - self._logged)
            return self._tokens

    def pause_left(self) -> float:
        """Seconds until the shared pause is over (0 when there is none)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def stats(self) -> dict[str, float]:
        """For reports: ``writes`` let through, ``waits`` (acquires that waited) and ``waited`` (their seconds),
        ``pauses`` (Retry-Afters recorded) and ``paused`` (seconds they paused everything or a lane), ``lowered``
        (times a rate was learned), ``throttled`` (answers that were 429), the write ``rate`` now, ``rate_<lane>`` for
        each lane that measured one, and ``windowed`` (true) once writes keep to a window."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            lanes = {
                f"rate_{name}": t.cast(float, lane.rate_at(now)) for name, lane in self._lanes.items() if lane.rate
            }
            windowed = {"windowed": True} if self._windowed else {}
            return {**self._stats, "rate": self._rate, **lanes, **windowed}

    def _refill(self, now: float) -> None:
        """Tokens for the time since the last update; the rate climbs back once the pause is over."""
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        gained = min(self.capacity, self._tokens + elapsed * self._rate) - self._tokens
        self._tokens += gained
        if self._refilled_early is not None:
            self._refilled_early += gained
        climbing = now - max(self._updated, self._paused_until)
        if self._rate < self.configured_rate and climbing > 0:
            self._rate = min(self.configured_rate, self._rate + climbing * self.configured_rate / self.recovery)
        self._updated = now

    def _forget(self, now: float) -> None:
        """Drop the writes sent before the last quota window."""
        while self._sent and self._sent[0][0] < now - self.window:
            self._sent_writes -= self._sent.popleft()[1]
