# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of hardware_oath_inventory's run(): the list refused before any request, the plan shown in check
mode, the report and the diff, a failed token failing the task at the end, and never a secret or a code in the
result; on a fakes.FakeInventoryApi."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import read_snapshot
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import ACTIVATE, ASSIGN_AND_ACTIVATE
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import CodeSource
from ansible_collections.tokenops.entra.plugins.module_utils._execution import inventory_apply
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import Pacer
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_inventory as module_under_test
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    Exited,
    Failed,
    FakeInventoryApi,
    FakeModule,
    module_spec,
    task_options,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, CONTROL, SECRET, inv

OPTIONS = module_spec(module_under_test)["tokens"]["options"]
NEW = {"secret_key": SECRET, "manufacturer": "Contoso", "model": "OATH-TOTP"}  # what creating a token takes
AMY_UPN = AMY.user_principal_name
NOW = 1_800_000_000.0  # the clock of every code source


def item(serial, **given):
    """One element of the tokens option as Ansible hands it over: every suboption, at its default unless given."""
    return {**{name: option.get("default") for name, option in OPTIONS.items()}, "serial_number": serial, **given}


def task(tokens, **given):
    """The module as a task giving ``tokens`` (and ``given``: options, check_mode, diff) would run it."""
    return FakeModule(task_options(module_under_test, tokens=tokens), **given)


def listed(serial, status="available", holder=None):
    """A token of the inventory (id ``id-{serial}``)."""
    return replace(inv(status, holder), id=f"id-{serial}", serial_number=serial)


OUTCOMES = ("unchanged", "created", "updated", "assigned", "activated", "reassigned", "unassigned", "deleted", "failed")


def counted(**outcomes):
    """The counts of a result: every outcome, zero unless given."""
    return {**dict.fromkeys(OUTCOMES, 0), **outcomes}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Codes are computed at NOW."""
    monkeypatch.setattr(inventory_apply, "CodeSource", functools.partial(CodeSource, clock=lambda: NOW))


@pytest.fixture
def api(patch_api):
    """``api(*tokens, **script)``: the module's HardwareOathApi is a FakeInventoryApi whose inventory holds
    ``tokens``."""
    return lambda *tokens, **script: patch_api(module_under_test, FakeInventoryApi(tokens=tokens, **script))


def mixed():
    """T-1 to create for Amy, T-2 Amy's already, T-3 Adele's to give to Amy."""
    return [item("T-1", user=AMY_UPN, **NEW), item("T-2", user=AMY_UPN, **NEW), item("T-3", user=AMY_UPN, **NEW)]


def mixed_inventory():
    return listed("T-2", "activated", AMY), listed("T-3", "activated", ADELE)


def writes(fake):
    return [call for call in fake.calls if call[0] not in ("users_by_refs", "list_tokens")]


# ------------------------------------------------------------------------------------------- refused before any request
@pytest.mark.parametrize("concurrency", [0, 33])
def test_run_refuses_a_concurrency_out_of_range(patch_api, concurrency):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task([item("T-1", user=AMY_UPN)], concurrency=concurrency).run(module_under_test.run)
    assert info.value.args[0] == {"msg": "concurrency must be between 1 and 32; nothing was changed."}


@pytest.mark.parametrize("concurrency", [1, 32])
def test_run_accepts_the_concurrency_limits(api, concurrency):
    fake = api(listed("T-1", "activated", AMY))
    result = module_under_test.run(task([item("T-1", user=AMY_UPN)], concurrency=concurrency))
    assert result["changed"] is False and writes(fake) == []


@pytest.mark.parametrize(
    "given, problem",
    [
        (
            {"secret_key": SECRET[:15] + "1" + SECRET[16:]},
            "secret_key is not valid base32 (only A-Z and 2-7); it contains 1 other character(s)",
        ),
        ({"secret_key": SECRET + "G"}, "secret_key has an impossible base32 length"),
        ({"secret_key": SECRET, "secret_format": "hex"}, "secret_key is not valid hex (an even number of 0-9, a-f "),
        ({"verification_code": "12345x"}, "verification_code must be a string of 6 digits"),
        ({"secret_key": "JBSWY3DPEHPK3PXP"}, "secret_key decodes to 80 bits; computing codes needs at least 112"),
    ],
)
def test_run_refuses_a_bad_secret_or_code_naming_the_entry(patch_api, given, problem):
    patch_api(module_under_test)  # building the API fails the test
    tokens = [item("T-1", user=AMY_UPN, **NEW), item("T-2", user=AMY_UPN, **{**NEW, **given})]
    with pytest.raises(Failed) as info:
        task(tokens).run(module_under_test.run)
    [msg] = info.value.args[0].values()
    assert msg.startswith(f"tokens[1] (T-2): {problem}")
    assert msg.endswith(". Nothing was changed.")
    assert "secret_key" not in given or given["secret_key"] not in msg


@pytest.mark.parametrize(
    "option, value, problem",
    [
        ("serial_number", "T-1\n2", f"{CONTROL} (U+000A)"),
        ("serial_number", "S" * 129, "is 129 characters long; at most 128 are allowed"),
        ("user", "amy.masters@contoso.com\r", f"{CONTROL} (U+000D)"),
        ("display_name", "Lobby\u202e", f"{CONTROL} (U+202E)"),
        ("model", "\x1b[2JOATH", f"{CONTROL} (U+001B)"),
    ],
)
def test_run_refuses_bad_text_naming_the_entry(patch_api, option, value, problem):
    patch_api(module_under_test)  # building the API fails the test
    tokens = [item("T-0", user=AMY_UPN), item("T-1", **{"user": AMY_UPN, option: value})]
    with pytest.raises(Failed) as info:
        task(tokens).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"tokens[1].{option} {shown(value)} {problem}. Nothing was changed."}


@pytest.mark.parametrize(
    "tokens, problem",
    [
        (
            [item("T-1", user=AMY_UPN), item("t-1", user=ADELE.user_principal_name)],
            f"serial number T-1 is declared 2 times (for {ADELE.user_principal_name} and {AMY_UPN}): "
            "tokens[0], tokens[1]",
        ),
        (
            [item(f"T-{n}", user=AMY_UPN if n % 2 else AMY_UPN.upper()) for n in range(6)],
            f"user {AMY_UPN.upper()} is given 6 tokens (tokens[0], tokens[1], tokens[2], tokens[3], tokens[4], "
            "tokens[5]); a user holds at most 5 OATH methods",
        ),
        ([item("T-1")], "tokens[0] (T-1) has state=activated but no user"),
    ],
)
def test_run_refuses_a_list_that_contradicts_itself(patch_api, tokens, problem):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(tokens).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"The tokens list contradicts itself; nothing was changed: {problem}."}


def test_run_five_tokens_for_one_user_are_accepted(api):
    fake = api(*[listed(f"T-{n}", "activated", AMY) for n in range(5)])
    result = module_under_test.run(task([item(f"T-{n}", user=AMY_UPN) for n in range(5)]))
    assert result["counts"]["unchanged"] == 5 and writes(fake) == []


# ---------------------------------------------------------------------------------------------------- check mode
def test_run_check_mode_writes_nothing_and_shows_the_plan(api):
    fake = api(*mixed_inventory())
    result = module_under_test.run(task(mixed(), check_mode=True))
    assert fake.calls == [("users_by_refs", [AMY_UPN] * 3), ("list_tokens", None)]
    assert fake.writes == 0
    assert result["changed"] is True
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1)
    assert result["failed_tokens"] == []
    assert [(r["serial_number"], r["outcome"], [a["action"] for a in r["actions"]]) for r in result["tokens"]] == [
        ("T-1", "created", ["create", "activate"]),
        ("T-3", "reassigned", ["unassign", "assign_and_activate"]),
    ]
    assert result["tokens"][1]["after"]["assigned_to"]["user_principal_name"] == AMY_UPN
    assert "diff" not in result


def test_run_check_mode_states_how_long_applying_the_plan_takes(api):
    api(*mixed_inventory())
    result = module_under_test.run(task(mixed(), check_mode=True, write_quota="1/2", concurrency=4))
    # T-1: one bulk creation and an activation; T-3: an unassign, an assign and activate: 4 writes, 3 under methods;
    # the bucket lets 1 through at once, the other 3 at 0.5 a second.
    assert result["estimate"] == {
        "seconds": 6.0,
        "text": "about 6 s (4 writes at write_quota 1/2)",
        "writes": 4,
        "methods_requests": 3,
        "methods_limit_seconds": 6.0,
    }
    api(*mixed_inventory())
    assert module_under_test.run(task(mixed(), check_mode=True))["estimate"]["text"] == (
        "about 1 s (4 writes at write_quota 3000/150)"
    )


def test_run_writes_its_progress_where_it_is_told(api, tmp_path):
    api(*mixed_inventory())
    path = tmp_path / "progress.json"
    module_under_test.run(task(mixed(), progress_file=str(path)))
    last = read_snapshot(str(path))
    assert (last.done, last.total, last.left) == (2, 2, 0.0)  # T-2 had nothing to write
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]


def test_run_check_mode_writes_no_progress(api, tmp_path):
    api(*mixed_inventory())
    module_under_test.run(task(mixed(), check_mode=True, progress_file=str(tmp_path / "progress.json")))
    assert list(tmp_path.iterdir()) == []


def test_run_check_mode_and_a_real_run_report_the_same(api):
    api(*mixed_inventory())
    predicted = module_under_test.run(task(mixed(), check_mode=True))
    api(*mixed_inventory())
    done = module_under_test.run(task(mixed()))
    assert done["counts"] == predicted["counts"]
    assert [(r["serial_number"], r["outcome"], r["actions"]) for r in done["tokens"]] == [
        (r["serial_number"], r["outcome"], r["actions"]) for r in predicted["tokens"]
    ]


def test_run_check_mode_plans_without_the_seeds_and_names_the_tokens_that_need_them(api):
    fake = api(*mixed_inventory())
    seedless = [{**entry, "secret_key": None} for entry in mixed()]
    module = task(seedless, check_mode=True)
    result = module_under_test.run(module)
    assert fake.writes == 0 and result["failed_tokens"] == []
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1)  # as with the seeds
    assert module.logs == [
        "warning: 2 token(s) were planned without their secret_key, which applying the plan needs (to create them, "
        "or to compute their activation code): T-1, T-3"
    ]
    api(*mixed_inventory())
    with pytest.raises(Failed) as info:  # an apply without them refuses those tokens, before any write of theirs
        task(seedless).run(module_under_test.run)
    assert info.value.args[0]["failed_tokens"] == ["T-1", "T-3"]


def test_run_without_holding_entries_looks_no_user_up(api):
    fake = api(listed("T-1", "activated", ADELE))
    result = module_under_test.run(task([item("T-1", state="available")], check_mode=True))
    assert fake.calls == [("list_tokens", None)]
    assert result["counts"] == counted(unassigned=1)


# ---------------------------------------------------------------------------------------------------- the report
def test_run_report_changes_lists_only_changed_and_failed_tokens(api):
    api(*mixed_inventory())
    tokens = [*mixed(), item("T-4", state="available", manufacturer="Contoso", model="OATH-TOTP")]  # no secret
    with pytest.raises(Failed) as info:
        task(tokens).run(module_under_test.run)
    result = info.value.args[0]
    assert [(r["serial_number"], r["outcome"]) for r in result["tokens"]] == [
        ("T-1", "created"),
        ("T-3", "reassigned"),
        ("T-4", "failed"),
    ]
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1, failed=1)


def test_run_report_all_lists_every_token(api):
    api(*mixed_inventory(), listed("OLD-1", "activated", ADELE), listed("OTHER", "activated", ADELE))
    prune = {"action": "unassign", "serial_number_prefix": "old", "manufacturer": None, "model": None}
    result = module_under_test.run(task(mixed(), report="all", prune=prune))
    assert [(r["serial_number"], r["entry"], r["outcome"]) for r in result["tokens"]] == [
        ("T-1", 0, "created"),
        ("T-2", 1, "unchanged"),
        ("T-3", 2, "reassigned"),
        ("OLD-1", None, "unassigned"),
    ]
    assert result["tokens"][1]["actions"] == []
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1, unassigned=1)


def test_run_report_failed_lists_only_failed_tokens_and_counts_every_one(api):
    api(*mixed_inventory())
    tokens = [*mixed(), item("T-4", state="available", manufacturer="Contoso", model="OATH-TOTP")]  # no secret
    with pytest.raises(Failed) as info:
        task(tokens, report="failed", diff=True).run(module_under_test.run)
    result = info.value.args[0]
    assert [(r["serial_number"], r["outcome"]) for r in result["tokens"]] == [("T-4", "failed")]
    assert result["failed_tokens"] == ["T-4"]
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1, failed=1)
    assert sorted(result["diff"]["after"]) == ["T-1", "T-3"]  # diff mode still shows every change


def test_run_report_failed_of_a_run_without_failure_lists_none(api):
    api(*mixed_inventory())
    result = module_under_test.run(task(mixed(), report="failed"))
    assert result["changed"] is True
    assert result["tokens"] == []
    assert result["counts"] == counted(created=1, unchanged=1, reassigned=1)


@pytest.mark.parametrize("diff", [False, True])
def test_run_diff_is_keyed_by_serial_number_only_in_diff_mode(api, diff):
    api(*mixed_inventory())
    result = module_under_test.run(task(mixed(), diff=diff))
    rows = {row["serial_number"]: row for row in result["tokens"]}
    if diff:
        assert result["diff"] == {
            "before": {"T-1": {}, "T-3": rows["T-3"]["before"]},
            "after": {"T-1": rows["T-1"]["after"], "T-3": rows["T-3"]["after"]},
        }
        assert result["diff"]["before"]["T-3"]["assigned_to"]["id"] == ADELE.id
    else:
        assert "diff" not in result
    assert set(result) == {"changed", "counts", "tokens", "failed_tokens", "estimate", "pacing"} | (
        {"diff"} if diff else set()
    )


def test_run_unchanged_makes_no_write_and_reports_nothing(api):
    fake = api(listed("T-1", "activated", AMY), listed("T-2", "available"))
    tokens = [item("T-1", user=AMY_UPN), item("T-2", state="available")]
    result = module_under_test.run(task(tokens, diff=True))
    assert writes(fake) == []
    assert result == {
        "changed": False,
        "counts": counted(unchanged=2),
        "tokens": [],
        "failed_tokens": [],
        "diff": {"before": {}, "after": {}},
        "estimate": {
            "seconds": 0.0,
            "text": "nothing to write",
            "writes": 0,
            "methods_requests": 0,
            "methods_limit_seconds": 0.0,
        },
        "pacing": {},  # this fake module has no pacer: see the next test
    }


def test_run_returns_how_the_requests_were_paced(api):
    api(listed("T-1", "activated", AMY))
    module = task([item("T-1", user=AMY_UPN)])
    module._pacer = Pacer.from_quota("300/1.5")  # pylint: disable=protected-access
    module._pacer.acquire(True, 2)  # pylint: disable=protected-access
    assert module_under_test.run(module)["pacing"] == module._pacer.stats()  # pylint: disable=protected-access
    assert module_under_test.run(module)["pacing"]["writes"] == 2


# ---------------------------------------------------------------------------------------------------- failures
def refusal(serial):
    return GraphError(
        f"assign and activate token {serial} for {AMY_UPN}: Graph answered 500 internalServerError",
        status=500,
        code="internalServerError",
        request_id="rid-500",
    )


def test_run_a_failed_token_fails_the_task_at_the_end(api):
    fake = api(listed("T-1"), listed("T-2"), listed("T-3"), refuse={(ASSIGN_AND_ACTIVATE, "id-T-2"): refusal("T-2")})
    module = task([item(f"T-{n}", user=AMY_UPN, secret_key=SECRET) for n in (1, 2, 3)])
    with pytest.raises(Failed) as info:
        module.run(module_under_test.run)
    result = info.value.args[0]
    assert [call[2] for call in writes(fake)] == ["id-T-1", "id-T-2", "id-T-3"]  # the others converged
    assert set(result) == {"msg", "changed", "counts", "tokens", "failed_tokens", "estimate", "pacing"}
    assert result["msg"] == f"1 of 3 tokens failed; the others converged. T-2: {refusal('T-2').message}"
    assert result["changed"] is True
    assert result["failed_tokens"] == ["T-2"]
    assert result["counts"] == counted(activated=2, failed=1)
    failed = result["tokens"][1]
    assert (failed["outcome"], failed["error"], failed["request_id"], failed["actions"]) == (
        "failed",
        refusal("T-2").message,
        "rid-500",
        [],
    )
    assert module.closed is True


@pytest.mark.parametrize("error", [RuntimeError(f"bug with {SECRET}"), KeyError(SECRET)])
def test_run_an_unexpected_error_fails_its_token_alone_and_keeps_every_outcome(api, error):
    # Issue 18: an exception out of one token's worker thread lost every outcome and reported changed: false.
    fake = api(listed("T-1"), listed("T-2"), listed("T-3"), refuse={(ASSIGN_AND_ACTIVATE, "id-T-2"): error})
    module = task([item(f"T-{n}", user=AMY_UPN, secret_key=SECRET) for n in (1, 2, 3)], concurrency=4)
    with pytest.raises(Failed) as info:
        module.run(module_under_test.run)
    result = info.value.args[0]
    assert [call[2] for call in writes(fake)] == ["id-T-1", "id-T-2", "id-T-3"]
    assert result["changed"] is True  # T-1 and T-3 were activated
    assert result["counts"] == counted(activated=2, failed=1)
    assert result["failed_tokens"] == ["T-2"]
    assert [(row["serial_number"], row["outcome"]) for row in result["tokens"]] == [
        ("T-1", "activated"),
        ("T-2", "failed"),
        ("T-3", "activated"),
    ]
    kind = type(error).__name__
    assert result["tokens"][1]["error"].startswith(f"token T-2: unexpected error ({kind} in ")
    assert "Please report it at https://github.com/tokenops/entra/issues" in result["tokens"][1]["error"]
    assert result["msg"].startswith("1 of 3 tokens failed; the others converged. T-2: token T-2: unexpected error ")
    assert "exception" not in result  # no traceback
    assert SECRET not in json.dumps(result)
    assert module.closed is True


def test_run_a_task_whose_only_change_failed_is_not_changed(api):
    api(listed("T-1"), refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): refusal("T-1")})
    with pytest.raises(Failed) as info:
        task([item("T-1", user=AMY_UPN, secret_key=SECRET)]).run(module_under_test.run)
    result = info.value.args[0]
    assert "changed" not in result
    assert result["failed_tokens"] == ["T-1"]


def test_run_the_message_names_twenty_failed_tokens_at_most(api):
    fake = api()
    tokens = [item(f"T-{n:02d}", state="available", manufacturer="Contoso", model="X") for n in range(22)]
    with pytest.raises(Failed) as info:
        task(tokens).run(module_under_test.run)
    result = info.value.args[0]
    assert result["msg"].startswith("22 of 22 tokens failed; the others converged. T-00: ")
    assert "T-19: " in result["msg"] and "T-20" not in result["msg"]
    assert result["msg"].endswith(" (and 2 more)")
    assert len(result["failed_tokens"]) == 22 and fake.writes == 0


def test_run_exits_with_the_result(api):
    api(*mixed_inventory())
    module = task(mixed())
    with pytest.raises(Exited) as info:
        module.run(module_under_test.run)
    assert info.value.args[0]["changed"] is True
    assert module.closed is True


# ---------------------------------------------------------------------------------------------------- secrets
HEX_SECRET = "3132333435363738393031323334353637383930"  # SECRET, in hex


@pytest.mark.parametrize("fail", [False, True])
def test_run_results_never_hold_a_secret_or_a_code(api, fail):
    refuse = {(ASSIGN_AND_ACTIVATE, "id-T-3"): refusal("T-3")} if fail else {}
    fake = api(listed("T-3", "activated", ADELE), listed("T-4"), refuse=refuse)
    spaced = "gezd gnbv-gy3t qojq gezd gnbv gy3t qojq"
    tokens = [
        item("T-1", user=AMY_UPN, **NEW),
        item("T-2", user=AMY_UPN, **{**NEW, "secret_key": HEX_SECRET, "secret_format": "hex"}),
        item("T-3", user=AMY_UPN, secret_key=spaced),
        item("T-4", user=AMY_UPN, verification_code="012345"),
    ]
    module = task(tokens, diff=True, report="all")
    with pytest.raises(Failed if fail else Exited) as info:
        module.run(module_under_test.run)
    result = info.value.args[0]
    codes = [call[4] for call in writes(fake) if call[0] in (ACTIVATE, ASSIGN_AND_ACTIVATE)]
    assert "012345" in codes and len(codes) == 4
    [(_name, bodies)] = [call for call in writes(fake) if call[0] == "create_tokens"]
    assert [body["secretKey"] for body in bodies] == [SECRET, SECRET]  # to Graph only, normalised
    dumped = json.dumps(result) + json.dumps(module.logs)
    for secret in (SECRET, SECRET.lower(), spaced, HEX_SECRET, *codes):
        assert secret not in dumped
    assert {SECRET, "012345"} <= module.no_log_values  # Ansible masks them wherever they would show
    # Computed codes appear in no output (a failure's message is masked with its token's codes, see
    # _execution/test_inventory_apply.py); thousands of them would make Ansible mask every such run of digits.
    assert not (set(codes) - {"012345"}) & module.no_log_values


def test_run_a_token_created_but_not_assigned_is_a_change(api):
    api(assign=False)
    with pytest.raises(Failed) as info:
        task([item("T-1", user=AMY_UPN, **NEW)]).run(module_under_test.run)
    result = info.value.args[0]
    assert "UserAuthenticationMethod.ReadWrite.All" in result["msg"]
    assert result.get("changed") is True
    assert [a["action"] for a in result["tokens"][0]["actions"]] == ["create"]
