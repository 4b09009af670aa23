# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The progress snapshot a module writes and the controller reads: written whole or not at all, read back only when
it is one, and shown as a line of counts and durations."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, replace

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common import progress
from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import (
    MAX_SNAPSHOT_BYTES,
    Snapshot,
    duration_text,
    progress_line,
    read_snapshot,
    waiting_snapshot,
    write_snapshot,
)

AT = 1_800_000_000.0
SNAPSHOT = Snapshot(done=1234, total=10000, writes=2345, throttled=12, elapsed=95.5, left=250.0, at=AT)


def test_a_snapshot_is_written_whole_private_and_read_back(tmp_path):
    path = str(tmp_path / "progress.json")
    write_snapshot(path, SNAPSHOT)
    assert read_snapshot(path) == SNAPSHOT
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["progress.json"]  # no temporary file left behind
    later = replace(SNAPSHOT, done=1300)
    write_snapshot(path, later)
    assert read_snapshot(path) == later


def test_a_snapshot_is_replaced_atomically_or_not_at_all(tmp_path, monkeypatch):
    path = str(tmp_path / "progress.json")
    write_snapshot(path, SNAPSHOT)

    def broken(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(progress.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_snapshot(path, replace(SNAPSHOT, done=9999))
    assert read_snapshot(path) == SNAPSHOT  # the reader still sees the whole previous one
    assert os.listdir(tmp_path) == ["progress.json"]  # and the temporary file is gone


def test_a_snapshot_in_a_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        write_snapshot(str(tmp_path / "gone" / "progress.json"), SNAPSHOT)


@pytest.mark.parametrize(
    "content",
    [
        None,  # no file yet
        "",
        "{not json",
        "[]",
        json.dumps({**asdict(SNAPSHOT), "done": "12"}),
        json.dumps({**asdict(SNAPSHOT), "done": True}),
        json.dumps({**asdict(SNAPSHOT), "throttled": -1}),
        json.dumps({**asdict(SNAPSHOT), "left": "NaN"}),
        json.dumps({**asdict(SNAPSHOT), "elapsed": -3}),
        json.dumps({key: value for key, value in asdict(SNAPSHOT).items() if key != "writes"}),
        json.dumps({**asdict(SNAPSHOT), "pad": "x" * MAX_SNAPSHOT_BYTES}),
    ],
)
def test_what_is_not_a_snapshot_reads_as_none(tmp_path, content):
    path = tmp_path / "progress.json"
    if content is not None:
        path.write_text(content)
    assert read_snapshot(str(path)) is None


def test_a_snapshot_holds_numbers_only():
    values = asdict(SNAPSHOT)
    assert values.pop("holder") == "" and values.pop("waiting") is None  # a run's progress: no lock waited for
    assert all(isinstance(value, (int, float)) for value in values.values())


def test_a_run_waiting_for_the_lock_says_for_how_long_and_who_holds_it(tmp_path):
    path = str(tmp_path / "progress.json")
    write_snapshot(path, waiting_snapshot(25.0, "process 4242 on ctl-1, since 2027-01-15 10:00:00 UTC", AT))
    snapshot = read_snapshot(path)
    assert snapshot is not None and snapshot.waiting == 25.0
    assert progress_line(snapshot, 26.0, AT + 10) == (
        "waiting for another run of this tenant and application to finish its writes (process 4242 on ctl-1, "
        "since 2027-01-15 10:00:00 UTC), 35 s so far (lock_timeout)"
    )


@pytest.mark.parametrize("data", [{"waiting": "soon"}, {"waiting": -1}, {"waiting": True}, {"holder": 7}])
def test_a_waiting_snapshot_that_is_not_one_is_ignored(tmp_path, data):
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({**asdict(SNAPSHOT), **data}), encoding="utf-8")
    assert read_snapshot(str(path)) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.2, "1 s"),
        (42, "42 s"),
        (59.2, "59 s"),
        (59.6, "1 min"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (599, "9 min 59 s"),
        (600, "10 min"),
        (379, "6 min 19 s"),
        (730, "12 min"),
        (3599, "1 h"),
        (7500, "2 h 5 min"),
        (19990, "5 h 33 min"),
        (-5, "0 s"),
        (float("inf"), "0 s"),
    ],
)
def test_durations_read_as_people_read_them(seconds, text):
    assert duration_text(seconds) == text


def test_the_line_gives_the_counts_the_time_elapsed_and_the_time_left():
    assert progress_line(SNAPSHOT, 100.0, AT) == (
        "1,234 of 10,000 tokens done, 2,345 writes sent, 12 answered 429 (throttled), 1 min 40 s elapsed, "
        "about 4 min 10 s left"
    )


def test_the_time_left_counts_down_from_when_the_snapshot_was_taken():
    assert progress_line(SNAPSHOT, 130.0, AT + 30).endswith("2 min 10 s elapsed, about 3 min 40 s left")
    assert progress_line(SNAPSHOT, 500.0, AT + 400).endswith("about 0 s left")
    assert progress_line(SNAPSHOT, 100.0, AT - 50).endswith("about 4 min 10 s left")  # a clock set back: no more


def test_when_every_token_is_done_the_module_is_finishing():
    assert progress_line(replace(SNAPSHOT, done=10000, left=0.0), 600.0, AT).endswith("10 min elapsed, finishing")


def test_before_the_first_snapshot_the_module_reads_and_plans():
    assert progress_line(None, 21.0, AT) == "reading the tenant and planning, 21 s elapsed"
