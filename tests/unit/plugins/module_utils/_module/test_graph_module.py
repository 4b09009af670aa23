# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GraphModule (graph_module): the one place where a failure becomes fail_json, the result (the diff only in diff mode)
and the checks of text options. fakes.FakeModule binds these very methods onto a fake with params."""

from __future__ import annotations

import contextlib
import json

import pytest
from ansible.module_utils.common.parameters import PASS_VARS, remove_values
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, InputError, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.module_utils._module import graph_module
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


# ------------------------------------------------------------------------------------------------ the result masking
SECRETS = ["JBSWY3DPEHPK3PXP", "GEZDGNBVGY3TQOJQ", "MFRGGZDFMZTWQ2LK"]
# ansible-core 2.21 adds the invocation to a result only when the controller asks for it (-v); 2.19 always does.
INJECT_INVOCATION = {"_ansible_inject_invocation": True} if "inject_invocation" in PASS_VARS else {}
ITEMS_SPEC = {
    "items": {
        "type": "list",
        "elements": "dict",
        "no_log": False,
        "options": {"name": {"type": "str"}, "secret": {"type": "str", "no_log": True}},
    }
}


@pytest.fixture
def real_module():
    """Makes a real GraphModule whose list option ``items`` holds ``count`` entries, each with a no_log secret (the
    module's arguments stay in place until the test ends: exit_json needs them)."""
    with contextlib.ExitStack() as stack:

        def make(count):
            items = [{"name": f"T{n}", "secret": SECRETS[n % 3] + str(n)} for n in range(count)]
            stack.enter_context(patch_module_args({"items": items, "access_token": "at-1", **INJECT_INVOCATION}))
            return graph_module.GraphModule(ITEMS_SPEC, long_lists=("items",)), items

        yield make


def printed(capsys, call, **result):
    with pytest.raises(SystemExit):
        call(**result)
    return json.loads(capsys.readouterr().out)


def test_the_result_is_masked_as_with_every_no_log_value(capsys, real_module):
    module, items = real_module(3)
    module.no_log_values.add("123456")  # a computed code
    every = set(module.no_log_values)
    result = {
        "changed": True,
        "equal": items[1]["secret"],
        "inside": f"the seed {items[2]['secret']} was refused",
        "code": 123456,
        "nested": [{"text": "code 123456 used"}, ("plain",)],
        "keys": {items[0]["secret"]: "a secret as a key is not masked by Ansible"},
    }
    expected = remove_values({**result, "invocation": {"module_args": module.params}}, every)
    out = printed(capsys, module.exit_json, **result)
    assert {k: out[k] for k in expected} == json.loads(json.dumps(expected))
    assert out["equal"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert "********" in out["inside"] and out["code"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert all(item["secret"] not in json.dumps(out) for item in items[1:])


def test_no_log_values_the_result_does_not_hold_are_dropped_before_masking(capsys, real_module):
    module, items = real_module(150)
    module.no_log_values.add("654321")
    printed(capsys, module.exit_json, changed=False, shown=f"x{items[7]['secret']}x")
    # The access token is in the invocation (masked there); 149 secrets and the code are in no text of the result.
    assert module.no_log_values == {items[7]["secret"], "at-1"}


def test_fail_json_masks_its_message_too(capsys, real_module):
    module, items = real_module(2)
    out = printed(capsys, module.fail_json, msg=f"refused {items[1]['secret']}", detail=items[0]["secret"])
    assert out["msg"] == "refused ********" and out["detail"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert out["failed"] is True


def test_a_long_list_is_shown_in_the_invocation_by_its_length(capsys, real_module):
    module, _items = real_module(graph_module.INVOCATION_LIST_LIMIT + 1)
    out = printed(capsys, module.exit_json, changed=False)
    assert out["invocation"]["module_args"]["items"] == (
        f"{graph_module.INVOCATION_LIST_LIMIT + 1} entries (longer than {graph_module.INVOCATION_LIST_LIMIT}: "
        "not repeated in the result)"
    )
    assert out["invocation"]["module_args"]["access_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_a_short_list_is_shown_in_the_invocation_with_its_secrets_masked(capsys, real_module):
    module, items = real_module(graph_module.INVOCATION_LIST_LIMIT)
    out = printed(capsys, module.exit_json, changed=False)
    shown_items = out["invocation"]["module_args"]["items"]
    assert [i["name"] for i in shown_items] == [i["name"] for i in items]
    assert {i["secret"] for i in shown_items} == {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}


def test_the_invocation_of_any_module_is_masked(capsys):
    """A module without long lists: its arguments' secrets are masked in the invocation AnsibleModule shows at -v."""
    spec = {"name": {"type": "str"}, "client_secret": {"type": "str", "no_log": True}}
    with patch_module_args({"name": "n", "client_secret": "s3cr3t-value", **INJECT_INVOCATION}):
        module = graph_module.GraphModule(spec)
        out = printed(capsys, module.exit_json, changed=False)
        failed = printed(capsys, module.fail_json, msg="boom")
    for result in (out, failed):
        assert result["invocation"]["module_args"]["client_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        assert "s3cr3t-value" not in json.dumps(result)
