# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GraphModule (graph_module): the one place where a failure becomes fail_json, the result (the diff only in diff mode)
and the checks of text options. fakes.FakeModule binds these very methods onto a fake with params."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import stat
import threading
import time
import types

import pytest
from ansible.module_utils.common.parameters import PASS_VARS, remove_values
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tokenops.entra.plugins.module_utils._common import run_state
from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, InputError, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._common.progress import read_snapshot
from ansible_collections.tokenops.entra.plugins.module_utils._common.run_state import (
    CodeLedger,
    LockTimeout,
    RunLock,
    private_directory,
    state_key,
)
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import Pacer
from ansible_collections.tokenops.entra.plugins.module_utils._module import graph_module
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import Exited, Failed, FakeModule, module_spec
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


def test_run_reports_an_unexpected_error_by_its_type_and_place_never_its_text():
    # A bug's exception may quote what the code was handling: a code computed a moment ago (a no-log value only for
    # the module that computed it), a request body with a seed. Neither the message nor -vvv's traceback repeats it.
    handled = "code 123456 for secretKey JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

    def work(module):
        raise ValueError(handled)  # the traceback shows this line of code, not the value

    module = FakeModule({})
    with pytest.raises(Failed) as info:
        module.run(work)
    result = info.value.args[0]
    assert set(result) == {"msg", "exception"}
    assert result["msg"].startswith("Unexpected error (ValueError in test_graph_module.py, line ")
    assert result["msg"].endswith(
        "a fault of this collection, not of Graph or of the input. Writes made before it are not listed: run the task "
        "again, it reads the tenant before it writes. Please report it at https://github.com/tokenops/entra/issues "
        "with the collection's version and this message (it holds no secret)."
    )
    assert result["exception"].startswith("Traceback (most recent call last):\n")
    assert result["exception"].endswith("\nValueError") and "in work" in result["exception"]
    for text in result.values():
        assert "123456" not in text and "JBSWY3DP" not in text and "secretKey" not in text, text
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
    out = printed(capsys, module.exit_json, changed=False, shown=f"x{items[7]['secret']}x")
    # The invocation shows no no_log option's value (the access token is masked there by its option, not by its
    # value); 149 secrets and the code are in no text of the result.
    assert module.no_log_values == {items[7]["secret"]}
    assert out["shown"] == "x********x"
    assert out["invocation"]["module_args"]["access_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_the_values_kept_are_those_some_text_holds_whatever_their_lengths():
    """What the result is masked with: the values of every length that occur in a text, as ``in`` finds them one by
    one (a length with many values is looked up among the windows of the texts, one with few searched for)."""
    randomly = random.Random(3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-. "
    values = {"".join(randomly.choices(alphabet, k=randomly.choice([1, 6, 16, 32, 32, 32]))) for _n in range(3000)}
    texts = ["".join(randomly.choices(alphabet, k=randomly.randint(0, 80))) for _n in range(2000)]
    texts += [f"x{value}y" for value in randomly.sample(sorted(values), 50)] + sorted(values)[:5]
    expected = {value for value in values if any(value in text for text in texts)}
    assert 55 <= len(expected) < len(values)
    assert graph_module._occurring(values, texts) == expected
    assert graph_module._occurring({"", "AB"}, ["xABx"]) == {"", "AB"}
    assert graph_module._occurring({"AB"}, []) == set()


def test_a_result_with_pacing_says_how_long_it_took_after_the_last_answer(capsys, real_module):
    module, _items = real_module(1)
    clock = [100.0]
    module._pacer = Pacer.from_quota("10/2", clock=lambda: clock[0])
    module._pacer.answered(None, throttled=False)
    clock[0] += 1.25  # the result took 1.25 s to build after Graph's last answer
    assert printed(capsys, module.exit_json, changed=False, pacing={"writes": 0})["pacing"] == {
        "writes": 0,
        "result_seconds": 1.25,
    }
    assert "pacing" not in printed(capsys, module.exit_json, changed=False)  # none where the module has none


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


# ------------------------------------------------------------------- secrets when Ansible's argument check fails
# ansible-core collects the no_log values while it checks the arguments; an element of a list of dicts that is not a
# dict stops that collection, and its failure result then showed every connection secret in clear (invocation).
CONNECTION_SECRETS = {
    "client_secret": "cs-7Q~f1a2b3c4d5e6f7a8b9",
    "client_certificate_password": "cp-correct horse battery",
    "access_token": "at-eyJ0eXAiOiJKV1QifQ.eyJ4IjoxfQ.c2lnbmF0dXJl",
}
MODULES = {
    name: importlib.import_module(f"ansible_collections.tokenops.entra.plugins.modules.{name}")
    for name in (
        "hardware_oath_assignment",
        "hardware_oath_inventory",
        "hardware_oath_policy",
        "hardware_oath_token",
        "hardware_oath_token_info",
    )
}
# What each module requires, so that the argument error under test is the one reported.
REQUIRED = {
    "hardware_oath_assignment": {"user": "amy@contoso.com", "serial_number": "S1"},
    "hardware_oath_policy": {"state": "enabled"},
    "hardware_oath_token": {"serial_number": "S1"},
}
TOKEN_SECRETS = {"secret_key": "GEZDGNBVGY3TQOJQGEZDGNBV", "verification_code": "482913"}
ELEMENT_SECRETS = {"secret_key": "MFRGGZDFMZTWQ2LKMFRGGZDF", "verification_code": "715046"}


def run_main(capsys, module, args):
    """``module``'s main() with ``args`` (the invocation asked for, as at -v); its printed result."""
    with patch_module_args({**args, **INJECT_INVOCATION}), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def no_log_options(spec, prefix=()):
    """The paths of every no_log option of ``spec``, suboptions included."""
    for name, option in spec.items():
        if option.get("no_log"):
            yield (*prefix, name)
        yield from no_log_options(option.get("options") or {}, (*prefix, name))


def test_every_no_log_option_of_every_module_is_one_the_tests_give():
    """The cases below give every no_log option a value: a new one must be added to them."""
    found = {path for module in MODULES.values() for path in no_log_options(module_spec(module))}
    assert found == {("secret_key",), ("verification_code",), ("tokens", "secret_key"), ("tokens", "verification_code")}


def secret_args(name, only=None, **more):
    """Arguments of module ``name`` giving a value to every no_log option it has (connection options included), of
    its own top-level ones ``only`` this one when given (hardware_oath_assignment takes one of two)."""
    args = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "app-1",
        **CONNECTION_SECRETS,
        **REQUIRED.get(name, {}),
    }
    own = {path[0] for path in no_log_options(module_spec(MODULES[name]))}
    args.update({option: value for option, value in TOKEN_SECRETS.items() if option in own and only in (None, option)})
    if "tokens" in own:
        args["tokens"] = [{"serial_number": "S1", "user": "amy@contoso.com", **ELEMENT_SECRETS}]
    args.update(more)
    return args


def assert_no_secret(out, *extra):
    text = json.dumps(out)
    for secret in [*CONNECTION_SECRETS.values(), *TOKEN_SECRETS.values(), *ELEMENT_SECRETS.values(), *extra]:
        assert secret not in text
        assert secret[:10] not in text


def assert_masked_invocation(out, name):
    """The invocation (when Ansible asks for one) shows no no_log option's value, only AnsibleModule's mask."""
    if not INJECT_INVOCATION and "invocation" not in out:
        return
    args = out["invocation"]["module_args"]
    for option in CONNECTION_SECRETS:
        assert args[option] == graph_module.NO_LOG_MASK
    for path in no_log_options(module_spec(MODULES[name])):
        if len(path) == 1:
            assert args.get(path[0]) in (graph_module.NO_LOG_MASK, None)
        else:
            elements = args[path[0]]
            assert all(isinstance(e, str) or e.get(path[1]) in (graph_module.NO_LOG_MASK, None) for e in elements)


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("only", ["secret_key", "verification_code"])
@pytest.mark.parametrize(
    "broken, problem",
    [
        ({"bogus_option": "x"}, "Unsupported parameters"),
        ({"timeout": "soon"}, "timeout"),
        ({"auth_method": "password"}, "auth_method"),
    ],
)
def test_an_argument_error_of_any_module_shows_no_secret(capsys, name, only, broken, problem):
    out = run_main(capsys, MODULES[name], secret_args(name, only, **broken))
    assert out["failed"] is True and problem in out["msg"]
    assert_no_secret(out)
    assert_masked_invocation(out, name)


def test_both_secrets_of_an_assignment_refused_by_ansible_show_neither(capsys):
    out = run_main(capsys, MODULES["hardware_oath_assignment"], secret_args("hardware_oath_assignment"))
    assert out["msg"] == "parameters are mutually exclusive: verification_code|secret_key"
    assert_no_secret(out)
    assert_masked_invocation(out, "hardware_oath_assignment")


NOT_A_DICT = [
    "notadict",
    "serial_number",
    "",
    5,
    3.5,
    True,
    None,
    ["SECRETINLIST-5T7Q9"],
    [["NESTED-SECRET-4K8M"]],
]


@pytest.mark.parametrize("element", NOT_A_DICT, ids=repr)
@pytest.mark.parametrize("position", ["first", "last"])
def test_a_tokens_element_that_is_not_a_dict_shows_no_secret(capsys, element, position):
    """The issue's case: ansible-core's own argument error, its collection of no_log values cut short."""
    entries = [{"serial_number": "S1", "user": "amy@contoso.com", **ELEMENT_SECRETS}, element]
    if position == "first":
        entries.reverse()
    args = secret_args("hardware_oath_inventory", tokens=entries)
    out = run_main(capsys, MODULES["hardware_oath_inventory"], args)
    assert out["failed"] is True and out["msg"]
    assert_no_secret(out, "SECRETINLIST-5T7Q9", "NESTED-SECRET-4K8M")
    assert_masked_invocation(out, "hardware_oath_inventory")


@pytest.mark.parametrize(
    "tokens",
    [
        "serial_number=S2 secret_key=KRUGS4ZANFZSAYJAONSWG4TF verification_code=915372",  # one dict as key=value
        '{"serial_number": "S2", "secret_key": "KRUGS4ZANFZSAYJAONSWG4TF", "verification_code": "915372"}',
        ["serial_number=S2,secret_key=KRUGS4ZANFZSAYJAONSWG4TF,verification_code=915372", 7],
        {"serial_number": "S2", "secret_key": "KRUGS4ZANFZSAYJAONSWG4TF", "verification_code": "915372", "x": 1},
        [{"serial_number": "S2", "secret_key": ["KRUGS4ZANFZSAYJAONSWG4TF"], "verification_code": {"c": 915372}}, 7],
    ],
    ids=["key=value", "json", "list of key=value", "dict with an unknown key", "secrets of other types"],
)
def test_tokens_in_any_shape_show_no_secret(capsys, tokens):
    """The list as a string, a dict, strings of dicts, secrets that are lists or mappings: whatever the check makes
    of them, the result shows none of their secrets. (ansible-core collects the secrets of the first three itself:
    they hold the collection from the arguments as given to what ansible-core makes of these shapes.)"""
    args = secret_args("hardware_oath_inventory", tokens=tokens, bogus_option=1)
    out = run_main(capsys, MODULES["hardware_oath_inventory"], args)
    assert out["failed"] is True
    assert_no_secret(out, "KRUGS4ZANFZSAYJAONSWG4TF", "915372")


def test_an_argument_error_without_an_invocation_shows_no_secret(capsys):
    """ansible-core 2.21 adds no invocation unless the controller asks; 2.19 always does. Either way, no secret."""
    args = secret_args("hardware_oath_inventory", tokens=["notadict"], bogus_option=1)
    with patch_module_args(args), pytest.raises(SystemExit):
        MODULES["hardware_oath_inventory"].main()
    assert_no_secret(json.loads(capsys.readouterr().out))


def test_the_secrets_given_are_masked_in_every_text_of_an_argument_error(capsys, monkeypatch):
    """Not only in the invocation: a message quoting a secret (here, ansible-core's own, through a check made to
    quote) is masked too, in each shape the secret was given."""
    real_fail_json = graph_module.GraphModule.fail_json

    def quoting(self, msg, **kwargs):
        return real_fail_json(self, msg=f"{msg}: {json.dumps(self.params, default=str)}", **kwargs)

    monkeypatch.setattr(graph_module.GraphModule, "fail_json", quoting)
    args = secret_args("hardware_oath_inventory", tokens=[{"serial_number": "S1", **ELEMENT_SECRETS}, "x"])
    out = run_main(capsys, MODULES["hardware_oath_inventory"], args)
    assert out["failed"] is True and "dictionary requested" in out["msg"]
    assert_no_secret(out)
    assert "********" in out["msg"]


# ---------------------------------------------------------------------------------------------- given_secrets
SPEC = {
    "client_secret": {"type": "str", "no_log": True, "aliases": ["secret"]},
    "name": {"type": "str"},
    "items": {
        "type": "list",
        "elements": "dict",
        "no_log": False,
        "options": {
            "name": {"type": "str"},
            "key": {"type": "str", "no_log": True},
            "inner": {"type": "dict", "options": {"pin": {"type": "str", "no_log": True}, "label": {"type": "str"}}},
        },
    },
    "plain": {"type": "dict", "options": {"label": {"type": "str"}}},
}


@pytest.mark.parametrize(
    "params, secrets",
    [
        ({"client_secret": "s1", "name": "n"}, {"s1"}),
        ({"secret": "s1"}, {"s1"}),  # by an alias
        ({"client_secret": ["s1", {"k": "s2"}, 3, None, True, ""]}, {"s1", "s2", "3"}),  # any shape, no keys
        (
            {"items": [{"name": "a", "key": "k1"}, {"key": "k2", "inner": {"pin": "p1", "label": "l"}}]},
            {"k1", "k2", "p1"},
        ),
        ({"items": {"key": "k1"}}, {"k1"}),  # one dict for a list of dicts
        ({"items": '{"key": "k1", "name": "a"}'}, {"k1"}),  # a dict as JSON
        ({"items": ["key=k1 name=a", "key=k2"]}, {"k1", "k2"}),  # dicts as key=value
        ({"items": ["notadict", 5, ["l1"]]}, {"notadict", "5", "l1"}),  # elements that are no dict: all of them
        ({"items": [{"inner": "pin=p1"}, {"inner": ["p2"]}]}, {"p1", "p2"}),
        ({"plain": ["not", "a", "dict"], "name": "n"}, set()),  # no no_log option under it: nothing to hide
        ({"items": None, "client_secret": None}, set()),
        ("not a mapping", set()),
    ],
)
def test_given_secrets_whatever_their_shape(params, secrets):
    assert graph_module.given_secrets(SPEC, params) == secrets


def test_masked_args_masks_every_no_log_option_whatever_its_shape():
    mask = graph_module.NO_LOG_MASK
    params = {
        "secret": "s1",
        "name": "n",
        "items": [{"name": "a", "key": "k1", "inner": {"pin": "p1", "label": "l"}}, "notadict", 5, {"key": None}],
        "plain": {"label": "x"},
        "other": "kept",
    }
    assert graph_module.masked_args(SPEC, params) == {
        "secret": mask,
        "name": "n",
        "items": [{"name": "a", "key": mask, "inner": {"pin": mask, "label": "l"}}, mask, mask, {"key": None}],
        "plain": {"label": "x"},
        "other": "kept",
    }
    assert graph_module.masked_args(SPEC, {"items": "key=k1", "client_secret": ""}) == {
        "items": mask,
        "client_secret": "",
    }
    assert params["items"][0]["key"] == "k1"  # a copy: the module's params are left as they are


def test_a_secret_quoted_with_escapes_is_masked_too(capsys, real_module):
    """A message that quotes a secret holding a control character (repr, JSON) shows it escaped: masked as well."""
    module, _items = real_module(1)
    secret = "tok-a1b2c3d4\r\nX-Injected: 1"
    module.no_log_values.add(secret)
    out = printed(capsys, module.fail_json, msg=f"refused {secret!r}", detail=json.dumps({"v": secret}))
    assert "tok-a1b2c3d4" not in json.dumps(out) and "X-Injected" not in json.dumps(out)
    assert out["msg"] == "refused '********'"


# ---------------------------------------------------------------------------------------------------- runs that write
@pytest.fixture
def writing_module(tmp_path):
    """A real GraphModule with a progress_file, its run state in tmp_path/state."""
    with contextlib.ExitStack() as stack:

        def make(**args):
            given = {
                "access_token": "at-1",
                "tenant_id": "contoso-tenant",
                "run_state_dir": str(tmp_path / "state"),
                "progress_file": str(tmp_path / "progress.json"),
                **args,
            }
            stack.enter_context(patch_module_args(given))
            return graph_module.GraphModule({"progress_file": {"type": "path"}}, supports_check_mode=True)

        yield make


def lock_of(module):
    credential = module.credential
    key = state_key(credential.graph_endpoint, credential.tenant_id, credential.client_id or credential.method)
    return RunLock(private_directory(module.params["run_state_dir"]), key)


def test_an_exclusive_run_holds_the_lock_of_its_tenant_and_application_and_the_code_ledger(writing_module, tmp_path):
    module = writing_module()
    with module.exclusive_run():
        assert isinstance(module.code_history, CodeLedger)
        with pytest.raises(LockTimeout):
            lock_of(module).acquire(0)  # a second run of this tenant and application
    assert module.code_history is None
    other = lock_of(module)
    assert other.acquire(0) < 1  # given back
    other.release()
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700


def test_a_run_that_waits_for_the_lock_says_so_in_its_progress_and_in_a_warning(writing_module, monkeypatch, tmp_path):
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    module = writing_module(lock_timeout=10)
    holder = lock_of(module)
    holder.acquire(0)
    snapshots = []

    def release_later():
        time.sleep(1.2)
        snapshots.append(read_snapshot(module.params["progress_file"]))
        holder.release()

    releaser = threading.Thread(target=release_later)
    releaser.start()
    warnings = []
    monkeypatch.setattr(module, "warn", warnings.append)
    with module.exclusive_run():
        pass
    releaser.join()
    assert snapshots[0] is not None and snapshots[0].waiting is not None and snapshots[0].waiting >= 0.5
    assert f"process {os.getpid()} on " in snapshots[0].holder
    assert len(warnings) == 1 and warnings[0].startswith("This run waited 1 s for another run of this tenant")


def test_after_a_run_that_ended_midway_the_next_waits_for_its_last_writes_to_show(writing_module, monkeypatch):
    """A run stopped midway (its ansible-playbook killed) leaves that in the lock file: the next one, started at once,
    lets its last writes show in Graph's reads before it reads (else it would plan them again); a run that ended
    cleanly costs the next nothing."""
    slept: list[float] = []
    monkeypatch.setattr(graph_module.time, "sleep", slept.append)
    first = writing_module(read_after_write_wait=4)
    monkeypatch.setattr(first, "_stop_asked", lambda: True)
    with first.exclusive_run():
        assert first.stop_requested()
    second = writing_module(read_after_write_wait=4)
    with second.exclusive_run():
        pass
    assert len(slept) == 1 and 3 < slept[0] <= 4
    with writing_module(read_after_write_wait=4).exclusive_run():
        pass
    assert len(slept) == 1  # the second ended cleanly


@pytest.mark.parametrize("writes, settles", [(3, True), (0, False)])
def test_a_run_that_waited_for_one_that_wrote_waits_for_its_last_writes_to_show(
    writing_module, monkeypatch, writes, settles
):
    """Two runs started together: the second, once the first is done, would read a tenant that may not show the
    first's last writes yet, and plan them again. It lets them show first; a first run that wrote nothing costs it
    nothing."""
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    slept: list[float] = []
    monkeypatch.setattr(graph_module, "time", types.SimpleNamespace(time=time.time, sleep=slept.append))
    first = writing_module(read_after_write_wait=4, lock_timeout=10)
    monkeypatch.setattr(first, "pacing", lambda: {"writes": writes})
    inside = threading.Event()

    def hold() -> None:
        with first.exclusive_run():
            inside.set()
            time.sleep(0.4)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(5)
    second = writing_module(read_after_write_wait=4, lock_timeout=10)
    monkeypatch.setattr(second, "warn", lambda text: None)
    with second.exclusive_run():
        pass
    holder.join()
    assert [round(pause) for pause in slept] == ([4] if settles else [])


def test_a_run_that_waits_too_long_fails_with_nothing_changed(writing_module, monkeypatch, capsys):
    monkeypatch.setattr(run_state, "LOCK_POLL_SECONDS", 0.05)
    module = writing_module(lock_timeout=0.2)
    holder = lock_of(module)
    holder.acquire(0)
    worked = []
    try:
        result = printed(capsys, module.run, work=lambda m: worked.append(1) or {"changed": True}, exclusive=True)
    finally:
        holder.release()
    assert worked == []
    assert result["failed"] is True and "Nothing was changed" in result["msg"]


def test_check_mode_takes_no_lock(writing_module, capsys):
    module = writing_module(_ansible_check_mode=True, lock_timeout=0.2)
    holder = lock_of(module)
    holder.acquire(0)
    try:
        result = printed(
            capsys, module.run, work=lambda m: {"changed": False, "ledger": m.code_history is not None}, exclusive=True
        )
    finally:
        holder.release()
    assert "failed" not in result and result["ledger"] is False


def test_a_stop_file_newer_than_the_run_stops_it_and_an_older_one_does_not(writing_module, tmp_path):
    stop = tmp_path / "progress.json.stop"
    stop.touch()
    os.utime(stop, (time.time() - 60, time.time() - 60))  # left by an earlier run
    module = writing_module()
    assert module.stop_requested() is False
    stop.touch()
    assert module.stop_requested() is True


def test_a_module_whose_parent_has_gone_stops(writing_module, monkeypatch):
    module = writing_module()
    assert module.stop_requested() is False
    monkeypatch.setattr(graph_module.os, "getppid", lambda: 1)
    assert module.stop_requested() is True
