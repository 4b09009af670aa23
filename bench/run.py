"""The benchmark of tokenops.entra.hardware_oath_inventory (make bench; make bench-short), per docs/performance.md.

    .venv/core-2.19/bin/python bench/run.py            the full benchmark: bench/results.json, bench/plot.svg
    .venv/core-2.19/bin/python bench/run.py --short    a few dozen tokens, outcomes and request counts only
    .venv/core-2.19/bin/python bench/run.py --only 7   target 7 alone, at Graph's real write quota (make bench-quota)

Every scenario runs ansible-playbook end to end (bench/playbooks/) against the local simulator
(tests/simulator/serve.py) started with --latency-ms 25 and --write-quota 300/1.5 (3000/150, Graph's, for target 7,
counted as --quota-model and --throttled-requests say), on seeds generated on the fly.
Figures come from the wall clock around ansible-playbook and from the simulator's request log; the simulator's own
CPU time (GET /_admin/stats) is reported beside them, so that it is seen not to be what is measured.

This file reads the command line, runs the scenarios (scenarios.py), judges them against the table of targets
(targets.py) and reports (report.py).

Exit status: 0 when every run converged its tokens (and, with --short, every request count check passed; with
--strict, every target was met), 1 otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import report
from scenarios import (
    BENCH,
    CONCURRENCY,
    FULL,
    LATENCY_MS,
    QUOTA_MODELS,
    ROOT,
    SHORT,
    THROTTLED_REQUESTS,
    WRITE_QUOTA,
    Bench,
    Profile,
)
from targets import evaluate


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="a few dozen tokens: outcomes and request counts only")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated targets to run (default: all)")
    parser.add_argument(
        "--quota-model",
        choices=QUOTA_MODELS,
        default=QUOTA_MODELS[0],
        help="how the simulator counts the write quota of target 7 (its setting quota_model; default %(default)s)",
    )
    parser.add_argument(
        "--throttled-requests",
        choices=THROTTLED_REQUESTS,
        default=THROTTLED_REQUESTS[0],
        help="whether the simulator charges a request it refuses 429 to its quotas, for target 7 (its setting "
        "throttled_requests; default %(default)s)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions of each scenario (default 3, 1 with --short)")
    parser.add_argument("--work", type=Path, help="scratch directory (default .tmp/bench or .tmp/bench-short)")
    parser.add_argument("--results", type=Path, help="default bench/results.json (.tmp/bench-short/ with --short)")
    parser.add_argument("--plot", type=Path, help="default bench/plot.svg (none with --short)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument(
        "--profile", action="store_true", help="run the module under cProfile (SCRATCH/profiles/): for diagnosis only"
    )
    parser.add_argument("--verbose", action="store_true", help="ansible-playbook -vvv (tracebacks in SCRATCH/logs/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    # SIGTERM unwinds like Ctrl-C: the running playbook's process group is ended and the simulators are stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    profile = SHORT if args.short else FULL
    if args.repeat:
        profile = Profile(**{**profile.__dict__, "repeat": args.repeat, "quota_repeat": args.repeat})
    work = (args.work or ROOT / ".tmp" / ("bench-short" if args.short else "bench")).resolve()
    results_path = args.results or (work / "results.json" if args.short else BENCH / "results.json")
    plot_path = args.plot or (None if args.short else BENCH / "plot.svg")
    only = set(args.only.split(","))
    python = sys.executable
    bench = Bench(
        profile,
        python,
        work,
        cprofile=args.profile,
        verbose=args.verbose,
        quota_model=(args.quota_model, args.throttled_requests),
    )
    started = time.time()
    print(
        f"==> bench ({profile.name}): simulator --latency-ms {LATENCY_MS} --write-quota "
        f"{WRITE_QUOTA[0]}/{WRITE_QUOTA[1]:g} ({profile.quota[0]}/{profile.quota[1]:g} for target 7), concurrency "
        f"{CONCURRENCY}, {profile.repeat} run(s) each ({profile.quota_repeat} of target 7); scratch in {work}",
        flush=True,
    )
    machine_before = report.machine()
    bench.scenarios(only)
    machine_after = report.machine()
    rows = evaluate(bench.runs)
    report.publish(bench, rows, started, {"before": machine_before, "after": machine_after}, results_path, plot_path)
    if bench.problems:
        print(f"==> {len(bench.problems)} check(s) failed:", *bench.problems, sep="\n    ")
        return 1
    if args.strict and any(row.met() is False for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
