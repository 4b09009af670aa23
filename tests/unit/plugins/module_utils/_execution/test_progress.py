# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The estimate of an apply (from the plan's requests and the limits that pace them), and the progress of a running
one: counted by its threads, the time left refined by what the pacer learned and by the pace so far, written as
snapshots at most every so often, never failing the task."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import read_snapshot
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import CodeSource
from ansible_collections.tokenops.entra.plugins.module_utils._execution import inventory_apply
from ansible_collections.tokenops.entra.plugins.module_utils._execution.inventory_apply import Secrets, apply_inventory
from ansible_collections.tokenops.entra.plugins.module_utils._execution.progress import (
    OBSERVED_AFTER,
    REQUEST_SECONDS,
    Limits,
    Progress,
    Workload,
    estimate,
    seconds_for,
    token_work,
    workload,
)
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import METHODS, Pacer
from ansible_collections.tokenops.entra.plugins.module_utils._planning.inventory import Entry, plan_inventory
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import FakeInventoryApi
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, SECRET, inv

USERS = {AMY.user_principal_name: AMY, ADELE.user_principal_name: ADELE}
FIELDS = {"manufacturer": "Contoso", "model": "OATH-TOTP"}
NOW = 1_800_000_000.0


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(index, serial, state="activated", user=AMY.user_principal_name, **fields) -> Entry:
    return Entry(index, serial, state, user, **{"has_secret": True, **FIELDS, **fields})


def listed(serial, status="available", holder=None, **fields):
    return replace(inv(status, holder, **fields), id=f"id-{serial}", serial_number=serial)


@functools.lru_cache(maxsize=None)  # planning 10,000 tokens takes a second or two: once
def new_tokens(count, state="activated"):
    """The plans of ``count`` tokens to create (for Amy, then activated, unless ``state`` says otherwise)."""
    user = AMY.user_principal_name if state in ("activated", "assigned") else None
    return tuple(plan_inventory([entry(n, f"T-{n:05d}", state, user) for n in range(count)], [], USERS))


def mixed_plans():
    """T-NEW to create and activate; T-HELD (Adele's) to give to Amy; T-UPD to update; T-GONE to delete; T-SAME as
    it is; T-LOST for a user who does not exist (fails in planning)."""
    entries = [
        entry(0, "T-NEW"),
        entry(1, "T-HELD"),
        entry(2, "T-UPD", "available", None, model="C302"),
        entry(3, "T-GONE", "absent", None),
        entry(4, "T-SAME", "available", None),
        entry(5, "T-LOST", user="nobody@contoso.com"),
    ]
    tokens = [listed("T-HELD", "activated", ADELE), listed("T-UPD"), listed("T-GONE"), listed("T-SAME")]
    return plan_inventory(entries, tokens, USERS)


# ---------------------------------------------------------------------------------------------------- the workload
def test_the_workload_counts_each_request_by_kind():
    plans = {plan.serial_number: plan for plan in mixed_plans()}
    assert token_work(plans["T-NEW"]) == Workload(methods=1)  # its creation goes in bulk; its activation
    assert token_work(plans["T-HELD"]) == Workload(methods=2)  # unassign from Adele; assign and activate for Amy
    assert token_work(plans["T-UPD"]) == Workload(directory=1)
    assert token_work(plans["T-GONE"]) == Workload(directory=1)
    assert token_work(plans["T-SAME"]) == Workload()
    # T-LOST failed in planning: nothing of it is sent
    assert workload(mixed_plans()) == Workload(bulk=1, directory=2, methods=3)


def test_creations_count_one_request_per_bulk_creation():
    assert workload(new_tokens(250, "available")) == Workload(bulk=3)
    assert workload(new_tokens(100)) == Workload(bulk=1, methods=100)
    assert workload([]) == Workload()


def test_workloads_add_and_what_is_left_is_never_below_zero():
    assert Workload(1, 2, 3) + Workload(1, 1, 1) == Workload(2, 3, 4)
    assert Workload(1, 2, 3) - Workload(2, 1, 1) == Workload(0, 1, 2)
    assert Workload(1, 2, 3).writes == 6


# ---------------------------------------------------------------------------------------------------- the estimate
def test_the_write_quota_bounds_a_large_creation():
    # 10,000 new tokens: 100 bulk creations and 10,000 activations; the bucket's 3,000 go at once, the rest at 20/s.
    limits = Limits.of_quota("3000/150", 8)
    work = workload(new_tokens(10000))
    assert work == Workload(bulk=100, methods=10000)
    quota = (10100 - 3000) / 20
    wire = 10100 * REQUEST_SECONDS / 8
    assert seconds_for(work, limits) == pytest.approx(max(quota, wire))
    assert 5 * 60 < seconds_for(work, limits) < 7 * 60  # "about 6 minutes"


def test_the_requests_on_the_wire_bound_what_the_quota_lets_through_at_once():
    limits = Limits.of_quota("3000/150", 8)
    assert seconds_for(Workload(methods=800), limits) == pytest.approx(800 * REQUEST_SECONDS / 8)
    assert seconds_for(Workload(methods=800), replace(limits, in_flight=32)) == pytest.approx(
        800 * REQUEST_SECONDS / 32
    )


def test_a_limited_lane_bounds_its_requests():
    strict = Limits.of_quota("3000/150", 8).methods_strictly_limited()
    assert (strict.methods_burst, strict.methods_rate) == (5, 0.5)
    assert seconds_for(Workload(methods=10000), strict) == pytest.approx((10000 - 5) / 0.5)  # about 2 s each
    assert seconds_for(Workload(directory=10), strict) == pytest.approx(10 * REQUEST_SECONDS / 8)  # not that lane
    learned = replace(Limits.of_quota("3000/150", 8), directory_rate=2.0)
    assert seconds_for(Workload(bulk=2, directory=18), learned) == pytest.approx(10.0)


def test_the_estimate_of_a_plan_states_the_quota_and_the_strict_reading():
    result = estimate(new_tokens(10000), quota="3000/150", in_flight=8)
    assert result == {
        "seconds": pytest.approx(10100 * REQUEST_SECONDS / 8, abs=0.1),
        "text": "about 6 min 19 s (10,100 writes at write_quota 3000/150); up to 5 h 33 min if Graph holds the "
        "10,000 requests under users' authentication methods to 5 per 10 s",
        "writes": 10100,
        "methods_requests": 10000,
        "methods_limit_seconds": 19990.0,
    }


def test_the_estimate_follows_the_quota_given():
    slow = estimate(new_tokens(1000), quota="300/150", in_flight=8)
    assert slow["seconds"] == pytest.approx((1010 - 300) / 2)
    assert slow["text"].startswith("about 5 min 55 s (1,010 writes at write_quota 300/150); up to ")


def test_an_estimate_without_requests_under_methods_has_no_strict_reading():
    result = estimate(new_tokens(250, "available"), quota="3000/150", in_flight=8)
    assert result["text"] == "about 1 s (3 writes at write_quota 3000/150)"
    assert result["methods_limit_seconds"] == result["seconds"]


def test_nothing_to_write_is_said_so():
    plans = plan_inventory([entry(0, "T-SAME", "available", None)], [listed("T-SAME")], USERS)
    assert estimate(plans, quota="3000/150", in_flight=8) == {
        "seconds": 0.0,
        "text": "nothing to write",
        "writes": 0,
        "methods_requests": 0,
        "methods_limit_seconds": 0.0,
    }


# ---------------------------------------------------------------------------------------------------- the progress
def progress_of(plans, tmp_path=None, *, quota="3000/150", pacer=None, clock=None, every=1.0):
    clock = clock or Clock()
    path = str(tmp_path / "progress.json") if tmp_path is not None else None
    return Progress(
        plans, Limits.of_quota(quota, 8), pacer=pacer, path=path, every=every, clock=clock, wall=lambda: NOW
    ), clock


def test_progress_counts_the_tokens_to_change_only():
    progress, _clock = progress_of(mixed_plans())
    assert progress.total == 4  # not T-SAME (nothing to write) nor T-LOST (failed in planning)
    assert progress.snapshot().done == 0


def test_snapshots_are_written_at_start_at_most_every_so_often_and_at_the_end(tmp_path):
    plans = new_tokens(10, "available")
    progress, clock = progress_of(plans, tmp_path)
    path = str(tmp_path / "progress.json")
    assert read_snapshot(path) is None  # nothing before the writes begin
    progress.start()
    assert read_snapshot(path).done == 0
    progress.created()
    for plan in plans[:3]:
        clock.now += 0.2
        progress.token_done(plan)
    assert read_snapshot(path).done == 0  # less than a second since the last one
    clock.now += 0.5
    progress.token_done(plans[3])
    assert read_snapshot(path).done == 4
    progress.tick()
    assert read_snapshot(path).done == 4
    clock.now += 1.0
    progress.tick()  # nothing finished, but the time left moves on
    assert (read_snapshot(path).done, read_snapshot(path).elapsed) == (4, 2.1)
    for plan in plans[4:]:
        progress.token_done(plan)
    progress.finish()
    last = read_snapshot(path)
    assert (last.done, last.total, last.left, last.at) == (10, 10, 0.0, NOW)


def test_the_snapshot_takes_the_writes_and_the_429s_from_the_pacer(tmp_path):
    pacer = Pacer.from_quota("3000/150")
    pacer.acquire(write=True, count=3)
    pacer.answered(METHODS, throttled=True)
    pacer.answered(METHODS, throttled=True)
    pacer.answered(METHODS, throttled=False)
    progress, _clock = progress_of(new_tokens(3), tmp_path, pacer=pacer)
    snapshot = progress.snapshot()
    assert (snapshot.writes, snapshot.throttled) == (3, 2)


def test_the_time_left_uses_what_the_pacer_learned():
    clock = Clock()
    pacer = Pacer.from_quota("3000/150", clock=clock, sleep=lambda seconds: None)
    progress, _clock = progress_of(new_tokens(100), pacer=pacer, clock=clock)
    progress.start()
    assert progress.snapshot().left == pytest.approx(101 * REQUEST_SECONDS / 8, abs=0.1)  # the requests on the wire
    # Graph's 429s taught the methods lane 0.5 requests a second.
    pacer.throttled_lane(METHODS, 1.0)
    pacer.answered(METHODS, throttled=False)
    clock.now += 2.0
    pacer.throttled_lane(METHODS, 1.0)
    assert pacer.stats()["rate_methods"] == pytest.approx(0.5)
    assert progress.snapshot().left == pytest.approx(100 / 0.5, rel=0.01)


def test_the_time_left_uses_the_bucket_as_it_is_now():
    clock = Clock()
    pacer = Pacer.from_quota("100/10", clock=clock, sleep=lambda seconds: None, margin=0.0)  # 100, then 10 a second
    progress, _clock = progress_of(new_tokens(300), quota="100/10", pacer=pacer, clock=clock)
    progress.start()
    assert progress.snapshot().left == pytest.approx((303 - 100) / 10)
    pacer.acquire(write=True, count=100)  # the bucket is spent; nothing is done yet
    assert progress.snapshot().left == pytest.approx(303 / 10)


def test_the_pace_so_far_is_trusted_once_there_is_enough_of_it():
    plans = new_tokens(100)
    progress, clock = progress_of(plans)
    progress.start()
    progress.created()
    for plan in plans[:10]:
        progress.token_done(plan)
    clock.now += OBSERVED_AFTER - 1  # 11 requests done in 9 s: not trusted yet, the limits say 90 x 0.3 / 8 s
    assert progress.snapshot().left == pytest.approx(90 * REQUEST_SECONDS / 8, abs=0.1)
    clock.now += 2  # 11 done in 11 s: the 90 left take about 90 s
    assert progress.snapshot().left == pytest.approx(11 * 90 / 11, abs=0.1)


def test_a_file_that_cannot_be_written_stops_the_snapshots_not_the_apply(tmp_path):
    progress = Progress(new_tokens(2), Limits.of_quota("3000/150", 8), path=str(tmp_path / "gone" / "progress.json"))
    progress.start()
    progress.token_done(new_tokens(1)[0])
    progress.finish()
    assert progress.snapshot().done == 1


def test_threads_count_every_token(tmp_path):
    plans = new_tokens(400, "available")
    progress, _clock = progress_of(plans, tmp_path, every=0.0)
    progress.start()
    start = threading.Barrier(8)

    def finish(part):
        start.wait()
        for plan in part:
            progress.token_done(plan)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(finish, [plans[n::8] for n in range(8)]))
    progress.finish()
    assert read_snapshot(str(tmp_path / "progress.json")).done == 400


# ---------------------------------------------------------------------------------------------------- in an apply
@pytest.fixture
def fixed_codes(monkeypatch):
    monkeypatch.setattr(inventory_apply, "CodeSource", functools.partial(CodeSource, clock=lambda: NOW))


def test_an_apply_reports_each_bulk_creation_and_each_token(tmp_path, fixed_codes):
    plans = [*new_tokens(150), *mixed_plans()]
    api = FakeInventoryApi(tokens=[listed("T-HELD", "activated", ADELE), listed("T-UPD"), listed("T-GONE")])
    calls = []
    progress = Progress(plans, Limits.of_quota("3000/150", 8), path=str(tmp_path / "progress.json"))
    for name in ("start", "created", "token_done", "finish"):
        real = getattr(progress, name)
        setattr(progress, name, lambda *args, real=real, name=name: (calls.append(name), real(*args))[1])
    secrets = Secrets({plan.serial_number.casefold(): SECRET for plan in plans}, {})
    outcomes = apply_inventory(api, plans, secrets, concurrency=2, log=lambda message: None, progress=progress)
    assert [o.outcome for o in outcomes].count("failed") == 1  # T-LOST, in planning
    assert calls[0] == "start" and calls[-1] == "finish"
    assert calls.count("created") == 2  # 151 tokens to create: two bulk creations
    assert calls.count("token_done") == progress.total == 154
    last = read_snapshot(str(tmp_path / "progress.json"))
    assert (last.done, last.total) == (154, 154)
