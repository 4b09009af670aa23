"""The benchmark of tokenops.entra.hardware_oath_inventory (make bench; make bench-short), per docs/performance.md.

    .venv/core-2.19/bin/python bench/run.py            the full benchmark: bench/results.json, bench/plot.svg
    .venv/core-2.19/bin/python bench/run.py --short    a few dozen tokens, outcomes and request counts only

Every scenario runs ansible-playbook end to end (bench/playbooks/) against the local simulator
(tests/simulator/serve.py) started with --latency-ms 25 and --write-quota 300/1.5, on seeds generated on the fly.
Figures come from the wall clock around ansible-playbook and from the simulator's request log; the simulator's own
CPU time (GET /_admin/stats) is reported beside them, so that it is seen not to be what is measured.

Exit status: 0 when every run converged its tokens (and, with --short, every request count check passed; with
--strict, every target was met), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import analysis
import seeds
import svgplot
from simctl import Simulator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PLAYBOOKS = BENCH / "playbooks"
LATENCY_MS = 25
WRITE_QUOTA = (300, 1.5)  # the simulator's --write-quota and the task's write_quota (Graph's 3000/150, scaled 10x)
CONCURRENCY = 8  # the module's default
FAULT_SHARE = 0.2
MODULE_SCRIPT = "AnsiballZ_hardware_oath_inventory"


@dataclass(frozen=True)
class Profile:
    name: str
    new: int  # targets 1, 2, 5: tokens to create, assign and activate
    big: int  # target 3: tokens (and users) already converged
    loop: int  # target 4: tokens converged by the loop of single-token modules
    methods: int  # target 6: tokens to activate under the methods rate
    methods_rate: tuple[int, float]
    repeat: int
    timed: bool


FULL = Profile("full", new=1000, big=10000, loop=50, methods=200, methods_rate=(50, 10.0), repeat=3, timed=True)
SHORT = Profile("short", new=40, big=300, loop=2, methods=20, methods_rate=(10, 2.0), repeat=1, timed=False)

WRAPPER = """#!{python} -S
# Written by bench/run.py: the module's interpreter. Runs the real one as its only child and records that child's
# peak RSS and CPU time (wait4: the rusage of that one process) and when it started and ended, then exits with its
# status. With BENCH_PROFILE_DIR set (bench/run.py --profile), the child runs under cProfile.
import json, os, sys, time
began = time.time()
argv = [{python!r}] + sys.argv[1:]
if os.environ.get("BENCH_PROFILE_DIR") and any("AnsiballZ_" in arg for arg in argv):
    profile = os.path.join(os.environ["BENCH_PROFILE_DIR"], "module-%d.prof" % os.getpid())
    boot = ("import cProfile, runpy, sys; profiler = cProfile.Profile(); sys.argv = sys.argv[1:]\\n"
            "try:\\n    profiler.runcall(runpy.run_path, sys.argv[0], run_name='__main__')\\n"
            "finally:\\n    profiler.dump_stats(%r)" % profile)
    argv = [{python!r}, "-c", boot] + sys.argv[1:]
pid = os.fork()
if pid == 0:
    os.execv({python!r}, argv)
_, status, usage = os.wait4(pid, 0)
with open({out!r}, "a") as handle:
    handle.write(json.dumps({{"argv": sys.argv[1:], "maxrss_kb": usage.ru_maxrss, "began": began,
                             "ended": time.time(), "cpu_s": usage.ru_utime + usage.ru_stime}}) + "\\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Bench:
    def __init__(
        self, profile: Profile, python: str, work: Path, cprofile: bool = False, verbose: bool = False
    ) -> None:
        self.profile = profile
        self.cprofile = cprofile
        self.verbose = verbose
        self.python = python
        self.ansible_playbook = str(Path(python).parent / "ansible-playbook")
        self.work = work
        for sub in ("vars", "records", "logs", "seeds", "tmp"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(work / "vars", 0o700)
        collections = work / "collections" / "ansible_collections" / "tokenops"
        collections.mkdir(parents=True, exist_ok=True)
        link = collections / "entra"
        if not link.is_symlink():
            link.symlink_to(ROOT)
        self.rss_file = work / "rss.jsonl"
        self.wrapper = work / "module-python"
        self.wrapper.write_text(WRAPPER.format(python=python, out=str(self.rss_file)), encoding="utf-8")
        self.wrapper.chmod(0o755)
        self.runs: dict[str, list[dict]] = {}
        self.problems: list[str] = []

    # ------------------------------------------------------------------ one ansible-playbook run
    def env(self, record: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.work / "collections"),
            ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="bench_record",
            BENCH_RECORD=str(record),
            ANSIBLE_LOCAL_TEMP=str(self.work / "tmp" / "local"),
            ANSIBLE_REMOTE_TMP=str(self.work / "tmp" / "remote"),
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="false",
        )
        env.setdefault("ANSIBLE_HOME", str(self.work / "ansible-home"))
        if self.cprofile:
            (self.work / "profiles").mkdir(exist_ok=True)
            env["BENCH_PROFILE_DIR"] = str(self.work / "profiles")
        return env

    def playbook(
        self, sim: Simulator, name: str, tokens: list[dict], label: str, *, timeout: float, extra: dict | None = None
    ) -> dict[str, Any]:
        """Run bench/playbooks/NAME against ``sim``; returns the run's figures (see :func:`summarise`)."""
        info = sim.info
        variables = {
            "bench_tenant_id": info["tenant_id"],
            "bench_client_id": seeds.CLIENT_ID,
            "bench_client_secret": seeds.CLIENT_SECRET,
            "bench_authority_host": info["authority_host"],
            "bench_graph_endpoint": info["graph_url"],
            "bench_ca_path": info["ca_bundle"],
            "bench_concurrency": CONCURRENCY,
            "bench_tokens": tokens,
            **(extra or {}),
        }
        vars_file = self.work / "vars" / f"{label}.json"
        fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(variables, handle)
        record = self.work / "records" / f"{label}.json"
        record.unlink(missing_ok=True)
        command = [self.ansible_playbook, str(PLAYBOOKS / name), "-e", f"@{vars_file}"] + (
            ["-vvv"] if self.verbose else []
        )
        if name == "inventory.yml":  # the module's interpreter through the wrapper that records its peak RSS
            command += ["-e", f"ansible_python_interpreter={self.wrapper}"]
        rss_offset = self.rss_file.stat().st_size if self.rss_file.exists() else 0
        stats_before = sim.stats()
        since = sim.seen_seq
        load = round(os.getloadavg()[0], 2)
        log_path = self.work / "logs" / f"{label}.log"
        with open(log_path, "wb") as output:
            began = time.time()
            clock = time.monotonic()
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                command, stdout=output, stderr=subprocess.STDOUT, env=self.env(record), start_new_session=True
            )
            timer = threading.Timer(timeout, kill_tree, (proc.pid,))
            timer.start()
            try:
                _pid, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # the driver is stopped (SIGTERM, Ctrl-C): stop the run too
                kill_tree(proc.pid)
                os.wait4(proc.pid, 0)
                raise
            finally:
                timer.cancel()
            wall = time.monotonic() - clock
            proc.returncode = os.waitstatus_to_exitcode(status)
        stats_after = sim.stats()
        log = sim.requests(since)
        if log:
            sim.seen_seq = log[-1]["seq"]
        # The run's request log, for diagnosis (no secret: the simulator logs no body and no credential).
        (self.work / "logs" / f"{label}.requests.json").write_text(json.dumps(log), encoding="utf-8")
        module = self._module_usage(rss_offset)
        tasks = json.loads(record.read_text(encoding="utf-8"))["tasks"] if record.exists() else []
        run = summarise(log, began, wall)
        run.update(
            label=label,
            playbook=name,
            tokens=len(tokens),
            rc=proc.returncode,
            timed_out=wall >= timeout,
            output=str(log_path.relative_to(self.work)),
            tasks=[
                {
                    "name": task["name"],
                    "seconds": round(task["end"] - task["start"], 3) if task.get("end") else None,
                    "status": task.get("status"),
                    "result": task.get("result"),
                }
                for task in tasks
            ],
            ansible_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
            module_peak_rss_mb=round(module["maxrss_kb"] / 1024, 1) if module else None,
            module_cpu_s=round(module["cpu_s"], 3) if module else None,
            load_average=load,
        )
        run["phases"] = phases(run, module, began)
        sim_cpu = stats_after["cpu_seconds"]["total"] - stats_before["cpu_seconds"]["total"]
        run["simulator"] = {
            "cpu_s": round(sim_cpu, 3),
            "handling_cpu_s": round(
                stats_after["cpu_seconds"]["handling"] - stats_before["cpu_seconds"]["handling"], 3
            ),
            "share_of_wall": round(sim_cpu / wall, 3) if wall else None,
            "share_of_cpu": round(sim_cpu / (sim_cpu + run["ansible_cpu_s"]), 3),
        }
        return run

    def _module_usage(self, offset: int) -> dict | None:
        if not self.rss_file.exists():
            return None
        with open(self.rss_file, encoding="utf-8") as handle:
            handle.seek(offset)
            lines = [json.loads(line) for line in handle if line.strip()]
        found = [u for u in lines if any(MODULE_SCRIPT in arg for arg in u["argv"])]
        return found[-1] if found else None

    # ------------------------------------------------------------------ checks
    def expect(self, ok: bool, what: str) -> bool:
        if not ok:
            self.problems.append(what)
            print(f"    CHECK FAILED: {what}", flush=True)
        return ok

    def converged(self, sim: Simulator, run: dict, tokens: list[dict]) -> None:
        """Every declared token activated for its declared user; the playbook succeeded."""
        state = sim.tokens()
        wrong = []
        for entry in tokens:
            token = state.get(entry["serial_number"])
            holder = ((token or {}).get("assigned_to") or {}).get("user_principal_name") or ""
            if token is None or token["status"] != "activated" or holder.lower() != entry["user"].lower():
                wrong.append(entry["serial_number"])
        run["converged"] = len(tokens) - len(wrong)
        self.expect(run["rc"] == 0, f"{run['label']}: ansible-playbook exited {run['rc']} (see {run['output']})")
        self.expect(not wrong, f"{run['label']}: {len(wrong)} token(s) not activated for their user: {wrong[:5]}")

    def record(self, scenario: str, run: dict) -> dict:
        self.runs.setdefault(scenario, []).append(run)
        sim = run["simulator"]
        rss = f", module peak RSS {run['module_peak_rss_mb']} MB" if run["module_peak_rss_mb"] else ""
        print(
            f"  {run['label']}: {run['wall_s']:.2f} s end to end (rc {run['rc']}), {run['round_trips']} round trips, "
            f"{run['writes_served']} writes, {run['throttled']['total']} answered 429; simulator CPU "
            f"{sim['cpu_s']:.2f} s ({sim['share_of_wall']:.0%} of a core){rss}",
            flush=True,
        )
        return run

    # ------------------------------------------------------------------ scenarios
    def scenarios(self, only: set[str]) -> None:
        p = self.profile
        new = seeds.declared("BENCH", p.new)
        quota = f"{WRITE_QUOTA[0]}/{WRITE_QUOTA[1]:g}"
        options = ["--latency-ms", str(LATENCY_MS), "--write-quota", quota]
        if only & {"1", "2", "4", "5"}:
            seed = seeds.write_seed(self.work / "seeds" / "tenant.yml", users=p.new)
            with Simulator(self.python, seed, self.work / "sim-main", options) as sim:
                self.converge_and_rerun(sim, new)
                if "5" in only:
                    self.faulted(sim, new)
                if "4" in only:
                    self.loop(sim, new[: p.loop])
        if "6" in only:
            tokens = seeds.declared("ASSIGNED", p.methods)
            seed = seeds.write_seed(
                self.work / "seeds" / "assigned.yml", users=p.methods, tokens=tokens, status="assigned"
            )
            rate = f"{p.methods_rate[0]}/{p.methods_rate[1]:g}"
            with Simulator(self.python, seed, self.work / "sim-methods", [*options, "--methods-rate", rate]) as sim:
                self.methods_rate(sim, tokens)
        if "3" in only:
            tokens = seeds.declared("HELD", p.big)
            seed = seeds.write_seed(self.work / "seeds" / "big.yml", users=p.big, tokens=tokens)
            with Simulator(self.python, seed, self.work / "sim-big", options) as sim:
                self.nothing_to_do(sim, tokens)

    def converge_and_rerun(self, sim: Simulator, tokens: list[dict]) -> None:
        print(f"==> 1, 2: converge {len(tokens)} new tokens in one task, then run it again", flush=True)
        for rep in range(self.profile.repeat):
            sim.reset()
            run = self.playbook(sim, "inventory.yml", tokens, f"1-converge-{rep + 1}", timeout=600)
            self.converged(sim, run, tokens)
            self.record("1", run)
            expected = math.ceil(len(tokens) / 100) + len(tokens)
            self.expect(
                run["writes_served"] <= expected,
                f"{run['label']}: {run['writes_served']} writes served, expected at most {expected} "
                "(one bulk creation per 100 tokens, one activation per token)",
            )
            again = self.playbook(sim, "inventory.yml", tokens, f"2-rerun-{rep + 1}", timeout=300)
            self.converged(sim, again, tokens)
            self.record("2", again)
            self.expect(again["writes_served"] == 0, f"{again['label']}: {again['writes_served']} writes on a re-run")
            self.expect(not task_changed(again), f"{again['label']}: the re-run reported a change")
            if not self.profile.timed:
                self.expect(again["round_trips"] <= 15, f"{again['label']}: {again['round_trips']} round trips > 15")

    def faulted(self, sim: Simulator, tokens: list[dict]) -> None:
        print(f"==> 5: {len(tokens)} new tokens with {FAULT_SHARE:.0%} of write requests answered 429", flush=True)
        for rep in range(self.profile.repeat):
            sim.reset()
            sim.admin("POST", "faults", fault_spec(seed=rep + 1))
            run = self.playbook(sim, "inventory.yml", tokens, f"5-faulted-{rep + 1}", timeout=900)
            self.converged(sim, run, tokens)
            self.record("5", run)
        sim.admin("DELETE", "faults")

    def loop(self, sim: Simulator, tokens: list[dict]) -> None:
        print(
            f"==> 4: the loop of hardware_oath_token + hardware_oath_assignment over {len(tokens)} tokens", flush=True
        )
        cache = self.work / "token-cache.json"
        for rep in range(self.profile.repeat):
            sim.reset()
            cache.unlink(missing_ok=True)
            run = self.playbook(
                sim, "loop.yml", tokens, f"4-loop-{rep + 1}", timeout=1200, extra={"bench_token_cache": str(cache)}
            )
            self.converged(sim, run, tokens)
            self.record("4", run)

    def methods_rate(self, sim: Simulator, tokens: list[dict]) -> None:
        burst, seconds = self.profile.methods_rate
        print(f"==> 6: activate {len(tokens)} assigned tokens under methods_rate {burst}/{seconds:g}", flush=True)
        for rep in range(self.profile.repeat):
            sim.reset()
            run = self.playbook(sim, "inventory.yml", tokens, f"6-methods-{rep + 1}", timeout=900)
            self.converged(sim, run, tokens)
            served = [e for e in analysis.methods_requests(run["log"]) if e.get("status") not in (None, 429)]
            run["methods"] = {
                "requests": len(analysis.methods_requests(run["log"])),
                "served": len(served),
                "answered_429": run["throttled"]["methods"],
                "rate_bound_s": round(analysis.quota_bound(len(served), burst, burst / seconds), 3),
            }
            self.record("6", run)
            self.expect(
                len(served) == len(tokens),
                f"{run['label']}: {len(served)} requests under users' methods served, expected {len(tokens)}",
            )

    def nothing_to_do(self, sim: Simulator, tokens: list[dict]) -> None:
        print(f"==> 3: {len(tokens)} tokens for {len(tokens)} users, nothing to do", flush=True)
        for rep in range(self.profile.repeat):
            run = self.playbook(sim, "inventory.yml", tokens, f"3-held-{rep + 1}", timeout=600)
            self.converged(sim, run, tokens)
            self.record("3", run)
            self.expect(run["writes_served"] == 0, f"{run['label']}: {run['writes_served']} writes, nothing to do")
            self.expect(not task_changed(run), f"{run['label']}: reported a change with nothing to do")
            if not self.profile.timed:
                self.expect(run["round_trips"] <= 60, f"{run['label']}: {run['round_trips']} round trips > 60")


def kill_tree(pid: int) -> None:
    """End a run: ``pid`` (ansible-playbook, the leader of its own process group) and every process below it. Its
    workers call setsid, so the group alone would leave them and the module running."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def phases(run: dict, module: dict | None, began: float) -> dict[str, float | None]:
    """Where the wall time went (seconds): the controller before the module started, the module before its first
    request (imports, argument validation), the requests (first received to last answered), the module after its last
    answer (planning is before; this is the result: exit_json), the controller after the module ended."""
    first, last = run["timeline"]["first"], run["timeline"]["last"]
    if module is None or first is None or last is None:
        return {}
    module_began, module_ended = module["began"] - began, module["ended"] - began
    return {
        "controller_before_module": round(module_began, 3),
        "module_before_first_request": round(first - module_began, 3),
        "requests": round(last - first, 3),
        "module_after_last_answer": round(module_ended - last, 3),
        "controller_after_module": round(run["wall_s"] - module_ended, 3),
    }


def task_changed(run: dict) -> bool:
    return any((task.get("result") or {}).get("changed") for task in run["tasks"])


def fault_spec(seed: int) -> dict:
    """FAULT_SHARE of Graph write requests (POST, PATCH, DELETE; not the $batch envelope, which only reads) answered
    429 with Retry-After: 1, before they are processed."""
    action = {"type": "status", "status": 429, "retry_after": 1}
    return {
        "rules": [
            {
                "name": f"write-429-{method.lower()}",
                "match": {"kind": "graph", "method": method, "path": r"^/beta/(?!\$batch$)"},
                "probability": FAULT_SHARE,
                "action": action,
            }
            for method in ("POST", "PATCH", "DELETE")
        ],
        "seed": seed,
    }


def summarise(log: list[dict], began: float, wall: float) -> dict[str, Any]:
    """A run's figures from the request log: round trips, writes, the critical path, in-flight requests, gaps."""
    span = analysis.span(log)
    trips = analysis.round_trips(log)
    critical = analysis.critical_path(log, CONCURRENCY)
    served = analysis.writes_served(log)
    quota_s = analysis.quota_bound(len(served), WRITE_QUOTA[0], WRITE_QUOTA[0] / WRITE_QUOTA[1])
    path_s = critical["critical"] * LATENCY_MS / 1000

    def relative(value: float | None) -> float | None:
        return None if value is None else round(value - began, 3)

    return {
        "wall_s": round(wall, 3),
        "began": began,
        "round_trips": len(trips),
        "round_trips_by_kind": {kind: sum(1 for e in trips if e["kind"] == kind) for kind in analysis.ROUND_TRIP_KINDS},
        "writes_served": len(served),
        "throttled": analysis.throttled(log),
        "critical_path": critical,
        "bound": {
            "writes_beyond_burst_s": round(quota_s, 3),
            "critical_path_s": round(path_s, 3),
            "bound_s": round(max(quota_s, path_s), 3),
        },
        "timeline": {key: relative(value) for key, value in span.items()},
        "in_flight": {
            "all": analysis.in_flight(log),
            "per_token": analysis.in_flight(log, lambda e: bool(analysis.PER_TOKEN.search(e["path"]))),
        },
        "gaps": analysis.gaps(log),
        "per_path": analysis.per_path(log),
        "log": log,
    }


# ---------------------------------------------------------------------- targets
@dataclass
class Row:
    """One target figure: min and median over the repetitions (or the worst run, for counts and memory), its limit,
    the ratio figure / limit, and whether it is met: a ratio of at most 1 for a "<=" target, at least 1 for ">="."""

    target: str
    what: str
    unit: str
    limit: float | None
    values: list[float]
    at_least: bool = False
    worst: bool = False  # the figure is the worst run's, not the median
    note: str = ""
    timed: bool = True  # a timing figure: not judged in the short run

    def figure(self) -> float | None:
        if not self.values:
            return None
        if self.worst:
            return min(self.values) if self.at_least else max(self.values)
        return median(self.values)

    def ratio(self) -> float | None:
        figure = self.figure()
        return None if figure is None or not self.limit else figure / self.limit

    def met(self, judged: bool = True) -> bool | None:
        ratio = self.ratio()
        if ratio is None or not judged:
            return None
        return ratio >= 1 if self.at_least else ratio <= 1

    def as_json(self, timed_profile: bool) -> dict[str, Any]:
        judged = timed_profile or not self.timed
        return {
            "target": self.target,
            "what": self.what,
            "unit": self.unit,
            "min": min(self.values) if self.values else None,
            "median": median(self.values),
            "figure": self.figure(),
            "figure_is": "worst run" if self.worst else "median",
            "limit": self.limit,
            "comparison": ">=" if self.at_least else "<=",
            "ratio": self.ratio(),
            "met": self.met(judged),
            "note": self.note if judged else "not judged in the short run (not timed)",
        }


def evaluate(runs: dict[str, list[dict]]) -> list[Row]:
    def walls(key: str) -> list[float]:
        return [r["wall_s"] for r in runs.get(key, [])]

    def count(key: str) -> int:
        return runs[key][0]["tokens"] if runs.get(key) else 0

    rows: list[Row] = []
    one = runs.get("1", [])
    bound = median([r["bound"]["bound_s"] for r in one])
    note = ""
    if one:
        b = median_run(one)["bound"]  # type: ignore[index]
        note = (
            f"bound {bound:.2f} s = max(writes beyond the burst / rate {b['writes_beyond_burst_s']:.2f} s, "
            f"critical path {b['critical_path_s']:.2f} s); limit 1.3 x bound + 3 s"
        )
    rows.append(
        Row(
            "1",
            f"converge {count('1'):,} new tokens, end to end",
            "s",
            1.3 * bound + 3 if bound is not None else None,
            walls("1"),
            note=note,
        )
    )
    rows.append(
        Row(
            "2a",
            f"re-run {count('2'):,}, round trips",
            "",
            15,
            [r["round_trips"] for r in runs.get("2", [])],
            worst=True,
            timed=False,
        )
    )
    rows.append(Row("2b", f"re-run {count('2'):,}, end to end", "s", 4, walls("2")))
    three = runs.get("3", [])
    rows.append(
        Row(
            "3a",
            f"{count('3'):,} held, round trips",
            "",
            60,
            [r["round_trips"] for r in three],
            worst=True,
            timed=False,
        )
    )
    rows.append(Row("3b", f"{count('3'):,} held, end to end", "s", 10, walls("3")))
    rows.append(
        Row(
            "3c",
            f"{count('3'):,} held, module peak RSS",
            "MB",
            150,
            [r["module_peak_rss_mb"] for r in three if r["module_peak_rss_mb"]],
            worst=True,
        )
    )
    four = runs.get("4", [])
    speedups, note = [], ""
    if four and one:
        inventory = median([r["wall_s"] / r["tokens"] for r in one]) or 1.0
        speedups = [r["wall_s"] / r["tokens"] / inventory for r in four]
        loop = median([r["wall_s"] / r["tokens"] for r in four]) or 0.0
        note = (
            f"per token: loop {loop:.3f} s ({count('4')} tokens, 2 module runs each) vs hardware_oath_inventory "
            f"{inventory * 1000:.1f} ms ({count('1'):,} tokens)"
        )
    rows.append(Row("4", "speed-up per token over the loop", "x", 100, speedups, at_least=True, note=note))
    five = runs.get("5", [])
    if five:
        complete = [float(r["rc"] == 0 and r.get("converged") == r["tokens"]) for r in five]
        rows.append(
            Row(
                "5a",
                "20 % of writes 429: share of runs converging every token",
                "",
                1.0,
                complete,
                at_least=True,
                worst=True,
                timed=False,
                note=f"{int(sum(complete))} of {len(five)} runs",
            )
        )
        unfaulted = median(walls("1"))
        rows.append(
            Row(
                "5b",
                f"20 % of writes 429, {count('5'):,} new tokens, end to end",
                "s",
                2 * unfaulted if unfaulted else None,
                walls("5"),
                note=f"limit 2 x the unfaulted median {unfaulted:.2f} s" if unfaulted else "",
            )
        )
    six = runs.get("6", [])
    if six:
        rate_bound = median([r["methods"]["rate_bound_s"] for r in six])
        rows.append(
            Row(
                "6a",
                f"activate {count('6')} under methods_rate, end to end",
                "s",
                1.25 * (rate_bound or 0),
                walls("6"),
                note=f"rate bound {rate_bound:.1f} s; limit 1.25 x bound",
            )
        )
        shares = [r["methods"]["answered_429"] / max(1, r["methods"]["requests"]) for r in six]
        rows.append(Row("6b", "methods requests answered 429 (share)", "%", 0.10, shares))
    return rows


def simulator_table(runs: dict[str, list[dict]]) -> list[dict]:
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
        limit = f"{data['comparison']} {_cell(row.limit, row.unit)}" if row.limit is not None else "-"
        ratio = f"{data['ratio']:.2f}" if data["ratio"] is not None else "-"
        lines.append(
            (
                row.target,
                row.what,
                _cell(data["min"], row.unit),
                _cell(data["figure"], row.unit),
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
def plot(runs: dict[str, list[dict]], profile: Profile, path: Path) -> None:
    """Tokens converged over time against the quota line: the median run of targets 1, 5 and 6."""
    panels = []
    rate = WRITE_QUOTA[0] / WRITE_QUOTA[1]
    for key, title in (
        ("1", "1. converge {n:,} new tokens"),
        ("5", "5. {n:,} new tokens, 20 % of writes answered 429"),
    ):
        run = median_run(runs.get(key, []))
        if run is None:
            continue
        timeline = analysis.timeline(run["log"], run["began"])
        first_write = run["timeline"]["first_write"] or 0.0
        panel = svgplot.Panel(title.format(n=run["tokens"]), y_label="tokens / writes")
        panel.series.append(("tokens activated", list(timeline["activated"])))
        panel.series.append(("writes served\n(a bulk creation is one)", list(timeline["writes"])))
        answered = sorted(
            analysis.finished(e) - run["began"] for e in run["log"] if e.get("status") == 429 and e.get("write")
        )
        if answered:
            panel.series.append(("writes answered 429", [(t, n + 1) for n, t in enumerate(answered)]))
        panel.lines.append(
            (
                f"write quota: {WRITE_QUOTA[0]} + {rate:g}/s\nfrom the first write",
                first_write,
                WRITE_QUOTA[0],
                rate,
                run["wall_s"],
            )
        )
        panel.marks.append(("playbook ends", run["wall_s"]))
        panels.append(panel)
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
    if panels:
        path.write_text(svgplot.render(panels, "hardware_oath_inventory: tokens converged over time"), encoding="utf-8")


def median_run(items: list[dict]) -> dict | None:
    if not items:
        return None
    return sorted(items, key=lambda r: r["wall_s"])[len(items) // 2]


# ---------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="a few dozen tokens: outcomes and request counts only")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated targets to run (default: all)")
    parser.add_argument("--repeat", type=int, help="repetitions of each scenario (default 3, 1 with --short)")
    parser.add_argument("--work", type=Path, help="scratch directory (default .tmp/bench or .tmp/bench-short)")
    parser.add_argument("--results", type=Path, help="default bench/results.json (.tmp/bench-short/ with --short)")
    parser.add_argument("--plot", type=Path, help="default bench/plot.svg (none with --short)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument(
        "--profile", action="store_true", help="run the module under cProfile (SCRATCH/profiles/): for diagnosis only"
    )
    parser.add_argument("--verbose", action="store_true", help="ansible-playbook -vvv (tracebacks in SCRATCH/logs/)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the running playbook's process group is ended and the simulators are stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    profile = SHORT if args.short else FULL
    if args.repeat:
        profile = Profile(**{**profile.__dict__, "repeat": args.repeat})
    work = (args.work or ROOT / ".tmp" / ("bench-short" if args.short else "bench")).resolve()
    results_path = args.results or (work / "results.json" if args.short else BENCH / "results.json")
    plot_path = args.plot or (None if args.short else BENCH / "plot.svg")
    only = set(args.only.split(","))
    python = sys.executable
    bench = Bench(profile, python, work, cprofile=args.profile, verbose=args.verbose)
    started = time.time()
    print(
        f"==> bench ({profile.name}): simulator --latency-ms {LATENCY_MS} --write-quota "
        f"{WRITE_QUOTA[0]}/{WRITE_QUOTA[1]:g}, concurrency {CONCURRENCY}, {profile.repeat} run(s) each; "
        f"scratch in {work}",
        flush=True,
    )
    load_before = machine()
    bench.scenarios(only)
    load_after = machine()
    if (load_after["commit"], load_after["plugins_files_changed_since_commit"]) != (
        load_before["commit"],
        load_before["plugins_files_changed_since_commit"],
    ):
        print("==> WARNING: plugins/ changed during the benchmark (commit or working tree): figures mix versions")
    rows = evaluate(bench.runs)
    sims = simulator_table(bench.runs)
    print(f"\n==> bench ({profile.name}) took {time.time() - started:.0f} s; targets (ratio = figure / limit):")
    print_tables(rows, sims, profile.timed)
    results = {
        "profile": profile.__dict__,
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "machine": {"before": load_before, "after": load_after},
        "settings": {
            "latency_ms": LATENCY_MS,
            "write_quota": f"{WRITE_QUOTA[0]}/{WRITE_QUOTA[1]:g}",
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
    if bench.problems:
        print(f"==> {len(bench.problems)} check(s) failed:", *bench.problems, sep="\n    ")
        return 1
    if args.strict and any(row.met() is False for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
