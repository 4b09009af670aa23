# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GraphModule (_module): the one place where a failure becomes fail_json, the result (the diff only in diff mode)
and the checks of text options. fakes.FakeModule binds these very methods onto a fake with params."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._errors import GraphError, InputError, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._validation import shown
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import Exited, Failed, FakeModule
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import CONTROL, DONE


# ---------------------------------------------------------------------------------------------------- run
def test_run_exits_with_the_result_of_the_work():
    module = FakeModule({})
    with pytest.raises(Exited) as info:
        module.run(lambda m: {"changed": False, "token": {"serial_number": "S1"}})
    assert info.value.args[0] == {"changed": False, "token": {"serial_number": "S1"}}
    assert module.closed is True


def test_run_turns_a_failure_into_fail_json_with_its_result():
    def work(module):
        raise PlanError("m", changed=True, result={"actions": DONE})

    module = FakeModule({})
    with pytest.raises(Failed) as info:
        module.run(work)
    assert info.value.args[0] == {"msg": "m", "actions": DONE, "changed": True}
    assert module.closed is True


def test_run_fails_with_graphs_details():
    def work(module):
        raise GraphError("Listing: Graph answered 429", status=429, code="TooManyRequests", request_id="rid")

    with pytest.raises(Failed) as info:
        FakeModule({}).run(work)
    assert info.value.args[0] == {
        "msg": "Listing: Graph answered 429",
        "graph_error": {"status": 429, "code": "TooManyRequests", "request_id": "rid"},
    }


def test_run_reports_an_unexpected_error_with_its_traceback():
    def work(module):
        raise ValueError("boom")

    module = FakeModule({})
    with pytest.raises(Failed) as info:
        module.run(work)
    result = info.value.args[0]
    assert set(result) == {"msg", "exception"}
    assert result["msg"] == "Unexpected error: ValueError: boom"
    assert result["exception"].startswith("Traceback") and "ValueError: boom" in result["exception"]
    assert module.closed is True


# ---------------------------------------------------------------------------------------------------- result
def test_result_has_the_diff_only_in_diff_mode():
    before, after = {"status": "available"}, {"status": "activated"}
    assert FakeModule({}).result(True, before, after, actions=DONE) == {"changed": True, "actions": DONE}
    assert FakeModule({}, diff=True).result(False, before, after, actions=[]) == {
        "changed": False,
        "actions": [],
        "diff": {"before": before, "after": after},
    }


# ---------------------------------------------------------------------------------------------------- check_text
LIMITS = {"serial_number": 10, "users": None, "user": None}


@pytest.mark.parametrize(
    "option, value, text, problem",
    [
        ("serial_number", "S" * 11, "S" * 11, "is 11 characters long; at most 10 are allowed"),
        ("serial_number", "S\n1", "S\n1", f"{CONTROL} (U+000A)"),
        ("user", "amy\u202e@contoso.com", "amy\u202e@contoso.com", f"{CONTROL} (U+202E)"),
        ("users", ["amy@contoso.com", "x" * 500 + "\t"], "x" * 500 + "\t", f"{CONTROL} (U+0009)"),  # each element
    ],
)
def test_check_text_refuses_before_any_request(option, value, text, problem):
    module = FakeModule({"serial_number": "S1", "users": None, "user": None, option: value})
    with pytest.raises(InputError) as info:
        module.check_text(LIMITS)
    assert info.value.message == f"{option} {shown(text)} {problem}. Nothing was changed."


def test_check_text_accepts_the_longest_text_and_options_not_given():
    assert FakeModule({"serial_number": "S" * 10, "users": ["x" * 500], "user": None}).check_text(LIMITS) is None
    assert FakeModule({"serial_number": None, "users": [], "user": 42}).check_text(LIMITS) is None
