# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A notification callback for tests/soak/run.py: writes the result of the inventory task to the JSON file named by
SOAK_RECORD, without the module's arguments (invocation) or anything else that could hold a secret: each token's
row is kept as its serial number, outcome and error (the module's rows never hold a secret or a code)."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: soak_record
type: notification
short_description: records the inventory task's result for tests/soak/run.py
description:
  - Writes, to the file named by the environment variable SOAK_RECORD, each task's status and its result's changed,
    failed, msg, counts, failed_tokens, pacing and, for each row of its tokens, the serial number, outcome and error.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED, with SOAK_RECORD set
"""

KEPT = ("changed", "failed", "msg", "counts", "failed_tokens", "pacing")
ROW_KEPT = ("serial_number", "outcome", "error")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "soak_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict] = []

    def _record(self, result, status: str) -> None:
        raw = result._result  # pylint: disable=protected-access
        kept = {key: raw[key] for key in KEPT if key in raw}
        if isinstance(raw.get("tokens"), list):
            kept["tokens"] = [
                {key: row.get(key) for key in ROW_KEPT if key in row} for row in raw["tokens"] if isinstance(row, dict)
            ]
        self.tasks.append({"name": result.task_name, "status": status, "result": kept})

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:  # pylint: disable=unused-argument
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:  # pylint: disable=unused-argument
        path = os.environ.get("SOAK_RECORD")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"tasks": self.tasks}, handle, default=str)
