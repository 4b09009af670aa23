# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What runs share on the controller: the run-state directory (private, or refused), the lock of a tenant and
application (a second run waits, up to its timeout; the lock is free once its holder is killed), and the ledger of
the code steps sent (seen by every run, forgetting what can no longer matter, surviving damage)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common import run_state
from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._common.run_state import (
    CodeLedger,
    LockTimeout,
    RunLock,
    default_run_state_dir,
    private_directory,
    state_key,
)

NOW = 1_800_000_000.0  # a multiple of 30 and 60: step boundaries


# ---------------------------------------------------------------------------------------------------- the directory
def test_the_default_directory_is_the_users_state_directory():
    assert default_run_state_dir({"XDG_STATE_HOME": "/home/amy/.state"}) == "/home/amy/.state/tokenops.entra"
    assert default_run_state_dir({}).endswith("/.local/state/tokenops.entra")


def test_a_missing_directory_is_created_private(tmp_path):
    directory = private_directory(str(tmp_path / "a" / "b"))
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700


def test_a_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError, match=r"has mode 0777: others can write it \(chmod go-w .*\)\. It holds the lock"):
        private_directory(str(shared))


def test_a_link_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(InputError, match="is not a directory"):
        private_directory(str(tmp_path / "link"))


def test_another_users_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_state.os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    with pytest.raises(InputError, match="belongs to user id"):
        private_directory(str(tmp_path))


def test_the_state_files_are_named_by_a_digest_of_the_tenant_and_application():
    key = state_key("https://graph.microsoft.com", "contoso-tenant-id", "app-id")
    assert len(key) == 32 and "contoso" not in key
    assert key != state_key("https://graph.microsoft.com", "contoso-tenant-id", "other-app")
    assert state_key("https://graph.microsoft.com", None, "app") == state_key("https://graph.microsoft.com", "", "app")


# ---------------------------------------------------------------------------------------------------- the lock
def hold_lock(path: str) -> subprocess.Popen:
    """Another process that takes the lock at ``path``, writes who it is as RunLock does, and holds it."""
    code = (
        "import fcntl, json, os, sys, time\n"
        f"fd = os.open({path!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'host': 'ctl-1', 'since': 1800000000}).encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_second_run_waits_then_fails_naming_the_holder_and_changing_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    lock = RunLock(str(tmp_path), "k")
    holder = hold_lock(lock.path)
    try:
        seen: list[tuple[float, str]] = []
        with pytest.raises(LockTimeout) as info:
            lock.acquire(0.3, lambda seconds, who: seen.append((seconds, who)))
    finally:
        holder.kill()
        holder.wait()
    assert seen and all(who == f"process {holder.pid} on ctl-1, since 2027-01-15 08:00:00 UTC" for _s, who in seen)
    assert [s for s, _who in seen] == sorted(s for s, _who in seen)
    assert info.value.message.startswith(
        f"another run for this tenant and application (process {holder.pid} on ctl-1, since 2027-01-15 08:00:00 UTC) "
        "has been writing for the 0 s this run waited (lock_timeout=0.3). Nothing was changed."
    )


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    lock = RunLock(str(tmp_path), "k")
    holder = hold_lock(lock.path)
    started = time.monotonic()
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(0.3); os.kill({holder.pid}, 9)"])
    try:
        waited = lock.acquire(30)
    finally:
        killer.wait()
        holder.wait()
    assert 0.2 < waited < 10 and time.monotonic() - started < 10
    assert lock.previous_writes_end is not None and abs(lock.previous_writes_end - time.time()) < 5  # killed: now
    with open(lock.path, encoding="utf-8") as file:
        assert json.load(file)["pid"] == os.getpid()  # now this run's
    lock.release()
    assert os.path.getsize(lock.path) == 0


def test_the_next_run_learns_whether_the_run_before_ended_midway(tmp_path):
    first, second = RunLock(str(tmp_path), "k"), RunLock(str(tmp_path), "k")
    first.acquire(0)
    assert first.previous_writes_end is None  # a new lock file
    first.release()
    second.acquire(0)
    assert second.previous_writes_end is None  # ended cleanly
    before = time.time()
    second.release(interrupted=True)
    first.acquire(0)
    assert first.previous_writes_end is not None and before <= first.previous_writes_end <= time.time()  # midway
    first.release(wrote=True)
    second.acquire(0)
    assert second.previous_writes_end is None  # it wrote and ended cleanly before this run came: nothing to wait for
    second.release()


@pytest.mark.parametrize("wrote", [True, False])
def test_a_run_that_waited_for_one_that_wrote_learns_when_it_ended(tmp_path, monkeypatch, wrote):
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    first, second = RunLock(str(tmp_path), "k"), RunLock(str(tmp_path), "k")
    first.acquire(0)
    releaser = threading.Timer(0.3, lambda: first.release(wrote=wrote))
    releaser.start()
    before = time.time()
    try:
        assert second.acquire(10) > 0.1
    finally:
        releaser.join()
    if wrote:  # both started together: the second would plan the first's writes from a read that predates them
        assert second.previous_writes_end is not None and before <= second.previous_writes_end <= time.time()
    else:
        assert second.previous_writes_end is None
    second.release()


def test_a_free_lock_is_taken_at_once_and_given_back(tmp_path):
    first, second = RunLock(str(tmp_path), "k"), RunLock(str(tmp_path), "k")
    assert first.acquire(0) < 1
    with pytest.raises(LockTimeout):
        second.acquire(0)  # the same process, another descriptor: flock tells them apart
    first.release()
    assert second.acquire(0) < 1
    second.release()
    other = RunLock(str(tmp_path), "other tenant")
    assert other.acquire(0) < 1  # another tenant or application: another lock
    other.release()


# ---------------------------------------------------------------------------------------------------- the ledger
class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_step_recorded_by_one_run_is_seen_by_the_next(tmp_path):
    clock = Clock()
    first = CodeLedger(str(tmp_path), "k", clock=clock)
    first.record("id-1", int(NOW // 30) + 1, 30)
    second = CodeLedger(str(tmp_path), "k", clock=clock)
    assert second.last_step("id-1") == int(NOW // 30) + 1
    assert second.last_step("id-2") is None
    first.record("id-2", int(NOW // 60) + 1, 60)  # written after the second one opened it: still seen
    assert second.last_step("id-2") == int(NOW // 60) + 1
    first.close()
    second.close()
    assert (
        "id-1" in (tmp_path / "codes-k.jsonl").read_text()
        and stat.S_IMODE(os.stat(tmp_path / "codes-k.jsonl").st_mode) == 0o600
    )


def test_the_latest_step_of_a_token_counts(tmp_path):
    ledger = CodeLedger(str(tmp_path), "k", clock=Clock())
    step = int(NOW // 30)
    for recorded in (step + 1, step + 3, step + 2):
        ledger.record("id-1", recorded, 30)
    assert ledger.last_step("id-1") == step + 3


def test_old_steps_are_forgotten_and_steps_far_ahead_ignored(tmp_path):
    clock = Clock()
    ledger = CodeLedger(str(tmp_path), "k", clock=clock)
    step = int(NOW // 30)
    ledger.record("id-1", step + 1, 30)
    ledger.record("id-2", step + run_state.LEDGER_MAX_AHEAD_STEPS + 1, 30)  # no run sends that: damage
    assert ledger.last_step("id-2") is None
    clock.now += run_state.LEDGER_KEEP_SECONDS + 60
    assert ledger.last_step("id-1") is None


def test_damaged_lines_are_skipped(tmp_path):
    step = int(NOW // 30) + 1
    (tmp_path / "codes-k.jsonl").write_text(
        'not json\n{"id": "id-1"}\n{"id": "id-2", "step": "x", "interval": 30}\n'
        f'{{"id": "id-3", "step": {step}, "interval": 45}}\n{{"id": "id-4", "step": {step}, "interval": 30}}\n'
        '{"id": "id-5", "st',  # a line being written
        encoding="utf-8",
    )
    ledger = CodeLedger(str(tmp_path), "k", clock=Clock())
    assert [ledger.last_step(f"id-{n}") for n in range(1, 6)] == [None, None, None, step, None]


def test_a_long_ledger_is_compacted_to_what_still_matters(tmp_path, monkeypatch):
    monkeypatch.setattr(run_state, "LEDGER_MAX_LINES", 10)
    clock = Clock()
    step = int(NOW // 30)
    old = CodeLedger(str(tmp_path), "k", clock=Clock(NOW - 3600))
    for n in range(20):
        old.record(f"old-{n}", step - 120 + 1, 30)
    old.record("id-1", step + 1, 30)
    old.close()
    ledger = CodeLedger(str(tmp_path), "k", clock=clock)
    lines = (tmp_path / "codes-k.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["id-1"]
    assert ledger.last_step("id-1") == step + 1
    ledger.record("id-2", step + 1, 30)
    assert CodeLedger(str(tmp_path), "k", clock=clock).last_step("id-2") == step + 1
