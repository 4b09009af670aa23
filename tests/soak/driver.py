"""Runs of ansible-playbook against the soak's simulator: started, watched through the simulator's request log, killed
as a CI system or AWX kills a job at its timeout, and attributed to the module processes that sent their requests.

A run is ``ansible-playbook tests/soak/playbooks/soak.yml`` in a session and process group of its own. Ansible's
worker calls setsid, so the module (the AnsiballZ python process of hardware_oath_inventory, under the worker) is
in another session: a SIGKILL of the run's process group ends ansible-playbook but leaves the module running, as
AWX's and CI's timeouts do. A SIGKILL of the module process itself ends the module; ansible-playbook then fails the
task and exits. Each request in the simulator's log carries the sign-in it was sent with (``session``): one per
module process, which is how requests are attributed to runs, also when a killed run's module goes on writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook_env import playbook_env, prepare_scratch
from scenarios import descendants, kill_tree
from seeds import CLIENT_ID, CLIENT_SECRET
from simctl import Simulator

SOAK = Path(__file__).resolve().parent
ROOT = SOAK.parents[1]
PLAYBOOK = SOAK / "playbooks" / "soak.yml"
MODULE_SCRIPT = "AnsiballZ_hardware_oath_inventory"
POLL = 0.1  # seconds between two reads of the simulator's request log while a run is watched
WORKER_GRACE = 5.0  # seconds a killed run's Ansible worker is given to end once its module has


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot: with the pid, it names one process), or None."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def module_processes(pid: int) -> list[int]:
    """The module processes below ``pid``: the Python running AnsiballZ_hardware_oath_inventory (not the shells
    that started it)."""
    found = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(MODULE_SCRIPT in arg for arg in argv) and not argv[0].endswith("sh"):
                found.append(child)
    return found


@dataclass
class Process:
    """A process a run started (its module, or any other below ansible-playbook), kept track of after its run is
    gone."""

    pid: int
    start: int | None
    run: str

    def alive(self) -> bool:
        return self.start is not None and process_start(self.pid) == self.start


@dataclass
class Run:
    label: str
    phase: str
    proc: subprocess.Popen
    began: float  # time.time()
    clock: float  # time.monotonic()
    record: Path
    output: Path
    sessions: list[str] = field(default_factory=list)
    modules: list[Process] = field(default_factory=list)
    others: list[Process] = field(default_factory=list)  # the rest of its process tree (Ansible's worker...)
    kill: dict[str, Any] | None = None
    rc: int | None = None
    seconds: float | None = None
    timed_out: bool = False

    @property
    def finished(self) -> bool:
        """Ended by itself (not killed by the soak, not timed out)."""
        return self.rc is not None and self.kill is None and not self.timed_out

    def result(self) -> dict[str, Any] | None:
        """The inventory task's result as the callback recorded it, or None (the run did not get that far)."""
        if not self.record.exists():
            return None
        tasks = json.loads(self.record.read_text(encoding="utf-8"))["tasks"]
        return tasks[-1]["result"] if tasks else None


class Driver:
    """Starts and watches the runs of one simulator; keeps its whole request log (``log``) since the last
    :meth:`reset`, and which session each run's module signed in as."""

    def __init__(self, python: str, work: Path, sim: Simulator, tokens: list[dict], task: dict[str, Any]) -> None:
        """``task``: the task's options beside its tokens (soak_write_quota, soak_read_after_write_wait)."""
        self.python = python
        self.ansible_playbook = str(Path(python).parent / "ansible-playbook")
        self.work = work
        self.sim = sim
        prepare_scratch(work, ROOT, ("vars", "records", "logs", "tmp"))
        self.vars_file = work / "vars" / "soak.json"
        fd = os.open(self.vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "soak_tenant_id": sim.info["tenant_id"],
                    "soak_client_id": CLIENT_ID,
                    "soak_client_secret": CLIENT_SECRET,
                    "soak_authority_host": sim.info["authority_host"],
                    "soak_graph_endpoint": sim.info["graph_url"],
                    "soak_ca_path": sim.info["ca_bundle"],
                    **task,
                    "soak_tokens": tokens,
                },
                handle,
            )
        self.log: list[dict] = []
        self.seq = 0
        self.session_runs: dict[str, str] = {}  # session -> the label of the run whose module signed in as it
        self.unattributed: list[str] = []
        self.writes: Counter = Counter()  # session -> write requests received
        self.runs: list[Run] = []
        self.modules: list[Process] = []

    # ------------------------------------------------------------------ the simulator's log
    def reset(self) -> None:
        """The tenant, faults and settings as at the start, and an empty log (no module of an earlier run may be
        running: see :meth:`settle`)."""
        self.stop_all()
        self.sim.reset()
        self.log, self.seq, self.runs, self.unattributed = [], 0, [], []

    def fetch(self) -> list[dict]:
        """The log entries since the last fetch. A session seen for the first time is the sign-in of the one run
        that may still sign in (one whose module may be running and that has no session yet); when there are
        several (two runs started together), it is not attributed (``unattributed``)."""
        new = self.sim.requests(self.seq)
        if new:
            self.seq = new[-1]["seq"]
            self.log += new
            for entry in new:
                session = entry.get("session")
                if session and session not in self.session_runs:
                    owners = [run for run in self.runs if not run.sessions and self._may_sign_in(run)]
                    self.session_runs[session] = owners[0].label if len(owners) == 1 else "?"
                    if len(owners) == 1:
                        owners[0].sessions.append(session)
                    else:
                        self.unattributed.append(session)
                if session and entry.get("write"):
                    self.writes[session] += 1
        return new

    def _may_sign_in(self, run: Run) -> bool:
        """Whether a module of ``run`` may be running: the run goes on, or it was killed and its module was not."""
        return run.rc is None or any(m.alive() for m in run.modules) or (run.kill is not None and not run.modules)

    def writes_of(self, run: Run) -> int:
        """Write requests the simulator received from the run's module."""
        return sum(self.writes[session] for session in run.sessions)

    # ------------------------------------------------------------------ runs
    def env(self, record: Path, machine: str) -> dict[str, str]:
        """The environment of a run; ``machine`` names its controller: runs of one share its run state (the lock and
        the ledger of codes, ENTRA_RUN_STATE_DIR), runs of two share nothing but the tenant."""
        env = playbook_env(self.work, SOAK / "callback_plugins", "soak_record", "SOAK_RECORD", record)
        env["ENTRA_RUN_STATE_DIR"] = str(self.work / "run-state" / machine)
        return env

    def start(self, label: str, phase: str, machine: str = "controller") -> Run:
        self.fetch()
        record = self.work / "records" / f"{label}.json"
        record.unlink(missing_ok=True)
        output = self.work / "logs" / f"{label}.log"
        with open(output, "wb") as handle:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with  # waited for in finish()
                [self.ansible_playbook, str(PLAYBOOK), "-e", f"@{self.vars_file}"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=self.env(record, machine),
                start_new_session=True,
            )
        run = Run(label, phase, proc, time.time(), time.monotonic(), record, output)
        self.runs.append(run)
        return run

    def track_modules(self, run: Run) -> list[Process]:
        """The run's module processes running now (remembered, so that they are waited for when the run is gone),
        and the rest of its process tree (remembered, so that what a kill leaves behind is ended in the end)."""
        if run.rc is None:
            modules = set(module_processes(run.proc.pid))
            known = {m.pid for m in run.modules + run.others}
            for pid in descendants(run.proc.pid):
                if pid in modules and pid not in {m.pid for m in run.modules}:
                    # New, or first seen before it became the module (a shell's fork, not yet the Python it runs).
                    run.others = [other for other in run.others if other.pid != pid]
                    process = Process(pid, process_start(pid), run.label)
                    run.modules.append(process)
                    self.modules.append(process)
                elif pid not in known:
                    run.others.append(Process(pid, process_start(pid), run.label))
        return [m for m in run.modules if m.alive()]

    def ended(self, run: Run) -> bool:
        if run.rc is None and run.proc.poll() is not None:
            run.rc = run.proc.returncode
            run.seconds = round(time.monotonic() - run.clock, 3)
        return run.rc is not None

    def finish(self, run: Run, timeout: float) -> None:
        """Wait for the run to end (at most ``timeout`` seconds from its start; then its whole tree is killed)."""
        while not self.ended(run):
            if not run.modules:  # its process tree, once its module is there
                self.track_modules(run)
            if time.monotonic() - run.clock > timeout:
                run.timed_out = True
                kill_tree(run.proc.pid)
                run.proc.wait()
                self.ended(run)
                break
            self.fetch()
            time.sleep(POLL)
        self.fetch()

    def kill(self, run: Run, how: str, trigger: dict[str, Any]) -> bool:
        """SIGKILL the run's process group (``how`` = "group": the module goes on) or its module process ("module":
        ansible-playbook then ends by itself). False when there was nothing to kill (the run had ended)."""
        modules = self.track_modules(run)
        if self.ended(run) or not modules:
            return False
        moment = round(time.monotonic() - run.clock, 3)
        writes = self.writes_of(run)
        if how == "group":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
        else:
            for module in modules:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(module.pid, signal.SIGKILL)
        run.kill = {"how": how, "at_s": moment, "writes_before": writes, "trigger": trigger, "seq": self.seq}
        if how == "group":
            run.proc.wait()
            self.ended(run)
        return True

    def reap(self, run: Run, timeout: float = 30) -> None:
        """After a module kill: ansible-playbook fails the task and ends (its tree killed after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.ended(run):
            if time.monotonic() > deadline:
                kill_tree(run.proc.pid)
                run.proc.wait()
            time.sleep(0.05)

    def stop_all(self) -> None:
        """End every process the runs started that is still there (the soak is interrupted, or done)."""
        for run in self.runs:
            if run.proc.poll() is None:
                kill_tree(run.proc.pid)
                run.proc.wait()
        for process in [p for run in self.runs for p in run.modules + run.others]:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)

    def running_modules(self) -> list[Process]:
        return [m for m in self.modules if m.alive()]

    def settle(self, timeout: float) -> dict[str, Any]:
        """Wait for every module process a killed run left running to end (killed after ``timeout``), and for the
        log to hold their last requests. Returns how long that took and what was still running."""
        began = time.monotonic()
        left = self.running_modules()
        killed = []
        while self.running_modules():
            if time.monotonic() - began > timeout:
                for module in self.running_modules():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(module.pid, signal.SIGKILL)
                    killed.append(module.run)
                break
            self.fetch()
            time.sleep(POLL)
        self.fetch()
        # What a kill of a run's process group may leave: Ansible's worker (a session of its own), which outlives its
        # module, and which the collection's action plugin ends once the module has ended (a moment is given for that).
        # One still there would stay blocked for good, writing its result to the pipe of the ansible-playbook that is
        # gone: ended here, and counted (a failure of the phase).
        grace = time.monotonic() + WORKER_GRACE
        while any(p.alive() for run in self.runs for p in run.others) and time.monotonic() < grace:
            time.sleep(POLL)
        behind = [p for run in self.runs for p in run.others if p.alive()]
        for process in behind:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        return {
            "waited_s": round(time.monotonic() - began, 3),
            "running": [m.run for m in left],
            "killed": killed,
            "left_behind": sorted({p.run for p in behind}),
        }
