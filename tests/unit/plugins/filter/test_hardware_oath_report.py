# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import json
import re

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tokenops.entra.plugins.filter import hardware_oath_report as plugin
from ansible_collections.tokenops.entra.plugins.filter import hardware_oath_report_markdown as markdown_plugin
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import counts
from ansible_collections.tokenops.entra.plugins.module_utils._planning.inventory import (
    Entry,
    plan_inventory,
    report_row,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import AMY

WHEN = "2026-01-02T03:04:05Z"


@pytest.fixture
def result() -> dict:
    """A registered check-mode result: T-2 is created for Amy, T-1 fails (its user is not in the tenant)."""
    entries = [
        Entry(0, "T-2", "activated", AMY.user_principal_name, has_secret=True, manufacturer="Contoso", model="C1"),
        Entry(1, "T-1", "activated", "nobody@contoso.com"),
    ]
    rows = [report_row(plan) for plan in plan_inventory(entries, [], {AMY.user_principal_name: AMY})]
    return {
        "changed": True,
        "counts": counts(row["outcome"] for row in rows),
        "tokens": rows,
        "failed_tokens": ["T-1"],
        "failed": True,
        "msg": "1 of 2 tokens failed",
    }


def test_each_plugin_provides_its_filter():
    assert plugin.FilterModule().filters() == {"hardware_oath_report": plugin.hardware_oath_report}
    assert markdown_plugin.FilterModule().filters() == {
        "hardware_oath_report_markdown": markdown_plugin.hardware_oath_report_markdown
    }


def test_the_report_filter_gives_the_document(result):
    document = plugin.hardware_oath_report(result, check_mode=True, generated_at=WHEN, title="Lab")
    assert document["title"] == "Lab"
    assert (document["generated_at"], document["check_mode"], document["changed"]) == (WHEN, True, True)
    assert [row["serial_number"] for row in document["tokens"]] == ["T-1", "T-2"]
    assert document["counts"]["created"] == document["counts"]["failed"] == 1


def test_without_generated_at_the_report_is_dated_now_in_utc(result):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    document = plugin.hardware_oath_report(result)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["generated_at"])
    when = datetime.datetime.strptime(document["generated_at"], "%Y-%m-%dT%H:%M:%S%z")
    assert before <= when <= after
    assert document["check_mode"] is False
    assert document["title"] == "Hardware OATH token inventory"


def test_the_markdown_filter_renders_the_document(result):
    markdown = markdown_plugin.hardware_oath_report_markdown(plugin.hardware_oath_report(result, generated_at=WHEN))
    assert markdown.startswith("## Hardware OATH token inventory (applied)\n\n2 tokens: 1 created, 1 failed\n")
    assert markdown.index("| T-1 |") < markdown.index("| T-2 |")


def test_the_filters_chain_in_a_template(result):
    environment = jinja2.Environment(autoescape=False)
    environment.filters.update(plugin.FilterModule().filters())
    environment.filters.update(markdown_plugin.FilterModule().filters())
    template = environment.from_string(
        "{{ converged | hardware_oath_report(check_mode=true, generated_at=when) | hardware_oath_report_markdown }}"
    )
    markdown = template.render(converged=result, when=WHEN)
    assert markdown.startswith(
        "## Hardware OATH token inventory (check mode: nothing was changed; this is what would change)\n\n"
        "2 tokens: 1 would be created, 1 failed\n"
    )
    document = environment.from_string("{{ r | hardware_oath_report(generated_at=when) | tojson }}").render(
        r=result, when=WHEN
    )
    assert json.loads(document)["failed_tokens"] == ["T-1"]


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda result: plugin.hardware_oath_report({"failed": True, "msg": "boom"}),
            "tokenops.entra.hardware_oath_report: the result has no counts and no tokens; is it the registered "
            "result of tokenops.entra.hardware_oath_inventory (a task that failed before planning has none): boom",
        ),
        (
            lambda result: plugin.hardware_oath_report(result, check_mode="true"),
            "tokenops.entra.hardware_oath_report: check_mode must be a boolean, not 'true'",
        ),
        (
            lambda result: plugin.hardware_oath_report(result, generated_at=12),
            "tokenops.entra.hardware_oath_report: generated_at must be a string, not 12",
        ),
        (
            lambda result: plugin.hardware_oath_report(result, title=["x"]),
            "tokenops.entra.hardware_oath_report: title must be a string, not list",
        ),
        (
            markdown_plugin.hardware_oath_report_markdown,
            "tokenops.entra.hardware_oath_report_markdown: expected a report document",
        ),
    ],
)
def test_errors_are_filter_errors(result, call, message):
    with pytest.raises(AnsibleFilterError) as info:
        call(result)
    assert str(info.value.message).startswith(message)
