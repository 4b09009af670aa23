# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hardware_oath_report
short_description: The report of a hardware_oath_inventory run, as a document to write as JSON
version_added: 1.0.0
description:
  - Makes the report of a registered M(tokenops.entra.hardware_oath_inventory) result (of a task that succeeded, or
    that failed because some tokens failed) - its counts, the failed tokens and the tokens' rows, sorted by serial
    number so that two reports compare line by line.
  - The rows are the module's; they never hold a secret. Any key named like a secret (C(secret_key),
    C(verification_code), C(client_secret), C(access_token)) is dropped all the same.
  - The filter P(tokenops.entra.hardware_oath_report_markdown#filter) renders the document as GitHub/GitLab-flavoured
    Markdown, for a merge-request comment or a job summary.
options:
  _input:
    description: The registered result of M(tokenops.entra.hardware_oath_inventory).
    type: dict
    required: true
  check_mode:
    description: Whether the task ran in check mode (nothing was changed); give C(ansible_check_mode).
    type: bool
    default: false
  generated_at:
    description:
      - When the report was made, as it is shown. Empty, the current UTC time in ISO 8601 (C(2026-01-02T03:04:05Z)).
    type: str
    default: ""
  title:
    description: The report's title; empty, C(Hardware OATH token inventory).
    type: str
author:
  - tokenops developers (@tokenops)
seealso:
  - module: tokenops.entra.hardware_oath_inventory
"""

EXAMPLES = r"""
---
- name: Converge the token inventory (check mode in a merge request pipeline)
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ token_inventory }}"
  register: converged
  ignore_errors: true  # a run where some tokens failed is reported too

- name: Write the report as JSON and as Markdown
  vars:
    report: "{{ converged | tokenops.entra.hardware_oath_report(check_mode=ansible_check_mode) }}"
  ansible.builtin.copy:
    dest: "{{ report_dir }}/{{ item.name }}"
    content: "{{ item.content }}"
    mode: "0600"
  check_mode: false
  loop:
    - name: hardware-oath-report.json
      content: "{{ report | to_nice_json }}"
    - name: hardware-oath-report.md
      content: "{{ report | tokenops.entra.hardware_oath_report_markdown }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description:
    - The report document. The filter P(tokenops.entra.hardware_oath_report_markdown#filter) renders it as Markdown
      (at most 60,000 characters; the tables are cut, saying how many more rows the document holds).
  type: dict
  contains:
    title:
      description: The title.
      type: str
    generated_at:
      description: When the report was made.
      type: str
    check_mode:
      description: Whether the task ran in check mode.
      type: bool
    changed:
      description: Whether the task changed (or, in check mode, would change) anything.
      type: bool
    counts:
      description: How many tokens ended with each outcome, every outcome listed (zeros included), in the order
        V(created), V(updated), V(assigned), V(activated), V(reassigned), V(unassigned), V(deleted), V(failed),
        V(unchanged).
      type: dict
    estimate:
      description:
        - The module's estimate of how long applying the plan takes
          (RV(tokenops.entra.hardware_oath_inventory#module:estimate)). The Markdown of a check-mode report states it.
      type: dict
      returned: when the result holds it
    failed_tokens:
      description: The serial numbers of the tokens that failed, sorted.
      type: list
      elements: str
    tokens:
      description: The module's rows (RV(tokenops.entra.hardware_oath_inventory#module:tokens)), sorted by serial
        number.
      type: list
      elements: dict
"""


import datetime
import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.report import ReportError, report_document
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def now() -> str:
    """The current UTC time in ISO 8601, to the second: ``2026-01-02T03:04:05Z``."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hardware_oath_report(
    result: t.Any, check_mode: t.Any = False, generated_at: t.Any = "", title: t.Any = None
) -> dict[str, t.Any]:
    """The report document of a registered hardware_oath_inventory result."""
    if not isinstance(check_mode, bool):
        raise filter_error("hardware_oath_report", f"check_mode must be a boolean, not {check_mode!r}")
    if generated_at is not None and not isinstance(generated_at, str):
        raise filter_error("hardware_oath_report", f"generated_at must be a string, not {generated_at!r}")
    try:
        return report_document(result, check_mode=check_mode, generated_at=generated_at or now(), title=title or None)
    except ReportError as exc:
        raise filter_error("hardware_oath_report", exc) from None


class FilterModule:
    """The report filter of hardware_oath_inventory."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"hardware_oath_report": hardware_oath_report}
