# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import OUTCOMES, counts
from ansible_collections.tokenops.entra.plugins.module_utils._files.report import (
    MAX_CELL,
    MAX_MARKDOWN,
    ReportError,
    cell,
    describe,
    report_document,
    report_markdown,
    summary,
)
from ansible_collections.tokenops.entra.plugins.module_utils._planning.inventory import (
    Entry,
    PruneScope,
    plan_inventory,
    report_row,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, GUEST, inv

NEW = {"has_secret": True, "manufacturer": "Contoso", "model": "OATH-TOTP"}
WHEN = "2026-01-02T03:04:05Z"
USERS = {AMY.user_principal_name: AMY}


def held(serial, status="activated", holder=ADELE, **fields):
    """A token of the inventory, ``held`` by someone."""
    return replace(inv(status, holder, **fields), serial_number=serial)


def free(serial, **fields):
    return replace(inv(**fields), serial_number=serial)


def result_of(rows, changed=None) -> dict:
    """A registered hardware_oath_inventory result holding ``rows`` (and the keys Ansible adds)."""
    return {
        "changed": any(row["actions"] for row in rows) if changed is None else changed,
        "counts": counts(row["outcome"] for row in rows),
        "tokens": rows,
        "failed_tokens": [row["serial_number"] for row in rows if row["outcome"] == "failed"],
        "invocation": {"module_args": {"tokens": "(3 tokens)"}},
    }


def planned_rows() -> list[dict]:
    """The rows a check-mode run reports for one token of each outcome (and a failed one), in list order."""
    entries = [
        Entry(0, "T-NEW", "activated", AMY.user_principal_name, **NEW),
        Entry(1, "T-HELD", "activated", AMY.user_principal_name, has_secret=True),
        Entry(2, "T-SAME", "available"),
        Entry(3, "T-UPD", "available", model="C302"),
        Entry(4, "T-GONE", "absent"),
        Entry(5, "T-LOST", "activated", "nobody@contoso.com"),
    ]
    tokens = [held("T-HELD"), free("T-SAME"), free("T-UPD"), held("T-GONE", "assigned"), held("P-1", holder=GUEST)]
    prune = PruneScope("unassign", serial_number_prefix="P-")
    return [report_row(plan) for plan in plan_inventory(entries, tokens, USERS, prune=prune)]


def applied_failure(error="activation refused", request_id="req-1"):
    """The row of a token whose activation Graph refused after its unassign from Adele took effect."""
    entries = [Entry(0, "T-HELD", "activated", AMY.user_principal_name, has_secret=True)]
    (plan,) = plan_inventory(entries, [held("T-HELD")], USERS)
    return report_row(plan, outcome="failed", error=error, request_id=request_id, done=plan.actions[:1])


# ---------------------------------------------------------------------------------------------------- the document
def test_the_document_holds_the_result_rows_sorted_by_serial_number():
    rows = planned_rows()
    document = report_document(result_of(rows), check_mode=True, generated_at=WHEN)
    assert list(document) == ["title", "generated_at", "check_mode", "changed", "counts", "failed_tokens", "tokens"]
    assert document["title"] == "Hardware OATH token inventory"
    assert (document["generated_at"], document["check_mode"], document["changed"]) == (WHEN, True, True)
    assert [row["serial_number"] for row in document["tokens"]] == [
        "P-1",
        "T-GONE",
        "T-HELD",
        "T-LOST",
        "T-NEW",
        "T-SAME",
        "T-UPD",
    ]
    assert sorted(document["tokens"], key=lambda row: row["entry"] if row["entry"] is not None else 99) == rows
    assert document["failed_tokens"] == ["T-LOST"]
    assert json.loads(json.dumps(document)) == document  # plain JSON


def test_the_document_sorts_serial_numbers_without_regard_to_case_and_does_not_alias_the_result():
    rows = [report_row(plan) for plan in plan_inventory([Entry(0, "b2"), Entry(1, "A1"), Entry(2, "a3")], [], {})]
    rows = [{**row, "outcome": "failed", "error": "e"} for row in rows]
    result = result_of(rows)
    document = report_document(result, check_mode=False, generated_at=WHEN, title="Lab tenant")
    assert [row["serial_number"] for row in document["tokens"]] == ["A1", "a3", "b2"]
    assert document["failed_tokens"] == ["A1", "a3", "b2"]
    assert document["title"] == "Lab tenant"
    document["tokens"][0]["after"]["status"] = "changed by the caller"
    assert all(row["after"].get("status") != "changed by the caller" for row in result["tokens"])


def test_the_counts_are_in_the_summary_order_with_zeros():
    result = result_of(planned_rows())
    result["counts"] = dict(reversed(list(result["counts"].items())))
    document = report_document(result, check_mode=True, generated_at=WHEN)
    assert document["counts"] == {
        "created": 1,
        "updated": 1,
        "assigned": 0,
        "activated": 0,
        "reassigned": 1,
        "unassigned": 1,
        "deleted": 1,
        "failed": 1,
        "unchanged": 1,
    }
    assert list(document["counts"]) == list(counts([])) == list(OUTCOMES)


def test_no_key_named_like_a_secret_reaches_the_document():
    (row,) = [report_row(plan) for plan in plan_inventory([Entry(0, "T-1", "available", **NEW)], [], {})]
    row = {
        **row,
        "secret_key": "GEZDGNBVGY3TQOJQ",
        "verification_code": "123456",
        "after": {**row["after"], "client_secret": "s3cr3t", "nested": [{"accessToken": "eyJ0"}]},
        "actions": [{**row["actions"][0], "Secret-Key": "GEZD"}],
    }
    document = report_document(result_of([row]), check_mode=True, generated_at=WHEN)
    text = json.dumps(document)
    for secret in ("GEZD", "123456", "s3cr3t", "eyJ0"):
        assert secret not in text
    assert document["tokens"][0]["after"]["nested"] == [{}]
    # The field names an action lists are not secrets: the creation sets secret_key.
    assert "secret_key" in document["tokens"][0]["actions"][0]["changes"]


def test_the_result_of_a_run_where_tokens_failed_is_reported():
    result = {**result_of([applied_failure()]), "failed": True, "msg": "1 of 1 tokens failed; the others converged."}
    document = report_document(result, check_mode=False, generated_at=WHEN)
    assert document["failed_tokens"] == ["T-HELD"]
    assert document["tokens"][0]["request_id"] == "req-1"


@pytest.mark.parametrize(
    "result, kwargs, message",
    [
        (["rows"], {}, "expected the registered result of hardware_oath_inventory (a dict), not list"),
        (
            {"failed": True, "msg": "concurrency must be between 1 and 32"},
            {},
            "the result has no counts and no tokens; is it the registered result of tokenops.entra."
            "hardware_oath_inventory (a task that failed before planning has none): concurrency must be between",
        ),
        ({"counts": {}, "tokens": "T-1"}, {}, "tokens must be a list of rows, not str"),
        ({"counts": {}, "tokens": [{"entry": 0}]}, {}, "tokens[0] is not a token's row"),
        ({"counts": {"failed": "2"}, "tokens": []}, {}, "counts.failed must be a number of tokens, not '2'"),
        ({"counts": {}, "tokens": []}, {"check_mode": "yes"}, "check_mode must be a boolean, not str"),
        ({"counts": {}, "tokens": []}, {"generated_at": None}, "generated_at must be a string, not null"),
    ],
)
def test_what_is_not_a_result_is_refused(result, kwargs, message):
    with pytest.raises(ReportError, match=re.escape(message)):
        report_document(result, **{"check_mode": False, "generated_at": WHEN, **kwargs})


# ---------------------------------------------------------------------------------------------------- the Markdown
def test_the_markdown_of_a_check_mode_run():
    document = report_document(result_of(planned_rows()), check_mode=True, generated_at=WHEN)
    adele = f"Adele Vance ({ADELE.id})"
    assert report_markdown(document) == "\n".join(
        [
            "## Hardware OATH token inventory (check mode: nothing was changed; this is what would change)",
            "",
            "7 tokens: 1 would be created, 1 would be updated, 1 would be reassigned, 1 would be unassigned, "
            "1 would be deleted, 1 failed, 1 unchanged",
            "",
            f"Generated at {WHEN}.",
            "",
            "### Failed (1)",
            "",
            "| Serial number | User | Error | Request id |",
            "| --- | --- | --- | --- |",
            "| T-LOST | nobody@contoso.com | tokens\\[5\\] (T-LOST): user nobody@contoso.com was not found in the "
            "tenant | — |",
            "",
            "### Changes (5)",
            "",
            "| Serial number | User | Outcome | What would be done |",
            "| --- | --- | --- | --- |",
            f"| P-1 | — | would be unassigned | unassign from Grady ({GUEST.id}) |",
            f"| T-GONE | — | would be deleted | unassign from {adele}; delete |",
            f"| T-HELD | amy.masters@contoso.com | would be reassigned | unassign from {adele}; assign and activate "
            "for amy.masters@contoso.com |",
            "| T-NEW | amy.masters@contoso.com | would be created | create for amy.masters@contoso.com; activate for "
            "amy.masters@contoso.com |",
            "| T-UPD | — | would be updated | update model |",
            "",
            "1 token unchanged.",
            "",
        ]
    )


def test_the_plans_markdown_states_how_long_the_apply_takes():
    estimate = {"seconds": 379.0, "text": "about 6 min 19 s (10,100 writes at write_quota 3000/150)", "writes": 10100}
    result = {**result_of(planned_rows()), "estimate": estimate}
    document = report_document(result, check_mode=True, generated_at=WHEN)
    assert document["estimate"] == estimate and document["estimate"] is not estimate
    lines = report_markdown(document).splitlines()
    assert lines[lines.index(f"Generated at {WHEN}.") + 1 :][:2] == [
        "",
        "Estimated duration of the apply: about 6 min 19 s (10,100 writes at write\\_quota 3000/150).",
    ]
    assert "Estimated duration" not in report_markdown(report_document(result, check_mode=False, generated_at=WHEN))
    assert "estimate" not in report_document(result_of(planned_rows()), check_mode=True, generated_at=WHEN)


def test_an_applied_run_lists_the_failed_tokens_first_with_what_was_done():
    rows = [*planned_rows()[:3], applied_failure()]
    rows = [row for row in rows if row["serial_number"] != "T-HELD" or row["outcome"] == "failed"]
    markdown = report_markdown(report_document(result_of(rows), check_mode=False, generated_at=WHEN))
    assert markdown.startswith(
        "## Hardware OATH token inventory (applied)\n\n3 tokens: 1 created, 1 failed, 1 unchanged\n"
    )
    failed = markdown.index("### Failed (1)")
    assert failed < markdown.index("### Changes (2)")
    assert "| T-HELD | amy.masters@contoso.com | activation refused | req-1 |" in markdown
    # The unassign took effect before the failure: it is shown among the changes.
    assert f"| T-HELD | amy.masters@contoso.com | failed | unassign from Adele Vance ({ADELE.id}) |" in markdown
    assert "| What was done |" in markdown


def test_table_cells_show_markdown_and_html_literally():
    error = "Graph answered 400 | <script>alert(1)</script> `rm` *bold* [x](y) a\\b &amp;\nsecond line"
    markdown = report_markdown(
        report_document(result_of([applied_failure(error, "id|<b>")]), check_mode=False, generated_at=WHEN)
    )
    line = next(line for line in markdown.splitlines() if line.startswith("| T-HELD") and "400" in line)
    assert line == (
        "| T-HELD | amy.masters@contoso.com | Graph answered 400 \\| &lt;script&gt;alert(1)&lt;/script&gt; \\`rm\\` "
        "\\*bold\\* \\[x\\](y) a\\\\b &amp;amp; second line | id\\|&lt;b&gt; |"
    )
    assert "<" not in markdown and ">" not in markdown
    # Every row has as many cells as the header: no pipe that is not escaped.
    assert len(re.findall(r"(?<!\\)\|", line)) == 5


def test_a_cell_is_one_line_of_at_most_max_cell_characters():
    assert cell("a\r\nb\tc\x00d\u202e") == "a b cd"
    assert cell(None) == cell("") == "—"
    assert cell("x" * 5000) == "x" * (MAX_CELL - 1) + "…"


def test_a_huge_list_of_changes_is_cut_to_fit_a_merge_request_comment():
    entries = [Entry(i, f"T{i:05}", "available", **NEW) for i in range(3000)]
    rows = [report_row(plan) for plan in plan_inventory(entries, [], {})]
    markdown = report_markdown(report_document(result_of(rows), check_mode=True, generated_at=WHEN))
    assert len(markdown) <= MAX_MARKDOWN < 65_536
    shown = [line for line in markdown.splitlines() if line.startswith("| T")]
    assert shown[0].startswith("| T00000 |")
    assert len(shown) > 100
    assert markdown.endswith(f"\n\n… and {3000 - len(shown)} more changes (see the JSON report)\n")
    assert "3000 tokens: 3000 would be created\n" in markdown


def test_many_failed_tokens_leave_room_for_the_changes():
    entries = [Entry(i, f"T{i:05}", "available", **NEW) for i in range(3000)]
    rows = [report_row(plan) for plan in plan_inventory(entries, [], {})]
    rows = [
        {**row, "outcome": "failed", "actions": [], "error": "x" * 200} if i % 2 else row for i, row in enumerate(rows)
    ]
    markdown = report_markdown(report_document(result_of(rows), check_mode=False, generated_at=WHEN))
    assert len(markdown) <= MAX_MARKDOWN
    assert "… and " in markdown.split("### Changes", maxsplit=1)[0]
    assert re.search(r"\n… and \d+ more failed tokens \(see the JSON report\)\n", markdown)
    assert re.search(r"\n… and \d+ more changes \(see the JSON report\)\n$", markdown)
    assert markdown.count("| created |") > 100


def test_the_limit_can_be_given():
    document = report_document(result_of(planned_rows()), check_mode=True, generated_at=WHEN)
    assert len(report_markdown(document)) == 1147
    markdown = report_markdown(document, limit=900)
    assert len(markdown) <= 900
    outcome = r"would be (?:unassigned|deleted|reassigned|created|updated)"
    shown = re.findall(rf"^\| (\S+) \| [^|]+ \| {outcome} \|", markdown, re.M)
    assert shown == ["P-1", "T-GONE"]
    assert "| T-LOST |" in markdown  # the failed token first
    assert "\n\n… and 3 more changes (see the JSON report)\n\n1 token unchanged.\n" in markdown


def test_unchanged_tokens_are_only_counted():
    rows = [report_row(plan) for plan in plan_inventory([Entry(0, "T-1", "available")], [free("T-1")], {})]
    result = result_of(rows * 1)  # report=all: the unchanged rows are in the result
    result["counts"]["unchanged"] = 5000
    markdown = report_markdown(report_document(result, check_mode=True, generated_at=WHEN))
    assert "| T-1 |" not in markdown
    assert "###" not in markdown
    assert markdown.endswith("5000 tokens unchanged.\n\nNothing to change.\n")


def test_an_empty_run():
    markdown = report_markdown(report_document(result_of([]), check_mode=False, generated_at=""))
    assert markdown == "## Hardware OATH token inventory (applied)\n\n0 tokens.\n\nNo token was declared or pruned.\n"


def test_the_markdown_is_the_same_whatever_the_order_of_the_rows_and_counts():
    document = report_document(result_of(planned_rows()), check_mode=True, generated_at=WHEN)
    shuffled = {
        **document,
        "tokens": list(reversed(document["tokens"])),
        "counts": dict(reversed(list(document["counts"].items()))),
    }
    assert report_markdown(shuffled) == report_markdown(document)


def test_the_title_is_escaped():
    document = report_document(result_of([]), check_mode=True, generated_at=WHEN, title="<img src=x> *prod*")
    assert report_markdown(document).startswith(
        "## &lt;img src=x&gt; \\*prod\\* (check mode: nothing was changed; this is what would change)\n"
    )


def test_what_is_not_a_document_is_refused():
    with pytest.raises(ReportError, match="expected a report document"):
        report_markdown({"counts": {}, "tokens": []})  # the module's result, not the document


@pytest.mark.parametrize(
    "counted, text",
    [
        ({"unchanged": 1}, "1 token: 1 unchanged"),
        ({"failed": 2, "created": 1, "unchanged": 0, "activated": 3}, "6 tokens: 1 created, 3 activated, 2 failed"),
        ({"renamed": 1, "deleted": 1}, "2 tokens: 1 deleted, 1 renamed"),
        ({}, "0 tokens."),
    ],
)
def test_the_summary_names_the_outcomes_that_happened_in_a_fixed_order(counted, text):
    assert summary(counted) == text


@pytest.mark.parametrize(
    "counted, text",
    [
        ({"unchanged": 1}, "1 token: 1 unchanged"),
        (
            {"failed": 2, "created": 1, "unchanged": 4, "activated": 3},
            "10 tokens: 1 would be created, 3 would be activated, 2 failed, 4 unchanged",
        ),
        ({"renamed": 1, "deleted": 1}, "2 tokens: 1 would be deleted, 1 would be renamed"),
        ({}, "0 tokens."),
    ],
)
def test_in_check_mode_the_summary_counts_what_would_change(counted, text):
    assert summary(counted, check_mode=True) == text


def test_an_applied_report_says_what_was_done_not_what_would_be():
    markdown = report_markdown(report_document(result_of(planned_rows()), check_mode=False, generated_at=WHEN))
    assert markdown.startswith(
        "## Hardware OATH token inventory (applied)\n\n"
        "7 tokens: 1 created, 1 updated, 1 reassigned, 1 unassigned, 1 deleted, 1 failed, 1 unchanged\n"
    )
    assert "would" not in markdown
    assert "| What was done |" in markdown


def test_the_writes_are_described_by_who_they_touch():
    row = {
        "before": {"assigned_to": {"id": "U-1", "display_name": "Adele", "user_principal_name": None}},
        "after": {"assigned_to": {"id": "u-2", "display_name": "Amy", "user_principal_name": "amy@contoso.com"}},
        "actions": [
            {"action": "unassign", "user_id": "u-1", "reason": "r"},
            {"action": "set_display_name", "user_id": None, "reason": "r", "changes": ["display_name"]},
            {"action": "update", "user_id": None, "reason": "r", "changes": ["model", "display_name"]},
            {"action": "assign", "user_id": "U-2", "reason": "r"},
            {"action": "rotate_secret", "user_id": "u-3", "reason": "r"},
        ],
    }
    assert describe(row) == (
        "unassign from Adele (U-1); update display_name; update model, display_name; assign to amy@contoso.com; "
        "rotate secret for u-3"
    )
