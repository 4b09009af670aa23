# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A notification callback for bench/run.py: writes each task's outcome and timing to the JSON file named by
BENCH_RECORD, without the module's arguments (invocation) or anything else that could hold a secret."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_record
type: notification
short_description: records each task's outcome and timing for bench/run.py
description:
  - Writes, to the file named by the environment variable BENCH_RECORD, each task's name, start and end time,
    and its result's changed, failed, msg, counts, failed_tokens and pacing (loops - how many items changed and
    failed).
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED, with BENCH_RECORD set
"""

KEPT = ("changed", "failed", "msg", "counts", "failed_tokens", "pacing")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "bench_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict] = []

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:  # pylint: disable=unused-argument
        self.tasks.append({"name": task.get_name(), "start": time.time(), "end": None, "result": None})

    def _record(self, result, status: str) -> None:
        raw = result._result  # pylint: disable=protected-access
        kept = {key: raw[key] for key in KEPT if key in raw}
        if isinstance(raw.get("results"), list):
            items = [item for item in raw["results"] if isinstance(item, dict)]
            kept["items"] = len(items)
            kept["items_changed"] = sum(1 for item in items if item.get("changed"))
            kept["items_failed"] = sum(1 for item in items if item.get("failed"))
            kept["item_messages"] = [str(item.get("msg")) for item in items if item.get("failed")][:5]
        if self.tasks:
            self.tasks[-1].update(end=time.time(), status=status, result=kept)

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:  # pylint: disable=unused-argument
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:  # pylint: disable=unused-argument
        path = os.environ.get("BENCH_RECORD")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"tasks": self.tasks}, handle, default=str)
