# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin of tokenops.entra.hardware_oath_inventory: it runs the module as Ansible would and, for a task
that runs on the controller, shows how far the module has got while it runs.

A module's output arrives when it ends, so a run over thousands of tokens would be one silent task. When the task
runs over the local connection (``connection: local``, or delegated to localhost), without ``async`` and without
``become``, the module runs in a thread of this plugin with its option ``progress_file`` set to a file in a private
directory of Ansible's local temporary directory; the module replaces that file with a snapshot of its counts about
once a second (``module_utils/_common/progress.py``), and this plugin shows it as a line, through Ansible's display,
once FIRST_AFTER seconds have passed and every EVERY seconds after that: in the output of ansible-playbook without
``-v``, and in ansible-runner's events (AWX's job output). A shorter run shows nothing. Otherwise (another
connection, ``async``, ``become``) the module runs as the ``normal`` action plugin runs any module.

While it watches, it also watches ansible-playbook: this plugin runs in a worker process that ansible-playbook
forked, in a session of its own, so a timeout or a cancel that kills ansible-playbook with its process group leaves
the worker and the module running. When the worker's parent is gone, this plugin creates ``<progress_file>.stop``:
the module then starts no new work, ends what is under way, and exits (releasing its lock), instead of writing on
beside the run started next. Then the worker itself ends: its result has nobody to go to, and a worker that tries
to send it blocks for good (on a CI runner or an AWX execution node, such workers would pile up)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import tempfile
import threading
import time
import typing as t

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import progress_line, read_snapshot

display = Display()

FIRST_AFTER = 20.0  # a task shorter than this shows no progress...
EVERY = 10.0  # ...a longer one, a line this often
POLL = 1.0  # how often the module's thread is checked on


def shows_progress(transport: str, async_val: int, become: bool) -> bool:
    """Whether the module may run in a thread of this plugin and write its progress where this plugin reads it: on
    the controller, as this user, without ``async`` (whose own wrapper runs the module in the background)."""
    return transport == "local" and not async_val and not become


def watch(
    run: t.Callable[[], dict[str, t.Any]],
    path: str,
    show: t.Callable[[str], None],
    *,
    clock: t.Callable[[], float] = time.monotonic,
    wall: t.Callable[[], float] = time.time,
    wait: t.Callable[[threading.Event, float], bool] = threading.Event.wait,
    orphaned: t.Callable[[], bool] = lambda: False,
) -> dict[str, t.Any]:
    """Call ``run()`` in a thread (in a copy of this thread's context: Ansible keeps the task's in context
    variables) and return what it returns, or raise what it raises. Meanwhile ``show`` a line of the progress at
    ``path`` once FIRST_AFTER seconds have passed, then every EVERY seconds. ``wait(event, seconds)``: wait at most
    that long for the thread to end, True when it has (``clock``, ``wall`` and ``wait`` are injectable for tests).
    Once ``orphaned()`` (ansible-playbook is gone), the module is asked to stop: ``<path>.stop`` is created."""
    finished = threading.Event()
    outcome: dict[str, t.Any] = {}

    def target() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # raised again in the caller's thread
            outcome["error"] = exc
        finally:
            finished.set()

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(target,), name="hardware_oath_inventory", daemon=True)
    start = clock()
    worker.start()
    shown: float | None = None
    stopping = False
    while not wait(finished, POLL):
        if stopping:
            continue  # nobody is left to show a line to
        if orphaned():
            stopping = True
            with contextlib.suppress(OSError), open(f"{path}.stop", "w", encoding="utf-8"):
                pass
            continue
        now = clock()
        if now - start >= FIRST_AFTER and (shown is None or now - shown >= EVERY):
            show(progress_line(read_snapshot(path), now - start, wall()))
            shown = now
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return t.cast("dict[str, t.Any]", outcome["result"])


def leave_if_orphaned(orphaned: t.Callable[[], bool]) -> None:
    """End this worker process when ansible-playbook is gone, once the module has ended: its result has nobody to go
    to, and sending it would block for good. Nothing is left to clean up: the module released its lock, and the
    progress file's private directory is removed."""
    if orphaned():
        os._exit(1)  # pylint: disable=protected-access  # the documented way out of a forked process


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        if shows_progress(self._connection.transport, self._task.async_val, self._play_context.become):
            result = merge_hash(result, self._run_watched(task_vars))
        else:
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _run_watched(self, task_vars: dict[str, t.Any] | None) -> dict[str, t.Any]:
        """The module, run while its progress is shown (see this file's docstring). A ``progress_file`` the task
        gives is used as it is, and left in place."""
        args = dict(self._task.args)
        private = None
        if not args.get("progress_file"):
            private = tempfile.mkdtemp(prefix="tokenops-entra-progress-", dir=C.DEFAULT_LOCAL_TMP)
            args["progress_file"] = os.path.join(private, "progress.json")
        host = (task_vars or {}).get("inventory_hostname", "localhost")
        parent = os.getppid()  # ansible-playbook

        def orphaned() -> bool:
            return os.getppid() != parent

        try:
            return watch(
                lambda: self._execute_module(module_args=args, task_vars=task_vars),
                args["progress_file"],
                # On standard error: a stdout callback's output (json, yaml) stays whole; ansible-runner (AWX) reads
                # both streams and makes the line an event of its own (a "verbose" event under the task).
                lambda line: display.display(f"progress: [{host}] {line}", stderr=True),
                orphaned=orphaned,
            )
        finally:
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            leave_if_orphaned(orphaned)
