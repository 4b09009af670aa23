# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import email.utils

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._graph.retry import (
    BACKOFF_CAP,
    RETRY_STATUSES,
    backoff,
    longest_retry_after,
    parse_retry_after,
    retry_delay,
    retryable,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def test_retry_statuses():
    assert frozenset({429, 503, 504}) == RETRY_STATUSES


@pytest.mark.parametrize(
    "status, safe, expected",
    [
        (429, True, True),
        (429, False, True),  # Graph refused it unprocessed: even a write is sent again
        (503, True, True),
        (503, False, False),  # may come after Graph acted: only a request that is safe to repeat
        (504, True, True),
        (504, False, False),
        (500, True, False),
        (500, False, False),
        (400, True, False),
        (400, False, False),
        (200, True, False),
    ],
)
def test_retryable(status, safe, expected):
    assert retryable(status, safe) is expected


IN_TWO_MINUTES = http_date(NOW + 120)
A_MINUTE_AGO = http_date(NOW - 60)


@pytest.mark.parametrize(
    "values, expected",
    [
        (["2", "7", "1"], "7"),  # integers
        (["2.128", "2.5", "2"], "2.5"),  # fractions, as Graph sends them
        ([IN_TWO_MINUTES, "60"], IN_TWO_MINUTES),  # an HTTP date is the time from now
        (["1", A_MINUTE_AGO], "1"),  # a date gone by waits nothing
        (["soon", "0.5"], "0.5"),  # unreadable counts as 0
        (["soon"], "soon"),
        (["3", "2.5", http_date(NOW + 10), "later"], http_date(NOW + 10)),
    ],
)
def test_longest_retry_after(values, expected):
    assert longest_retry_after(values, NOW) == expected
    assert longest_retry_after(reversed(values), NOW) == expected  # whatever the order of the answers


def test_longest_retry_after_of_nothing_is_none():
    assert longest_retry_after([], NOW) is None
    assert longest_retry_after(iter(()), NOW) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2", 2.0),
        ("0", 0.0),
        ("10", 10.0),
        ("2.128", 2.128),  # Graph's own documented sample
        ("  7 ", 7.0),
        ("0.5", 0.5),
    ],
)
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date_in_the_future():
    assert parse_retry_after(http_date(NOW + 120), NOW) == 120.0


def test_parse_retry_after_http_date_is_relative_to_now():
    value = http_date(NOW + 120)
    assert parse_retry_after(value, NOW + 20) == 100.0


def test_parse_retry_after_fixed_http_date():
    # 2023-11-14T22:13:20Z is NOW; RFC 7231 IMF-fixdate
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", NOW) == 30.0


def test_parse_retry_after_http_date_in_the_past_is_zero():
    assert parse_retry_after(http_date(NOW - 3600), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "-0.5", "nan", "Mon, 99 Foo 2023", "12abc"])
def test_parse_retry_after_absent_or_unreadable(value):
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("attempt, ceiling", [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 32.0), (7, 60.0), (20, 60.0)])
def test_backoff_upper_bound(attempt, ceiling):
    assert backoff(attempt, rng=lambda: 1.0) == ceiling
    assert backoff(attempt, rng=lambda: 0.0) == 0.0
    assert backoff(attempt, rng=lambda: 0.5) == ceiling / 2


def test_backoff_never_above_cap():
    assert BACKOFF_CAP == 60.0
    assert max(backoff(n, rng=lambda: 0.999999) for n in range(1, 40)) < BACKOFF_CAP


def test_backoff_default_rng_within_bounds():
    for attempt in range(1, 10):
        for _i in range(20):
            assert 0.0 <= backoff(attempt) <= min(60.0, 2.0 ** (attempt - 1))


def test_retry_delay_uses_retry_after_over_backoff():
    assert retry_delay(3, "5", NOW, 60.0, rng=lambda: 1.0) == 5.0
    assert retry_delay(1, "2.128", NOW, 60.0, rng=lambda: 1.0) == 2.128


def test_retry_delay_http_date():
    assert retry_delay(1, http_date(NOW + 42), NOW, 60.0, rng=lambda: 1.0) == 42.0


def test_retry_delay_falls_back_to_backoff():
    assert retry_delay(3, None, NOW, 60.0, rng=lambda: 0.25) == 1.0
    assert retry_delay(3, "garbage", NOW, 60.0, rng=lambda: 0.25) == 1.0
    assert retry_delay(3, "-4", NOW, 60.0, rng=lambda: 1.0) == 4.0


@pytest.mark.parametrize(
    "retry_after, attempt, expected",
    [
        ("120", 1, 30.0),
        ("30.5", 1, 30.0),
        ("29", 1, 29.0),
        (None, 7, 30.0),  # backoff 60 capped
        (None, 5, 16.0),  # backoff 16 under the cap
        ("inf", 1, 30.0),
    ],
)
def test_retry_delay_capped_at_max_retry_wait(retry_after, attempt, expected):
    assert retry_delay(attempt, retry_after, NOW, 30.0, rng=lambda: 1.0) == expected


def test_retry_delay_capped_for_http_date():
    assert retry_delay(1, http_date(NOW + 3600), NOW, 10.0) == 10.0


def test_retry_delay_zero_max_wait():
    assert retry_delay(4, "3", NOW, 0.0, rng=lambda: 1.0) == 0.0
