# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The action plugin of hardware_oath_inventory: which tasks show progress, the loop that shows it (on a fake clock:
nothing for a short run, a line after 20 s then every 10 s, the module's result or error passed on), and the plugin
running the module with a private progress file, or as Ansible runs any module."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from unittest import mock

import pytest
from ansible.errors import AnsibleError

from ansible_collections.tokenops.entra.plugins.action import hardware_oath_inventory as plugin
from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import Snapshot, write_snapshot

WALL = 1_800_000_000.0
RESULT = {"changed": True, "counts": {"created": 3}}


# ---------------------------------------------------------------------------------------------------- the decision
@pytest.mark.parametrize(
    ("transport", "async_val", "become", "shows"),
    [
        ("local", 0, False, True),
        ("ssh", 0, False, False),  # the module runs elsewhere: its file is not here
        ("local", 3600, False, False),  # async: its own wrapper runs the module in the background
        ("local", 0, True, False),  # another user: it could not write in this user's private directory
    ],
)
def test_progress_shows_for_a_task_that_runs_on_the_controller_as_this_user(transport, async_val, become, shows):
    assert plugin.shows_progress(transport, async_val, become) is shows


# ---------------------------------------------------------------------------------------------------- the loop
class FakeTime:
    """The clock of ``watch``: each wait moves it on by the time waited. The module (``run``) lasts ``lasts`` seconds
    of it, writing a snapshot at each second (``done`` = the seconds elapsed) when given a ``path``."""

    def __init__(self, lasts: float, path: str | None = None) -> None:
        self.now = 0.0
        self.lasts = lasts
        self.path = path
        self.over = threading.Event()  # the module may end
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now

    def wait(self, finished: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        if self.path is not None:
            done = min(int(self.now), 100)
            write_snapshot(self.path, Snapshot(done, 100, done * 2, 1, self.now, 100.0 - done, self.wall()))
        if self.now >= self.lasts:
            self.over.set()
            return finished.wait(5)
        return False

    def run(self) -> dict:
        assert self.over.wait(5), "the module ran past the test"
        return RESULT


def watched(fake: FakeTime, path: str, run=None) -> tuple[dict, list[str]]:
    lines: list[str] = []
    result = plugin.watch(run or fake.run, path, lines.append, clock=fake.clock, wall=fake.wall, wait=fake.wait)
    return result, lines


def test_a_short_run_shows_nothing(tmp_path):
    fake = FakeTime(lasts=19.5, path=str(tmp_path / "progress.json"))
    assert watched(fake, fake.path) == (RESULT, [])
    assert set(fake.waits) == {plugin.POLL}


def test_a_long_run_shows_a_line_after_20_s_then_every_10_s(tmp_path):
    fake = FakeTime(lasts=45, path=str(tmp_path / "progress.json"))
    result, lines = watched(fake, fake.path)
    assert result == RESULT
    assert lines == [
        "20 of 100 tokens done, 40 writes sent, 1 answered 429 (throttled), 20 s elapsed, about 1 min 20 s left",
        "30 of 100 tokens done, 60 writes sent, 1 answered 429 (throttled), 30 s elapsed, about 1 min 10 s left",
        "40 of 100 tokens done, 80 writes sent, 1 answered 429 (throttled), 40 s elapsed, about 1 min left",
    ]
    assert plugin.FIRST_AFTER == 20 and plugin.EVERY == 10  # at most 15 s between two lines, as promised


def test_before_the_first_snapshot_the_line_says_the_module_reads_and_plans(tmp_path):
    fake = FakeTime(lasts=25)  # writes no snapshot
    assert watched(fake, str(tmp_path / "progress.json"))[1] == ["reading the tenant and planning, 20 s elapsed"]


def test_the_modules_error_is_raised_in_the_callers_thread(tmp_path):
    fake = FakeTime(lasts=3)

    def failing() -> dict:
        fake.over.wait(5)
        raise AnsibleError("the module could not be transferred")

    with pytest.raises(AnsibleError, match="could not be transferred"):
        watched(fake, str(tmp_path / "progress.json"), failing)


def test_once_ansible_playbook_is_gone_the_module_is_asked_to_stop_and_nothing_more_is_shown(tmp_path):
    fake = FakeTime(lasts=45, path=str(tmp_path / "progress.json"))
    lines: list[str] = []
    result = plugin.watch(
        fake.run,
        fake.path,
        lines.append,
        clock=fake.clock,
        wall=fake.wall,
        wait=fake.wait,
        orphaned=lambda: fake.now >= 25,
    )
    assert result == RESULT  # the module ends as it would: the plugin waits for it
    assert len(lines) == 1 and lines[0].startswith("20 of 100 tokens done")
    assert os.path.exists(fake.path + ".stop")


def test_while_ansible_playbook_is_there_no_stop_is_asked(tmp_path):
    fake = FakeTime(lasts=30, path=str(tmp_path / "progress.json"))
    plugin.watch(fake.run, fake.path, print, clock=fake.clock, wall=fake.wall, wait=fake.wait, orphaned=lambda: False)
    assert not os.path.exists(fake.path + ".stop")


def test_the_module_runs_in_a_thread_with_the_callers_context(tmp_path):
    task = contextvars.ContextVar("task")
    task.set("Converge")
    seen = {}

    def run() -> dict:
        seen["task"], seen["thread"] = task.get(None), threading.current_thread()
        return RESULT

    assert plugin.watch(run, str(tmp_path / "progress.json"), print) == RESULT
    assert seen["task"] == "Converge"  # Ansible keeps the task in context variables
    assert seen["thread"] is not threading.current_thread()


# ---------------------------------------------------------------------------------------------------- the plugin
def action(tmp_path, *, transport="local", async_val=0, become=False, args=None):
    task = mock.MagicMock(async_val=async_val, check_mode=False, args=dict(args or {"tokens": []}))
    task.action = "tokenops.entra.hardware_oath_inventory"
    connection = mock.MagicMock(transport=transport, has_native_async=False)
    connection._shell.tmpdir = None
    module = plugin.ActionModule(task, connection, mock.MagicMock(become=become), loader=None, templar=None)
    module._remove_tmp_path = mock.MagicMock()
    return module


def test_on_the_controller_the_module_writes_to_a_private_file_the_plugin_shows(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin.C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    monkeypatch.setattr(plugin, "FIRST_AFTER", 0.2)
    monkeypatch.setattr(plugin, "EVERY", 0.2)
    monkeypatch.setattr(plugin, "POLL", 0.05)
    shown = []
    monkeypatch.setattr(plugin.display, "display", lambda message, **options: shown.append((message, options)))
    module = action(tmp_path)
    given = {}

    def execute_module(module_args=None, task_vars=None, **options):
        given.update(module_args=module_args, options=options, thread=threading.current_thread())
        path = module_args["progress_file"]
        for done in range(1, 6):
            write_snapshot(path, Snapshot(done, 5, done, 0, 0.1 * done, 0.5, time.time()))
            time.sleep(0.1)
        return dict(RESULT)

    module._execute_module = execute_module
    result = module.run(task_vars={"inventory_hostname": "localhost"})
    assert result == RESULT
    path = given["module_args"]["progress_file"]
    assert given["module_args"]["tokens"] == [] and given["options"] == {}
    assert given["thread"] is not threading.current_thread()
    private = os.path.dirname(path)
    assert os.path.dirname(private) == str(tmp_path) and os.path.basename(private).startswith("tokenops-entra-progress")
    assert not os.path.exists(private)  # removed once the module ended
    assert shown, "no progress was shown"
    assert all(message.startswith("progress: [localhost] ") for message, _options in shown)
    assert any(" of 5 tokens done, " in message for message, _options in shown)
    assert {tuple(options.items()) for _message, options in shown} == {(("stderr", True),)}
    module._remove_tmp_path.assert_called_once()


def test_once_the_module_has_ended_a_worker_whose_ansible_playbook_is_gone_ends_itself(monkeypatch):
    ended: list[int] = []
    monkeypatch.setattr(plugin.os, "_exit", ended.append)
    plugin.leave_if_orphaned(lambda: False)
    assert ended == []
    plugin.leave_if_orphaned(lambda: True)
    assert ended == [1]


def test_the_worker_ends_after_the_module_and_the_cleanup_when_ansible_playbook_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin.C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    parents = iter([100] + [1] * 10)  # ansible-playbook's pid when the task starts; then init's: it was killed
    monkeypatch.setattr(plugin.os, "getppid", lambda: next(parents))
    ended: list[tuple[int, bool]] = []
    given: dict = {}

    def execute_module(module_args=None, task_vars=None, **options):
        given["private"] = os.path.dirname(module_args["progress_file"])
        return dict(RESULT)

    monkeypatch.setattr(plugin.os, "_exit", lambda status: ended.append((status, os.path.exists(given["private"]))))
    module = action(tmp_path)
    module._execute_module = execute_module
    module.run(task_vars={})
    assert ended == [(1, False)]  # after the private directory was removed


def test_a_progress_file_the_task_gives_is_used_and_kept(tmp_path, monkeypatch):
    path = str(tmp_path / "mine.json")
    module = action(tmp_path, args={"tokens": [], "progress_file": path})
    module._execute_module = mock.MagicMock(return_value=dict(RESULT))
    monkeypatch.setattr(plugin, "watch", lambda run, where, show, **_options: (given.append(where), run())[1])
    given: list[str] = []
    assert module.run(task_vars={}) == RESULT
    assert given == [path]
    assert module._execute_module.call_args.kwargs["module_args"]["progress_file"] == path


@pytest.mark.parametrize(
    ("transport", "async_val", "become"), [("ssh", 0, False), ("local", 60, False), ("local", 0, True)]
)
def test_elsewhere_the_module_runs_as_ansible_runs_any_module(tmp_path, monkeypatch, transport, async_val, become):
    monkeypatch.setattr(plugin, "watch", mock.MagicMock(side_effect=AssertionError("no progress here")))
    module = action(tmp_path, transport=transport, async_val=async_val, become=become)
    module._execute_module = mock.MagicMock(return_value=dict(RESULT))
    assert module.run(task_vars={}) == RESULT
    module._execute_module.assert_called_once_with(task_vars={}, wrap_async=bool(async_val))
    assert module._remove_tmp_path.called is not bool(async_val)  # an async task's wrapper removes its own
