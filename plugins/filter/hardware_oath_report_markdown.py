# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hardware_oath_report_markdown
short_description: A hardware OATH token report as Markdown, for a merge-request comment or a job summary
version_added: 1.0.0
description:
  - Renders the document of P(tokenops.entra.hardware_oath_report#filter) as GitHub/GitLab-flavoured Markdown - a
    heading that says whether the run was in check mode, a one-line summary of the counts, the failed tokens first
    (serial number, user, error, request id), then the tokens that change (or would), and the unchanged tokens as a
    count only.
  - In check mode nothing was changed - the heading says so, and the summary and the changes say what would be done
    (C(2 would be created), C(would be activated)).
  - Table cells are escaped (Markdown characters, and C(<), C(>), C(&) as HTML entities), flattened to one line and
    capped at 1,000 characters. The whole text stays under 60,000 characters (a GitHub comment holds 65,536); a cut
    table says how many more rows the JSON report holds.
  - The report of a check-mode run also states how long applying the plan would take (the module's
    RV(tokenops.entra.hardware_oath_inventory#module:estimate)), for a pipeline's timeout.
options:
  _input:
    description: The report document made by P(tokenops.entra.hardware_oath_report#filter).
    type: dict
    required: true
author:
  - tokenops developers (@tokenops)
seealso:
  - module: tokenops.entra.hardware_oath_inventory
"""

EXAMPLES = r"""
---
- name: Write the Markdown report for the merge request's comment
  ansible.builtin.copy:
    dest: "{{ report_dir }}/hardware-oath-report.md"
    content: "{{ converged | tokenops.entra.hardware_oath_report(check_mode=ansible_check_mode)
      | tokenops.entra.hardware_oath_report_markdown }}"
    mode: "0600"
  check_mode: false
"""

RETURN = r"""
_value:
  description: The report as Markdown.
  type: str
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.report import ReportError, report_markdown
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def hardware_oath_report_markdown(document: t.Any) -> str:
    """The report document as GitHub/GitLab-flavoured Markdown."""
    try:
        return report_markdown(document)
    except ReportError as exc:
        raise filter_error("hardware_oath_report_markdown", exc) from None


class FilterModule:
    """The Markdown rendering of a hardware OATH token report."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"hardware_oath_report_markdown": hardware_oath_report_markdown}
