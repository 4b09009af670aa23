# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of hardware_oath_token's run(): the secret and text refused before any request, the inventory
entry's plan carried out (or, in check mode, only shown) on a fakes.FakeInventoryApi, and the result."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_token as module_under_test
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    Failed,
    FakeInventoryApi,
    FakeModule,
    task_options,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import (
    ADELE,
    AMY,
    CONTROL,
    DEVICE_ID,
    NEW_ID,
    RESULT_KEYS,
    SECRET,
    SERIAL,
    created,
    creation_body,
    inv,
    res,
)

# The module as a task giving these options (and the required one: serial_number) would run it.
task = functools.partial(FakeModule, task_options(module_under_test, serial_number=SERIAL))
# What creating inv()'s token takes.
NEW = {"secret_key": SECRET, "manufacturer": "Contoso", "model": "OATH-TOTP", "display_name": "Front desk"}
CREATED_FIELDS = ["secret_key", "manufacturer", "model", "time_interval", "hash_function", "display_name"]


@pytest.fixture
def api(patch_api):
    """``api(current, **script)``: the module's HardwareOathApi is a FakeInventoryApi whose inventory holds
    ``current`` (None: the token is not in it)."""
    return lambda current, **script: patch_api(module_under_test, FakeInventoryApi(reads=[current], **script))


# ---------------------------------------------------------------------------------------------------- options
def test_the_holder_option_is_user():
    options = task_options(module_under_test)
    assert "user" in options and "assigned_to" not in options
    assert (options["state"], options["force_unassign"], options["rotate"]) == ("present", False, False)


# ------------------------------------------------------------------------------------------- refused before any request
@pytest.mark.parametrize(
    "secret, secret_format, problem",
    [
        (
            SECRET[:15] + "1" + SECRET[16:],
            "base32",
            "secret_key is not valid base32 (only A-Z and 2-7); it contains 1 other character(s)",
        ),
        (SECRET + "G", "base32", "secret_key has an impossible base32 length"),
        (SECRET, "hex", "secret_key is not valid hex (an even number of 0-9, a-f characters)"),
    ],
)
def test_run_refuses_a_bad_secret_naming_the_token(patch_api, secret, secret_format, problem):
    patch_api(module_under_test)  # building the API fails the test
    module = task(**{**NEW, "secret_key": secret, "secret_format": secret_format})
    with pytest.raises(Failed) as info:
        module.run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"token {SERIAL}: {problem}. Nothing was changed."}
    assert secret not in info.value.args[0]["msg"]


@pytest.mark.parametrize(
    "option, value, problem",
    [
        ("serial_number", "S" * 129, "is 129 characters long; at most 128 are allowed"),
        ("serial_number", "TOTP\n123456", f"{CONTROL} (U+000A)"),
        ("manufacturer", "M" * 129, "is 129 characters long; at most 128 are allowed"),
        ("model", "\x1b[2JOATH", f"{CONTROL} (U+001B)"),
        ("display_name", "N" * 257, "is 257 characters long; at most 256 are allowed"),
        ("display_name", "Lobby\u202e", f"{CONTROL} (U+202E)"),
        ("user", "amy.masters@contoso.com\r", f"{CONTROL} (U+000D)"),
    ],
)
def test_run_refuses_bad_text_before_any_request(patch_api, option, value, problem):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(**{**NEW, option: value}).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"{option} {shown(value)} {problem}. Nothing was changed."}


def test_run_accepts_the_longest_text(api):
    fake = api(None, creates=[created()])
    longest = {"serial_number": "S" * 128, "manufacturer": "M" * 128, "model": "X" * 128, "display_name": "N" * 256}
    result = module_under_test.run(task(secret_key=SECRET, **longest))
    assert result["changed"] is True
    assert fake.calls[-1][0] == "create"
    assert fake.calls[-1][1]["serialNumber"] == "S" * 128


@pytest.mark.parametrize("given", [{"secret_key": SECRET, "state": "absent"}, {"state": "present"}])
def test_run_refuses_rotate_with_state_absent_or_without_a_secret(patch_api, given):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(rotate=True, **given).run(module_under_test.run)
    assert info.value.args[0] == {
        "msg": f"token {SERIAL}: rotate=true recreates the token with a new secret; give secret_key, with "
        "state=present."
    }


# ---------------------------------------------------------------------------------------------------- check mode
def test_run_check_mode_writes_nothing(api):
    fake = api(None)
    result = module_under_test.run(task(check_mode=True, **NEW))
    assert fake.calls == [("find_token", SERIAL)]
    assert result == {
        "changed": True,
        "actions": [
            {
                "action": "create",
                "user_id": None,
                "reason": f"token {SERIAL} is not in the inventory",
                "changes": CREATED_FIELDS,
            }
        ],
        "token": res(device_id=None, last_used_date_time=None),  # a token to be created has no id yet
    }


def test_run_check_mode_on_an_assigned_token_writes_nothing(api):
    fake = api(inv("activated", ADELE))
    result = module_under_test.run(task(check_mode=True, model="X2", force_unassign=True))
    assert fake.calls == [("find_token", SERIAL)]
    assert [a["action"] for a in result["actions"]] == ["unassign", "update", "assign"]
    assert result["token"] == res("assigned", ADELE, model="X2")


# ---------------------------------------------------------------------------------------------------- unchanged
def test_run_unchanged(api):
    fake = api(inv())
    result = module_under_test.run(task(**NEW))
    assert fake.calls == [("find_token", SERIAL)]
    assert result == {"changed": False, "actions": [], "token": res()}


def test_run_the_secret_of_a_token_in_the_inventory_is_ignored(api):
    fake = api(inv("activated", AMY))
    result = module_under_test.run(task(secret_key="A" * 32))  # another secret: Graph can't compare it
    assert fake.calls == [("find_token", SERIAL)]
    assert result["changed"] is False


# ---------------------------------------------------------------------------------------------------- changes
def test_run_creates(api):
    fake = api(None, creates=[created()])
    module = task(**NEW)
    result = module_under_test.run(module)
    assert fake.calls == [("find_token", SERIAL), ("create", creation_body())]
    assert result == {
        "changed": True,
        "actions": [
            {
                "action": "create",
                "user_id": None,
                "reason": f"token {SERIAL} is not in the inventory",
                "changes": CREATED_FIELDS,
            }
        ],
        "token": res(device_id=NEW_ID),  # Graph's answer: the new id
    }
    assert list(result["token"]) == RESULT_KEYS
    assert module.logs == []


def test_run_creates_the_token_assigned_to_the_user(api):
    fake = api(None, creates=[created(AMY)])
    result = module_under_test.run(task(user=AMY.user_principal_name, **NEW))
    assert fake.calls == [
        ("user", AMY.user_principal_name),
        ("find_token", SERIAL),
        ("create", creation_body(AMY)),
    ]
    assert result["actions"][0]["user_id"] == AMY.id
    assert result["token"] == res("assigned", AMY, upn=True, device_id=NEW_ID)


@pytest.mark.parametrize("diff", [False, True])
def test_run_updates_and_shows_the_diff_only_in_diff_mode(api, diff):
    fake = api(inv())
    result = module_under_test.run(task(display_name="Lobby", time_interval=60, diff=diff))
    assert fake.calls == [
        ("find_token", SERIAL),
        ("update", DEVICE_ID, {"timeIntervalInSeconds": 60, "displayName": "Lobby"}),
    ]
    assert result["changed"] is True
    assert result["token"] == res(display_name="Lobby", time_interval=60)
    if diff:
        assert result["diff"] == {"before": res(), "after": res(display_name="Lobby", time_interval=60)}
    else:
        assert "diff" not in result
    assert set(result) == {"changed", "actions", "token"} | ({"diff"} if diff else set())


def test_run_assigns_an_available_token_to_the_user(api):
    fake = api(inv())
    result = module_under_test.run(task(user=AMY.user_principal_name))
    assert fake.calls == [
        ("user", AMY.user_principal_name),
        ("find_token", SERIAL),
        ("assign", AMY.id, DEVICE_ID, None, None, None, False, False),
    ]
    assert result["token"] == res("assigned", AMY, upn=True)


def test_run_state_absent_deletes_and_does_not_look_the_user_up(api):
    fake = api(inv())
    result = module_under_test.run(task(state="absent", user=AMY.user_principal_name))
    assert fake.calls == [("find_token", SERIAL), ("delete", DEVICE_ID)]
    assert result == {
        "changed": True,
        "actions": [{"action": "delete", "user_id": None, "reason": "state=absent"}],
        "token": {},
    }


def test_run_state_absent_of_a_token_not_in_the_inventory(api):
    fake = api(None)
    assert module_under_test.run(task(state="absent")) == {"changed": False, "actions": [], "token": {}}
    assert fake.calls == [("find_token", SERIAL)]


def test_run_rotates_by_deleting_and_recreating(api):
    fake = api(inv(), creates=[created()])
    result = module_under_test.run(task(secret_key=SECRET, rotate=True))
    assert fake.calls == [("find_token", SERIAL), ("delete", DEVICE_ID), ("create", creation_body())]
    assert [a["action"] for a in result["actions"]] == ["delete", "create"]
    assert result["token"] == res(device_id=NEW_ID)


# ---------------------------------------------------------------------------------------------------- failures
def test_run_refuses_to_change_an_assigned_token_without_force_unassign(api):
    fake = api(inv("activated", ADELE))
    with pytest.raises(Failed) as info:
        task(model="X2").run(module_under_test.run)
    assert info.value.args[0] == {
        "msg": f"token {SERIAL} is assigned to Adele Vance ({ADELE.id}); Graph changes model only while a token is "
        "unassigned. Set force_unassign=true to unassign it first (its holder loses the activation and must activate "
        "it again)."
    }
    assert fake.calls == [("find_token", SERIAL)]


def test_run_a_failure_after_the_unassign_says_what_was_done(api):
    failure = GraphError(f"Updating token {SERIAL}: Graph answered 503", status=503, code="serviceUnavailable")
    fake = api(inv("activated", ADELE), failures={1: failure})
    module = task(model="X2", force_unassign=True)
    with pytest.raises(Failed) as info:
        module.run(module_under_test.run)
    result = info.value.args[0]
    assert [c[0] for c in fake.calls] == ["find_token", "unassign", "update"]
    assert set(result) == {"msg", "changed", "actions", "pending_actions", "graph_error"}
    assert result["changed"] is True
    assert [a["action"] for a in result["actions"]] == ["unassign"]
    assert [a["action"] for a in result["pending_actions"]] == ["update", "assign"]
    assert result["graph_error"] == {"status": 503, "code": "serviceUnavailable"}
    assert result["msg"].startswith(f"Updating token {SERIAL}: Graph answered 503. Already done for token {SERIAL}: ")
    assert f"Adele Vance ({ADELE.id}) no longer holds token {SERIAL}" in result["msg"]
    assert module.closed is True


# ---------------------------------------------------------------------------------------------------- the secret
@pytest.mark.parametrize("secret_key", [SECRET, SECRET.lower(), "gezd gnbv-gy3t qojq gezd gnbv gy3t qojq"])
def test_run_results_never_hold_the_secret(api, secret_key):
    fake = api(None, creates=[created()])
    module = task(diff=True, **{**NEW, "secret_key": secret_key})
    result = module_under_test.run(module)
    assert fake.calls[-1] == ("create", creation_body())  # the secret goes to Graph only, normalised
    assert SECRET in module.no_log_values  # the normalised form is masked as well as the given one
    assert SECRET not in repr(result) and SECRET not in repr(module.logs)
    assert secret_key not in repr(result) and secret_key not in repr(module.logs)
