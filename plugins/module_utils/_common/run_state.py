# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""What the modules keep on the controller between runs, in a private directory (``run_state_dir``):

- **the lock of a tenant and application** (``RunLock``): a run that writes holds it from its first read to its last
  write, so two runs on one controller never write side by side: the second waits for the first (``lock_timeout``).
  It is an ``flock`` on a file: the system releases it when its holder ends, however it ends (a SIGKILL included).
- **the ledger of the codes sent** (``CodeLedger``): for each token (by its id), the last TOTP time step whose code a
  run sent, written before the code leaves. The next run, or another application's run, reads it before it computes a
  code, so no code is sent twice, even when the run that sent it was killed before it knew Graph's answer.

Both are per Graph service and tenant (the lock also per application); the directory must be the user's own and
writable by nobody else, as whoever can write it could hold the lock or make the modules wait. Never a code, a
secret or a seed in it: token ids and step numbers only. The standard library only; POSIX (fcntl)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import stat
import threading
import time
import typing as t

from .errors import InputError, ModuleFailure

DEFAULT_LOCK_TIMEOUT = 900.0  # seconds a run waits for another run of its tenant and application
LOCK_POLL_SECONDS = 0.5  # how often a waiting run tries the lock again
LEDGER_MAX_LINES = 20_000  # a ledger longer than this is compacted when a run opens it
LEDGER_KEEP_SECONDS = 600  # a step older than this can't be the current one, whatever the drift: forgotten
LEDGER_MAX_AHEAD_STEPS = 20  # a step further ahead of now than this was not written by a run: ignored


class LockTimeout(ModuleFailure):
    """Another run held the lock for longer than ``lock_timeout``."""


def default_run_state_dir(environ: t.Mapping[str, str] | None = None) -> str:
    """``$XDG_STATE_HOME/tokenops.entra``, or ``~/.local/state/tokenops.entra``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "tokenops.entra")


def private_directory(directory: str) -> str:
    """``directory``, created with mode 0700 (and any missing parent) when missing, refused (InputError) when it is
    a link, another user's, or writable by its group or others. Returns its absolute path."""
    directory = os.path.abspath(directory)
    missing = []
    path = directory
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    try:
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(new, 0o700)
        status = os.lstat(directory)
    except OSError as exc:
        raise InputError(f"run_state_dir {directory}: {exc.strerror or exc}. Nothing was changed.") from None
    problem = None
    if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
        problem = "is not a directory (a link is refused: it could point anywhere)"
    elif status.st_uid != os.getuid():
        problem = f"belongs to user id {status.st_uid}, not to the user running the module (user id {os.getuid()})"
    elif stat.S_IMODE(status.st_mode) & 0o022:
        problem = f"has mode {stat.S_IMODE(status.st_mode):04o}: others can write it (chmod go-w {directory})"
    if problem:
        raise InputError(
            f"run_state_dir {directory} {problem}. It holds the lock that keeps two runs from writing side by side "
            "and the ledger that keeps a code from being sent twice, so it must be a directory of your own that no "
            "one else can write (a missing one is created with mode 0700). Nothing was changed."
        )
    return directory


def state_key(*parts: str | None) -> str:
    """A file name for the state of ``parts`` (the Graph service, tenant, application): a digest, so that no name
    or id is written into the directory's listing."""
    return hashlib.sha256("\n".join(part or "-" for part in parts).encode()).hexdigest()[:32]


class RunLock:
    """The lock of one tenant and application in ``directory``. ``acquire`` waits for it, ``release`` (or the end of
    the process) gives it back. The lock file tells a waiting run who holds it: a process id, a host and when it
    began (nothing secret). A run that ends cleanly leaves when it ended if it wrote (``wrote``), else nothing; one
    that was stopped midway leaves when it ended (``interrupted``), and one that was killed leaves its holder record.
    ``previous_writes_end`` tells the next holder when the run before it wrote last, when those writes may not show
    in Graph's reads yet, so that it lets them show before it reads."""

    def __init__(self, directory: str, key: str, *, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.path = os.path.join(directory, f"lock-{key}")
        self.clock = clock
        self._fd: int | None = None
        # When the holder before this one ended (time.time()), if its last writes may not show yet: it ended midway,
        # or this run waited for it and it wrote (two runs started together plan the same writes). None otherwise.
        self.previous_writes_end: float | None = None

    def holder(self) -> str:
        """Who holds the lock, as its file says (empty when it can't be read)."""
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.loads(file.read(1024) or "{}")
            began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(data["since"])))
            host = "".join(char for char in str(data["host"])[:64] if char.isprintable())
            return f"process {int(data['pid'])} on {host}, since {began}"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def acquire(self, timeout: float, waiting: t.Callable[[float, str], None] = lambda seconds, holder: None) -> float:
        """Take the lock, waiting up to ``timeout`` seconds; ``waiting(seconds so far, holder)`` is called while it
        waits (about every LOCK_POLL_SECONDS). Returns the seconds waited. LockTimeout when it is still held."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o600)
        start = self.clock()
        held = False  # by another run when this one came
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    held = True
                    waited = self.clock() - start
                    holder = self.holder()
                    if waited >= timeout:
                        raise LockTimeout(
                            f"another run for this tenant and application ({holder or 'its process is not known'}) "
                            f"has been writing for the {waited:.0f} s this run waited (lock_timeout={timeout:g}). "
                            "Nothing was changed. Run again once it has finished, or raise lock_timeout; the lock "
                            f"is the file {self.path}, released when its holder ends."
                        ) from None
                    waiting(waited, holder)
                    time.sleep(LOCK_POLL_SECONDS)
            self.previous_writes_end = _previous_writes_end(os.pread(fd, 1024, 0), waited_for_it=held)
            os.ftruncate(fd, 0)
            os.pwrite(
                fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self.clock() - start

    def release(self, *, interrupted: bool = False, wrote: bool = False) -> None:
        """Give the lock back; ``interrupted``: this run stopped midway; ``wrote``: it sent a write (see
        ``previous_writes_end``)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                if interrupted or wrote:
                    record = {"interrupted" if interrupted else "wrote": time.time()}
                    os.pwrite(self._fd, json.dumps(record).encode(), 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def _previous_writes_end(content: bytes, *, waited_for_it: bool) -> float | None:
    """From what the lock file held when this run took the lock: when the run before wrote last, if that may not
    show yet. A run stopped midway left when; a holder record is a run that never released the lock (killed): it
    ended now, at the latest. A run that ended cleanly counts only when this run waited for it."""
    try:
        data = json.loads(content or b"{}")
        if "interrupted" in data:
            return min(float(data["interrupted"]), time.time())
        if "wrote" in data:
            return min(float(data["wrote"]), time.time()) if waited_for_it else None
        return time.time() if "pid" in data else None
    except (ValueError, TypeError):
        return time.time()  # a record cut off as it was written: its writer ended then


class CodeLedger:
    """The last time step whose code was sent, per token id, for one tenant: shared by every run of this controller
    (a JSON line per code, appended before the code leaves). Thread-safe: an inventory's workers share one."""

    def __init__(self, directory: str, key: str, *, clock: t.Callable[[], float] = time.time) -> None:
        self.path = os.path.join(directory, f"codes-{key}.jsonl")
        self.clock = clock
        self._steps: dict[str, tuple[int, int]] = {}  # token id -> (step, interval)
        self._offset = 0
        self._lines = 0  # read since the file was last compacted
        self._mutex = threading.Lock()
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o600)
        with self._flocked(fcntl.LOCK_EX):
            self._read_new()
            if self._lines > LEDGER_MAX_LINES:
                self._compact()

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def last_step(self, token_id: str) -> int | None:
        """The last step whose code any run of this controller sent for the token (None: none recently)."""
        with self._mutex, self._flocked(fcntl.LOCK_SH):
            self._read_new()
        entry = self._steps.get(token_id)
        return entry[0] if entry and self._live(*entry) else None

    def record(self, token_id: str, step: int, interval: int) -> None:
        """Note that the code of ``step`` is about to be sent for the token (before it leaves)."""
        line = json.dumps({"id": token_id, "step": step, "interval": interval}) + "\n"
        with self._mutex, self._flocked(fcntl.LOCK_EX):
            self._read_new()
            os.write(self._fd, line.encode())
            self._offset += len(line.encode())
            self._keep(token_id, step, interval)

    @contextlib.contextmanager
    def _flocked(self, operation: int) -> t.Iterator[None]:
        fcntl.flock(self._fd, operation)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read_new(self) -> None:
        """Take in the lines other runs appended since the last read (from the start, if the file was compacted)."""
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            self._offset, self._steps, self._lines = 0, {}, 0
        if size == self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # a line being written by another run is read next time
        self._offset += end
        for raw in data[:end].splitlines():
            self._lines += 1
            try:
                entry = json.loads(raw)
                token_id, step, interval = str(entry["id"]), entry["step"], entry["interval"]
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: the others still count
            if isinstance(step, int) and interval in (30, 60):
                self._keep(token_id, step, interval)

    def _keep(self, token_id: str, step: int, interval: int) -> None:
        now_step = int(self.clock() // interval)
        if step > now_step + LEDGER_MAX_AHEAD_STEPS:
            return
        known = self._steps.get(token_id)
        if known is None or step > known[0]:
            self._steps[token_id] = (step, interval)

    def _live(self, step: int, interval: int) -> bool:
        return (step + 1) * interval > self.clock() - LEDGER_KEEP_SECONDS

    def _compact(self) -> None:
        """Rewrite the ledger with the live steps only (under the exclusive lock: appends wait, and go after)."""
        live = [
            json.dumps({"id": token_id, "step": step, "interval": interval}) + "\n"
            for token_id, (step, interval) in self._steps.items()
            if self._live(step, interval)
        ]
        os.ftruncate(self._fd, 0)
        data = "".join(live).encode()
        os.write(self._fd, data)
        self._offset, self._lines = len(data), len(live)
