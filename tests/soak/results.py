"""The soak's figures and reports: per run and per phase from the simulator's request log, and the summary
(SCRATCH/results.json, SCRATCH/report.md) with every problem found."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

from analysis import round_trips


def figures(log: list[dict]) -> dict[str, int]:
    """What a set of log entries holds: round trips to Graph and batch items, writes, and the faults met."""
    graph = [e for e in log if e.get("kind") == "graph"]
    faults = [name for e in graph for name in e.get("faults") or []]
    return {
        "round_trips": sum(1 for e in round_trips(graph)),
        "batch_items": sum(1 for e in graph if "batch_request_id" in e),
        "writes": sum(1 for e in graph if e.get("write")),
        "answered_429": sum(1 for e in graph if e.get("status") == 429),
        "429_of_a_quota": sum(1 for e in graph if e.get("throttled")),
        "answered_503": sum(1 for e in graph if e.get("status") == 503),
        "reset": sum(1 for e in graph if e.get("reset") and not e.get("committed_status")),
        "commit_then_drop": sum(1 for name in faults if name.startswith("commit-then-drop")),
        "replayed": sum(1 for e in graph if e.get("verification") == "replayed"),
        "sessions": len({e["session"] for e in graph if e.get("session")}),
    }


def phase_line(result: dict[str, Any]) -> None:
    end = result["end_state"]
    runs = result["runs"]
    print(
        f"     {'PASSED' if result['passed'] else 'FAILED'}: {end['as_declared']}/{end['declared']} as declared, "
        f"{result['replayed']} replayed, {result['written_twice']['count']} written twice, "
        f"{len(result['side_by_side'])} side by side, {len(runs)} run(s) ({result['kills']} killed), "
        f"{result['requests']['round_trips']} round trips, {result['requests']['answered_429']} answered 429, "
        f"{result['wall_s']:.0f} s",
        flush=True,
    )
    for problem in result["problems"]:
        print(f"       - {problem}", flush=True)


def publish(
    profile: Any, world: Any, faults: Any, results: list[dict[str, Any]], seconds: float, work: Path
) -> dict[str, Any]:
    summary = {
        "profile": profile.__dict__,
        "tokens": profile.tokens,
        "kinds": world.kinds(),
        "faults": faults.__dict__,
        "passed": all(r["passed"] for r in results),
        "seconds": round(seconds, 1),
        "kills": sum(r["kills"] for r in results),
        "replayed": sum(r["replayed"] for r in results),
        "written_twice": sum(r["written_twice"]["count"] for r in results),
        # Ansible workers a kill of ansible-playbook's process group left running after their module ended.
        "workers_left_behind": sum(len(r["settle"]["left_behind"]) for r in results),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        # CPU time of the driver, and of the processes it waited for (the simulators, ansible-playbook and the modules
        # that ended under it; not those of killed runs that went on).
        "cpu_s": {
            "driver": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
            "waited_for": round(sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]), 1),
        },
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "phases": results,
    }
    (work / "results.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    (work / "report.md").write_text(markdown(summary), encoding="utf-8")
    verdict = "PASSED" if summary["passed"] else "FAILED"
    print(
        f"==> soak ({profile.name}) {verdict} in {seconds:.0f} s: {summary['kills']} kills, "
        f"{summary['replayed']} codes replayed, {summary['written_twice']} writes sent twice; "
        f"{work / 'report.md'}, {work / 'results.json'}",
        flush=True,
    )
    return summary


def markdown(summary: dict[str, Any]) -> str:
    faults = summary["faults"]
    lines = [
        f"# Soak of hardware_oath_inventory: {'passed' if summary['passed'] else 'FAILED'}",
        "",
        f"{summary['tokens']} declared tokens, fault seeds {', '.join(map(str, summary['profile']['seeds']))}, "
        f"{summary['kills']} kills, {summary['seconds']:.0f} s ({summary['when']}; "
        f"{summary['machine']['cpus']} CPUs, load {summary['machine']['load_average'][0]:.1f}; CPU time: the driver "
        f"{summary['cpu_s']['driver']:.0f} s, the processes it waited for {summary['cpu_s']['waited_for']:.0f} s).",
        "",
        "The work: " + ", ".join(f"{kind} {n}" for kind, n in summary["kinds"].items()) + ".",
        "",
        f"The faults, all at once: latency {faults['latency_ms']} ms ± {faults['jitter_ms']} ms; "
        f"{faults['throttled']:.0%} of requests answered 429 (every Retry-After form); {faults['unavailable']:.0%} "
        f"503; {faults['resets']:.0%} connections reset; {faults['commit_then_drop']:.0%} of writes committed then "
        f"dropped; reads {faults['read_after_write_delay_ms']} ms behind writes; write quota "
        f"{faults['write_quota'][0]}/{faults['write_quota'][1]:g} s; methods rate "
        + (f"{faults['methods_rate'][0]}/{faults['methods_rate'][1]:g} s." if faults["methods_rate"] else "off."),
        "",
        "| seed | phase | result | as declared | replayed | written twice | side by side | runs (killed) "
        "| round trips | 429 | 503 | resets | dropped after commit | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["phases"]:
        req, end = r["requests"], r["end_state"]
        lines.append(
            f"| {r['seed']} | {r['phase']} | {'passed' if r['passed'] else '**failed**'} | "
            f"{end['as_declared']}/{end['declared']} | {r['replayed']} | {r['written_twice']['count']} | "
            f"{len(r['side_by_side'])} | {len(r['runs'])} ({r['kills']}) | {req['round_trips']} | "
            f"{req['answered_429']} | {req['answered_503']} | {req['reset']} | {req['commit_then_drop']} | "
            f"{r['wall_s']:.0f} |"
        )
    group_kills = sum(1 for r in summary["phases"] for run in r["runs"] if (run["kill"] or {}).get("how") == "group")
    if group_kills:
        lines += [
            "",
            f"Ansible's own: after {summary['workers_left_behind']} of the {group_kills} kills of ansible-playbook's "
            "process group, Ansible's worker (in a session of its own) was still there when its module had ended, "
            "blocked writing its result to a pipe nobody reads; the soak ends them when each phase is over.",
        ]
    failed = [r for r in summary["phases"] if not r["passed"]]
    if failed:
        lines += ["", "## What went wrong", ""]
        for r in failed:
            lines.append(f"- seed {r['seed']}, {r['phase']}:")
            lines += [f"  - {problem}" for problem in r["problems"]]
    lines += [
        "",
        "## Runs",
        "",
        "Killed: how and when (seconds after the run started), and the writes its module had sent by then; after the "
        "kill: what a killed run's module went on sending (requests, writes, replayed codes); rows: the finished "
        "run's report rows, and how many failed. The figures of two runs started together are their phase's.",
        "",
        "| run | rc | seconds | killed | writes before the kill | after the kill | round trips | writes | 429 | "
        "replayed | rows, failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["phases"]:
        lines += [run_row(run) for run in r["runs"]]
    return "\n".join(lines) + "\n"


def run_row(run: dict[str, Any]) -> str:
    kill, after, out, req = run["kill"], run["after_kill"], run["outcomes"], run["requests"]
    cells = [
        run["label"],
        str(run["rc"]),
        str(run["seconds"]),
        f"{kill['how']} at {kill['at_s']:.1f} s" if kill else "",
        str(kill["writes_before"]) if kill else "",
        f"{after['requests']}, {after['writes']}, {after['replayed']}" if after else "",
    ]
    if run["sessions"]:
        cells += [str(req["round_trips"]), str(req["writes"]), str(req["answered_429"]), str(req["replayed"])]
    else:
        cells += ["", "", "", ""]
    cells.append(f"{out['rows']}, {out['failed']}" if out else "")
    return "| " + " | ".join(cells) + " |"
