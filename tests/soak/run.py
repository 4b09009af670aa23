"""The worst-day soak of tokenops.entra.hardware_oath_inventory (make soak; make soak-short), per docs/reliability.md.

    .venv/core-2.19/bin/python tests/soak/run.py            2,000 tokens, fault seeds 1, 2 and 3, 20 kills in all
    .venv/core-2.19/bin/python tests/soak/run.py --short    200 tokens, fault seed 1, 3 kills (part of make test)

For each fault seed, the simulator (tests/simulator/serve.py) starts on a tenant where every kind of work waits
(world.py) with every fault on at once, each drawn from that seed; then three phases, each from the seed's state:

1. ``single``: one run of the declared inventory, which must converge every token;
2. ``kills``: runs killed at random moments (drawn from the fault seed), alternately by a SIGKILL of ansible-playbook's
   process group (its module goes on: Ansible's worker is in a session of its own) and of the module process itself,
   each followed at once by a new run; then runs until one finishes (at most three);
3. ``together``: two runs of the same inventory started at the same moment, on one controller;
4. ``machines``: the same on two controllers, which share no lock and no ledger of codes (each its own
   ENTRA_RUN_STATE_DIR): codes may be refused as replays, but no token may be left wrong or reported failed.

Each phase is then judged from the simulator's state and request log (checks.py). The results go to
SCRATCH/results.json and SCRATCH/report.md (results.py).

Exit status: 0 when every check of every phase passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

SOAK = Path(__file__).resolve().parent
sys.path.append(str(SOAK.parents[1] / "bench"))  # the benchmark's helpers: seeds, simctl, scenarios

# pylint: disable=wrong-import-position
import checks  # noqa: E402
import results  # noqa: E402
import world as worldlib  # noqa: E402
from analysis import finished, started  # noqa: E402
from driver import POLL, ROOT, Driver, Run  # noqa: E402
from simctl import Simulator  # noqa: E402

PHASES = ("single", "kills", "together", "machines")
FINAL_RUNS = 3  # after the kills: runs until one finishes, at most this many


@dataclass(frozen=True)
class Profile:
    name: str
    tokens: int
    seeds: tuple[int, ...]
    kills: int  # across every seed
    phases: tuple[str, ...]
    run_timeout: float  # seconds; a run still going is killed and fails its phase
    settle_timeout: float  # seconds to wait for a killed run's module to end


FULL = Profile("full", tokens=2000, seeds=(1, 2, 3), kills=20, phases=PHASES, run_timeout=1800, settle_timeout=900)
# make test's: the kills and the two runs at once (one uninterrupted run is the full soak's, for make test's time).
SHORT = Profile("short", tokens=200, seeds=(1,), kills=3, phases=PHASES[1:3], run_timeout=180, settle_timeout=120)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="200 tokens, one fault seed, 3 kills")
    parser.add_argument("--tokens", type=int, help="declared tokens (default 2,000; 200 with --short)")
    parser.add_argument("--seeds", help="comma-separated fault seeds (default 1,2,3; 1 with --short)")
    parser.add_argument("--kills", type=int, help="kills across every seed (default 20; 3 with --short)")
    parser.add_argument(
        "--phases", help=f"comma-separated phases of {', '.join(PHASES)} (default all; kills,together with --short)"
    )
    parser.add_argument("--work", type=Path, help="scratch directory (default .tmp/soak or .tmp/soak-short)")
    parser.add_argument("--calm", action="store_true", help="no fault at all (latency only): for diagnosis")
    return parser.parse_args(argv)


def profile_from(args: argparse.Namespace) -> Profile:
    profile = SHORT if args.short else FULL
    changes: dict[str, Any] = {}
    if args.tokens:
        changes["tokens"] = args.tokens
    if args.seeds:
        changes["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.kills is not None:
        changes["kills"] = args.kills
    if args.phases:
        changes["phases"] = tuple(p for p in args.phases.split(",") if p)
    return Profile(**{**profile.__dict__, **changes})


def kills_per_seed(profile: Profile) -> list[int]:
    """The kills spread over the seeds, the first ones taking what does not divide evenly."""
    share, left = divmod(profile.kills, len(profile.seeds))
    return [share + (1 if i < left else 0) for i in range(len(profile.seeds))]


class Soak:
    """One fault seed: its simulator, its phases and their judgement."""

    def __init__(self, profile: Profile, world: worldlib.World, faults: worldlib.Faults, seed: int, work: Path) -> None:
        self.profile = profile
        self.world = world
        self.faults = faults
        self.seed = seed
        self.work = work
        self.rng = random.Random(f"kills-{seed}")

    def play(self, python: str, seed_path: Path, phases: list[str], kills: int) -> list[dict[str, Any]]:
        self.work.mkdir(parents=True, exist_ok=True)
        spec_path = self.work / "faults.json"
        spec_path.write_text(json.dumps(worldlib.fault_spec(self.faults), indent=1), encoding="utf-8")
        options = worldlib.simulator_options(self.faults, spec_path, self.seed)
        task = {
            "soak_write_quota": f"{self.faults.write_quota[0]}/{self.faults.write_quota[1]:g}",
            "soak_read_after_write_wait": self.faults.read_after_write_wait_s,
        }
        judged = []
        with Simulator(python, seed_path, self.work / "simulator", options) as sim:
            driver = Driver(python, self.work, sim, self.world.declared, task)
            try:
                judged += self.phases(driver, phases, kills)
            finally:
                driver.stop_all()
        return judged

    def phases(self, driver: Driver, phases: list[str], kills: int) -> list[dict[str, Any]]:
        judged = []
        users = self.users(driver.sim)
        for number, phase in enumerate(phases):
            if number:
                driver.reset()
            print(f"  -- seed {self.seed}, phase {phase}", flush=True)
            began = time.monotonic()
            if phase == "single":
                detail = self.single(driver)
            elif phase == "kills":
                detail = self.kills(driver, kills)
            else:
                detail = self.together(driver, machines=phase == "machines")
            detail["settle"] = driver.settle(self.profile.settle_timeout)
            detail["wall_s"] = round(time.monotonic() - began, 3)
            # The phase's request log, for diagnosis (no secret: the simulator logs no body and no credential).
            (self.work / f"{phase}.requests.json").write_text(json.dumps(driver.log), encoding="utf-8")
            judged.append(self.judge(phase, driver, users, detail))
            results.phase_line(judged[-1])
        return judged

    def users(self, sim: Simulator) -> dict[str, str]:
        """Every user principal name (lower case) and id -> the user's id."""
        out = {}
        for entry in sim.admin("GET", "state")["users"]:
            out[entry["user_principal_name"].lower()] = entry["id"]
            out[entry["id"]] = entry["id"]
        return out

    def label(self, phase: str, number: int) -> str:
        return f"s{self.seed}-{phase}-{number}"

    # ------------------------------------------------------------------ phases
    def single(self, driver: Driver) -> dict[str, Any]:
        run = driver.start(self.label("single", 1), "single")
        driver.finish(run, self.profile.run_timeout)
        return {"runs": [run]}

    def kills(self, driver: Driver, kills: int) -> dict[str, Any]:
        """Runs killed at random moments, each followed at once by the next; then runs until one finishes."""
        runs: list[Run] = []
        done = 0
        while done < kills and len(runs) < kills * 3:
            how = "group" if (done + self.seed) % 2 else "module"
            left = self.not_as_declared(driver)
            # A random moment: after some of the writes left to do, or a while after its module's first write (or, if
            # it writes nothing, after its module has had the time to read and plan), whichever comes first; a run
            # with nothing left to do is killed early in its life.
            share, after_write, after_reads, early = (self.rng.random() for _draw in range(4))
            trigger: dict[str, Any] = {"after_module_s": round(early, 2)}
            if left:
                trigger = {
                    "after_writes": 1 + int(share * 0.6 * left),
                    "after_first_write_s": round(1 + 7 * after_write, 2),
                    "after_module_s": round(self.reading_time() + 1 + 7 * after_reads, 2),
                }
            run = driver.start(self.label("kills", len(runs) + 1), "kills")
            runs.append(run)
            if self.watch_and_kill(driver, run, how, trigger):
                done += 1
            else:
                driver.finish(run, self.profile.run_timeout)  # ended before its moment came
        for _final in range(FINAL_RUNS):
            run = driver.start(self.label("kills", len(runs) + 1), "kills")
            runs.append(run)
            driver.finish(run, self.profile.run_timeout)
            if run.rc == 0:
                break
        return {"runs": runs, "kills_wanted": kills}

    def reading_time(self) -> float:
        """Seconds a module may take from its start to its first write (the reads and the plan), generously."""
        return 5.0 + self.profile.tokens * 0.01

    def watch_and_kill(self, driver: Driver, run: Run, how: str, trigger: dict[str, Any]) -> bool:
        """Kill ``run`` when ``trigger`` says (its module's writes, seconds after its first write or after its
        module started, whichever comes first). False when the run ended first."""
        module_seen = first_write = None
        while not driver.ended(run):
            driver.fetch()
            now = time.monotonic()
            if module_seen is None and driver.track_modules(run):
                module_seen = now
            writes = driver.writes_of(run)
            if writes and first_write is None:
                first_write = now
            due = module_seen is not None and (
                now - module_seen >= trigger["after_module_s"]
                or writes >= trigger.get("after_writes", float("inf"))
                or (first_write is not None and now - first_write >= trigger["after_first_write_s"])
            )
            if due and driver.kill(run, how, trigger):
                print(
                    f"     {run.label}: killed ({how}) at {run.kill['at_s']:.1f} s, after {run.kill['writes_before']} "
                    "writes of its module",
                    flush=True,
                )
                if how == "module":
                    driver.reap(run)
                return True
            if now - run.clock > self.profile.run_timeout:
                return False
            time.sleep(POLL)
        return False

    def together(self, driver: Driver, machines: bool) -> dict[str, Any]:
        phase = "machines" if machines else "together"
        first = driver.start(self.label(phase, 1), phase, "machine-1" if machines else "controller")
        second = driver.start(self.label(phase, 2), phase, "machine-2" if machines else "controller")
        driver.finish(first, self.profile.run_timeout)
        driver.finish(second, self.profile.run_timeout)
        return {"runs": [first, second]}

    def not_as_declared(self, driver: Driver) -> int:
        state = checks.end_state(self.world, self.tokens(driver), self.users(driver.sim))
        return state["declared"] - state["as_declared"]

    @staticmethod
    def tokens(driver: Driver) -> dict[str, dict]:
        return {serial.lower(): token for serial, token in driver.sim.tokens().items()}

    # ------------------------------------------------------------------ judgement
    def judge(self, phase: str, driver: Driver, users: dict[str, str], detail: dict[str, Any]) -> dict[str, Any]:
        """The phase's checks (checks.py) and figures; ``problems`` says what went wrong, in words."""
        ledger = checks.Ledger(self.world, users).walk(driver.log)
        state = driver.sim.admin("GET", "state")
        end = checks.end_state(self.world, self.tokens(driver), users)
        runs = [self.run_figures(driver, run) for run in detail["runs"]]
        name = self.run_namer(driver)
        side = [{**pair, "runs": [name(s) for s in pair["sessions"]]} for pair in ledger.side_by_side()]
        problems = []
        if end["problems"]:
            problems.append(
                f"{end['declared'] - end['as_declared']} of {end['declared']} tokens not as declared at the end: "
                + "; ".join(
                    f"{what}: {len(serials)} ({', '.join(serials[:3])})" for what, serials in end["problems"].items()
                )
            )
        # Two controllers share no ledger of codes: a code refused as a replay, a write the other had just made and
        # writes side by side are figures there, not failures; the end state and every run's report still count.
        apart = phase == "machines"
        if ledger.replays and not apart:
            senders = Counter(name(e.get("session")) for e in ledger.replays)
            problems.append(
                f"{len(ledger.replays)} activation(s) sent with a code already used (replayed), by "
                + ", ".join(f"{run} {n}" for run, n in senders.most_common())
            )
        if state["activations"]["replayed"] != len(ledger.replays):
            problems.append(
                f"the tenant counts {state['activations']['replayed']} replayed codes, the log {len(ledger.replays)}"
            )
        if ledger.harmful:
            kinds = Counter(h["problem"] for h in ledger.harmful)
            problems.append("harmful changes: " + "; ".join(f"{n} {k}" for k, n in kinds.items()))
        if ledger.twice and not apart:
            pairs = Counter((name(t["session"]), name(t["done_by"]), t["op"], str(t["status"])) for t in ledger.twice)
            problems.append(
                f"{len(ledger.twice)} write(s) sent again after another run's took effect (run, after whose write, "
                "what, answered): "
                + "; ".join(f"{a} after {b}: {n} {op} ({status})" for (a, b, op, status), n in pairs.most_common(8))
            )
        if side and phase not in ("single", "machines"):
            problems.append(
                f"{len(side)} pair(s) of runs wrote side by side: "
                + "; ".join(
                    f"{pair['runs'][1]} wrote {pair['writes_of_second_within_first']} times while {pair['runs'][0]} "
                    "was writing"
                    for pair in sorted(side, key=lambda p: -p["writes_of_second_within_first"])[:4]
                )
                + ("; ..." if len(side) > 4 else "")
            )
        finished = [r for r in runs if r["finished"]]
        if not finished:
            problems.append("no run finished")
        for run in finished:
            outcome = run["outcomes"]
            if run["rc"] != 0:
                problems.append(f"{run['label']} finished with rc {run['rc']}: {str(outcome.get('msg'))[:240]}")
            if outcome["missing"]:
                problems.append(f"{run['label']}: no row for {outcome['missing']} declared token(s)")
            if outcome["failed"]:
                problems.append(f"{run['label']}: {outcome['failed']} token(s) failed {outcome['failed_reasons']}")
        for run in runs:
            if run["timed_out"]:
                problems.append(f"{run['label']} timed out after {self.profile.run_timeout:g} s")
        if phase == "kills":
            kills = sum(1 for r in runs if r["kill"])
            if kills < detail["kills_wanted"]:
                problems.append(f"{kills} kill(s), {detail['kills_wanted']} wanted: the runs ended first")
        if detail["settle"]["killed"]:
            problems.append(f"modules still running after {self.profile.settle_timeout:g} s were killed")
        if detail["settle"]["left_behind"]:
            problems.append(
                f"the Ansible worker of {len(detail['settle']['left_behind'])} killed run(s) was left behind, blocked: "
                + ", ".join(detail["settle"]["left_behind"])
            )
        return {
            "seed": self.seed,
            "phase": phase,
            "passed": not problems,
            "problems": problems,
            "wall_s": detail["wall_s"],
            "settle": detail["settle"],
            "end_state": end,
            "replayed": len(ledger.replays),
            "tenant_activations": state["activations"],
            "harmful": ledger.harmful[:20],
            "written_twice": {
                "count": len(ledger.twice),
                "by_op": dict(Counter(t["op"] for t in ledger.twice)),
                "examples": ledger.twice[:10],
            },
            "written_twice_same_run": {
                "count": len(ledger.twice_same_session),
                "by_op": dict(Counter(t["op"] for t in ledger.twice_same_session)),
                "examples": ledger.twice_same_session[:10],
            },
            "side_by_side": side,
            "effective_writes": dict(ledger.effective),
            "requests": results.figures(driver.log),
            "sessions": {
                session: {
                    "run": name(session),
                    **results.figures([e for e in driver.log if e.get("session") == session]),
                }
                for session in dict.fromkeys(e["session"] for e in driver.log if e.get("session"))
            },
            "kills": sum(1 for r in runs if r["kill"]),
            "runs": runs,
        }

    @staticmethod
    def run_namer(driver: Driver) -> Callable[[str | None], str]:
        """A session's name in reports: its run's label (a killed run's module that went on: "... (killed)"), or
        "a run started together with another" when the two signed in at the same time."""
        killed = {run.label for run in driver.runs if run.kill}

        def name(session: str | None) -> str:
            label = driver.session_runs.get(session or "", "?")
            if label == "?":
                return "one of the runs started together"
            return f"{label} (killed)" if label in killed else label

        return name

    def run_figures(self, driver: Driver, run: Run) -> dict[str, Any]:
        mine = [e for e in driver.log if e.get("session") in run.sessions]
        after_kill = [e for e in mine if run.kill and e["seq"] > run.kill["seq"]]
        return {
            "label": run.label,
            "rc": run.rc,
            "seconds": run.seconds,
            "finished": run.finished,
            "timed_out": run.timed_out,
            "kill": run.kill,
            "sessions": run.sessions,
            # When its module's requests began and ended, in seconds after the run started.
            "requests_from_s": round(min(started(e) for e in mine) - run.began, 3) if mine else None,
            "requests_to_s": round(max(finished(e) for e in mine) - run.began, 3) if mine else None,
            "requests": results.figures(mine),
            "after_kill": {
                "requests": len(after_kill),
                "writes": sum(1 for e in after_kill if e.get("write")),
                "replayed": sum(1 for e in after_kill if e.get("verification") == "replayed"),
            }
            if run.kill
            else None,
            "outcomes": checks.outcomes(self.world, run.result()) if run.finished else None,
            "output": str(run.output.relative_to(self.work.parent)),
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    # SIGTERM unwinds like Ctrl-C: the simulator is stopped (runs still going are left to their timeout's kill).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    profile = profile_from(args)
    phases = list(profile.phases)
    unknown = set(phases) - set(PHASES)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))} (known: {', '.join(PHASES)})", file=sys.stderr)
        return 2
    work = (args.work or ROOT / ".tmp" / ("soak-short" if profile.name == "short" else "soak")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    faults = worldlib.CALM if args.calm else worldlib.Faults()
    world = worldlib.build(profile.tokens)
    seed_path = worldlib.write_seed(world, work / "tenant.yml", faults.read_after_write_delay_ms)
    print(
        f"==> soak ({profile.name}): {profile.tokens} tokens, fault seeds {', '.join(map(str, profile.seeds))}, "
        f"{profile.kills} kills, phases {', '.join(phases)}; scratch in {work}",
        flush=True,
    )
    started = time.monotonic()
    judged = []
    for seed, kills in zip(profile.seeds, kills_per_seed(profile)):
        soak = Soak(profile, world, faults, seed, work / f"seed-{seed}")
        judged += soak.play(sys.executable, seed_path, phases, kills)
    summary = results.publish(profile, world, faults, judged, time.monotonic() - started, work)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
