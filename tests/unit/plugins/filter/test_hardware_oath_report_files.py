# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter tokenops.entra.hardware_oath_report_files: the wiring of _files/report_files.py into a filter plugin."""

from __future__ import annotations

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tokenops.entra.plugins.filter import hardware_oath_report_files as plugin


def test_the_plugin_provides_the_filter():
    assert plugin.FilterModule().filters() == {"hardware_oath_report_files": plugin.hardware_oath_report_files}


def test_the_filter_gives_the_checked_files(tmp_path):
    (tmp_path / "report").mkdir(mode=0o700)
    assert plugin.hardware_oath_report_files(str(tmp_path / "report"), name="run") == {
        "dir": f"{tmp_path}/report",
        "exists": True,
        "json": f"{tmp_path}/report/run.json",
        "markdown": f"{tmp_path}/report/run.md",
    }
    assert plugin.hardware_oath_report_files(str(tmp_path / "new"), name="run")["exists"] is False


def test_the_filter_in_a_template(tmp_path):
    environment = jinja2.Environment(autoescape=False)
    environment.filters.update(plugin.FilterModule().filters())
    template = environment.from_string("{{ (dir | hardware_oath_report_files(name='r')).markdown }}")
    assert template.render(dir=str(tmp_path)) == f"{tmp_path}/r.md"


@pytest.mark.parametrize(
    "make, name, problem",
    [
        (lambda p: p.mkdir(mode=0o700), "../r", "holds a path separator"),
        (lambda p: p.mkdir(mode=0o700), None, "the report name must be a string, not NoneType"),
        (lambda p: p.symlink_to(p.parent), "r", "is a symbolic link"),
        (lambda p: (p.mkdir(), p.chmod(0o775)), "r", "has mode 0775: its group can write to it"),
    ],
)
def test_refusals_are_filter_errors(tmp_path, make, name, problem):
    path = tmp_path / "report"
    make(path)
    with pytest.raises(AnsibleFilterError) as info:
        plugin.hardware_oath_report_files(str(path), name=name)
    assert info.value.message.startswith("tokenops.entra.hardware_oath_report_files: ")
    assert problem in info.value.message
    assert info.value.__cause__ is None
