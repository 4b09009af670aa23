# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hardware_oath_report_files
short_description: Check where the report of a hardware_oath_inventory run may be written, and name its files
version_added: 1.0.0
description:
  - Checks a report directory and a report name on the controller, and returns the paths of the report's JSON and
    Markdown files. It writes and changes nothing; use the paths with M(ansible.builtin.copy) (and
    M(ansible.builtin.file) to create a missing directory with mode V(0700)). The role
    R(tokenops.entra.hardware_oath_tokens,ansible_collections.tokenops.entra.hardware_oath_tokens_role) uses it
    before any request and again at each write.
  - "The name must be a plain file name: only the letters A-Z and a-z, digits, C(.), C(_) and C(-); starting with a
    letter or a digit (no hidden file, no C(-) a shell command would take for an option); without C(..); not ending
    with C(.); at most 100 characters. C(.json) and C(.md) are added."
  - The directory, when it exists, must be a directory that is not a symbolic link, that belongs to the user running
    the play (the controller's user), and that neither its group nor other users can write to. Otherwise it is
    refused and left as it is, never changed. A directory others can read is accepted, since the files are written
    with mode V(0600).
  - A C(~) and environment variables in the directory are expanded, and a relative directory is taken from the
    current directory, as M(ansible.builtin.copy) takes it. Only the directory itself is checked, not its parents.
options:
  _input:
    description: The report directory.
    type: path
    required: true
  name:
    description: The report's file name, without extension.
    type: str
    required: true
author:
  - tokenops developers (@tokenops)
seealso:
  - plugin: tokenops.entra.hardware_oath_report
    plugin_type: filter
  - plugin: tokenops.entra.hardware_oath_report_markdown
    plugin_type: filter
"""

EXAMPLES = r"""
---
- name: Write the report where only this user can change it
  vars:
    report: "{{ converged | tokenops.entra.hardware_oath_report(check_mode=ansible_check_mode) }}"
    # A template is evaluated where it is used: the directory is checked again by each task below.
    files: "{{ report_dir | tokenops.entra.hardware_oath_report_files(name='hardware-oath-report') }}"
  delegate_to: localhost
  check_mode: false
  block:
    - name: Create the report directory when it is missing
      ansible.builtin.file:
        path: "{{ files.dir }}"
        state: directory
        mode: "0700"
        follow: false
      when: not files.exists

    - name: Write the report as JSON and as Markdown
      ansible.builtin.copy:
        dest: "{{ files[item.kind] }}"
        content: "{{ item.content }}"
        mode: "0600"
      loop:
        - kind: json
          content: "{{ report | to_nice_json }}"
        - kind: markdown
          content: "{{ report | tokenops.entra.hardware_oath_report_markdown }}"
      loop_control:
        label: "{{ item.kind }}"
"""

RETURN = r"""
_value:
  description: The checked directory and the report's files in it.
  type: dict
  contains:
    dir:
      description: The directory, absolute.
      type: str
      sample: /home/ansible/project/report
    exists:
      description: Whether the directory exists (when it does not, create it with mode V(0700), then check again).
      type: bool
    json:
      description: The JSON report's path.
      type: str
      sample: /home/ansible/project/report/hardware-oath-tokens.json
    markdown:
      description: The Markdown report's path.
      type: str
      sample: /home/ansible/project/report/hardware-oath-tokens.md
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.report_files import ReportFileError, report_files
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def hardware_oath_report_files(report_dir: t.Any, name: t.Any = None) -> dict[str, t.Any]:
    """The report's files in ``report_dir``, once the directory and ``name`` are checked."""
    try:
        return report_files(report_dir, name).as_dict()
    except ReportFileError as exc:
        raise filter_error("hardware_oath_report_files", exc) from None


class FilterModule:
    """Where the report of hardware_oath_inventory is written."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"hardware_oath_report_files": hardware_oath_report_files}
