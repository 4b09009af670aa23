# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""What a module tells the controller while it runs: a snapshot of how far it has got, in a small JSON file that the
module replaces (written aside, then renamed: a reader never sees half of one) and the collection's action plugin
reads and shows as a line. Numbers only, never a serial number, a user or anything secret (a run waiting for the lock
of another also says which process holds it). Durations as people read
them. The standard library only: the module writes it, the controller reads it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import typing as t
from dataclasses import asdict, dataclass

MAX_SNAPSHOT_BYTES = 4096  # a snapshot is about 150 bytes; a bigger file is not one
MAX_HOLDER_CHARS = 200


@dataclass(frozen=True)
class Snapshot:
    """How far an apply has got. ``done`` of ``total`` tokens (those with writes to make) are done; ``writes``: the
    writes sent so far; ``throttled``: the answers that were 429; ``elapsed``: seconds since the writes began;
    ``left``: the seconds still expected; ``at``: when it was taken (``time.time()``). Before its first read, a run
    may wait for another run of its tenant and application (``_common/run_state.RunLock``): ``waiting`` is for how
    long so far (None: not waiting), ``holder`` who that run is (a process, a host, since when)."""

    done: int
    total: int
    writes: int
    throttled: int
    elapsed: float
    left: float
    at: float
    waiting: float | None = None
    holder: str = ""


def waiting_snapshot(seconds: float, holder: str, now: float) -> Snapshot:
    """The snapshot of a run waiting ``seconds`` so far for the lock another run (``holder``) holds."""
    return Snapshot(0, 0, 0, 0, 0.0, 0.0, now, waiting=seconds, holder=holder[:MAX_HOLDER_CHARS])


def write_snapshot(path: str, snapshot: Snapshot) -> None:
    """Replace the file at ``path`` with ``snapshot`` (mode 0600), atomically. OSError when it can't be written."""
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".progress-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(asdict(snapshot), file)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_snapshot(path: str) -> Snapshot | None:
    """The snapshot at ``path``; None when there is none yet, or what is there is not one."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(MAX_SNAPSHOT_BYTES + 1)
        data = json.loads(text) if len(text) <= MAX_SNAPSHOT_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    counts: list[t.Any] = [data.get(name) for name in ("done", "total", "writes", "throttled")]
    times: list[t.Any] = [data.get(name) for name in ("elapsed", "left", "at")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < math.inf for x in times):
        return None
    waiting, holder = data.get("waiting"), data.get("holder", "")
    if waiting is not None and not (isinstance(waiting, (int, float)) and not isinstance(waiting, bool)):
        return None
    if not isinstance(holder, str) or (waiting is not None and not 0 <= waiting < math.inf):
        return None
    done, total, writes, throttled = counts
    elapsed, left, at = (float(x) for x in times)
    waited = None if waiting is None else float(waiting)
    return Snapshot(done, total, writes, throttled, elapsed, left, at, waiting=waited, holder=holder[:MAX_HOLDER_CHARS])


def duration_text(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``12 min``, ``2 h 5 min``: to the second under 10 minutes (less than a second but
    more than none: ``1 s``), then to the minute."""
    whole = max(1, round(seconds)) if 0 < seconds < math.inf else 0
    if whole < 60:
        return f"{whole} s"
    if whole < 600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    minutes = round(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def progress_line(snapshot: Snapshot | None, elapsed: float, now: float) -> str:
    """The line shown for ``snapshot`` ``elapsed`` seconds into the task, at ``now`` (``time.time()``): the time left
    counts down from when the snapshot was taken. Without a snapshot, the module is still reading and planning."""
    if snapshot is None:
        return f"reading the tenant and planning, {duration_text(elapsed)} elapsed"
    if snapshot.waiting is not None:
        who = f" ({snapshot.holder})" if snapshot.holder else ""
        waited = snapshot.waiting + max(0.0, now - snapshot.at)
        return (
            f"waiting for another run of this tenant and application to finish its writes{who}, "
            f"{duration_text(waited)} so far (lock_timeout)"
        )
    left = max(0.0, snapshot.left - max(0.0, now - snapshot.at))
    return (
        f"{snapshot.done:,} of {snapshot.total:,} tokens done, {snapshot.writes:,} writes sent, "
        f"{snapshot.throttled:,} answered 429 (throttled), {duration_text(elapsed)} elapsed, "
        + ("finishing" if snapshot.done >= snapshot.total else f"about {duration_text(left)} left")
    )
