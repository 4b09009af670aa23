"""The shapes Microsoft's pages document, and the other plausible answers as settings (docs/simulator.md, "Fidelity"):
the answer and the refusal of a bulk creation and its size limit, the wording of 4xx errors, the headers of a 429,
the documented refusals (a policy PATCH without @odata.type, query options on one inventory token, a batch item with
more than one dependency), and the tokens of the old CSV flow (a user's ``legacy_oath_tokens``)."""

from __future__ import annotations

import copy
import re

import pyotp
import pytest

import simlib
from entrasim.tenant import SeedError, Tenant
from simlib import (
    ADELE,
    AMY,
    AUTOMATION,
    CLI,
    DEVICE_KEYS,
    DEVICES,
    GRADY,
    MEGAN,
    POLICY,
    POLICY_TYPE,
    SEED_TOKEN_COUNT,
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
METHOD_TYPE = "#microsoft.graph.hardwareOathAuthenticationMethod"
OPAQUE = "The request could not be processed."
# x-ms-throttle-scope: <Scope>/<Limit>/<ApplicationId>/<TenantId>, with the throttling page's scope and limit names.
SCOPE_RE = re.compile(r"^(Tenant_Application|Tenant|Application)/(Read|Write|ReadWrite)/[0-9a-f-]{36}/[0-9a-f-]{36}$")


def set_settings(api, **values):
    response = api.admin("POST", "settings", json=values)
    assert response.status_code == 200, response.text
    return response.json()


def new_device(serial, **extra):
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "Shapes",
        "timeIntervalInSeconds": 30,
        "secretKey": pyotp.random_base32(32),
        **extra,
    }


def delta(*items):
    return {"@context": "#$delta", "value": list(items)}


def serials_in_state(api) -> set[str]:
    return {t["serial_number"] for t in api.admin_state()["tokens"]}


def without_context(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "@odata.context"}


# ------------------------------------------------------------------ bulk_answer
def test_bulk_answer_wrapped_is_the_documented_default(api):
    """DC api-reference/beta/api/authenticationmethoddevice-update.md: 201, methods wrapping their device."""
    payload = delta(
        {"@contentId": "1", **new_device("SHAPE-W1")},
        {"@contentId": "2", **new_device("SHAPE-W2", assignTo={"id": AMY})},
        {"@contentId": "3", "id": SPARE, "displayName": "Spare renamed"},
    )
    response = api.graph("PATCH", DEVICES, json=payload)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"value"}  # no @context, no @odata.context
    assert [set(item) for item in body["value"]] == [{"@odata.type", "id", "device"}] * 3  # no @contentId
    assert {item["@odata.type"] for item in body["value"]} == {METHOD_TYPE}
    for item in body["value"]:
        assert item["id"] == item["device"]["id"]
        assert set(item["device"]) == DEVICE_KEYS and item["device"]["secretKey"] is None
        assert item["device"] == without_context(api.device(item["id"]))  # exactly what a GET shows
    assert [(i["device"]["serialNumber"], i["device"]["status"]) for i in body["value"]] == [
        ("SHAPE-W1", "available"),
        ("SHAPE-W2", "assigned"),
        ("SPARE-0001", "available"),
    ]
    assert body["value"][1]["device"]["assignedTo"] == {"id": AMY, "displayName": "Amy Masters"}
    assert body["value"][2]["device"]["displayName"] == "Spare renamed"


@pytest.mark.parametrize("context_key", ["@context", "@odata.context"])
def test_the_pages_example_post_is_a_bulk_creation(api, context_key):
    """The page's HTTP section says PATCH, its example POSTs the same delta payload (interval as a string)."""
    payload = {context_key: "#$delta", "value": [new_device("SHAPE-P1", timeIntervalInSeconds="30")]}
    response = api.graph("POST", DEVICES, json=payload)
    assert response.status_code == 201, response.text
    (item,) = response.json()["value"]
    assert item["@odata.type"] == METHOD_TYPE and item["device"]["timeIntervalInSeconds"] == 30
    assert "Location" not in response.headers
    assert "SHAPE-P1" in serials_in_state(api)


def test_a_post_without_delta_stays_a_single_creation(api):
    response = api.graph("POST", DEVICES, json={"value": [new_device("SHAPE-NOT-BULK")]})
    assert_graph_error(response, 400, "BadRequest", "'value' does not exist")
    response = api.graph("POST", DEVICES, json={"@context": "#$other", **new_device("SHAPE-ONE")})
    assert response.status_code == 201 and response.json()["serialNumber"] == "SHAPE-ONE"


def test_bulk_answer_flat(api):
    """The vendor-reported answer: 200, a delta of devices with their @contentId (numbered when absent)."""
    set_settings(api, bulk_answer="flat")
    response = api.graph("PATCH", DEVICES, json=delta({"@contentId": "a", **new_device("SHAPE-F1")}, new_device("F2")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@context"] == "#$delta"
    assert [(v["@contentId"], v["serialNumber"]) for v in body["value"]] == [("a", "SHAPE-F1"), ("2", "F2")]
    assert all(set(v) == DEVICE_KEYS | {"@contentId"} for v in body["value"])
    assert body["value"][0] == {"@contentId": "a", **without_context(api.device(body["value"][0]["id"]))}


def test_bulk_answer_empty(api):
    set_settings(api, bulk_answer="empty")
    response = api.graph("PATCH", DEVICES, json=delta(new_device("SHAPE-E1"), new_device("SHAPE-E2")))
    assert response.status_code == 204 and response.content == b""
    assert {"SHAPE-E1", "SHAPE-E2"} <= serials_in_state(api)
    api.reset()
    assert api.admin("GET", "settings").json()["bulk_answer"] == "wrapped"


def test_bulk_answer_inside_a_batch(api):
    set_settings(api, bulk_answer="empty")
    requests = [{"id": "1", "method": "PATCH", "url": DEVICES, "headers": JSON, "body": delta(new_device("SHAPE-B1"))}]
    response = api.graph("POST", "/$batch", json={"requests": requests})
    (item,) = response.json()["responses"]
    assert item["status"] == 204 and "body" not in item


# ------------------------------------------------------------------ bulk_refusal
BAD_PAYLOAD = delta(
    {"@contentId": "item-ok", **new_device("SHAPE-R1")},
    {"@contentId": "item-dup", **new_device("TOTP123456")},
    {"@contentId": "item-guest", **new_device("SHAPE-R3", assignTo={"id": GRADY})},
)


def test_bulk_refusal_per_item_is_the_default(api):
    error = assert_graph_error(api.graph("PATCH", DEVICES, json=BAD_PAYLOAD), 400, "badRequest")
    assert [(d["target"], d["code"]) for d in error["details"]] == [
        ("item-dup", "conflict"),
        ("item-guest", "badRequest"),
    ]
    assert "SHAPE-R1" not in serials_in_state(api)


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_bulk_refusal_whole_names_no_item(api, method):
    set_settings(api, bulk_refusal="whole")
    error = assert_graph_error(api.graph(method, DEVICES, json=BAD_PAYLOAD), 400, "badRequest", "nothing was changed")
    assert set(error) == {"code", "message", "innerError"}  # no details, no target
    assert not any(name in error["message"] for name in ("item-", "TOTP123456", "SHAPE"))
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT


# ------------------------------------------------------------------ bulk_max_items
def test_bulk_max_items_is_a_setting(api):
    assert api.admin("GET", "settings").json()["bulk_max_items"] == 100
    set_settings(api, bulk_max_items=2)
    three = delta(*(new_device(f"SHAPE-M{i}") for i in range(3)))
    error = assert_graph_error(api.graph("PATCH", DEVICES, json=three), 400, "badRequest", "at most 2")
    assert "details" not in error
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT
    assert api.graph("PATCH", DEVICES, json=delta(*three["value"][:2])).status_code == 201
    set_settings(api, bulk_max_items=1)
    assert_graph_error(api.graph("POST", DEVICES, json=delta(*three["value"][1:])), 400, "badRequest", "at most 1")
    api.reset()
    assert api.admin("GET", "settings").json()["bulk_max_items"] == 100


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bulk_max_items": 0}, "bulk_max_items must be a positive integer, not 0"),
        ({"bulk_max_items": "5"}, 'bulk_max_items must be a positive integer, not "5"'),
        ({"bulk_max_items": True}, "bulk_max_items must be a positive integer, not true"),
        ({"bulk_answer": "created"}, 'bulk_answer must be wrapped, flat or empty, not "created"'),
        ({"bulk_refusal": "items"}, 'bulk_refusal must be per_item or whole, not "items"'),
        ({"error_wording": None}, "error_wording must be descriptive or opaque, not null"),
        ({"write_throttle_limit": "readwrite"}, 'write_throttle_limit must be ReadWrite or Write, not "readwrite"'),
        ({"throttle_information": False}, "throttle_information must be sent or omitted, not false"),
    ],
)
def test_new_setting_errors_change_nothing(api, data, message):
    before = api.admin("GET", "settings").json()
    response = api.admin("POST", "settings", json={"bulk_answer": "flat", **data})
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert api.admin("GET", "settings").json() == before


def in_process_tenant(seed: dict) -> Tenant:
    return Tenant(copy.deepcopy(seed), str(simlib.SIM_DIR / "seeds"))


def test_seed_settings_are_validated_and_are_the_start_up_values(suite_material):
    seed = suite_material["seed"]
    tenant = in_process_tenant({**seed, "settings": {"bulk_max_items": 7, "error_wording": "opaque"}})
    assert (tenant.config.bulk_max_items, tenant.config.error_wording) == (7, "opaque")
    for bad, message in [
        ({"bulk_max_items": 0}, "settings.bulk_max_items must be a positive integer, not 0"),
        ({"bulk_answer": "ok"}, 'settings.bulk_answer must be wrapped, flat or empty, not "ok"'),
    ]:
        with pytest.raises(SeedError, match=re.escape(message)):
            in_process_tenant({**seed, "settings": bad})


# ------------------------------------------------------------------ error_wording
def test_opaque_errors_keep_status_codes_and_targets(api):
    set_settings(api, error_wording="opaque")
    error = assert_graph_error(api.graph("GET", f"{DEVICES}/{UNKNOWN_ID}"), 404, "itemNotFound")
    assert error["message"] == OPAQUE
    assert assert_graph_error(api.graph("GET", "/users/nobody@contoso.com"), 404, "Request_ResourceNotFound")[
        "message"
    ] == (OPAQUE)
    error = assert_graph_error(api.graph("PATCH", DEVICES, json=BAD_PAYLOAD), 400, "badRequest")
    assert error["message"] == OPAQUE
    assert error["details"] == [
        {"code": "conflict", "message": OPAQUE, "target": "item-dup"},
        {"code": "badRequest", "message": OPAQUE, "target": "item-guest"},
    ]
    unauthenticated = api.graph("GET", DEVICES, token="")
    assert assert_graph_error(unauthenticated, 401, "InvalidAuthenticationToken")["message"] == OPAQUE
    assert "WWW-Authenticate" in unauthenticated.headers
    set_settings(api, error_wording="descriptive")
    assert assert_graph_error(api.graph("GET", f"{DEVICES}/{UNKNOWN_ID}"), 404, "itemNotFound")["message"] != OPAQUE


def test_opaque_errors_inside_a_batch(api):
    set_settings(api, error_wording="opaque")
    requests = [
        {"id": "1", "method": "GET", "url": f"{DEVICES}/{UNKNOWN_ID}"},
        {"id": "2", "method": "GET", "url": f"/users/{AMY}", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"/users/{AMY}"},
    ]
    items = {r["id"]: r for r in api.graph("POST", "/$batch", json={"requests": requests}).json()["responses"]}
    assert [(items[i]["status"], items[i]["body"].get("error", {}).get("code")) for i in "123"] == [
        (404, "itemNotFound"),
        (424, "FailedDependency"),
        (200, None),
    ]
    assert {items[i]["body"]["error"]["message"] for i in "12"} == {OPAQUE}


def test_opaque_wording_spares_throttling_codes_and_5xx(api):
    set_settings(api, error_wording="opaque")
    api.faults({"write_quota": {"requests": 1, "per_seconds": 60}})
    assert api.graph("PATCH", f"{DEVICES}/{SPARE}", json={"displayName": "x"}).status_code == 204
    throttled = api.graph("PATCH", f"{DEVICES}/{SPARE}", json={"displayName": "y"})
    assert assert_graph_error(throttled, 429, "TooManyRequests")["message"] == OPAQUE
    assert throttled.headers["Retry-After"].isdigit()
    outage = {"match": {"path": "users"}, "action": {"type": "status", "status": 503}}
    api.faults({"write_quota": False, "rules": [outage]})
    failed = assert_graph_error(api.graph("GET", f"/users/{AMY}"), 503, "serviceNotAvailable")
    assert failed["message"] != OPAQUE  # only 4xx answers lose their words


# ------------------------------------------------------------------ throttling headers
def throttled_write(api):
    api.faults({"write_quota": {"requests": 1, "per_seconds": 60}})
    assert api.graph("PATCH", f"{DEVICES}/{SPARE}", json={"displayName": "x"}).status_code == 204
    response = api.graph("PATCH", f"{DEVICES}/{SPARE}", json={"displayName": "y"})
    assert response.status_code == 429
    return response


def throttled_read(api):
    api.faults({"read_rate": {"requests": 1, "per_seconds": 60}})
    assert api.graph("GET", DEVICES).status_code == 200
    response = api.graph("GET", DEVICES)
    assert response.status_code == 429
    return response


def throttled_methods(api):
    api.faults({"methods_rate": {"requests": 1, "per_seconds": 60}})
    assert api.graph("GET", methods_path(AMY)).status_code == 200
    response = api.graph("GET", methods_path(MEGAN))
    assert response.status_code == 429
    return response


@pytest.mark.parametrize(
    "throttle, limit, information",
    [
        (throttled_write, "ReadWrite", "WriteLimitExceeded"),
        (throttled_read, "Read", "ResourceUnitLimitExceeded"),
        # Every request counts: ReadWrite by the page's definition, but not the write quota (see the information).
        (throttled_methods, "ReadWrite", "ResourceUnitLimitExceeded"),
    ],
)
def test_every_quota_429_carries_documented_headers(api, throttle, limit, information):
    response = throttle(api)
    scope = response.headers["x-ms-throttle-scope"]
    assert SCOPE_RE.match(scope) and scope == f"Tenant_Application/{limit}/{AUTOMATION}/{TENANT_ID}"
    assert response.headers["x-ms-throttle-information"] == information


def test_write_throttle_limit_write(api):
    set_settings(api, write_throttle_limit="Write")
    response = throttled_write(api)
    assert response.headers["x-ms-throttle-scope"] == f"Tenant_Application/Write/{AUTOMATION}/{TENANT_ID}"
    assert response.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert throttled_methods(api).headers["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")


@pytest.mark.parametrize("throttle", [throttled_write, throttled_read, throttled_methods])
def test_throttle_information_omitted(api, throttle):
    set_settings(api, throttle_information="omitted")
    response = throttle(api)
    assert "x-ms-throttle-information" not in response.headers
    assert SCOPE_RE.match(response.headers["x-ms-throttle-scope"])
    assert response.headers["Retry-After"].isdigit()


def test_throttle_information_omitted_in_batch_items(api):
    set_settings(api, throttle_information="omitted")
    api.faults({"methods_rate": {"requests": 1, "per_seconds": 60}})
    token = api.token(CLI, user=MEGAN)
    requests = [
        {"id": "1", "method": "GET", "url": "/me/authentication/hardwareOathMethods"},
        {"id": "2", "method": "GET", "url": "/me/authentication/hardwareOathMethods"},
    ]
    response = api.graph("POST", "/$batch", token=token, json={"requests": requests})
    items = {r["id"]: r for r in response.json()["responses"]}
    assert [items[i]["status"] for i in "12"] == [200, 429]
    assert items["2"]["headers"]["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{CLI}/{TENANT_ID}"
    assert "x-ms-throttle-information" not in items["2"]["headers"]


# ------------------------------------------------------------------ documented refusals
@pytest.mark.parametrize("body", [{"state": "disabled"}, {"excludeTargets": []}, {}])
def test_policy_patch_requires_odata_type(api, body):
    """DC api-reference/beta/api/hardwareoathauthenticationmethodconfiguration-update.md requires @odata.type."""
    before = api.graph("GET", POLICY).json()
    assert_graph_error(api.graph("PATCH", POLICY, json=body), 400, "BadRequest", "'@odata.type'")
    assert api.graph("GET", POLICY).json() == before
    assert api.graph("PATCH", POLICY, json=policy_body(**body)).status_code == 204
    assert policy_body()["@odata.type"] == POLICY_TYPE


@pytest.mark.parametrize("option", ["$select", "$expand", "$filter", "$count", "$anything"])
def test_get_one_token_refuses_query_options(api, option):
    response = api.graph("GET", f"{DEVICES}/{SPARE}", params={option: "id"})
    assert_graph_error(response, 400, "BadRequest", option)
    # The method's /device navigation still takes $select (reference §2.2.9).
    device = api.graph("GET", f"{methods_path(ADELE)}/{simlib.ADELE_ACTIVATED}/device", params={"$select": "id"})
    assert device.status_code == 200 and set(without_context(device.json())) == {"id"}


def test_batch_item_with_two_dependencies_is_refused(api):
    """Graph's known issue: a request depends on one other request at most. The item is refused, the batch runs."""
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{AMY}"},
        {"id": "2", "method": "GET", "url": f"/users/{MEGAN}", "dependsOn": ["1"]},
        {
            "id": "3",
            "method": "POST",
            "url": DEVICES,
            "headers": JSON,
            "body": new_device("SHAPE-DEP"),
            "dependsOn": ["1", "2"],
        },
        {"id": "4", "method": "GET", "url": f"/users/{AMY}", "dependsOn": ["3"]},
    ]
    response = api.graph("POST", "/$batch", json={"requests": requests})
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    assert [items[i]["status"] for i in "1234"] == [200, 200, 400, 424]
    error = items["3"]["body"]["error"]
    assert error["code"] == "BadRequest" and "one other request" in error["message"]
    assert "SHAPE-DEP" not in serials_in_state(api)
    log = api.requests_log(kind="graph")
    assert [e["error_code"] for e in log if e.get("batch_item_id") == "3"] == ["BadRequest"]


# ------------------------------------------------------------------ legacy (CSV) tokens
LOU, LOU_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000301", "lou.legacy@contoso.com"
LEGACY_DUP = "7e57c0de-0000-4000-8000-000000000001"  # a legacy token sharing an inventory token's serial number
LOU_INVENTORY_DUP = "7e57c0de-0000-4000-8000-000000000002"  # that inventory token, also Lou's


def legacy_seed(seed: dict) -> dict:
    """The suite seed plus Lou: two legacy tokens (one given an id, one whose id derives from the seed), the inventory
    token with the first one's serial number, and two other OATH methods: five in all."""
    seed = copy.deepcopy(seed)
    seed["users"].append(
        {
            "id": LOU,
            "user_principal_name": LOU_UPN,
            "display_name": "Lou Legacy",
            "other_oath_methods": 2,
            "legacy_oath_tokens": [
                {"id": LEGACY_DUP, "serial_number": "DUP-0001", "manufacturer": "Contoso", "model": "CSV"},
                {"serial_number": "LEG-0002", "manufacturer": "Contoso", "model": "CSV", "time_interval": 60},
            ],
        }
    )
    seed["tokens"].append(
        {
            "id": LOU_INVENTORY_DUP,
            "serial_number": "DUP-0001",
            "secret_key": pyotp.random_base32(32),
            "manufacturer": "Contoso",
            "model": "Graph",
            "assigned_to": LOU_UPN,
            "status": "activated",
        }
    )
    return seed


@pytest.fixture(scope="module")
def legacy_sim(suite_material, tmp_path_factory):
    with simlib.seeded_api(legacy_seed(suite_material["seed"]), tmp_path_factory.mktemp("legacy")) as api:
        yield api


@pytest.fixture
def legacy(legacy_sim):
    legacy_sim.reset()
    return legacy_sim


def lou_methods(api, path=None, **kwargs) -> list[dict]:
    response = api.graph("GET", path or methods_path(LOU), **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["value"]


def legacy_ids(api) -> list[str]:
    state = api.admin_state()
    assert not {t["id"] for t in state["legacy_tokens"]} & {t["id"] for t in state["tokens"]}
    return [t["id"] for t in state["legacy_tokens"]]


def test_legacy_tokens_are_the_users_methods(legacy):
    methods = lou_methods(legacy)
    assert len(methods) == 3
    assert [(m["device"]["serialNumber"], m["device"]["model"]) for m in methods] == [
        ("DUP-0001", "CSV"),
        ("LEG-0002", "CSV"),
        ("DUP-0001", "Graph"),
    ]
    assert all(m["id"] == m["device"]["id"] and m["@odata.type"] == METHOD_TYPE for m in methods)
    assert {m["device"]["status"] for m in methods} == {"activated"}
    assert {m["device"]["assignedTo"]["id"] for m in methods} == {LOU}
    assert methods[0]["id"] == LEGACY_DUP and len({m["id"] for m in methods}) == 3
    assert methods[1]["device"]["timeIntervalInSeconds"] == 60
    one = legacy.graph("GET", f"{methods_path(LOU_UPN)}/{LEGACY_DUP}")
    assert one.status_code == 200 and without_context(one.json()) == methods[0]
    # /me shows them to Lou too.
    token = legacy.token(CLI, user=LOU)
    assert lou_methods(legacy, "/me/authentication/hardwareOathMethods", token=token) == methods
    # A reset keeps their ids, the derived one included.
    ids = legacy_ids(legacy)
    legacy.reset()
    assert legacy_ids(legacy) == ids == [LEGACY_DUP, methods[1]["id"]]


def test_legacy_tokens_are_not_in_the_inventory(legacy):
    listed = legacy.graph("GET", DEVICES, params={"$top": "999"}).json()["value"]
    assert not set(legacy_ids(legacy)) & {d["id"] for d in listed}
    by_serial = legacy.graph("GET", DEVICES, params={"$filter": "serialNumber eq 'DUP-0001'"}).json()["value"]
    assert [d["id"] for d in by_serial] == [LOU_INVENTORY_DUP]  # "only one token is returned"
    by_holder = legacy.graph("GET", DEVICES, params={"$filter": f"assignedTo/id eq '{LOU}'"}).json()["value"]
    assert [d["id"] for d in by_holder] == [LOU_INVENTORY_DUP]
    assert legacy.graph("GET", DEVICES, params={"$filter": "serialNumber eq 'LEG-0002'"}).json()["value"] == []
    # A legacy serial number is not taken in the inventory.
    assert legacy.graph("POST", DEVICES, json=new_device("LEG-0002")).status_code == 201
    assert legacy.admin("GET", "stats", params={"check_indexes": "true"}).json()["indexes"]["consistent"] is True


def test_legacy_tokens_count_towards_five(legacy):
    error = assert_graph_error(
        legacy.graph("POST", methods_path(LOU), json={"device": {"id": TOTP123456}}), 400, "badRequest"
    )
    assert "maximum of 5 OATH methods" in error["message"]
    assert legacy.graph("DELETE", f"{methods_path(LOU)}/{LEGACY_DUP}").status_code == 204
    assert legacy.graph("POST", methods_path(LOU), json={"device": {"id": TOTP123456}}).status_code == 201


def test_all_methods_count_the_five_legacy_tokens_and_authenticator_apps_included(legacy):
    response = legacy.graph("GET", f"/users/{LOU_UPN}/authentication/methods")
    assert response.status_code == 200, response.text
    methods = response.json()["value"]
    kinds = [m["@odata.type"] for m in methods]
    assert kinds == [
        "#microsoft.graph.passwordAuthenticationMethod",
        *[METHOD_TYPE] * 3,
        *["#microsoft.graph.softwareOathAuthenticationMethod"] * 2,
    ]
    assert [m["id"] for m in methods[1:4]] == [m["id"] for m in lou_methods(legacy)]
    assert all("device" not in m for m in methods)
    token = legacy.token(CLI, user=LOU)
    assert legacy.graph("GET", "/me/authentication/methods", token=token).json()["value"] == methods
    assert legacy.graph("DELETE", f"{methods_path(LOU)}/{LEGACY_DUP}").status_code == 204
    again = legacy.graph("GET", f"/users/{LOU}/authentication/methods").json()["value"]
    assert len(again) == len(methods) - 1
    assert legacy.graph("POST", f"/users/{LOU}/authentication/methods", json={}).status_code == 405


def test_a_fault_429_of_a_quota_carries_its_headers(api):
    rule = {"match": {"path": "^/beta/users$", "method": "GET"}, "count": 1}
    api.faults(
        {"rules": [{**rule, "action": {"type": "status", "status": 429, "retry_after": 0, "quota": "read_rate"}}]}
    )
    response = api.graph("GET", "/users")
    assert response.status_code == 429 and response.headers["Retry-After"] == "0"
    assert response.headers["x-ms-throttle-scope"] == f"Tenant_Application/Read/{AUTOMATION}/{TENANT_ID}"
    assert response.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    api.faults({"rules": [{**rule, "action": {"type": "status", "status": 429}}]})
    assert "x-ms-throttle-scope" not in api.graph("GET", "/users").headers  # a fault without a quota: none
    bad = api.admin(
        "POST", "faults", json={"rules": [{**rule, "action": {"type": "status", "status": 503, "quota": "read_rate"}}]}
    )
    assert bad.status_code == 400 and "quota needs status 429" in bad.text


def test_troubleshoot_duplicate_tokens(legacy):
    """ED how-to-mfa-manage-oath-tokens.md, "Troubleshoot duplicate tokens": unassign the legacy one, then delete it."""
    assert_graph_error(legacy.graph("DELETE", f"{DEVICES}/{LEGACY_DUP}"), 400, "badRequest", "unassign")
    assert legacy.graph("DELETE", f"{methods_path(LOU_UPN)}/{LEGACY_DUP}").status_code == 204
    assert [m["id"] for m in lou_methods(legacy)] == [legacy_ids(legacy)[1], LOU_INVENTORY_DUP]
    assert legacy.graph("DELETE", f"{DEVICES}/{LEGACY_DUP}").status_code == 204
    assert LEGACY_DUP not in {t["id"] for t in legacy.admin_state()["tokens"]}
    # The inventory token with the same serial number is untouched, and still found by it.
    found = legacy.graph("GET", DEVICES, params={"$filter": "serialNumber eq 'dup-0001'"}).json()["value"]
    assert [(d["id"], d["status"]) for d in found] == [(LOU_INVENTORY_DUP, "activated")]
    assert legacy.admin("GET", "stats", params={"check_indexes": "true"}).json()["indexes"]["consistent"] is True


def legacy_entry(**extra):
    return {"serial_number": "LEG-X", "manufacturer": "Contoso", "model": "CSV", **extra}


@pytest.mark.parametrize(
    "user_id, entries, message",
    [
        (GRADY, [legacy_entry()], "hardware tokens can't be assigned to guest users"),
        (AMY, [legacy_entry(), legacy_entry(serial_number="leg-x")], "duplicate legacy serial number leg-x"),
        (AMY, [legacy_entry(status="available")], "status must be assigned, activated or failedActivation"),
        (AMY, [legacy_entry(model=None)], "'model' is required"),
        (AMY, [legacy_entry(secret_key="not base32!")], "Invalid base32"),
        (AMY, ["LEG-X"], "expected a mapping"),
        (AMY, {"serial_number": "LEG-X"}, "legacy_oath_tokens: expected a list"),
        # Legacy tokens are loaded first (they were uploaded first): the inventory entry is the one refused.
        (MEGAN, [legacy_entry()], "tokens[11]: megan.bowen@contoso.com already has 5 OATH methods"),
        (AMY, [legacy_entry(id=SPARE)], f"tokens[12]: duplicate id {SPARE}"),
    ],
)
def test_invalid_legacy_tokens(suite_material, user_id, entries, message):
    seed = copy.deepcopy(suite_material["seed"])
    index = next(i for i, u in enumerate(seed["users"]) if u["id"] == user_id)
    seed["users"][index]["legacy_oath_tokens"] = entries
    with pytest.raises(SeedError, match=re.escape(message)) as failure:
        in_process_tenant(seed)
    where = message if message.startswith("tokens[") else f"users[{index}].legacy_oath_tokens"
    assert str(failure.value).startswith(where)


def test_legacy_tokens_in_process(suite_material):
    seed = copy.deepcopy(suite_material["seed"])
    amy = next(u for u in seed["users"] if u["id"] == AMY)
    amy["legacy_oath_tokens"] = [legacy_entry(serial_number="TOTP654321", status="assigned")]
    tenant = in_process_tenant(seed)
    (legacy_token,) = [t for t in tenant.tokens.values() if t.legacy]
    assert (legacy_token.status, legacy_token.assigned_to) == ("assigned", AMY)
    found = tenant.find_token_by_serial("totp654321")
    assert found is not None and found.id == TOTP654321  # the inventory's, never the legacy one
    assert tenant.check_indexes() == []
