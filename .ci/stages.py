"""The stages of ``make test`` (see the Makefile), standard library only.

    python3 .ci/stages.py run DIR NAME -- COMMAND...
        run one stage: its output kept in DIR/NAME.log and printed as one block when it ends, its times in
        DIR/NAME.json; exits with its status
    python3 .ci/stages.py table DIR
        the table of every stage run: when it started, its wall time, the CPU time of its processes, its result

Stages run side by side (make -j), so a stage's output is held back until it ends: blocks never interleave. The CPU
time is that of the processes the stage waited for (a server started in the background and stopped by a kill may be
missing), so that the next person sees which stages load the machine, not only which take long.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def run(directory: str, name: str, command: list[str]) -> int:
    os.makedirs(directory, exist_ok=True)
    log_path = os.path.join(directory, name + ".log")
    print(f"==> [{name}] started: {' '.join(command)}", flush=True)
    started = time.time()
    with open(log_path, "wb") as log:
        # close_fds=False: a make below shares make test's job slots through inherited descriptors.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, close_fds=False
        )
        _pid, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    code = os.waitstatus_to_exitcode(status)
    times = {
        "name": name,
        "started": started,
        "ended": ended,
        "cpu": usage.ru_utime + usage.ru_stime,
        "status": code,
    }
    with open(os.path.join(directory, name + ".json"), "w", encoding="utf-8") as handle:
        json.dump(times, handle)
    with open(log_path, "rb") as log:
        block = log.read()
    result = "passed" if code == 0 else f"FAILED (exit status {code})"
    sys.stdout.buffer.write(block + f"==> [{name}] {result} in {_clock(ended - started)}\n".encode())
    sys.stdout.flush()
    return 0 if code == 0 else 1


def table(directory: str) -> int:
    stages = []
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if entry.endswith(".json"):
            with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                stages.append(json.load(handle))
    if not stages:
        print("==> make test: no stage ran")
        return 0
    stages.sort(key=lambda stage: stage["started"])
    began = stages[0]["started"]
    ended = max(stage["ended"] for stage in stages)
    rows = [("stage", "start", "wall", "cpu", "result")]
    for stage in stages:
        rows.append(
            (
                stage["name"],
                _clock(stage["started"] - began),
                _clock(stage["ended"] - stage["started"]),
                _clock(stage["cpu"]),
                "passed" if stage["status"] == 0 else f"FAILED ({stage['status']})",
            )
        )
    rows.append(("make test", "", _clock(ended - began), _clock(sum(stage["cpu"] for stage in stages)), ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print("==> make test: the stages in the order they started (start: after the first one; cpu: of its processes)")
    for number, row in enumerate(rows):
        if number in (1, len(rows) - 1):
            print("    " + "  ".join("-" * width for width in widths))
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:4], widths[1:4])]
        print("    " + "  ".join(cells + [row[4]]).rstrip())
    return 0


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "run" and argv[3] == "--":
        return run(argv[1], argv[2], argv[4:])
    if len(argv) == 2 and argv[0] == "table":
        return table(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
