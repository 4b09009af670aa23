"""JSON batching: POST /beta/$batch (Graph's JSON batching page)."""

from __future__ import annotations

import uuid

import pytest

from simlib import (
    AMY,
    DEVICE_CONTEXT,
    DEVICES,
    POLICY,
    REPORTING,
    SEED_TOKEN_COUNT,
    SPARE,
    TOTP123456,
    assert_graph_error,
    methods_path,
    policy_body,
)

JSON = {"Content-Type": "application/json"}


def new_device(serial):
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "Batch",
        "timeIntervalInSeconds": 30,
        "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    }


def batch(api, requests, **kwargs):
    return api.graph("POST", "/$batch", json={"requests": requests}, **kwargs)


def by_id(response):
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def test_batch_items(api, sim):
    response = batch(
        api,
        [
            {"id": "1", "method": "GET", "url": f"{DEVICES}/{SPARE}"},
            {"id": "2", "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device("BATCH-1")},
            {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com"},
            {
                "id": "4",
                "method": "PATCH",
                "url": POLICY.lstrip("/"),
                "headers": JSON,
                "body": policy_body(state="disabled"),
            },
        ],
    )
    assert response.headers["content-type"].startswith("application/json")
    items = by_id(response)
    assert set(items) == {"1", "2", "3", "4"}
    assert items["1"]["status"] == 200 and items["1"]["body"]["serialNumber"] == "SPARE-0001"
    assert items["1"]["body"]["@odata.context"] == f"{sim['graph_url']}/beta/{DEVICE_CONTEXT}"
    assert items["1"]["headers"]["Content-Type"].startswith("application/json")
    assert items["2"]["status"] == 201 and items["2"]["body"]["status"] == "available"
    assert items["2"]["headers"]["Location"] == f"{sim['graph_url']}/beta{DEVICES}/{items['2']['body']['id']}"
    assert items["3"]["status"] == 404 and items["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert items["4"]["status"] == 204 and "body" not in items["4"]
    assert api.graph("GET", POLICY).json()["state"] == "disabled"
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT + 1


def test_batch_items_are_logged(api):
    response = batch(
        api,
        [
            {"id": "a", "method": "GET", "url": f"{DEVICES}/{SPARE}", "headers": {"client-request-id": "item-a"}},
            {"id": "b", "method": "DELETE", "url": f"{DEVICES}/{SPARE}"},
        ],
    )
    outer_request_id = response.headers["request-id"]
    log = api.requests_log(kind="graph")
    assert [e["path"] for e in log] == [f"/beta{DEVICES}/{SPARE}", f"/beta{DEVICES}/{SPARE}", "/beta/$batch"]
    assert [(e["batch_item_id"], e["status"], e["write"]) for e in log[:2]] == [("a", 200, False), ("b", 204, True)]
    assert all(e["batch_request_id"] == outer_request_id for e in log[:2])
    assert log[0]["client_request_id"] == "item-a"
    assert log[2]["status"] == 200 and log[2]["write"] is False


def test_batch_of_twenty(api):
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{AMY}"} for i in range(20)]
    items = by_id(batch(api, requests))
    assert len(items) == 20 and all(r["status"] == 200 for r in items.values())


def test_batch_of_twenty_one_is_rejected(api):
    requests = [
        {"id": str(i), "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device(f"B21-{i}")}
        for i in range(21)
    ]
    assert_graph_error(batch(api, requests), 400, "BadRequest", "exceeds the limit of 20")
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT


@pytest.mark.parametrize("ids", [["1", "1"], ["a", "A"]])
def test_duplicate_ids(api, ids):
    requests = [{"id": i, "method": "GET", "url": f"/users/{AMY}"} for i in ids]
    assert_graph_error(batch(api, requests), 400, "BadRequest", "unique")


def test_body_without_content_type(api):
    response = batch(api, [{"id": "1", "method": "POST", "url": DEVICES, "body": new_device("NO-CT")}])
    assert_graph_error(response, 400, "BadRequest", "Content-Type")
    response = batch(
        api,
        [
            {
                "id": "1",
                "method": "POST",
                "url": DEVICES,
                "headers": {"Accept": "application/json"},
                "body": new_device("NO-CT"),
            }
        ],
    )
    assert_graph_error(response, 400, "BadRequest", "Content-Type")
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT


def test_content_type_header_is_case_insensitive(api):
    response = batch(
        api,
        [
            {
                "id": "1",
                "method": "POST",
                "url": DEVICES,
                "headers": {"content-type": "application/json"},
                "body": new_device("LOWER-CT"),
            }
        ],
    )
    assert by_id(response)["1"]["status"] == 201


@pytest.mark.parametrize("depends_on", [["2"], ["9"], ["1"]])
def test_depends_on_must_name_an_earlier_request(api, depends_on):
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{AMY}", "dependsOn": depends_on},
        {"id": "2", "method": "GET", "url": f"/users/{AMY}"},
    ]
    assert_graph_error(batch(api, requests), 400, "BadRequest", "Invalid dependency")


def test_failed_dependency(api):
    response = batch(
        api,
        [
            {"id": "1", "method": "GET", "url": "/users/nobody@contoso.com"},
            {
                "id": "2",
                "method": "POST",
                "url": DEVICES,
                "headers": JSON,
                "body": new_device("DEP-2"),
                "dependsOn": ["1"],
            },
            {"id": "3", "method": "GET", "url": f"/users/{AMY}", "dependsOn": ["2"]},
            {"id": "4", "method": "GET", "url": f"/users/{AMY}"},
        ],
    )
    items = by_id(response)
    assert [items[i]["status"] for i in "1234"] == [404, 424, 424, 200]
    assert items["2"]["body"]["error"]["code"] == "FailedDependency"
    assert api.graph("GET", DEVICES, params={"$filter": "serialNumber eq 'DEP-2'"}).json()["value"] == []


def test_sequenced_requests(api):
    response = batch(
        api,
        [
            {"id": "create", "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device("SEQ-1")},
            {
                "id": "list",
                "method": "GET",
                "url": f"{DEVICES}?$filter=serialNumber eq 'SEQ-1'",
                "dependsOn": ["create"],
            },
        ],
    )
    items = by_id(response)
    assert items["create"]["status"] == 201
    assert [d["serialNumber"] for d in items["list"]["body"]["value"]] == ["SEQ-1"]


def test_snake_case_depends_on_is_ignored(api):
    """msgraph-core Python sends "depends_on": Graph ignores it, so no 424."""
    response = batch(
        api,
        [
            {"id": "1", "method": "GET", "url": "/users/nobody@contoso.com", "depends_on": []},
            {"id": "2", "method": "GET", "url": f"/users/{AMY}", "depends_on": ["1"]},
            {"id": "3", "method": "GET", "url": f"/users/{AMY}", "depends_on": ["99"]},
        ],
    )
    items = by_id(response)
    assert [items[i]["status"] for i in "123"] == [404, 200, 200]


def test_throttled_item_gets_429_with_retry_after(api):
    api.faults(
        {
            "rules": [
                {
                    "name": "throttle-create",
                    "match": {"path": "hardwareOathDevices$", "method": "POST"},
                    "count": 1,
                    "action": {"type": "status", "status": 429, "retry_after": 7},
                }
            ]
        }
    )
    response = batch(
        api,
        [
            {"id": "1", "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device("THR-1")},
            {"id": "2", "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device("THR-2")},
            {"id": "3", "method": "GET", "url": f"/users/{AMY}"},
        ],
    )
    assert response.status_code == 200
    items = by_id(response)
    assert items["1"]["status"] == 429
    assert items["1"]["headers"]["Retry-After"] == "7"
    assert items["1"]["body"]["error"]["code"] == "TooManyRequests"
    assert [items["2"]["status"], items["3"]["status"]] == [201, 200]
    serials = [t["serial_number"] for t in api.admin_state()["tokens"]]
    assert "THR-1" not in serials and "THR-2" in serials


def test_next_link_fault_rewrites_batch_item_bodies(api, sim):
    """A next_link rule applies to each matching item's body, like every rule; other items are unchanged."""
    requests = [
        {"id": "users", "method": "GET", "url": "/users?$top=1"},
        {"id": "devices", "method": "GET", "url": f"{DEVICES}?$top=2"},
        {"id": "one", "method": "GET", "url": f"/users/{AMY}"},
    ]
    honest = by_id(batch(api, requests))
    assert honest["users"]["body"]["@odata.nextLink"].startswith(f"{sim['graph_url']}/beta/users?")
    api.faults(
        {
            "rules": [
                {
                    "name": "elsewhere",
                    "match": {"path": "^/beta/users"},
                    "action": {"type": "next_link", "base": "http://127.0.0.1:9"},
                }
            ]
        }
    )
    response = batch(api, requests)
    assert "@odata.nextLink" not in response.json()
    items = by_id(response)
    link = items["users"]["body"]["@odata.nextLink"]
    assert link == "http://127.0.0.1:9" + honest["users"]["body"]["@odata.nextLink"][len(sim["graph_url"]) :]
    assert "$top=1" in link and "$skiptoken=" in link
    assert items["users"]["body"]["value"] == honest["users"]["body"]["value"]
    assert items["devices"]["body"] == honest["devices"]["body"]  # not matched
    assert items["one"]["body"] == honest["one"]["body"]  # matched, no next link
    log = api.requests_log(kind="graph")
    faults = {e.get("batch_item_id"): e["faults"] for e in log[len(log) // 2 :]}
    assert faults == {"users": ["elsewhere"], "devices": [], "one": ["elsewhere"], None: []}


def test_write_quota_applies_to_batch_items(api):
    api.faults({"write_quota": {"requests": 2, "per_seconds": 60}})
    response = batch(
        api,
        [
            {"id": str(i), "method": "POST", "url": DEVICES, "headers": JSON, "body": new_device(f"QB-{i}")}
            for i in range(3)
        ],
    )
    items = by_id(response)
    assert [items[str(i)]["status"] for i in range(3)] == [201, 201, 429]
    headers = items["2"]["headers"]
    assert int(headers["Retry-After"]) >= 1
    assert headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert len(api.admin_state()["tokens"]) == SEED_TOKEN_COUNT + 2


def test_batch_item_needs_permission(api):
    token = api.token(REPORTING)  # read only
    response = batch(
        api,
        [
            {"id": "1", "method": "GET", "url": DEVICES},
            {
                "id": "2",
                "method": "POST",
                "url": f"{methods_path(AMY)}",
                "headers": JSON,
                "body": {"device": {"id": TOTP123456}},
            },
        ],
        token=token,
    )
    items = by_id(response)
    assert [items["1"]["status"], items["2"]["status"]] == [200, 403]
    assert items["2"]["body"]["error"]["code"] == "accessDenied"


def test_batch_requires_authentication(api):
    response = api.graph(
        "POST", "/$batch", token="", json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]}
    )
    assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert api.requests_log(kind="graph")[-1]["path"] == "/beta/$batch"


@pytest.mark.parametrize(
    "payload",
    [
        {"requests": []},
        {"requests": "x"},
        {},
        [],
        {"requests": [{"method": "GET", "url": "/users"}]},
        {"requests": [{"id": 1, "method": "GET", "url": "/users"}]},
        {"requests": [{"id": "1", "url": "/users"}]},
        {"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/beta/users"}]},
    ],
)
def test_malformed_batch(api, payload):
    assert_graph_error(api.graph("POST", "/$batch", json=payload), 400, "BadRequest")


def test_batch_invalid_json(api):
    response = api.graph("POST", "/$batch", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_graph_error(response, 400, "BadRequest")


def test_batch_get_not_allowed(api):
    assert_graph_error(api.graph("GET", "/$batch"), 405, "Request_BadRequest")


def test_nested_batch_is_not_a_route(api):
    response = batch(
        api,
        [
            {
                "id": "1",
                "method": "POST",
                "url": "/$batch",
                "headers": JSON,
                "body": {"requests": [{"id": "x", "method": "GET", "url": "/users"}]},
            }
        ],
    )
    assert by_id(response)["1"]["status"] == 400


def test_batch_client_request_ids(api):
    crid = str(uuid.uuid4())
    response = batch(
        api, [{"id": "1", "method": "GET", "url": "/users/nobody@contoso.com", "headers": {"client-request-id": crid}}]
    )
    item = by_id(response)["1"]
    assert item["headers"]["client-request-id"] == crid
    assert item["body"]["error"]["innerError"]["client-request-id"] == crid
