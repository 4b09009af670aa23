"""The benchmark's report: the table of the targets, the simulator's share and where the time went (printed),
results.json (every run, with the machine it ran on) and the plot of tokens converged over time."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import analysis
import svgplot
from scenarios import CONCURRENCY, LATENCY_MS, ROOT, WRITE_QUOTA, Bench, Profile, fault_spec
from targets import Row, Runs, median, median_run


# ---------------------------------------------------------------------- the printed tables
def simulator_table(runs: Runs) -> list[dict]:
    """Per scenario (medians over its runs): the simulator's CPU beside the run's, and where the wall time went."""
    out = []
    for scenario, items in sorted(runs.items()):
        run = median_run(items) or {}
        out.append(
            {
                "scenario": scenario,
                "runs": len(items),
                "wall_median_s": median([r["wall_s"] for r in items]),
                "round_trips_median": median([r["round_trips"] for r in items]),
                "simulator_cpu_s_median": median([r["simulator"]["cpu_s"] for r in items]),
                "simulator_share_of_wall_median": median([r["simulator"]["share_of_wall"] for r in items]),
                "simulator_share_of_cpu_median": median([r["simulator"]["share_of_cpu"] for r in items]),
                "ansible_cpu_s_median": median([r["ansible_cpu_s"] for r in items]),
                "module_cpu_s_median": median([r["module_cpu_s"] for r in items if r["module_cpu_s"] is not None]),
                "module_peak_rss_mb_max": max((r["module_peak_rss_mb"] or 0 for r in items), default=0) or None,
                "phases_of_median_run": run.get("phases", {}),
            }
        )
    return out


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit in ("MB", "x"):
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def print_tables(rows: list[Row], sims: list[dict], timed: bool) -> None:
    lines: list[tuple[str, ...]] = [("target", "figure", "min", "median/worst", "limit", "ratio", "met", "")]
    for row in rows:
        data = row.as_json(timed)
        met = {None: "-", True: "yes", False: "NO"}[data["met"]]
        unit = data["unit"]
        limit = f"{data['comparison']} {_cell(data['limit'], unit)}" if data["limit"] is not None else "-"
        ratio = f"{data['ratio']:.2f}" if data["ratio"] is not None else "-"
        lines.append(
            (
                data["target"],
                data["what"],
                _cell(data["min"], unit),
                _cell(data["figure"], unit),
                limit,
                ratio,
                met,
                data["note"] or ("not run" if not row.values else ""),
            )
        )
    _print_aligned(lines)
    print("\n==> the simulator's share, and where the wall time of the median run went (seconds)")
    lines = [
        (
            "scenario",
            "wall",
            "simulator CPU",
            "of a core",
            "of all CPU",
            "module CPU",
            "peak RSS",
            "before module",
            "module start",
            "requests",
            "module end",
            "after module",
        )
    ]
    for s in sims:
        p = s["phases_of_median_run"]
        lines.append(
            (
                s["scenario"],
                f"{s['wall_median_s']:.2f}",
                f"{s['simulator_cpu_s_median']:.2f}",
                f"{s['simulator_share_of_wall_median']:.0%}",
                f"{s['simulator_share_of_cpu_median']:.0%}",
                _cell(s["module_cpu_s_median"], ""),
                _cell(s["module_peak_rss_mb_max"], "MB"),
                *(
                    _cell(p.get(k), "")
                    for k in (
                        "controller_before_module",
                        "module_before_first_request",
                        "requests",
                        "module_after_last_answer",
                        "controller_after_module",
                    )
                ),
            )
        )
    _print_aligned(lines)


def _print_aligned(lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


# ---------------------------------------------------------------------- plot
def plot(runs: Runs, profile: Profile, path: Path) -> None:
    """Tokens converged over time against the quota line: the median run of targets 1, 5, 6 and 7."""
    panels = [
        writes_panel(run, title.format(n=run["tokens"]), writes, seconds)
        for key, title, (writes, seconds) in (
            ("1", "1. converge {n:,} new tokens", WRITE_QUOTA),
            ("5", "5. {n:,} new tokens, 20 % of writes answered 429", WRITE_QUOTA),
        )
        if (run := median_run(runs.get(key, []))) is not None
    ]
    run = median_run(runs.get("6", []))
    if run is not None:
        burst, seconds = profile.methods_rate
        timeline = analysis.timeline(run["log"], run["began"])
        first = timeline["methods"][0][0] if timeline["methods"] else 0.0
        panel = svgplot.Panel(
            f"6. activate {run['tokens']} tokens under methods_rate {burst}/{seconds:g}", y_label="tokens activated"
        )
        panel.series.append(("tokens activated", list(timeline["activated"])))
        answered = sorted(
            analysis.finished(e) - run["began"] for e in analysis.methods_requests(run["log"]) if e["status"] == 429
        )
        if answered:
            panel.series.append(("answered 429", [(t, n + 1) for n, t in enumerate(answered)]))
        panel.lines.append(
            (f"methods quota: {burst} + {burst / seconds:g}/s", first, burst, burst / seconds, run["wall_s"])
        )
        panel.marks.append(("playbook ends", run["wall_s"]))
        panels.append(panel)
    run = median_run(runs.get("7", []))
    if run is not None:
        title = f"7. converge {run['tokens']:,} new tokens at Graph's write quota, counted as {run['quota']['model']}"
        panels.append(writes_panel(run, title, *profile.quota))
    if panels:
        path.write_text(svgplot.render(panels, "hardware_oath_inventory: tokens converged over time"), encoding="utf-8")


def writes_panel(run: dict, title: str, writes: int, seconds: float) -> svgplot.Panel:
    """Tokens activated, writes served and writes answered 429 over time, against the line of a write quota of
    ``writes`` per ``seconds`` from the first write."""
    rate = writes / seconds
    timeline = analysis.timeline(run["log"], run["began"])
    panel = svgplot.Panel(title, y_label="tokens / writes")
    panel.series.append(("tokens activated", list(timeline["activated"])))
    panel.series.append(("writes served\n(a bulk creation is one)", list(timeline["writes"])))
    answered = sorted(
        analysis.finished(e) - run["began"] for e in run["log"] if e.get("status") == 429 and e.get("write")
    )
    if answered:
        panel.series.append(("writes answered 429", [(t, n + 1) for n, t in enumerate(answered)]))
    first_write = run["timeline"]["first_write"] or 0.0
    panel.lines.append(
        (f"write quota: {writes} + {rate:g}/s\nfrom the first write", first_write, writes, rate, run["wall_s"])
    )
    panel.marks.append(("playbook ends", run["wall_s"]))
    return panel


# ---------------------------------------------------------------------- results.json
def machine() -> dict[str, Any]:
    """Where the figures come from: the commit and how many files of plugins/ differ from it, the CPUs, the load
    average and the Python."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "plugins"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        commit, changed = None, []
    return {
        "commit": commit,
        "plugins_files_changed_since_commit": len(changed),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def plugins_version(machine_info: dict[str, Any]) -> tuple[str | None, int]:
    """The commit and how many files of plugins/ differ from it: the version of the module measured."""
    return machine_info["commit"], machine_info["plugins_files_changed_since_commit"]


def publish(
    bench: Bench,
    rows: list[Row],
    started: float,
    machines: dict[str, dict[str, Any]],
    results_path: Path,
    plot_path: Path | None,
) -> None:
    """Print the tables, write results.json and (unless ``plot_path`` is None) the plot. ``machines`` is
    ``machine()`` before and after the scenarios."""
    profile = bench.profile
    if plugins_version(machines["before"]) != plugins_version(machines["after"]):
        print("==> WARNING: plugins/ changed during the benchmark (commit or working tree): figures mix versions")
    sims = simulator_table(bench.runs)
    print(f"\n==> bench ({profile.name}) took {time.time() - started:.0f} s; targets (ratio = figure / limit):")
    print_tables(rows, sims, profile.timed)
    results = {
        "profile": profile.__dict__,
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "machine": machines,
        "settings": {
            "latency_ms": LATENCY_MS,
            "write_quota": f"{WRITE_QUOTA[0]}/{WRITE_QUOTA[1]:g}",
            "write_quota_7": f"{profile.quota[0]}/{profile.quota[1]:g}",
            "quota_model_7": {"quota_model": bench.quota_model[0], "throttled_requests": bench.quota_model[1]},
            "methods_rate": f"{profile.methods_rate[0]}/{profile.methods_rate[1]:g}",
            "concurrency": CONCURRENCY,
            "fault": fault_spec(seed=0)["rules"],
        },
        "targets": [row.as_json(profile.timed) for row in rows],
        "simulator_share": sims,
        "problems": bench.problems,
        "runs": {
            k: [{key: v for key, v in r.items() if key != "log"} for r in items] for k, items in bench.runs.items()
        },
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    if plot_path:
        plot(bench.runs, profile, plot_path)
    print(f"\n==> results: {results_path}" + (f", plot: {plot_path}" if plot_path else ""))
