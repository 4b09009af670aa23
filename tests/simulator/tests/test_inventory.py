"""The hardware OATH inventory: /directory/authenticationMethodDevices/hardwareOathDevices (get, create, update,
delete, bulk delta upload). Listing, $filter, $select and paging are in test_odata_paging.py."""

from __future__ import annotations

import uuid

import pyotp
import pytest

from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    AMY,
    AUTOMATION,
    DEVICE_CONTEXT,
    DEVICE_KEYS,
    DEVICES,
    DIEGO_ASSIGNED,
    GALT,
    GRADY,
    MEGAN,
    MEGAN_TOKENS,
    MEGAN_UPN,
    SEED_TOKEN_COUNT,
    SPARE,
    TOTP123456,
    UNKNOWN_ID,
    assert_graph_error,
    methods_path,
)


def new_body(serial=None, **extra):
    body = {
        "serialNumber": serial or "INV-" + uuid.uuid4().hex[:8].upper(),
        "manufacturer": "Contoso",
        "model": "Test Key",
        "secretKey": pyotp.random_base32(32),
        "timeIntervalInSeconds": 30,
    }
    body.update(extra)
    return body


def token_count(api):
    return len(api.admin_state()["tokens"])


# ------------------------------------------------------------------ get
def test_get_device(api, sim):
    response = api.graph("GET", f"{DEVICES}/{TOTP123456}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "@odata.context": f"{sim['graph_url']}/beta/{DEVICE_CONTEXT}",
        "id": TOTP123456,
        "displayName": None,
        "serialNumber": "TOTP123456",
        "manufacturer": "Contoso",
        "model": "Hardware Key",
        "secretKey": None,
        "timeIntervalInSeconds": 30,
        "status": "available",
        "lastUsedDateTime": None,
        "hashFunction": "hmacsha1",
        "assignedTo": None,
    }


def test_get_assigned_device(api):
    body = api.device(ADELE_ACTIVATED)
    assert body["status"] == "activated"
    assert body["assignedTo"] == {"id": ADELE, "displayName": "Adele Vance"}
    assert body["displayName"] == "Adele's token"
    assert body["secretKey"] is None


def test_get_device_id_is_case_insensitive(api):
    assert api.graph("GET", f"{DEVICES}/{TOTP123456.upper()}").json()["id"] == TOTP123456


@pytest.mark.parametrize("option", ["$select", "$filter", "$top", "$expand", "$orderby"])
def test_get_device_takes_no_query_option(api, option):
    """The get page documents no query option (reference §2.1.2); a method's /device takes $select."""
    response = api.graph("GET", f"{DEVICES}/{GALT}", params={option: "serialNumber"})
    assert_graph_error(
        response, 400, "BadRequest", f"Query option '{option}' is not supported when reading a hardware OATH token."
    )


@pytest.mark.parametrize("device_id", [UNKNOWN_ID, "not-a-guid"])
def test_get_unknown_device(api, device_id):
    assert_graph_error(api.graph("GET", f"{DEVICES}/{device_id}"), 404, "itemNotFound")


def test_secret_key_never_returned(api):
    created = api.create_device()
    for body in (created, api.device(created["id"]), *api.graph("GET", DEVICES).json()["value"]):
        assert body["secretKey"] is None
    listing = api.graph("GET", DEVICES).text
    assert (
        created["_secret"] not in listing
        and created["_secret"] not in api.graph("GET", f"{DEVICES}/{created['id']}").text
    )


# ------------------------------------------------------------------ create
def test_create_device(api, sim):
    body = new_body("CREATE-0001", displayName="Desk token", hashFunction="hmacsha256", timeIntervalInSeconds=60)
    response = api.graph("POST", DEVICES, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    uuid.UUID(created["id"])
    assert response.headers["location"] == f"{sim['graph_url']}/beta{DEVICES}/{created['id']}"
    assert created["@odata.context"] == f"{sim['graph_url']}/beta/{DEVICE_CONTEXT}"
    assert set(created) == DEVICE_KEYS | {"@odata.context"}
    assert created["status"] == "available" and created["assignedTo"] is None and created["secretKey"] is None
    assert (
        created["serialNumber"],
        created["displayName"],
        created["hashFunction"],
        created["timeIntervalInSeconds"],
    ) == ("CREATE-0001", "Desk token", "hmacsha256", 60)
    assert created["lastUsedDateTime"] is None
    fetched = api.graph("GET", response.headers["location"])
    assert fetched.status_code == 200 and fetched.json() == created
    state = api.token_state(created["id"])
    assert state["status"] == "available" and state["assigned_to"] is None
    assert token_count(api) == SEED_TOKEN_COUNT + 1


def test_create_defaults_hash_function(api):
    body = new_body()
    created = api.graph("POST", DEVICES, json=body).json()
    assert created["hashFunction"] == "hmacsha1" and created["displayName"] is None


def test_create_with_assign_to(api):
    response = api.graph("POST", DEVICES, json=new_body(assignTo={"id": AMY}))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "assigned"
    assert created["assignedTo"] == {"id": AMY, "displayName": "Amy Masters"}
    methods = api.graph("GET", methods_path(AMY)).json()["value"]
    assert [m["id"] for m in methods] == [created["id"]]
    assert api.token_state(created["id"])["assigned_to"]["id"] == AMY


def test_create_sdk_style_body(api):
    """What msgraph-beta-sdk sends: @odata.type on the entity and on assignTo."""
    body = {
        "@odata.type": "#microsoft.graph.hardwareOathTokenAuthenticationMethodDevice",
        "displayName": "Token 1",
        "assignTo": {"id": AMY, "@odata.type": "#microsoft.graph.user"},
        "hashFunction": "hmacsha1",
        "manufacturer": "Contoso",
        "model": "M",
        "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        "serialNumber": "S2",
        "timeIntervalInSeconds": 30,
    }
    response = api.graph("POST", DEVICES, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "assigned"


def test_create_accepts_numeric_string_interval_and_null_read_only(api):
    body = new_body(timeIntervalInSeconds="60", status=None, lastUsedDateTime=None, assignedTo=None)
    response = api.graph("POST", DEVICES, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["timeIntervalInSeconds"] == 60


def test_create_lower_case_secret_is_normalised(api, totp):
    body = new_body(secretKey=pyotp.random_base32(32).lower())
    created = api.graph("POST", DEVICES, json=body).json()
    code = pyotp.TOTP(body["secretKey"].upper()).at(api.now())
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivate",
        json={"device": {"id": created["id"]}, "verificationCode": code},
    )
    assert response.status_code == 204, response.text


@pytest.mark.parametrize("serial", ["TOTP123456", "totp123456"])
def test_create_duplicate_serial(api, serial):
    response = api.graph("POST", DEVICES, json=new_body(serial))
    assert_graph_error(response, 409, "conflict", serial)
    assert token_count(api) == SEED_TOKEN_COUNT


@pytest.mark.parametrize(
    "secret,fragment",
    [
        ("C2dE3fH4iJ5kL6mN7oP1qR2sT3uV4w", "illegal character '1'"),  # Microsoft's own (invalid) doc example
        ("2234567ABCDEF2234567ABCDEF8A", "illegal character '8'"),
        ("JBSWY3DPEHPK3PXPJBSWY3DPEH======", "illegal character '='"),
        ("JBSWY3DP EHPK3PXPJBSWY3DPEHPK", "illegal character ' '"),
        ("A" * 129, "at most 128"),
        ("A" * 25, "at least 26"),
        ("", "required"),
        (12345678901234567890123456, "must be a string"),
    ],
)
def test_create_invalid_secret(api, secret, fragment):
    response = api.graph("POST", DEVICES, json=new_body(secretKey=secret))
    assert_graph_error(response, 400, "badRequest", fragment)
    assert token_count(api) == SEED_TOKEN_COUNT


@pytest.mark.parametrize("length", [26, 128])
def test_create_secret_length_bounds(api, length):
    assert api.graph("POST", DEVICES, json=new_body(secretKey="A" * length)).status_code == 201


@pytest.mark.parametrize("interval", [45, 0, 15, 120, "abc", True, 30.5])
def test_create_invalid_interval(api, interval):
    response = api.graph("POST", DEVICES, json=new_body(timeIntervalInSeconds=interval))
    assert_graph_error(response, 400, "badRequest", "timeIntervalInSeconds")


@pytest.mark.parametrize("hash_function", ["MD5", "hmacsha512", "sha1", 1])
def test_create_invalid_hash_function(api, hash_function):
    response = api.graph("POST", DEVICES, json=new_body(hashFunction=hash_function))
    assert_graph_error(response, 400, "badRequest", "hashFunction")


@pytest.mark.parametrize("missing", ["serialNumber", "manufacturer", "model", "secretKey", "timeIntervalInSeconds"])
def test_create_missing_required(api, missing):
    body = new_body()
    del body[missing]
    assert_graph_error(api.graph("POST", DEVICES, json=body), 400, "badRequest", missing)


def test_create_unknown_property(api):
    response = api.graph("POST", DEVICES, json=new_body(colour="red"))
    assert_graph_error(response, 400, "BadRequest", "'colour' does not exist")


@pytest.mark.parametrize(
    "key,value",
    [
        ("status", "assigned"),
        ("id", UNKNOWN_ID),
        ("assignedTo", {"id": AMY}),
        ("lastUsedDateTime", "2025-01-01T00:00:00Z"),
    ],
)
def test_create_read_only_property(api, key, value):
    response = api.graph("POST", DEVICES, json=new_body(**{key: value}))
    assert_graph_error(response, 400, "BadRequest", "read-only")
    assert token_count(api) == SEED_TOKEN_COUNT


@pytest.mark.parametrize(
    "assign_to,fragment",
    [
        ({"id": GRADY}, "guest"),
        ({"id": UNKNOWN_ID}, "was not found"),
        ({"id": "amy.masters@contoso.com"}, "GUID"),
        ({"displayName": "Amy"}, "'assignTo'"),
        ({"id": AMY, "mail": "amy@contoso.com"}, "'mail' does not exist"),
    ],
)
def test_create_invalid_assign_to(api, assign_to, fragment):
    response = api.graph("POST", DEVICES, json=new_body(assignTo=assign_to))
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    assert token_count(api) == SEED_TOKEN_COUNT


def test_create_assign_to_user_at_limit(api):
    response = api.graph("POST", DEVICES, json=new_body(assignTo={"id": MEGAN}))
    assert_graph_error(response, 400, "badRequest", "maximum of 5")
    assert token_count(api) == SEED_TOKEN_COUNT


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        (
            {"content": b"serialNumber=X", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "UnsupportedMediaType",
        ),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "BadRequest"),
        ({"content": b"", "headers": {"Content-Type": "application/json"}}, 400, "BadRequest"),
        ({"json": [1, 2]}, 400, "BadRequest"),
    ],
)
def test_create_malformed_payload(api, kwargs, status, code):
    assert_graph_error(api.graph("POST", DEVICES, **kwargs), status, code)


# ------------------------------------------------------------------ update
def test_update_device(api):
    response = api.graph(
        "PATCH",
        f"{DEVICES}/{TOTP123456}",
        json={
            "displayName": "Renamed",
            "manufacturer": "Yubico",
            "model": "OTP-2",
            "timeIntervalInSeconds": 60,
            "hashFunction": "hmacsha256",
            "@odata.type": "#microsoft.graph.hardwareOathTokenAuthenticationMethodDevice",
        },
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    body = api.device(TOTP123456)
    assert (
        body["displayName"],
        body["manufacturer"],
        body["model"],
        body["timeIntervalInSeconds"],
        body["hashFunction"],
        body["serialNumber"],
        body["status"],
    ) == ("Renamed", "Yubico", "OTP-2", 60, "hmacsha256", "TOTP123456", "available")


def test_update_display_name_to_null(api):
    api.graph("PATCH", f"{DEVICES}/{TOTP123456}", json={"displayName": "x"})
    assert api.graph("PATCH", f"{DEVICES}/{TOTP123456}", json={"displayName": None}).status_code == 204
    assert api.device(TOTP123456)["displayName"] is None


@pytest.mark.parametrize("token_id", [DIEGO_ASSIGNED, ADELE_ACTIVATED])
def test_update_refused_while_assigned(api, token_id):
    before = api.device(token_id)
    response = api.graph("PATCH", f"{DEVICES}/{token_id}", json={"displayName": "nope"})
    assert_graph_error(response, 400, "badRequest", "unassign it before updating")
    assert api.device(token_id) == before


@pytest.mark.parametrize(
    "body,code,fragment",
    [
        ({"secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}, "badRequest", "secretKey"),
        ({"serialNumber": "NEW-SERIAL"}, "badRequest", "serialNumber"),
        ({"colour": "red"}, "BadRequest", "'colour' does not exist"),
        ({"status": "activated"}, "BadRequest", "read-only"),
        ({"assignTo": {"id": AMY}}, "BadRequest", "'assignTo' does not exist"),
        ({"timeIntervalInSeconds": 45}, "badRequest", "timeIntervalInSeconds"),
        ({"hashFunction": "MD5"}, "badRequest", "hashFunction"),
        ({"manufacturer": ""}, "badRequest", "must not be empty"),
    ],
)
def test_update_refused_properties(api, body, code, fragment):
    before = api.device(TOTP123456)
    assert_graph_error(api.graph("PATCH", f"{DEVICES}/{TOTP123456}", json=body), 400, code, fragment)
    assert api.device(TOTP123456) == before


def test_update_unknown_device(api):
    assert_graph_error(api.graph("PATCH", f"{DEVICES}/{uuid.uuid4()}", json={"displayName": "x"}), 404, "itemNotFound")


# ------------------------------------------------------------------ delete
def test_delete_device(api):
    response = api.graph("DELETE", f"{DEVICES}/{SPARE}")
    assert response.status_code == 204 and response.content == b""
    assert_graph_error(api.graph("GET", f"{DEVICES}/{SPARE}"), 404, "itemNotFound")
    assert SPARE not in [t["id"] for t in api.admin_state()["tokens"]]
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{SPARE}"), 404, "itemNotFound")


@pytest.mark.parametrize("token_id", [DIEGO_ASSIGNED, ADELE_ACTIVATED])
def test_delete_refused_while_assigned(api, token_id):
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{token_id}"), 400, "badRequest", "unassign it before deleting")
    assert api.device(token_id)["status"] in ("assigned", "activated")


def test_delete_after_unassign(api):
    assert api.graph("DELETE", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}").status_code == 204
    assert api.graph("DELETE", f"{DEVICES}/{ADELE_ACTIVATED}").status_code == 204
    assert token_count(api) == SEED_TOKEN_COUNT - 1


@pytest.mark.parametrize(
    "method,path",
    [("PUT", f"{DEVICES}/{SPARE}"), ("POST", f"{DEVICES}/{SPARE}"), ("DELETE", DEVICES), ("PUT", DEVICES)],
)
def test_method_not_allowed(api, method, path):
    assert_graph_error(api.graph(method, path, json={}), 405, "Request_BadRequest")


def test_unknown_sub_path(api):
    assert_graph_error(api.graph("GET", f"{DEVICES}/{SPARE}/whatever"), 400, "BadRequest", "whatever")


# ------------------------------------------------------------------ bulk delta upload
def test_bulk_create(api):
    payload = {
        "@context": "#$delta",
        "value": [
            {"@contentId": "1", **new_body("BULK-1")},
            {
                "@contentId": "2",
                **new_body("BULK-2", hashFunction="hmacsha256", timeIntervalInSeconds=60),
                "assignTo": {"id": AMY},
            },
        ],
    }
    response = api.graph("PATCH", DEVICES, json=payload)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"value"}  # the documented answer (bulk_answer: wrapped; the others: test_documented_shapes.py)
    devices = [v["device"] for v in body["value"]]
    assert [(v["id"], d["serialNumber"], d["status"]) for v, d in zip(body["value"], devices)] == [
        (devices[0]["id"], "BULK-1", "available"),
        (devices[1]["id"], "BULK-2", "assigned"),
    ]
    assert all(d["secretKey"] is None and set(d) == DEVICE_KEYS for d in devices)
    assert devices[1]["assignedTo"]["id"] == AMY
    serials = {t["serial_number"]: t for t in api.admin_state()["tokens"]}
    assert serials["BULK-1"]["status"] == "available" and serials["BULK-2"]["assigned_to"]["id"] == AMY


def test_bulk_documented_example_shape(api):
    """S6's example quotes timeIntervalInSeconds as a string, and items may come without @contentId."""
    payload = {"@context": "#$delta", "value": [new_body("BULK-A", timeIntervalInSeconds="30"), new_body("BULK-B")]}
    response = api.graph("PATCH", DEVICES, json=payload)
    assert response.status_code == 201, response.text
    assert [v["device"]["timeIntervalInSeconds"] for v in response.json()["value"]] == [30, 30]


def test_bulk_update_existing(api):
    payload = {"@context": "#$delta", "value": [{"@contentId": "u1", "id": GALT, "displayName": "Thales spare"}]}
    response = api.graph("PATCH", DEVICES, json=payload)
    assert response.status_code == 201, response.text
    assert response.json()["value"][0]["device"]["displayName"] == "Thales spare"
    assert api.device(GALT)["displayName"] == "Thales spare"


def test_bulk_is_all_or_nothing(api):
    before = api.admin_state()["tokens"]
    payload = {
        "@context": "#$delta",
        "value": [
            {"@contentId": "first", **new_body("BULK-OK-1")},
            {"@contentId": "bad", **new_body("BULK-BAD", secretKey="NOT-BASE32-1890")},
            {"@contentId": "third", **new_body("BULK-OK-3")},
        ],
    }
    response = api.graph("PATCH", DEVICES, json=payload)
    error = assert_graph_error(response, 400, "badRequest", "nothing was changed")
    assert len(error["details"]) == 1
    detail = error["details"][0]
    assert detail["target"] == "bad" and detail["code"] == "badRequest" and "illegal character" in detail["message"]
    assert api.admin_state()["tokens"] == before


def test_bulk_reports_every_bad_item(api):
    payload = {
        "@context": "#$delta",
        "value": [
            {"@contentId": "1", **new_body("DUP-1")},
            {"@contentId": "2", **new_body("DUP-1")},  # duplicate within the payload
            {"@contentId": "3", **new_body("TOTP123456")},  # duplicate of an existing token
            {"@contentId": "4", **new_body(timeIntervalInSeconds=45)},
            {"@contentId": "5", **new_body(assignTo={"id": GRADY})},
            {"@contentId": "6", "id": DIEGO_ASSIGNED, "displayName": "x"},  # assigned: can't be updated
            {"@contentId": "7", "id": str(uuid.uuid4()), "displayName": "x"},  # unknown
        ],
    }
    error = assert_graph_error(api.graph("PATCH", DEVICES, json=payload), 400, "badRequest")
    assert [(d["target"], d["code"]) for d in error["details"]] == [
        ("2", "conflict"),
        ("3", "conflict"),
        ("4", "badRequest"),
        ("5", "badRequest"),
        ("6", "badRequest"),
        ("7", "itemNotFound"),
    ]
    assert token_count(api) == SEED_TOKEN_COUNT


def test_bulk_respects_method_limit_across_items(api):
    assert api.graph("DELETE", f"{methods_path(MEGAN_UPN)}/{MEGAN_TOKENS[0]}").status_code == 204
    payload = {
        "@context": "#$delta",
        "value": [
            {"@contentId": "1", **new_body(assignTo={"id": MEGAN})},
            {"@contentId": "2", **new_body(assignTo={"id": MEGAN})},
        ],
    }
    error = assert_graph_error(api.graph("PATCH", DEVICES, json=payload), 400, "badRequest")
    assert [d["target"] for d in error["details"]] == ["2"]


def test_bulk_too_many_items(api):
    payload = {"@context": "#$delta", "value": [new_body(f"MANY-{i}") for i in range(101)]}
    assert_graph_error(api.graph("PATCH", DEVICES, json=payload), 400, "badRequest", "at most 100")
    assert token_count(api) == SEED_TOKEN_COUNT
    payload["value"] = payload["value"][:100]
    assert api.graph("PATCH", DEVICES, json=payload).status_code == 201
    assert token_count(api) == SEED_TOKEN_COUNT + 100


@pytest.mark.parametrize(
    "payload",
    [
        {"value": [new_body()]},
        {"@context": "#$delta", "value": []},
        {"@context": "#$delta"},
        {"@context": "#$delta", "value": [{"@removed": {"reason": "deleted"}, "id": SPARE}]},
    ],
)
def test_bulk_malformed(api, payload):
    assert api.graph("PATCH", DEVICES, json=payload).status_code == 400
    assert token_count(api) == SEED_TOKEN_COUNT


def test_bulk_without_assign_permission(api):
    token = api.token(AUTOMATION, roles=["Policy.ReadWrite.AuthenticationMethod"])
    payload = {"@context": "#$delta", "value": [{"@contentId": "1", **new_body(assignTo={"id": AMY})}]}
    response = api.graph("PATCH", DEVICES, json=payload, token=token)
    # A missing permission fails the whole request as 403, not as one invalid item.
    assert_graph_error(response, 403, "accessDenied")
    assert token_count(api) == SEED_TOKEN_COUNT
