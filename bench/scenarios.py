"""The scenarios of the benchmark and the runner that plays them (``Bench``): the simulator started per seed, each
``ansible-playbook`` run end to end (its module's interpreter behind a wrapper that records the module process's
peak RSS and CPU), a stuck run's process tree ended, the faults of target 5, and each run's summary from the
simulator's request log, with the checks on its outcome.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import analysis
import seeds
from playbook_env import playbook_env, prepare_scratch
from simctl import Simulator
from targets import Runs, fixed_limit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PLAYBOOKS = BENCH / "playbooks"
LATENCY_MS = 25
WRITE_QUOTA = (300, 1.5)  # the simulator's --write-quota and the task's write_quota (Graph's 3000/150, scaled 10x)
# How the simulator counts its quotas and charges a refused request (its settings quota_model and
# throttled_requests; docs/simulator.md, "Fidelity"): target 7 runs under one of each, the defaults unless told.
QUOTA_MODELS = ("token_bucket", "sliding_window", "fixed_window")
THROTTLED_REQUESTS = ("charged", "free")
CONCURRENCY = 8  # the module's default
FAULT_SHARE = 0.2
MODULE_SCRIPT = "AnsiballZ_hardware_oath_inventory"


@dataclass(frozen=True)
class Profile:
    """How many tokens each scenario declares, and how many times it runs."""

    name: str
    new: int  # targets 1, 2, 5: tokens to create, assign and activate
    big: int  # target 3: tokens (and users) already converged
    loop: int  # target 4: tokens converged by the loop of single-token modules
    methods: int  # target 6: tokens to activate under the methods rate
    methods_rate: tuple[int, float]
    quota_new: int  # target 7: tokens to create, assign and activate at quota
    quota: tuple[int, float]  # target 7: the write quota of the simulator and of the task
    repeat: int
    quota_repeat: int  # runs of target 7 (minutes each in the full run)
    timed: bool  # False: the short run, which checks outcomes and request counts but judges no time


# fmt: off
FULL = Profile("full", new=1000, big=10000, loop=50, methods=200, methods_rate=(50, 10.0), quota_new=10000,
               quota=(3000, 150.0), repeat=3, quota_repeat=1, timed=True)
SHORT = Profile("short", new=40, big=300, loop=2, methods=20, methods_rate=(10, 2.0), quota_new=40,
                quota=(20, 1.0), repeat=1, quota_repeat=1, timed=False)
# fmt: on

WRAPPER = """#!{python} -S
# Written by bench/scenarios.py: the module's interpreter. Runs the real one as its only child and records that
# child's peak RSS and CPU time (wait4: the rusage of that one process) and when it started and ended, then exits with
# its status. With BENCH_PROFILE_DIR set (bench/run.py --profile), the child runs under cProfile.
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


class Bench:
    """Plays the scenarios of a profile and keeps every run's summary (``runs``) and every failed check
    (``problems``)."""

    def __init__(
        self,
        profile: Profile,
        python: str,
        work: Path,
        cprofile: bool = False,
        verbose: bool = False,
        quota_model: tuple[str, str] = (QUOTA_MODELS[0], THROTTLED_REQUESTS[0]),
    ) -> None:
        self.profile = profile
        self.quota_model = quota_model  # target 7's simulator settings quota_model and throttled_requests
        self.cprofile = cprofile
        self.verbose = verbose
        self.python = python
        self.ansible_playbook = str(Path(python).parent / "ansible-playbook")
        self.work = work
        prepare_scratch(work, ROOT, ("vars", "records", "logs", "seeds", "tmp"))
        self.rss_file = work / "rss.jsonl"
        self.wrapper = work / "module-python"
        self.wrapper.write_text(WRAPPER.format(python=python, out=str(self.rss_file)), encoding="utf-8")
        self.wrapper.chmod(0o755)
        self.runs: Runs = {}
        self.problems: list[str] = []

    # ------------------------------------------------------------------ one ansible-playbook run
    def env(self, record: Path) -> dict[str, str]:
        env = playbook_env(self.work, BENCH / "callback_plugins", "bench_record", "BENCH_RECORD", record)
        if self.cprofile:
            (self.work / "profiles").mkdir(exist_ok=True)
            env["BENCH_PROFILE_DIR"] = str(self.work / "profiles")
        return env

    def playbook(
        self,
        sim: Simulator,
        name: str,
        tokens: list[dict],
        label: str,
        *,
        timeout: float,
        extra: dict | None = None,
        quota: tuple[int, float] | None = None,
    ) -> dict[str, Any]:
        """Run bench/playbooks/NAME against ``sim``; returns the run's figures (see :func:`summarise`). ``quota``:
        the write quota of the simulator and the task, when not WRITE_QUOTA (its bound then follows the simulator's
        quota model)."""
        info = sim.info
        variables = {
            "bench_tenant_id": info["tenant_id"],
            "bench_client_id": seeds.CLIENT_ID,
            "bench_client_secret": seeds.CLIENT_SECRET,
            "bench_authority_host": info["authority_host"],
            "bench_graph_endpoint": info["graph_url"],
            "bench_ca_path": info["ca_bundle"],
            "bench_concurrency": CONCURRENCY,
            "bench_write_quota": quota_text(quota or WRITE_QUOTA),
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
        run = summarise(log, began, wall, quota=quota or WRITE_QUOTA, model=self.quota_model[0] if quota else None)
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

    def nothing_done(self, run: dict, most_round_trips: float, case: str) -> None:
        """A run with nothing to do writes nothing and reports no change. In the short run, more round trips than
        ``most_round_trips`` is a failed check too (the full run reports them as targets 2a and 3a)."""
        label, trips = run["label"], run["round_trips"]
        self.expect(run["writes_served"] == 0, f"{label}: {run['writes_served']} writes {case}")
        self.expect(not task_changed(run), f"{label}: reported a change {case}")
        if not self.profile.timed:
            self.expect(trips <= most_round_trips, f"{label}: {trips} round trips > {most_round_trips}")

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
        if "7" in only:
            tokens = seeds.declared("QUOTA", p.quota_new)
            model, throttled = self.quota_model
            seed = seeds.write_seed(
                self.work / "seeds" / "quota.yml",
                users=p.quota_new,
                settings={"quota_model": model, "throttled_requests": throttled},
            )
            real = ["--latency-ms", str(LATENCY_MS), "--write-quota", quota_text(p.quota)]
            with Simulator(self.python, seed, self.work / "sim-quota", real) as sim:
                self.at_quota(sim, tokens)
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
            self.nothing_done(again, most_round_trips=fixed_limit("2a"), case="on a re-run")

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

    def at_quota(self, sim: Simulator, tokens: list[dict]) -> None:
        writes, seconds = self.profile.quota
        model, throttled = self.quota_model
        print(
            f"==> 7: converge {len(tokens)} new tokens at the write quota {writes}/{seconds:g} (simulator and task), "
            f"counted as {model}, refused requests {throttled}",
            flush=True,
        )
        for rep in range(self.profile.quota_repeat):
            sim.reset()
            run = self.playbook(
                sim, "inventory.yml", tokens, f"7-quota-{rep + 1}", timeout=1800, quota=self.profile.quota
            )
            self.converged(sim, run, tokens)
            answered_429 = run["throttled"]["writes"]
            run["result_s"] = task_pacing(run).get("result_seconds")  # measured by the module (GraphModule)
            run["quota"] = {
                "model": model,
                "throttled_requests": throttled,
                "writes_served": run["writes_served"],
                "writes_answered_429": answered_429,
                "share_429": answered_429 / max(1, run["writes_served"] + answered_429),
            }
            self.record("7", run)
            expected = math.ceil(len(tokens) / 100) + len(tokens)
            self.expect(
                run["writes_served"] <= expected,
                f"{run['label']}: {run['writes_served']} writes served, expected at most {expected}",
            )

    def nothing_to_do(self, sim: Simulator, tokens: list[dict]) -> None:
        print(f"==> 3: {len(tokens)} tokens for {len(tokens)} users, nothing to do", flush=True)
        for rep in range(self.profile.repeat):
            run = self.playbook(sim, "inventory.yml", tokens, f"3-held-{rep + 1}", timeout=600)
            self.converged(sim, run, tokens)
            self.record("3", run)
            self.nothing_done(run, most_round_trips=fixed_limit("3a"), case="with nothing to do")


# ---------------------------------------------------------------------- ending a run, the faults, a run's summary
def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def kill_tree(pid: int) -> None:
    """End a run: ``pid`` (ansible-playbook, the leader of its own process group) and every process below it. Its
    workers call setsid, so the group alone would leave them and the module running."""
    for member in [pid, *descendants(pid)]:
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


def task_pacing(run: dict) -> dict:
    """The pacing of the run's (first) task's result: how the module paced its requests, and built its result."""
    return next(((task.get("result") or {}).get("pacing") or {} for task in run["tasks"]), {})


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


def quota_text(quota: tuple[int, float]) -> str:
    return f"{quota[0]}/{quota[1]:g}"


def summarise(
    log: list[dict], began: float, wall: float, quota: tuple[int, float] = WRITE_QUOTA, model: str | None = None
) -> dict[str, Any]:
    """A run's figures from the request log: round trips, writes, the critical path, in-flight requests, gaps. The
    quota bound is that of ``quota`` counted as ``model`` (a QUOTA_MODELS name; None: the token bucket)."""
    span = analysis.span(log)
    trips = analysis.round_trips(log)
    critical = analysis.critical_path(log, CONCURRENCY)
    served = analysis.writes_served(log)
    if model in (None, "token_bucket"):
        quota_s = analysis.quota_bound(len(served), quota[0], quota[0] / quota[1])
    else:
        quota_s = analysis.window_bound(len(served), quota[0], quota[1], CONCURRENCY, LATENCY_MS / 1000)
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
