# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Pacing shared by every thread that sends through one Transport: a token bucket for writes, and one "paused
until" instant that a ``Retry-After`` anywhere moves forward for everyone. Pure stdlib, thread-safe."""

from __future__ import annotations

import collections
import math
import threading
import time
import typing as t

# Graph's identity write quota: 3,000 writes per 150 seconds per app and tenant.
DEFAULT_QUOTA = "3000/150"
# A wait this short is none: rounding leaves a token at 0.9999999999, and a sleep of 1e-16 may not move a clock on.
NO_WAIT = 1e-9


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

    Writes take a token from a bucket that holds at most ``burst`` tokens and refills at ``rate`` per second
    (``Pacer.from_quota("3000/150")``: 3000 tokens, 20 a second, the default). Reads take none. A bucket lets
    ``burst + rate * T`` writes through in any T seconds: with the default, up to 6000 in the first 150 s if the
    threads have that many to send; a quota counted as a sliding window answers the excess 429, and the pause and the
    rule below then keep the run to what Graph serves.

    ``throttled(seconds, write)`` records a ``Retry-After``: every request of every thread (reads too) then waits
    until ``seconds`` from now (a later Retry-After may move that instant further, never back). For a 429 to a write
    (``write=True``) the bucket is also emptied and its rate learned: Graph served the ``n`` writes this pacer let
    through in the last quota window (``burst / rate`` seconds, the first of them ``span`` seconds ago) and asks for
    ``seconds`` more before the next, so it sustains about ``n / (span + seconds)`` writes a second; when that is
    below the current rate, it becomes the rate (never below ``min_rate``, default 1% of ``rate``). The rate is
    never raised by a Retry-After; once the pause is over it climbs back linearly, by ``rate / recovery`` per second
    (``recovery``, default four quota windows: the seconds to climb from 0 to the configured rate), up to ``rate``.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable for tests; sleeping is done outside the lock."""

    def __init__(
        self,
        rate: float = 20.0,
        burst: int = 3000,
        *,
        min_rate: float | None = None,
        recovery: float | None = None,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0) or burst < 1:
            raise ValueError(f"pacer: rate ({rate}) must be more than 0 and burst ({burst}) at least 1")
        self.configured_rate = float(rate)
        self.burst = burst
        self.window = burst / self.configured_rate  # the quota's window, over which writes are counted
        self.min_rate = min(self.configured_rate, self.configured_rate / 100 if min_rate is None else min_rate)
        self.recovery = 4 * self.window if recovery is None else recovery
        if not (self.min_rate > 0 and self.recovery > 0):
            raise ValueError(f"pacer: min_rate ({min_rate}) and recovery ({recovery}) must be more than 0")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = self.configured_rate
        self._tokens = float(burst)
        self._updated = clock()
        self._paused_until = -math.inf
        self._sent: collections.deque[tuple[float, int]] = collections.deque()  # (when, writes) in the last window
        self._sent_writes = 0
        self._stats = {"writes": 0, "waits": 0, "waited": 0.0, "pauses": 0, "paused": 0.0, "lowered": 0}

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

    def acquire(self, write: bool, count: int = 1) -> float:
        """Wait until the shared pause is over and, for a write, until the bucket has a token; take it. ``count``: the
        writes the request carries (a $batch of writes); it waits for that many tokens (at most ``burst``) and takes
        them all. Returns the seconds it waited."""
        need = max(1, count) if write else 0
        start: float | None = None
        while True:
            with self._lock:
                now = self._clock()
                start = now if start is None else start
                self._refill(now)
                wait = 0.0
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif need:
                    wait = (min(need, self.burst) - self._tokens) / self._rate
                if wait <= NO_WAIT:
                    return self._take(need, now, now - start)
            self._sleep(wait)

    def throttled(self, retry_after_seconds: float, write: bool = False) -> None:
        """Record a ``Retry-After`` of ``retry_after_seconds``: every request waits until then. ``write``: it
        answered a write with 429 (the write quota is used up): empty the bucket and learn its rate (see the class).
        A Retry-After that is not a positive finite number is ignored."""
        seconds = float(retry_after_seconds)
        if not (math.isfinite(seconds) and seconds > 0):
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._stats["pauses"] += 1
            until = now + seconds
            if until > self._paused_until:
                self._stats["paused"] += until - max(now, self._paused_until)
                self._paused_until = until
            if write:
                self._forget(now)
                if self._sent_writes:
                    span = now - self._sent[0][0]
                    learned = max(self.min_rate, self._sent_writes / (span + seconds))
                    if learned < self._rate:
                        self._rate = learned
                        self._stats["lowered"] += 1
                self._tokens = min(self._tokens, 0.0)

    def pause_left(self) -> float:
        """Seconds until the shared pause is over (0 when there is none)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def stats(self) -> dict[str, float]:
        """For reports: ``writes`` let through, ``waits`` (acquires that waited) and ``waited`` (their seconds),
        ``pauses`` (Retry-Afters recorded) and ``paused`` (seconds they paused everything), ``lowered`` (times the
        rate was learned lower) and the ``rate`` now."""
        with self._lock:
            self._refill(self._clock())
            return {**self._stats, "rate": self._rate}

    def _take(self, need: int, now: float, waited: float) -> float:
        """Take ``need`` tokens (counting the writes of the window) and count the wait."""
        if need:
            self._tokens -= need
            self._sent.append((now, need))
            self._sent_writes += need
            self._stats["writes"] += need
            self._forget(now)
        if waited > 0:
            self._stats["waits"] += 1
            self._stats["waited"] += waited
        return waited

    def _refill(self, now: float) -> None:
        """Tokens for the time since the last update; the rate climbs back once the pause is over."""
        elapsed = now - self._updated
        if elapsed <= 0:
            return
        self._tokens = min(float(self.burst), self._tokens + elapsed * self._rate)
        climbing = now - max(self._updated, self._paused_until)
        if self._rate < self.configured_rate and climbing > 0:
            self._rate = min(self.configured_rate, self._rate + climbing * self.configured_rate / self.recovery)
        self._updated = now

    def _forget(self, now: float) -> None:
        """Drop the writes sent before the last quota window."""
        while self._sent and self._sent[0][0] < now - self.window:
            self._sent_writes -= self._sent.popleft()[1]
