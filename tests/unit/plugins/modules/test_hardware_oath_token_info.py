# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of hardware_oath_token_info's run(): options refused before any request, the reads asked of a
fakes.FakeInventoryApi (the inventory query, the holders, the users' methods), and the result."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_token_info as module_under_test
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
    SERIAL,
    device,
    inv,
    res,
)

# The module as a task giving these options would run it.
task = functools.partial(FakeModule, task_options(module_under_test))

# The inventory: Amy's token, an available one and Adele's, listed in no particular order.
AMYS = inv("activated", AMY)
FREE = dataclasses.replace(inv(), id="d-free", serial_number="ABC001")
ADELES = dataclasses.replace(inv("assigned", ADELE), id="d-adele", serial_number="totp000001")
INVENTORY = [AMYS, FREE, ADELES]
# Their results, sorted by serial number (without regard to case).
FREE_RESULT = res(device_id="d-free", serial_number="ABC001")
ADELES_RESULT = res("assigned", ADELE, upn=True, device_id="d-adele", serial_number="totp000001")
AMYS_RESULT = res("activated", AMY, upn=True)
# Amy's hardware OATH method, as Graph lists it.
METHOD = {
    "id": DEVICE_ID,
    "createdDateTime": "2026-01-01T00:00:00Z",
    "lastUsedDateTime": None,
    "device": device(DEVICE_ID, SERIAL, AMY),
}
METHODS = {"me": (ADELE, []), AMY.user_principal_name: (AMY, [METHOD])}


@pytest.fixture
def api(patch_api):
    """The module's HardwareOathApi: a FakeInventoryApi whose inventory is INVENTORY and whose users have METHODS."""
    return patch_api(module_under_test, FakeInventoryApi(tokens=INVENTORY, methods=METHODS))


# ------------------------------------------------------------------------------------------- refused before any request
@pytest.mark.parametrize("given", [{"status": ["assigned"]}, {"assigned_to": AMY.user_principal_name}])
def test_run_refuses_unassigned_only_with_status_or_assigned_to(patch_api, given):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(unassigned_only=True, **given).run(module_under_test.run)
    assert info.value.args[0] == {"msg": "unassigned_only=true can't be combined with status or assigned_to."}


@pytest.mark.parametrize(
    "given, named",
    [
        ({"serial_numbers": [SERIAL]}, "serial_numbers"),
        ({"model": "OATH-TOTP", "status": ["available"]}, "status, model"),
        ({"unassigned_only": True}, "unassigned_only"),
        ({"assigned_to": "me", "manufacturer": "Contoso"}, "manufacturer, assigned_to"),
    ],
)
def test_run_refuses_inventory_filters_without_the_inventory(patch_api, given, named):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(inventory=False, users=["me"], **given).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"{named} filter the inventory, which inventory=false does not read."}


@pytest.mark.parametrize(
    "option, value, text, problem",
    [
        ("serial_numbers", [SERIAL, "TOTP\n1"], "TOTP\n1", f"{CONTROL} (U+000A)"),  # each one
        ("serial_numbers", ["S" * 129], "S" * 129, "is 129 characters long; at most 128 are allowed"),
        ("manufacturer", "M" * 129, "M" * 129, "is 129 characters long; at most 128 are allowed"),
        ("model", "OATH\x07", "OATH\x07", f"{CONTROL} (U+0007)"),
        ("assigned_to", "amy.masters@contoso.com\n", "amy.masters@contoso.com\n", f"{CONTROL} (U+000A)"),
        ("users", ["me", "adele\u2028"], "adele\u2028", f"{CONTROL} (U+2028)"),
    ],
)
def test_run_refuses_bad_text_before_any_request(patch_api, option, value, text, problem):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(**{option: value}).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"{option} {shown(text)} {problem}. Nothing was changed."}


def test_run_accepts_the_longest_text(api):
    result = module_under_test.run(task(serial_numbers=["S" * 128], manufacturer="M" * 128, model="X" * 128))
    assert result["missing_serial_numbers"] == ["S" * 128]
    assert api.calls[0] == (
        "list_tokens",
        TokenQuery(serial_numbers=("S" * 128,), manufacturer="M" * 128, model="X" * 128),
    )


# ---------------------------------------------------------------------------------------------------- the inventory
def test_run_lists_the_whole_inventory_sorted_with_the_holders_names(api):
    result = module_under_test.run(task())
    assert api.calls == [("list_tokens", TokenQuery()), ("users_by_ids", [ADELE.id, AMY.id])]
    assert result == {"changed": False, "hardware_oath_tokens": [FREE_RESULT, ADELES_RESULT, AMYS_RESULT]}
    assert not any("secret" in key for token in result["hardware_oath_tokens"] for key in token)


def test_run_without_resolve_assignees_looks_nobody_up(api):
    result = module_under_test.run(task(resolve_assignees=False))
    assert api.calls == [("list_tokens", TokenQuery())]
    assert [t["assigned_to"] for t in result["hardware_oath_tokens"]] == [
        None,
        {"id": ADELE.id, "display_name": ADELE.display_name, "user_principal_name": None},
        {"id": AMY.id, "display_name": AMY.display_name, "user_principal_name": None},
    ]


def test_run_serial_numbers_once_each_and_the_missing_ones(api):
    result = module_under_test.run(task(serial_numbers=[SERIAL.lower(), "NOPE1", "abc001", "nope1", SERIAL]))
    assert api.calls[0] == ("list_tokens", TokenQuery(serial_numbers=(SERIAL.lower(), "NOPE1", "abc001")))
    assert result["hardware_oath_tokens"] == [FREE_RESULT, AMYS_RESULT]
    assert result["missing_serial_numbers"] == ["NOPE1"]


def test_run_unassigned_only_asks_for_available_tokens(api):
    result = module_under_test.run(task(unassigned_only=True))
    assert api.calls[0] == ("list_tokens", TokenQuery(statuses=("available",)))
    assert result == {"changed": False, "hardware_oath_tokens": [FREE_RESULT]}


def test_run_status_manufacturer_and_model_make_the_query(api):
    module_under_test.run(task(status=["assigned", "activated"], manufacturer="contoso", model="oath-totp"))
    assert api.calls[0] == (
        "list_tokens",
        TokenQuery(statuses=("assigned", "activated"), manufacturer="contoso", model="oath-totp"),
    )


def test_run_assigned_to_looks_the_holder_up_once(api):
    result = module_under_test.run(task(assigned_to=AMY.user_principal_name))
    assert api.calls == [("user", AMY.user_principal_name), ("list_tokens", TokenQuery(assigned_to_id=AMY.id))]
    assert result == {"changed": False, "hardware_oath_tokens": [AMYS_RESULT]}


def test_run_changes_nothing_so_shows_no_diff(api):
    result = module_under_test.run(task(diff=True))
    assert result["changed"] is False
    assert "diff" not in result


def test_run_in_check_mode_reads_as_in_a_normal_run(api):
    assert module_under_test.run(task(check_mode=True)) == module_under_test.run(task())
    assert [c[0] for c in api.calls] == ["list_tokens", "users_by_ids"] * 2


# ---------------------------------------------------------------------------------------------------- users' methods
METHODS_RESULT = [
    {
        "user": "me",
        "user_id": ADELE.id,
        "user_principal_name": ADELE.user_principal_name,
        "display_name": ADELE.display_name,
        "methods": [],
    },
    {
        "user": AMY.user_principal_name,
        "user_id": AMY.id,
        "user_principal_name": AMY.user_principal_name,
        "display_name": AMY.display_name,
        "methods": [
            {
                "id": DEVICE_ID,
                "created_date_time": "2026-01-01T00:00:00Z",
                "last_used_date_time": None,
                "token": res("assigned", AMY, upn=True, display_name=None, last_used_date_time=None),
                "legacy": False,
            }
        ],
    },
]


def test_run_reads_the_users_methods_without_the_inventory(api):
    result = module_under_test.run(task(inventory=False, users=["me", AMY.user_principal_name]))
    assert api.calls == [("users_with_methods", ["me", AMY.user_principal_name])]
    assert result == {"changed": False, "hardware_oath_tokens": [], "hardware_oath_methods": METHODS_RESULT}


def test_run_reads_the_inventory_and_the_users_methods(api):
    result = module_under_test.run(task(users=["me", AMY.user_principal_name], unassigned_only=True))
    assert [c[0] for c in api.calls] == ["list_tokens", "users_by_ids", "users_with_methods"]
    assert result == {
        "changed": False,
        "hardware_oath_tokens": [FREE_RESULT],
        "hardware_oath_methods": METHODS_RESULT,
    }


def test_run_tells_a_legacy_twin_from_the_inventory_s_token_and_warns_of_it(patch_api):
    legacy = {**METHOD, "id": "legacy-1", "device": {**device("legacy-1", SERIAL, AMY), "status": "activated"}}
    api = patch_api(
        module_under_test,
        FakeInventoryApi(reads=[AMYS], methods={AMY.user_principal_name: (AMY, [legacy, METHOD])}),
    )
    result = module_under_test.run(task(inventory=False, users=[AMY.user_principal_name]))
    [user] = result["hardware_oath_methods"]
    assert [(m["id"], m["legacy"]) for m in user["methods"]] == [("legacy-1", True), (DEVICE_ID, False)]
    assert api.calls == [("users_with_methods", [AMY.user_principal_name]), ("find_token", SERIAL)]  # the twins'

    assert len(api.warnings) == 1
    assert api.warnings[0].startswith(
        f"{AMY.user_principal_name} holds a legacy hardware OATH token with serial number {SERIAL} (method id legacy-1)"
    )
