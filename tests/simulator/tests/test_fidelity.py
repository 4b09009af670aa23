"""The fidelity settings (docs/simulator.md, "Fidelity"): the simulator defaults to what Microsoft documents and offers
the other plausible behaviours as settings. Every setting in every mode, seed and admin validation, reset, the
methods_rate throttle and users' other OATH methods. The inventory's filter_mode over the whole filter catalogue is in
test_odata_paging.py."""

from __future__ import annotations

import time

import pyotp
import pytest
import yaml

import simlib
from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    ALEX,
    AMY,
    AUTOMATION,
    CLI,
    DEVICES,
    DEVICES_ONLY_APP,
    DIEGO,
    DIEGO_ASSIGNED,
    GRADY,
    MEGAN,
    MEGAN_TOKENS,
    MEGAN_UPN,
    POLICY,
    REPORTING,
    SPARE,
    TENANT_ID,
    TOTP123456,
    TOTP654321,
    UNKNOWN_ID,
    assert_graph_error,
    methods_path,
    policy_body,
)

JSON = {"Content-Type": "application/json"}
MODES = ["documented", "silent", "lenient"]
DELAY_MS = 400  # read_after_write_delay_ms in these tests: long enough for a few requests, short for the suite
DEFAULTS = {
    "create_assign_without_permission": "forbid",
    "filter_mode": "documented",
    "top_above_max": "cap",
    "method_device_inline": True,
    "create_assign_status": "assigned",
    "reactivate_activated": "allow",
    "batch_parallel": True,
    "bulk_answer": "wrapped",
    "bulk_refusal": "per_item",
    "error_wording": "descriptive",
    "write_throttle_limit": "ReadWrite",
    "throttle_information": "sent",
    "quota_model": "token_bucket",
    "throttled_requests": "charged",
    "activation_last_used": "unchanged",
    "read_after_write_delay_ms": 0,
    "bulk_max_items": 100,
}
OTHERS = {
    "create_assign_without_permission": "ignore",
    "filter_mode": "silent",
    "top_above_max": "reject",
    "method_device_inline": False,
    "create_assign_status": "available",
    "reactivate_activated": "refuse",
    "batch_parallel": False,
    "bulk_answer": "empty",
    "bulk_refusal": "whole",
    "error_wording": "opaque",
    "write_throttle_limit": "Write",
    "throttle_information": "omitted",
    "quota_model": "sliding_window",
    "throttled_requests": "free",
    "activation_last_used": "set",
    "read_after_write_delay_ms": 250,
    "bulk_max_items": 50,
}
ALREADY_ACTIVATED = "The hardware OATH token is already activated."


def set_settings(api, **values):
    response = api.admin("POST", "settings", json=values)
    assert response.status_code == 200, response.text
    return response.json()


def ids(response):
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["value"]]


def new_device(serial, **extra):
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "Fidelity",
        "timeIntervalInSeconds": 30,
        "secretKey": pyotp.random_base32(32),
        **extra,
    }


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def start(tmp_path, seed, args=()):
    """A simulator of its own, on ``seed``."""
    path = tmp_path / "seed.yml"
    path.write_text(yaml.safe_dump(seed, sort_keys=False), encoding="utf-8")
    return simlib.SimProcess(str(path), tmp_path / "sim", list(args))


def with_settings(seed, **settings):
    return {**seed, "settings": {**(seed.get("settings") or {}), **settings}}


def limit_message(upn):
    return f"The user {upn} already has the maximum of 5 OATH methods (hardware tokens and authenticator apps)."


# ------------------------------------------------------------------ settings: admin API, seed, reset
def test_defaults_are_the_documented_behaviours(api):
    current = api.admin("GET", "settings").json()
    assert {name: current[name] for name in DEFAULTS} == DEFAULTS
    assert api.admin("GET", "faults").json()["methods_rate"] is None


def test_every_setting_changes_at_run_time_and_reset_restores_it(api):
    before = api.admin("GET", "settings").json()
    assert set_settings(api, **OTHERS) == {**before, **OTHERS}
    assert api.admin("GET", "settings").json() == {**before, **OTHERS}
    assert set_settings(api, filter_mode="lenient", read_after_write_delay_ms=0)["filter_mode"] == "lenient"
    api.reset()
    assert api.admin("GET", "settings").json() == before


@pytest.mark.parametrize(
    "data, message",
    [
        ({"filter_mode": "strict"}, 'filter_mode must be documented, silent or lenient, not "strict"'),
        ({"filter_mode": "Documented"}, 'filter_mode must be documented, silent or lenient, not "Documented"'),
        ({"top_above_max": "drop"}, 'top_above_max must be cap or reject, not "drop"'),
        ({"method_device_inline": "false"}, 'method_device_inline must be true or false, not "false"'),
        ({"method_device_inline": 0}, "method_device_inline must be true or false, not 0"),
        ({"create_assign_status": "activated"}, 'create_assign_status must be assigned or available, not "activated"'),
        ({"reactivate_activated": None}, "reactivate_activated must be allow or refuse, not null"),
        ({"batch_parallel": 1}, "batch_parallel must be true or false, not 1"),
        ({"read_after_write_delay_ms": -1}, "read_after_write_delay_ms must be a non-negative integer, not -1"),
        ({"read_after_write_delay_ms": 1.5}, "read_after_write_delay_ms must be a non-negative integer, not 1.5"),
        ({"read_after_write_delay_ms": "300"}, 'read_after_write_delay_ms must be a non-negative integer, not "300"'),
        ({"read_after_write_delay_ms": True}, "read_after_write_delay_ms must be a non-negative integer, not true"),
        ({"filter_mode": "lenient", "batch_parallel": "no"}, 'batch_parallel must be true or false, not "no"'),
        ({"filter_mode": "lenient", "methods_rate": "5/10"}, "unknown setting 'methods_rate'"),
    ],
)
def test_setting_errors_change_nothing(api, data, message):
    before = api.admin("GET", "settings").json()
    response = api.admin("POST", "settings", json=data)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert api.admin("GET", "settings").json() == before


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"filter_mode": "strict"}, 'settings.filter_mode must be documented, silent or lenient, not "strict"'),
        ({"top_above_max": "drop"}, 'settings.top_above_max must be cap or reject, not "drop"'),
        ({"method_device_inline": "yes"}, 'settings.method_device_inline must be true or false, not "yes"'),
        ({"create_assign_status": "activated"}, "settings.create_assign_status must be assigned or available"),
        ({"reactivate_activated": True}, "settings.reactivate_activated must be allow or refuse, not true"),
        ({"batch_parallel": "parallel"}, "settings.batch_parallel must be true or false"),
        ({"read_after_write_delay_ms": -1}, "settings.read_after_write_delay_ms must be a non-negative integer"),
        (
            {"create_assign_without_permission": "allow"},
            "settings.create_assign_without_permission must be forbid or ignore",
        ),
    ],
)
def test_invalid_seed_settings_exit_2(suite_material, tmp_path, settings, message):
    with pytest.raises(RuntimeError, match="exited with 2") as failure:
        start(tmp_path, with_settings(suite_material["seed"], **settings))
    assert message in str(failure.value)


@pytest.mark.parametrize("others", [6, -1, "2", True, None])
def test_invalid_other_oath_methods_exit_2(suite_material, tmp_path, others):
    seed = dict(suite_material["seed"])
    seed["users"] = [{**seed["users"][0], "other_oath_methods": others}] + seed["users"][1:]
    with pytest.raises(RuntimeError, match="exited with 2") as failure:
        start(tmp_path, seed)
    assert "users[0]: other_oath_methods must be an integer from 0 to 5" in str(failure.value)


def test_seeded_tokens_and_other_oath_methods_are_at_most_five(suite_material, tmp_path):
    seed = dict(suite_material["seed"])
    seed["users"] = [{**u, "other_oath_methods": 1} if u["id"] == MEGAN else u for u in seed["users"]]
    with pytest.raises(RuntimeError, match="exited with 2") as failure:
        start(tmp_path, seed)
    assert f"{MEGAN_UPN} already has 5 OATH methods" in str(failure.value)


# The seeded simulator: every behaviour setting away from its default, --methods-rate, users with other OATH methods.
OTTO, OTTO_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000201", "otto.other@contoso.com"  # 4 other OATH methods
FAY, FAY_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000202", "fay.full@contoso.com"  # 5 other OATH methods
MAX, MAX_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000203", "max.mixed@contoso.com"  # 2 other + 3 hardware tokens
METHODS_RATE = 10


@pytest.fixture(scope="module")
def seeded_sim(suite_material, tmp_path_factory):
    seed = with_settings(suite_material["seed"], **OTHERS)
    seed["users"] = seed["users"] + [
        {"id": OTTO, "user_principal_name": OTTO_UPN, "display_name": "Otto Other", "other_oath_methods": 4},
        {"id": FAY, "user_principal_name": FAY_UPN, "display_name": "Fay Full", "other_oath_methods": 5},
        {"id": MAX, "user_principal_name": MAX_UPN, "display_name": "Max Mixed", "other_oath_methods": 2},
    ]
    seed["tokens"] = seed["tokens"] + [
        {
            "serial_number": f"MAX-{i}",
            "secret_key": pyotp.random_base32(32),
            "manufacturer": "Contoso",
            "model": "Hardware Key",
            "assigned_to": MAX_UPN,
            "status": "assigned",
        }
        for i in range(3)
    ]
    with simlib.seeded_api(seed, tmp_path_factory.mktemp("seeded"), ["--methods-rate", f"{METHODS_RATE}/60"]) as api:
        yield api


@pytest.fixture
def seeded(seeded_sim):
    seeded_sim.reset()
    return seeded_sim


def test_seed_settings_are_the_start_up_settings(seeded):
    start_up = seeded.admin("GET", "settings").json()
    assert start_up == {"page_size": 100, "max_page_size": 999, **OTHERS}
    assert set_settings(seeded, **DEFAULTS) == {"page_size": 100, "max_page_size": 999, **DEFAULTS}
    seeded.reset()
    assert seeded.admin("GET", "settings").json() == start_up


def test_methods_rate_from_the_command_line(seeded):
    assert seeded.admin("GET", "faults").json()["methods_rate"] == {"requests": METHODS_RATE, "per_seconds": 60.0}
    for _attempt in range(2):  # a reset restores the start-up quota and refills its bucket
        assert {seeded.graph("GET", methods_path(MEGAN)).status_code for _i in range(METHODS_RATE)} == {200}
        assert seeded.graph("GET", methods_path(MEGAN)).status_code == 429
        assert seeded.graph("GET", f"/users/{MEGAN}").status_code == 200  # not under /authentication/
        seeded.faults({"methods_rate": False})
        assert seeded.graph("GET", methods_path(MEGAN)).status_code == 200
        seeded.reset()


def test_invalid_methods_rate_option_exits_2(suite_material, tmp_path):
    with pytest.raises(RuntimeError, match="exited with 2"):
        simlib.SimProcess(suite_material["seed_path"], tmp_path / "sim", ["--methods-rate", "lots"])


# ------------------------------------------------------------------ other OATH methods and the five-method limit
def test_other_oath_methods_in_the_state(seeded, api):
    users = {u["id"]: u for u in seeded.admin_state()["users"]}
    assert (users[OTTO]["other_oath_methods"], users[FAY]["other_oath_methods"]) == (4, 5)
    assert (users[MAX]["other_oath_methods"], len(users[MAX]["hardware_oath_methods"])) == (2, 3)
    assert users[AMY]["other_oath_methods"] == 0
    assert {u["other_oath_methods"] for u in api.admin_state()["users"]} == {0}  # the suite's seed has none


def test_other_oath_methods_count_towards_five(seeded, totp):
    set_settings(seeded, error_wording="descriptive", bulk_refusal="per_item")  # the messages are asserted
    assert seeded.graph("POST", methods_path(OTTO), json={"device": {"id": TOTP123456}}).status_code == 201
    refusals = [
        seeded.graph("POST", methods_path(OTTO), json={"device": {"id": TOTP654321}}),
        seeded.graph(
            "POST",
            f"{methods_path(OTTO)}/assignAndActivate",
            json={"device": {"id": TOTP654321}, "verificationCode": totp("TOTP654321").at(seeded.now())},
        ),
        seeded.graph(
            "POST",
            f"{methods_path(OTTO_UPN)}/assignAndActivateBySerialNumber",
            json={"serialNumber": "TOTP654321", "verificationCode": totp("TOTP654321").at(seeded.now())},
        ),
        seeded.graph("POST", DEVICES, json=new_device("OTTO-6", assignTo={"id": OTTO})),
        seeded.graph("POST", methods_path(FAY), json={"device": {"id": TOTP654321}}),
        seeded.graph("POST", methods_path(MAX), json={"device": {"id": TOTP654321}}),
    ]
    upns = [OTTO_UPN] * 4 + [FAY_UPN, MAX_UPN]
    for response, upn in zip(refusals, upns):
        error = assert_graph_error(response, 400, "badRequest")
        assert error["message"] == limit_message(upn) and "code" not in error["message"].lower()
    bulk = seeded.graph(
        "PATCH", DEVICES, json={"@context": "#$delta", "value": [new_device("OTTO-7", assignTo={"id": OTTO})]}
    )
    assert_graph_error(bulk, 400, "badRequest")
    assert bulk.json()["error"]["details"][0]["message"] == limit_message(OTTO_UPN)
    state = seeded.admin_state()
    assert next(u for u in state["users"] if u["id"] == OTTO)["hardware_oath_methods"] == [TOTP123456]
    assert not {"OTTO-6", "OTTO-7"} & {t["serial_number"] for t in state["tokens"]}
    assert seeded.graph("DELETE", f"{methods_path(OTTO)}/{TOTP123456}").status_code == 204
    assert seeded.graph("POST", methods_path(OTTO), json={"device": {"id": TOTP654321}}).status_code == 201


def test_hardware_tokens_alone_reach_the_limit_with_the_new_message(api):
    error = assert_graph_error(
        api.graph("POST", methods_path(MEGAN), json={"device": {"id": SPARE}}), 400, "badRequest"
    )
    assert error["message"] == limit_message(MEGAN_UPN)


# ------------------------------------------------------------------ filter_mode: users and user methods
USER_FILTERS = [
    ("userType ne 'Guest'", lambda everyone: everyone - {GRADY}),
    ("not(userType eq 'Guest')", lambda everyone: everyone - {GRADY}),
    ("not (userType eq 'Guest') and not(id eq '{AMY}')", lambda everyone: everyone - {GRADY, AMY}),
    ("startswith(displayName,'a')", lambda _everyone: {AMY, ADELE, ALEX}),
    ("startswith(userPrincipalName, 'AMY.')", lambda _everyone: {AMY}),
    ("startswith(displayName,'A') and id ne '{ALEX}'", lambda _everyone: {AMY, ADELE}),
    ("id in ('{AMY}', '{GRADY}') and userType eq 'Member'", lambda _everyone: {AMY}),
    ("userType eq 'Guest'", lambda _everyone: {GRADY}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("expr, expected", USER_FILTERS)
def test_user_filters_in_every_mode(api, mode, expr, expected):
    set_settings(api, filter_mode=mode)
    everyone = {u["id"] for u in api.admin_state()["users"]}
    response = api.graph("GET", "/users", params={"$filter": expr.format(AMY=AMY, ALEX=ALEX, GRADY=GRADY)})
    assert set(ids(response)) == expected(everyone)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("userType eq 'Member' or userType eq 'Guest'", "'or' operator"),
        ("endswith(displayName,'s')", "function 'endswith'"),
        ("userType gt 'A'", "'gt' operator"),
        ("accountEnabled eq true", "Could not find a property named 'accountEnabled'"),
    ],
)
def test_user_filters_refused_in_every_mode(api, mode, expr, fragment):
    set_settings(api, filter_mode=mode)
    assert_graph_error(api.graph("GET", "/users", params={"$filter": expr}), 400, "BadRequest", fragment)


@pytest.mark.parametrize("mode", MODES)
def test_user_method_filters_are_the_same_in_every_mode(api, mode):
    set_settings(api, filter_mode=mode)
    expr = "device/status eq 'activated' and (device/serialNumber in ('MEGAN-0001', 'MEGAN-0004'))"
    assert ids(api.graph("GET", methods_path(MEGAN), params={"$filter": expr})) == [MEGAN_TOKENS[0]]
    for expr, fragment in [
        ("device/status ne 'activated'", "'ne' operator"),
        ("startswith(device/serialNumber,'MEGAN')", "function 'startswith'"),
    ]:
        assert_graph_error(api.graph("GET", methods_path(MEGAN), params={"$filter": expr}), 400, "BadRequest", fragment)


# ------------------------------------------------------------------ top_above_max
@pytest.mark.parametrize("path", [DEVICES, "/users", methods_path(MEGAN)])
def test_top_above_max(api, path):
    set_settings(api, max_page_size=3)
    capped = api.graph("GET", path, params={"$top": "4"})  # the default, cap: a page holds min($top, max)
    assert len(ids(capped)) == 3 and "$top=4" in capped.json()["@odata.nextLink"]
    set_settings(api, top_above_max="reject")
    error = assert_graph_error(api.graph("GET", path, params={"$top": "4"}), 400, "BadRequest")
    assert error["message"] == "Invalid page size specified: '4'. Must be between 1 and 3 inclusive."
    assert len(ids(api.graph("GET", path, params={"$top": "3"}))) == 3
    assert len(ids(api.graph("GET", path))) == 3  # no $top: the default page size, capped as before


def test_top_above_max_reject_with_the_default_maximum(api):
    set_settings(api, top_above_max="reject")
    assert len(ids(api.graph("GET", DEVICES, params={"$top": "999"}))) == simlib.SEED_TOKEN_COUNT
    assert_graph_error(
        api.graph("GET", DEVICES, params={"$top": "1000"}), 400, "BadRequest", "Must be between 1 and 999 inclusive."
    )


# ------------------------------------------------------------------ read_after_write_delay_ms
def settle():
    """Wait until the writes made so far are visible to reads."""
    time.sleep(DELAY_MS / 1000 + 0.1)


def listed_serials(api):
    return [d["serialNumber"] for d in api.graph("GET", DEVICES).json()["value"]]


def state_serials(api):
    return [t["serial_number"] for t in api.admin_state()["tokens"]]


def test_read_after_write_create(api):
    set_settings(api, read_after_write_delay_ms=DELAY_MS)
    created = api.create_device("RAW-1")
    assert created["serialNumber"] == "RAW-1"  # the write's own answer is current
    assert_graph_error(api.graph("GET", f"{DEVICES}/{created['id']}"), 404, "itemNotFound")
    assert "RAW-1" not in listed_serials(api)
    assert ids(api.graph("GET", DEVICES, params={"$filter": "serialNumber eq 'RAW-1'"})) == []
    assert "RAW-1" in state_serials(api)  # the admin view is the truth
    # Later writes and their checks see it at once.
    assert_graph_error(api.graph("POST", DEVICES, json=new_device("raw-1")), 409, "conflict")
    assert api.graph("PATCH", f"{DEVICES}/{created['id']}", json={"displayName": "renamed"}).status_code == 204
    assert api.graph("GET", f"{DEVICES}/{created['id']}").status_code == 404
    settle()
    assert api.device(created["id"])["displayName"] == "renamed"
    assert "RAW-1" in listed_serials(api)


def test_read_after_write_delete_holds_the_serial_number(api):
    set_settings(api, read_after_write_delay_ms=DELAY_MS)
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    assert api.device(SPARE)["serialNumber"] == "SPARE-0001"  # still there for reads
    assert "SPARE-0001" in listed_serials(api) and "SPARE-0001" not in state_serials(api)
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{SPARE}"), 404, "itemNotFound")  # writes see the truth
    # Graph answers 409 to a create of the serial number while the delete replicates.
    assert_graph_error(api.graph("POST", DEVICES, json=new_device("SPARE-0001")), 409, "conflict")
    bulk = api.graph("PATCH", DEVICES, json={"@context": "#$delta", "value": [new_device("spare-0001")]})
    assert_graph_error(bulk, 400, "badRequest")
    assert bulk.json()["error"]["details"][0]["code"] == "conflict"
    settle()
    assert_graph_error(api.graph("GET", f"{DEVICES}/{SPARE}"), 404, "itemNotFound")
    assert "SPARE-0001" not in listed_serials(api)
    assert api.graph("POST", DEVICES, json=new_device("SPARE-0001")).status_code == 201


def test_delete_then_create_without_delay(api):
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    assert api.graph("POST", DEVICES, json=new_device("SPARE-0001")).status_code == 201


def test_read_after_write_assignment_activation_and_unassignment(api, totp):
    set_settings(api, read_after_write_delay_ms=DELAY_MS)
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivate",
        json={
            "device": {"id": TOTP123456},
            "verificationCode": totp("TOTP123456").at(api.now()),
            "displayName": "Amy's key",
        },
    )
    assert response.status_code == 204, response.text
    device = api.device(TOTP123456)
    assert (device["status"], device["assignedTo"], device["displayName"]) == ("available", None, None)
    assert ids(api.graph("GET", methods_path(AMY))) == []
    assert_graph_error(api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}"), 404, "itemNotFound")
    assert_graph_error(api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}/device"), 404, "itemNotFound")
    assert api.token_state(TOTP123456)["status"] == "activated"
    assert api.graph("POST", f"{methods_path(AMY)}/{TOTP123456}/deactivate").status_code == 204  # a write: at once
    settle()
    device = api.device(TOTP123456)
    assert (device["status"], device["assignedTo"]["id"], device["displayName"]) == ("assigned", AMY, "Amy's key")
    assert ids(api.graph("GET", methods_path(AMY))) == [TOTP123456]
    assert api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}/device").json()["status"] == "assigned"
    assert api.graph("DELETE", f"{methods_path(AMY)}/{TOTP123456}").status_code == 204
    method = api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}")
    assert method.status_code == 200 and method.json()["device"]["assignedTo"]["id"] == AMY
    assert api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}/device").status_code == 200
    settle()
    assert_graph_error(api.graph("GET", f"{methods_path(AMY)}/{TOTP123456}"), 404, "itemNotFound")
    assert api.device(TOTP123456)["status"] == "available"


def test_read_after_write_back_to_zero_shows_the_current_state(api):
    set_settings(api, read_after_write_delay_ms=60_000)
    created = api.create_device("RAW-ZERO")
    assert "RAW-ZERO" not in listed_serials(api)
    set_settings(api, read_after_write_delay_ms=0)
    assert api.device(created["id"])["serialNumber"] == "RAW-ZERO"


# ------------------------------------------------------------------ method_device_inline and .../device
def test_method_device_not_inline(api):
    set_settings(api, method_device_inline=False)
    listing = api.graph("GET", methods_path(MEGAN)).json()["value"]
    assert [m["id"] for m in listing] == MEGAN_TOKENS
    assert all(set(m) == {"@odata.type", "id", "createdDateTime", "lastUsedDateTime"} for m in listing)
    method = api.graph("GET", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}").json()
    assert "device" not in method and method["id"] == MEGAN_TOKENS[0]
    selected = api.graph("GET", methods_path(MEGAN), params={"$select": "id,device"}).json()["value"]
    assert all(set(m) == {"@odata.type", "id"} for m in selected)
    filtered = api.graph("GET", methods_path(MEGAN), params={"$filter": "device/status eq 'activated'"})
    assert ids(filtered) == MEGAN_TOKENS[:3]  # still filtered on the device
    me = api.graph("GET", "/me/authentication/hardwareOathMethods", token=api.token(CLI, user=MEGAN)).json()["value"]
    assert all("device" not in m for m in me)
    set_settings(api, method_device_inline=True)
    assert all(m["device"]["serialNumber"] for m in api.graph("GET", methods_path(MEGAN)).json()["value"])


@pytest.mark.parametrize("inline", [True, False])
def test_method_device_path(api, sim, inline):
    set_settings(api, method_device_inline=inline)
    device = {k: v for k, v in api.device(MEGAN_TOKENS[0]).items() if k != "@odata.context"}
    for user in (MEGAN, MEGAN_UPN):
        response = api.graph("GET", f"{methods_path(user)}/{MEGAN_TOKENS[0]}/device")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body.pop("@odata.context") == (
            f"{sim['graph_url']}/beta/$metadata#users('{MEGAN}')/authentication/"
            f"hardwareOathMethods('{MEGAN_TOKENS[0]}')/device/$entity"
        )
        assert body == device
    selected = api.graph("GET", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}/device", params={"$select": "serialNumber"})
    assert {k: v for k, v in selected.json().items() if k != "@odata.context"} == {
        "id": MEGAN_TOKENS[0],
        "serialNumber": "MEGAN-0001",
    }
    me = api.graph(
        "GET", f"/me/authentication/hardwareOathMethods/{MEGAN_TOKENS[0]}/device", token=api.token(CLI, user=MEGAN)
    )
    assert me.status_code == 200 and me.json()["serialNumber"] == "MEGAN-0001"
    reporting = api.graph("GET", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}/device", token=api.token(REPORTING))
    assert reporting.status_code == 200  # the permission to read the user's methods


def test_method_device_path_errors(api):
    path = f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}/device"
    assert_graph_error(api.graph("GET", f"{methods_path(AMY)}/{MEGAN_TOKENS[0]}/device"), 404, "itemNotFound")
    assert_graph_error(api.graph("GET", f"{methods_path(MEGAN)}/{UNKNOWN_ID}/device"), 404, "itemNotFound")
    assert_graph_error(api.graph("GET", f"{methods_path(DIEGO)}/{SPARE}/device"), 404, "itemNotFound")
    for method in ("POST", "PATCH", "DELETE"):
        assert_graph_error(api.graph(method, path, json={}), 405, "Request_BadRequest")
    # The inventory's read permission is not enough: it is the user's method.
    assert_graph_error(api.graph("GET", path, token=api.token(DEVICES_ONLY_APP)), 403, "accessDenied")
    assert_graph_error(api.graph("GET", path, params={"$top": "1"}), 400, "BadRequest")
    assert_graph_error(api.graph("GET", path + "/assignTo"), 400, "BadRequest")


# ------------------------------------------------------------------ create_assign_status
def test_create_assign_status_available(api):
    set_settings(api, create_assign_status="available")
    created = api.create_device("CAS-1", assignTo={"id": AMY})
    token_id = created["id"]
    assert (created["status"], created["assignedTo"]) == ("available", {"id": AMY, "displayName": "Amy Masters"})
    device = api.device(token_id)
    assert (device["status"], device["assignedTo"]["id"]) == ("available", AMY)
    assert ids(api.graph("GET", methods_path(AMY))) == [token_id]
    state = api.token_state(token_id)
    assert (state["status"], state["assigned_to"]["id"]) == ("available", AMY)
    # Assigned in every other way: not updatable or deletable, not assignable to another user, activatable.
    assert_graph_error(api.graph("PATCH", f"{DEVICES}/{token_id}", json={"displayName": "x"}), 400, "badRequest")
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{token_id}"), 400, "badRequest")
    assert_graph_error(api.graph("POST", methods_path(DIEGO), json={"device": {"id": token_id}}), 409, "conflict")
    code = simlib.Totp(created["_secret"]).at(api.now())
    response = api.graph("POST", f"{methods_path(AMY)}/{token_id}/activate", json={"verificationCode": code})
    assert response.status_code == 204, response.text
    assert api.device(token_id)["status"] == "activated"
    assert api.graph("DELETE", f"{methods_path(AMY)}/{token_id}").status_code == 204
    device = api.device(token_id)
    assert (device["status"], device["assignedTo"]) == ("available", None)
    bulk = api.graph(
        "PATCH", DEVICES, json={"@context": "#$delta", "value": [new_device("CAS-2", assignTo={"id": AMY})]}
    )
    assert bulk.status_code == 201 and bulk.json()["value"][0]["device"]["status"] == "available"
    assert bulk.json()["value"][0]["device"]["assignedTo"]["id"] == AMY


def test_create_assign_status_available_counts_towards_the_limit(api):
    set_settings(api, create_assign_status="available")
    for i in range(5):
        api.create_device(f"CAS-LIMIT-{i}", assignTo={"id": AMY})
    response = api.graph("POST", DEVICES, json=new_device("CAS-LIMIT-5", assignTo={"id": AMY}))
    assert assert_graph_error(response, 400, "badRequest")["message"] == limit_message("amy.masters@contoso.com")
    assert_graph_error(
        api.graph("POST", methods_path(AMY), json={"device": {"id": SPARE}}), 400, "badRequest", "maximum of 5"
    )


# ------------------------------------------------------------------ reactivate_activated
def test_reactivate_activated_allow_renames(api, totp):
    response = api.graph(
        "POST",
        f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/activate",
        json={"verificationCode": totp("TOTP100002").at(api.now()), "displayName": "Renamed"},
    )
    assert response.status_code == 204, response.text
    device = api.device(ADELE_ACTIVATED)
    assert (device["status"], device["displayName"]) == ("activated", "Renamed")


def test_reactivate_activated_refuse(api, totp):
    set_settings(api, reactivate_activated="refuse")
    before = api.token_state(ADELE_ACTIVATED)
    code = totp("TOTP100002").at(api.now())
    attempts = [
        (f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/activate", {"verificationCode": code, "displayName": "Renamed"}),
        (f"{methods_path(ADELE)}/assignAndActivate", {"device": {"id": ADELE_ACTIVATED}, "verificationCode": code}),
        (
            f"{methods_path(ADELE)}/assignAndActivateBySerialNumber",
            {"serialNumber": "TOTP100002", "verificationCode": code},
        ),
        (f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/activate", {"verificationCode": "000000"}),  # a wrong code too
    ]
    for path, body in attempts:
        error = assert_graph_error(api.graph("POST", path, json=body), 400, "badRequest")
        assert error["message"] == ALREADY_ACTIVATED and "code" not in error["message"].lower()
    assert api.token_state(ADELE_ACTIVATED) == before  # nothing changed, no attempt counted
    # A token not activated yet still activates, once; deactivated, it activates again.
    path = f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/activate"
    assert api.graph("POST", path, json={"verificationCode": totp("TOTP100001").at(api.now())}).status_code == 204
    next_code = totp("TOTP100001").at(api.now() + 30)
    assert_graph_error(
        api.graph("POST", path, json={"verificationCode": next_code}), 400, "badRequest", ALREADY_ACTIVATED
    )
    assert api.graph("POST", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/deactivate").status_code == 204
    assert api.graph("POST", path, json={"verificationCode": next_code}).status_code == 204


# ------------------------------------------------------------------ batch_parallel
def batch(api, requests):
    response = api.graph("POST", "/$batch", json={"requests": requests})
    assert response.status_code == 200, response.text
    return {r["id"]: r["status"] for r in response.json()["responses"]}


def test_batch_latency_parallel_and_sequential(api):
    """20 items with 50 ms of latency each: in parallel (the default) the batch takes the envelope's 50 ms plus its
    slowest item's; one after the other it took 21 x 50 ms."""
    api.faults({"latency": {"ms": 50}})
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{AMY}"} for i in range(20)]
    statuses, parallel = timed(batch, api, requests)
    assert set(statuses.values()) == {200} and len(statuses) == 20
    set_settings(api, batch_parallel=False)
    statuses, sequential = timed(batch, api, requests)
    assert set(statuses.values()) == {200}
    assert sequential >= 21 * 0.05
    assert parallel < 0.5 < sequential


def test_batch_depends_on_chains_add_up(api):
    api.faults(
        {
            "rules": [
                {"name": "slow-items", "match": {"path": "^/beta/users/"}, "action": {"type": "latency", "ms": 100}}
            ]
        }
    )
    chain = [
        {"id": "c1", "method": "GET", "url": f"/users/{AMY}"},
        {"id": "c2", "method": "GET", "url": f"/users/{AMY}", "dependsOn": ["c1"]},
        {
            "id": "c3",
            "method": "POST",
            "url": methods_path(AMY),
            "headers": JSON,
            "body": {"device": {"id": SPARE}},
            "dependsOn": ["C2"],
        },
    ]
    others = [{"id": str(i), "method": "GET", "url": f"/users/{AMY}"} for i in range(10)]
    statuses, elapsed = timed(batch, api, chain + others)
    assert set(statuses.values()) == {200, 201}
    assert 0.3 <= elapsed < 0.3 + 0.5  # the chain's three items; the others overlap it (sequential: 13 x 100 ms)


# ------------------------------------------------------------------ methods_rate
def test_methods_rate(api, totp):
    state = api.faults({"methods_rate": {"requests": 3, "per_seconds": 30}})
    assert state["methods_rate"] == {"requests": 3, "per_seconds": 30.0}
    assert api.graph("GET", methods_path(AMY)).status_code == 200
    assert api.graph("GET", methods_path(MEGAN_UPN)).status_code == 200
    assert api.graph("POST", methods_path(AMY), json={"device": {"id": SPARE}}).status_code == 201  # writes count too
    response = api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP654321}})
    assert_graph_error(response, 429, "TooManyRequests")
    # Back in 10 s, and 10 more: the refused request is charged too (throttled_requests: charged, the default).
    assert response.headers["retry-after"].isdigit() and 10 < int(response.headers["retry-after"]) <= 20
    assert response.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    # A documented limit name: ReadWrite (every request counts), which is not the write quota's information.
    assert response.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{AUTOMATION}/{TENANT_ID}"
    assert api.token_state(TOTP654321)["assigned_to"] is None  # throttled: not processed
    assert api.requests_log(status=429)[-1]["throttled"] is True
    assert api.graph("GET", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}/device").status_code == 429
    # Only paths under a user's authentication methods count; other apps have their own bucket.
    assert api.graph("GET", f"/users/{AMY}").status_code == 200
    assert api.graph("GET", DEVICES).status_code == 200
    assert api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code == 204
    assert api.graph("GET", methods_path(AMY), token=api.token(REPORTING)).status_code == 200


def test_methods_rate_counts_batch_items_and_me(api):
    api.faults({"methods_rate": {"requests": 2, "per_seconds": 60}})
    token = api.token(CLI, user=MEGAN)
    assert api.graph("GET", "/me/authentication/hardwareOathMethods", token=token).status_code == 200
    response = api.graph(
        "POST",
        "/$batch",
        token=token,
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/me/authentication/hardwareOathMethods"},
                {"id": "2", "method": "GET", "url": f"/me/authentication/hardwareOathMethods/{MEGAN_TOKENS[0]}/device"},
                {"id": "3", "method": "GET", "url": "/me"},
            ]
        },
    )
    assert response.status_code == 200  # the envelope is not charged
    items = {r["id"]: r for r in response.json()["responses"]}
    assert [items[i]["status"] for i in "123"] == [200, 429, 200]
    headers = items["2"]["headers"]
    assert int(headers["Retry-After"]) >= 1 and headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{CLI}/{TENANT_ID}"


def test_methods_rate_true_false_delete_and_reset(api):
    assert api.faults({"methods_rate": True})["methods_rate"] == {"requests": 5, "per_seconds": 10.0}
    assert [api.graph("GET", methods_path(AMY)).status_code for _i in range(6)] == [200] * 5 + [429]
    assert api.faults({"methods_rate": False})["methods_rate"] is None
    assert api.graph("GET", methods_path(AMY)).status_code == 200
    api.faults({"methods_rate": {"requests": 1, "per_seconds": 60}})
    assert api.admin("DELETE", "faults").json()["methods_rate"] is None
    api.faults({"methods_rate": {"requests": 1, "per_seconds": 60}})
    api.reset()
    assert api.admin("GET", "faults").json()["methods_rate"] is None
    assert {api.graph("GET", methods_path(AMY)).status_code for _i in range(8)} == {200}


@pytest.mark.parametrize(
    "spec",
    [
        {"methods_rate": {"requests": 0, "per_seconds": 10}},
        {"methods_rate": "fast"},
        {"methods_rate": {"requests": 5, "per_seconds": 0}},
    ],
)
def test_invalid_methods_rate(api, spec):
    before = api.admin("GET", "faults").json()
    response = api.admin("POST", "faults", json=spec)
    assert response.status_code == 400 and "methods_rate" in response.json()["error"]
    assert api.admin("GET", "faults").json() == before
