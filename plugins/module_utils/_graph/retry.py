# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Retry arithmetic, pure so it can be tested without sleeping."""

from __future__ import annotations

import email.utils
import math
import random
import typing as t

# Graph answers these when it did not serve a request now (throttled, or unavailable for a moment).
RETRY_STATUSES = frozenset({429, 503, 504})
# Of those, the answers that may come after Graph acted: a write answered so may or may not have taken effect.
OUTCOME_UNKNOWN_STATUSES = frozenset({503, 504})
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


def retryable(status: int, safe: bool) -> bool:
    """May a request answered ``status`` be sent again? A 429 means Graph refused it unprocessed, so even a write may
    be repeated; a 503 or 504 may come after Graph acted, so only a request that is ``safe`` to repeat is."""
    return status == 429 or (safe and status in OUTCOME_UNKNOWN_STATUSES)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: an integer, a fraction (Graph sends ``2.128``), or an
    HTTP date. ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        return max(0.0, when.timestamp() - now)
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def longest_retry_after(values: t.Iterable[str], now: float) -> str | None:
    """Of several answers' ``Retry-After`` values, the one that waits longest (unreadable ones count as 0), so that
    nothing sent again together goes too early. None when there are none."""
    waits = [(parse_retry_after(value, now) or 0.0, value) for value in values]
    return max(waits)[1] if waits else None


def backoff(attempt: int, rng: t.Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff for ``attempt`` (1-based): uniform in [0, min(cap, base * 2^(n-1))]."""
    return rng() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))


def retry_delay(
    attempt: int, retry_after: str | None, now: float, max_retry_wait: float, rng: t.Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``attempt``: the server's ``Retry-After`` when given, else jittered
    backoff; never more than ``max_retry_wait``."""
    wait = parse_retry_after(retry_after, now)
    if wait is None:
        wait = backoff(attempt, rng)
    return min(wait, max_retry_wait)
