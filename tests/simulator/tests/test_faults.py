"""Fault injection (POST /_admin/faults, --faults, --latency-ms) and the throttling quotas."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
import yaml

import simlib
from entrasim import faults as faultlib
from simlib import (
    AMY,
    AUTOMATION,
    DEVICES,
    DEVICES_ONLY_APP,
    GRAPH_DEFAULT,
    POLICY,
    REPORTING,
    SPARE,
    assert_graph_error,
    policy_body,
)

DISCONNECTS = (httpx.RemoteProtocolError, httpx.ReadError)


def device_body(serial):
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "F",
        "timeIntervalInSeconds": 30,
        "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    }


def serials(api):
    return [t["serial_number"] for t in api.admin_state()["tokens"]]


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def rule(action, name="r", **extra):
    return {"name": name, "action": action, **extra}


# ------------------------------------------------------------------ latency
def test_global_latency(api):
    fast = timed(api.graph, "GET", f"{DEVICES}/{SPARE}")[1]
    api.faults({"latency": {"ms": 300}})
    response, slow = timed(api.graph, "GET", f"{DEVICES}/{SPARE}")
    assert response.status_code == 200
    assert 0.3 <= slow < 0.3 + 1.0
    assert api.admin("GET", "faults").json()["latency"] == {"ms": 300.0, "jitter_ms": 0.0}
    assert api.admin("DELETE", "faults").status_code == 200
    again = timed(api.graph, "GET", f"{DEVICES}/{SPARE}")[1]
    assert again < 0.25 and fast < 0.25


def test_latency_applies_to_the_token_endpoint(api):
    api.faults({"latency": {"ms": 250}})
    response, elapsed = timed(
        api.token_request,
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": simlib.AUTOMATION_SECRET,
            "scope": GRAPH_DEFAULT,
        },
    )
    assert response.status_code == 200 and elapsed >= 0.25


def test_latency_rule_targets_a_path(api):
    api.faults({"rules": [rule({"type": "latency", "ms": 300}, "slow-users", match={"path": "^/beta/users/"})]})
    response, slow = timed(api.graph, "GET", f"/users/{AMY}")
    assert response.status_code == 200 and slow >= 0.3
    response, fast = timed(api.graph, "GET", f"{DEVICES}/{SPARE}")
    assert response.status_code == 200 and fast < 0.25
    entry = api.requests_log(path="/beta/users/")[-1]
    assert entry["faults"] == ["slow-users"] and entry["duration_ms"] >= 300


# ------------------------------------------------------------------ status faults
def test_429_with_integer_retry_after(api):
    api.faults({"rules": [rule({"type": "status", "status": 429, "retry_after": 3}, count=1)]})
    crid = "fault-crid"
    response = api.graph("GET", DEVICES, headers={"client-request-id": crid})
    error = assert_graph_error(response, 429, "TooManyRequests", client_request_id=crid)
    assert response.headers["retry-after"] == "3"
    assert error["innerError"]["code"] == "429" and error["innerError"]["status"] == "429"
    assert api.graph("GET", DEVICES).status_code == 200


@pytest.mark.parametrize("retry_after,expected", [(2.128, "2.128"), ("10", "10"), (0, "0")])
def test_429_with_other_retry_after_values(api, retry_after, expected):
    api.faults({"rules": [rule({"type": "status", "status": 429, "retry_after": retry_after})]})
    response = api.graph("GET", DEVICES)
    assert response.status_code == 429 and response.headers["retry-after"] == expected


def test_429_with_http_date_retry_after(api):
    api.faults(
        {"rules": [rule({"type": "status", "status": 429, "retry_after": 30, "retry_after_format": "http-date"})]}
    )
    response = api.graph("GET", DEVICES)
    assert response.status_code == 429
    when = email.utils.parsedate_to_datetime(response.headers["retry-after"])
    assert response.headers["retry-after"].endswith(" GMT")
    assert 25 <= when.timestamp() - time.time() <= 35


def test_429_without_retry_after(api):
    api.faults({"rules": [rule({"type": "status", "status": 429, "retry_after": None})]})
    response = api.graph("GET", DEVICES)
    assert response.status_code == 429 and "retry-after" not in response.headers


def test_429_default_retry_after(api):
    api.faults({"rules": [rule({"type": "status", "status": 429})]})
    assert api.graph("GET", DEVICES).headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "status,code",
    [
        (500, "generalException"),
        (503, "serviceNotAvailable"),
        (504, "gatewayTimeout"),
        (502, "badGateway"),
        (423, "simulatedFault"),
    ],
)
def test_server_errors(api, status, code):
    api.faults({"rules": [rule({"type": "status", "status": status}, match={"method": "POST"})]})
    response = api.graph("POST", DEVICES, json=device_body("SRV-1"))
    assert_graph_error(response, status, code)
    assert "retry-after" not in response.headers
    assert "SRV-1" not in serials(api)
    entry = api.requests_log(method="POST")[-1]
    assert entry["status"] == status and entry["error_code"] == code and "committed_status" not in entry


def test_503_with_retry_after_and_custom_code(api):
    api.faults(
        {
            "rules": [
                rule(
                    {
                        "type": "status",
                        "status": 503,
                        "retry_after": 5,
                        "code": "UnknownError",
                        "message": "Maintenance",
                    }
                )
            ]
        }
    )
    response = api.graph("GET", DEVICES)
    error = assert_graph_error(response, 503, "UnknownError", "Maintenance")
    assert response.headers["retry-after"] == "5" and error["message"] == "Maintenance"


def test_status_fault_after_commit(api):
    api.faults({"rules": [rule({"type": "status", "status": 500, "commit": True}, count=1, match={"method": "POST"})]})
    assert api.graph("POST", DEVICES, json=device_body("C500")).status_code == 500
    assert "C500" in serials(api)
    assert api.requests_log(method="POST")[-1]["committed_status"] == 201


def test_fault_on_the_token_endpoint(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, match={"kind": "identity", "method": "POST"})]})
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": simlib.AUTOMATION_SECRET,
            "scope": GRAPH_DEFAULT,
        }
    )
    assert response.status_code == 503
    assert api.graph("GET", DEVICES).status_code == 200  # Graph is not affected


# ------------------------------------------------------------------ connection faults
def test_reset_before_response_does_not_write(api):
    api.faults(
        {"rules": [rule({"type": "reset"}, "drop", match={"method": "POST", "path": "hardwareOathDevices$"}, count=1)]}
    )
    with pytest.raises(DISCONNECTS):
        api.graph("POST", DEVICES, json=device_body("RESET-1"))
    assert "RESET-1" not in serials(api)
    entry = api.requests_log(method="POST")[-1]
    assert entry["reset"] is True and entry["status"] is None and entry["faults"] == ["drop"]
    assert "committed_status" not in entry
    assert api.graph("POST", DEVICES, json=device_body("RESET-1")).status_code == 201


@pytest.mark.parametrize("action", [{"type": "commit_then_drop"}, {"type": "reset", "commit": True}])
def test_commit_then_drop_writes(api, totp, action):
    api.faults({"rules": [rule(action, "ctd", match={"path": "assignAndActivate"}, count=1)]})
    with pytest.raises(DISCONNECTS):
        api.graph(
            "POST",
            f"{simlib.methods_path(AMY)}/assignAndActivateBySerialNumber",
            json={"serialNumber": "TOTP123456", "verificationCode": totp("TOTP123456").at(api.now())},
        )
    device = api.device(simlib.TOTP123456)
    assert device["status"] == "activated" and device["assignedTo"]["id"] == AMY
    entry = api.requests_log(method="POST")[-1]
    assert entry["reset"] is True and entry["committed_status"] == 204 and entry["status"] is None


def test_latency_after_commit_times_the_client_out(api, sim, ssl_ctx):
    api.faults(
        {
            "rules": [
                rule({"type": "latency", "ms": 1000, "commit": True}, "slow-ack", match={"method": "POST"}, count=1)
            ]
        }
    )
    timeout = httpx.Timeout(5, read=0.3)
    with httpx.Client(verify=ssl_ctx, timeout=timeout) as impatient, pytest.raises(httpx.ReadTimeout):
        api.graph("POST", DEVICES, json=device_body("SLOW-1"), client=impatient)
    assert "SLOW-1" in serials(api)


def test_latency_after_commit_delays_the_response(api):
    api.faults({"rules": [rule({"type": "latency", "ms": 300, "commit": True}, match={"method": "POST"})]})
    response, elapsed = timed(api.graph, "POST", DEVICES, json=device_body("SLOW-2"))
    assert response.status_code == 201 and elapsed >= 0.3


# ------------------------------------------------------------------ targeting
def test_target_by_method(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, match={"method": "patch"})]})
    assert api.graph("GET", POLICY).status_code == 200
    assert api.graph("PATCH", POLICY, json=policy_body(state="disabled")).status_code == 503
    assert api.graph("GET", POLICY).json()["state"] == "enabled"


def test_target_by_path_regex(api):
    api.faults(
        {"rules": [rule({"type": "status", "status": 500}, match={"path": r"/hardwareOathMethods/[0-9a-f-]+$"})]}
    )
    assert api.graph("GET", simlib.methods_path(simlib.MEGAN)).status_code == 200
    assert api.graph("GET", f"{simlib.methods_path(simlib.MEGAN)}/{simlib.MEGAN_TOKENS[0]}").status_code == 500


def test_path_is_matched_percent_decoded(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, match={"path": "#EXT#"})]})
    assert api.graph("GET", "/users/grady_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com").status_code == 503
    assert api.graph("GET", f"/users/{AMY}").status_code == 200


def test_target_by_client_id(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, match={"client_id": REPORTING.upper()})]})
    assert api.graph("GET", DEVICES).status_code == 200
    assert api.graph("GET", DEVICES, token=api.token(REPORTING)).status_code == 503


def test_count_limits_to_next_n(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, "twice", count=2)]})
    assert [api.graph("GET", DEVICES).status_code for _attempt in range(4)] == [503, 503, 200, 200]
    state = api.admin("GET", "faults").json()["rules"][0]
    assert (state["name"], state["matched"], state["applied"], state["count"]) == ("twice", 2, 2, 2)


def test_skip_then_count(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, skip=2, count=1)]})
    assert [api.graph("GET", DEVICES).status_code for _attempt in range(5)] == [200, 200, 503, 200, 200]


def test_first_matching_status_rule_wins_and_latency_adds_up(api):
    api.faults(
        {
            "rules": [
                rule({"type": "latency", "ms": 150}, "l1"),
                rule({"type": "status", "status": 503}, "s1"),
                rule({"type": "status", "status": 500}, "s2"),
                rule({"type": "latency", "ms": 150}, "l2"),
            ]
        }
    )
    response, elapsed = timed(api.graph, "GET", DEVICES)
    assert response.status_code == 503 and elapsed >= 0.3
    assert api.requests_log()[-1]["faults"] == ["l1", "s1", "l2"]


def test_append_rules(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, "a", match={"method": "DELETE"})]})
    state = api.faults(
        {"append": True, "rules": [rule({"type": "status", "status": 500}, "b", match={"method": "PATCH"})]}
    )
    assert [r["name"] for r in state["rules"]] == ["a", "b"]
    state = api.faults({"rules": [rule({"type": "status", "status": 500}, "c")]})
    assert [r["name"] for r in state["rules"]] == ["c"]


def outcomes(api, n=16):
    return [api.graph("GET", f"/users/{AMY}").status_code for _attempt in range(n)]


def test_probability_with_seed_is_reproducible(api):
    spec = {"seed": 1234, "rules": [rule({"type": "status", "status": 503}, probability=0.5)]}
    api.faults(spec)
    first = outcomes(api)
    api.faults(spec)
    second = outcomes(api)
    assert first == second
    assert set(first) == {200, 503}
    api.faults({**spec, "seed": 99})
    assert outcomes(api) != first


def test_probability_zero_never_fires(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, probability=0)]})
    assert set(outcomes(api, 20)) == {200}
    state = api.admin("GET", "faults").json()["rules"][0]
    assert (state["matched"], state["applied"]) == (20, 0)


def test_probability_one_always_fires(api):
    api.faults({"rules": [rule({"type": "status", "status": 503}, probability=1)]})
    assert set(outcomes(api, 5)) == {503}


@pytest.mark.parametrize(
    "spec",
    [
        {"rules": [{"action": {"type": "explode"}}]},
        {"rules": [{"action": {"type": "status", "status": 200}}]},
        {"rules": [{"action": {"type": "status", "status": "503"}}]},
        {"rules": [{"action": {"type": "status", "status": 429, "retry_after_format": "minutes"}}]},
        {"rules": [{"action": {"type": "latency"}}]},
        {"rules": [{"action": {"type": "reset"}, "probability": 1.5}]},
        {"rules": [{"action": {"type": "reset"}, "count": 0}]},
        {"rules": [{"action": {"type": "reset"}, "match": {"path": "("}}]},
        {"rules": ["reset"]},
        {"rules": [{"action": {"type": "next_link"}}]},
        *[
            {"rules": [{"action": {"type": "next_link", "base": base}}]}
            for base in [
                "",
                8443,
                None,
                "127.0.0.1:8443",
                "ftp://127.0.0.1:8443",
                "https://",
                "https://:8443",
                "https://127.0.0.1:8443/beta",
                "https://127.0.0.1:8443/?x=1",
                "https://127.0.0.1:8443/#f",
                "https://127.0.0.1:99999",
                "https://127.0.0.1:port",
                "https://user:pw@127.0.0.1:8443",
            ]
        ],
        {"latency": 5},
        {"write_quota": {"requests": 0, "per_seconds": 1}},
        {"read_rate": "fast"},
        [],
    ],
)
def test_invalid_fault_specifications(api, spec):
    before = api.admin("GET", "faults").json()
    response = api.admin("POST", "faults", json=spec)
    assert response.status_code == 400 and response.json()["error"]
    assert api.admin("GET", "faults").json() == before


# ------------------------------------------------------------------ next links pointed elsewhere
ELSEWHERE = "https://127.0.0.1:9"  # another port of the same host; nothing needs to listen there


def first_page(api, path=DEVICES, **params):
    response = api.graph("GET", path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def moved(api, link, base):
    """``link`` (a link of the simulator) with the scheme and authority of ``base``."""
    assert link.startswith(api.base + "/beta/"), link
    return base.rstrip("/") + link[len(api.base) :]


@pytest.mark.parametrize(
    "base", [ELSEWHERE, "http://127.0.0.1:9", "https://attacker.example", "http://localhost:8080/"]
)
def test_next_link_of_the_inventory_points_elsewhere(api, base):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    honest = first_page(api)
    api.faults(
        {"rules": [rule({"type": "next_link", "base": base}, "elsewhere", match={"path": "hardwareOathDevices$"})]}
    )
    page = first_page(api)
    assert page["value"] == honest["value"] and len(page["value"]) == 2
    assert page["@odata.nextLink"] == moved(api, honest["@odata.nextLink"], base)
    assert page["@odata.context"] == honest["@odata.context"]  # only the next link changes
    entry = api.requests_log(kind="graph")[-1]
    assert entry["faults"] == ["elsewhere"] and entry["status"] == 200 and "committed_status" not in entry


def test_next_link_keeps_path_and_query(api, sim):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    params = {"$filter": "manufacturer eq 'Contoso'", "$select": "serialNumber", "$top": "1"}
    honest = first_page(api, DEVICES, **params)["@odata.nextLink"]
    api.faults({"rules": [rule({"type": "next_link", "base": "http://127.0.0.1:9"})]})
    link = first_page(api, DEVICES, **params)["@odata.nextLink"]
    assert link == moved(api, honest, "http://127.0.0.1:9")
    assert link.startswith("http://127.0.0.1:9/beta" + DEVICES + "?") and sim["graph_url"] not in link
    query = httpx.URL(link).params
    assert (query["$filter"], query["$select"], query["$top"]) == ("manufacturer eq 'Contoso'", "serialNumber", "1")
    assert query["$skiptoken"]


def test_next_link_without_next_link_is_unchanged(api):
    honest = first_page(api)
    assert "@odata.nextLink" not in honest  # 13 tokens, default page size 100
    api.faults({"rules": [rule({"type": "next_link", "base": ELSEWHERE}, "elsewhere")]})
    assert first_page(api) == honest
    device = api.graph("GET", f"{DEVICES}/{SPARE}")
    assert device.status_code == 200 and "@odata.nextLink" not in device.json()
    created = api.graph("POST", DEVICES, json=device_body("NL-1"))
    assert created.status_code == 201 and created.headers["location"].startswith(api.base + "/beta/")
    assert "NL-1" in serials(api)  # processed normally
    assert api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code == 204
    log = api.requests_log(kind="graph")[1:]  # after the honest listing
    assert len(log) == 4 and all(e["faults"] == ["elsewhere"] and "committed_status" not in e for e in log)


def test_next_link_matching_count_and_skip(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    honest = first_page(api)["@odata.nextLink"]
    api.faults(
        {"rules": [rule({"type": "next_link", "base": ELSEWHERE}, "once", match={"method": "GET"}, skip=1, count=1)]}
    )
    links = [first_page(api)["@odata.nextLink"] for _attempt in range(3)]
    assert links == [honest, moved(api, honest, ELSEWHERE), honest]
    assert [e["faults"] for e in api.requests_log(kind="graph")] == [[], [], ["once"], []]


def test_next_link_by_client_id_and_kind(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    api.faults(
        {"rules": [rule({"type": "next_link", "base": ELSEWHERE}, match={"client_id": REPORTING, "kind": "graph"})]}
    )
    assert first_page(api)["@odata.nextLink"].startswith(api.base + "/")
    reporting = api.graph("GET", DEVICES, token=api.token(REPORTING)).json()
    assert reporting["@odata.nextLink"].startswith(ELSEWHERE + "/beta/")


def test_next_link_on_users_and_methods(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    api.faults({"rules": [rule({"type": "next_link", "base": ELSEWHERE}, match={"path": "^/beta/users"})]})
    assert first_page(api, "/users")["@odata.nextLink"].startswith(ELSEWHERE + "/beta/users?")
    link = first_page(api, simlib.methods_path(simlib.MEGAN))["@odata.nextLink"]
    assert link.startswith(f"{ELSEWHERE}/beta/users/{simlib.MEGAN}/authentication/hardwareOathMethods?")
    assert first_page(api)["@odata.nextLink"].startswith(api.base + "/")  # the inventory is not matched


def test_next_link_loses_to_an_earlier_status_rule(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    api.faults(
        {
            "rules": [
                rule({"type": "status", "status": 503}, "s1", count=1),
                rule({"type": "next_link", "base": ELSEWHERE}, "n1"),
            ]
        }
    )
    assert api.graph("GET", DEVICES).status_code == 503
    assert first_page(api)["@odata.nextLink"].startswith(ELSEWHERE + "/")
    assert [e["faults"] for e in api.requests_log(kind="graph")] == [["s1"], ["n1"]]


def test_next_link_with_a_bad_base_is_refused(api):
    api.faults({"rules": [rule({"type": "next_link", "base": ELSEWHERE}, "good")]})
    response = api.admin(
        "POST", "faults", json={"rules": [rule({"type": "next_link", "base": "https://127.0.0.1:9/beta"})]}
    )
    assert response.status_code == 400 and "base" in response.json()["error"]
    assert [r["name"] for r in api.admin("GET", "faults").json()["rules"]] == ["good"]


def test_reset_removes_the_next_link_rule(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    state = api.faults({"rules": [rule({"type": "next_link", "base": ELSEWHERE}, "elsewhere")]})
    assert state["rules"][0]["action"] == {"type": "next_link", "base": ELSEWHERE}
    assert first_page(api)["@odata.nextLink"].startswith(ELSEWHERE + "/")
    api.reset()
    assert api.admin("GET", "faults").json()["rules"] == []
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    assert first_page(api)["@odata.nextLink"].startswith(api.base + "/beta/")
    assert api.requests_log(kind="graph")[-1]["faults"] == []


def test_delete_faults_removes_the_next_link_rule(api):
    assert api.admin("POST", "settings", json={"page_size": 2}).status_code == 200
    api.faults({"rules": [rule({"type": "next_link", "base": ELSEWHERE})]})
    assert api.admin("DELETE", "faults").status_code == 200
    assert first_page(api)["@odata.nextLink"].startswith(api.base + "/beta/")


# ------------------------------------------------------------------ quotas
def test_write_quota(api):
    api.faults({"write_quota": {"requests": 3, "per_seconds": 5}})
    statuses = [api.graph("POST", DEVICES, json=device_body(f"Q-{i}")).status_code for i in range(3)]
    assert statuses == [201, 201, 201]
    response = api.graph("POST", DEVICES, json=device_body("Q-3"))
    assert_graph_error(response, 429, "TooManyRequests")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 5
    assert response.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert response.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{AUTOMATION}/{simlib.TENANT_ID}"
    assert "Q-3" not in serials(api)
    # Reads are not charged to the write quota; other apps have their own bucket.
    assert api.graph("GET", DEVICES).status_code == 200
    assert api.graph("POST", DEVICES, token=api.token(DEVICES_ONLY_APP), json=device_body("Q-OTHER")).status_code == 201
    entry = api.requests_log(status=429)[-1]
    assert entry["throttled"] is True and entry["write"] is True


def test_write_quota_refills(api):
    api.faults({"write_quota": {"requests": 1, "per_seconds": 0.2}})
    assert api.graph("PATCH", POLICY, json=policy_body(state="disabled")).status_code == 204
    response = api.graph("PATCH", POLICY, json=policy_body(state="enabled"))
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    time.sleep(1.0)  # its Retry-After (the refused request was charged too: 0.4 s, rounded up)
    assert api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code == 204


# How a quota counts (the settings quota_model and throttled_requests), on the engine itself at given times.
def quota_engine(requests=2, per_seconds=10.0):
    engine = faultlib.FaultEngine()
    engine.configure({"write_quota": {"requests": requests, "per_seconds": per_seconds}})
    return engine


def writes(engine, times, model, throttled_requests="charged"):
    """What the engine answers a write of the app at each of ``times``: None (served) or the seconds to wait."""
    out = []
    for now in times:
        refused = engine.throttle("app", True, model=model, throttled_requests=throttled_requests, now=now)
        out.append(None if refused is None else refused[1])
    return out


@pytest.mark.parametrize(
    "throttled_requests, expected",
    # 2 at once, then one every 5 s; a refused write, when charged, takes the next one: the throttling lasts longer
    # (down to -2, a window's worth, at most).
    [("charged", [None, None, 10.0, 10.0, 15.0]), ("free", [None, None, 5.0, None, 5.0])],
)
def test_a_token_bucket(throttled_requests, expected):
    assert writes(quota_engine(), [0.0, 0.0, 0.0, 5.0, 5.0], "token_bucket", throttled_requests) == expected


@pytest.mark.parametrize(
    "throttled_requests, expected",
    # At most 2 in the last 10 s: the write of 0 leaves at 10; a refused write, when charged, stays in for 10 s.
    [("charged", [None, None, 9.0, 6.0, None]), ("free", [None, None, 4.0, None, None])],
)
def test_a_sliding_window(throttled_requests, expected):
    assert writes(quota_engine(), [0.0, 5.0, 6.0, 10.0, 16.0], "sliding_window", throttled_requests) == expected


@pytest.mark.parametrize("throttled_requests", ["charged", "free"])
def test_a_fixed_window(throttled_requests):
    # At most 2 in each window of 10 s from the first request (0 to 10, 10 to 20, ...): all back at 10.
    expected = [None, None, 4.0, None, None, 0.5]
    assert writes(quota_engine(), [0.0, 5.0, 6.0, 10.0, 19.0, 19.5], "fixed_window", throttled_requests) == expected


def test_a_refused_request_is_charged_to_each_of_its_quotas():
    engine = quota_engine(requests=5)
    engine.configure({"methods_rate": {"requests": 1, "per_seconds": 10.0}})
    assert engine.throttle("app", True, methods=True, now=0.0) is None
    assert engine.throttle("app", True, methods=True, now=0.0)[0] == "methods_rate"  # the write quota had room
    for _attempt in range(3):
        assert engine.throttle("app", True, now=0.0) is None
    assert engine.throttle("app", True, now=0.0)[0] == "write_quota"  # 5 charged: 4 served, 1 refused by methods
    free = quota_engine(requests=5)
    free.configure({"methods_rate": {"requests": 1, "per_seconds": 10.0}})
    assert free.throttle("app", True, methods=True, now=0.0) is None
    assert free.throttle("app", True, methods=True, throttled_requests="free", now=0.0)[0] == "methods_rate"
    assert all(free.throttle("app", True, now=0.0) is None for _attempt in range(4))


def test_a_charged_token_bucket_owes_a_window_at_most():
    assert writes(quota_engine(), [0.0] * 50, "token_bucket")[-1] == pytest.approx(15.0)  # down to -2


@pytest.mark.parametrize("model", ["sliding_window", "fixed_window"])
def test_the_quota_model_setting_applies_to_graphs_answers(api, model):
    api.faults({"write_quota": {"requests": 2, "per_seconds": 60}})
    assert api.admin("POST", "settings", json={"quota_model": model}).status_code == 200
    statuses = [api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code for _attempt in range(3)]
    assert statuses == [204, 204, 429]
    retry_after = int(api.graph("PATCH", POLICY, json=policy_body(state="enabled")).headers["retry-after"])
    assert 50 <= retry_after <= 60  # a window less what passed: a token bucket's would be 30 at most


def test_read_rate(api):
    api.faults({"read_rate": {"requests": 3, "per_seconds": 5}})
    assert [api.graph("GET", DEVICES).status_code for _attempt in range(3)] == [200, 200, 200]
    response = api.graph("GET", f"{DEVICES}/{SPARE}")
    assert_graph_error(response, 429, "TooManyRequests")
    assert response.headers["retry-after"].isdigit()
    assert response.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert response.headers["x-ms-throttle-scope"].startswith("Tenant_Application/Read/")
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204  # writes unaffected


def test_quotas_can_be_disabled(api):
    api.faults({"write_quota": {"requests": 1, "per_seconds": 60}})
    api.graph("PATCH", POLICY, json=policy_body(state="enabled"))
    assert api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code == 429
    state = api.faults({"write_quota": False})
    assert state["write_quota"] is None
    assert {api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code for _attempt in range(5)} == {204}


def test_reset_restores_default_quotas(api):
    api.faults(
        {"write_quota": {"requests": 1, "per_seconds": 60}, "rules": [rule({"type": "reset"})], "latency": {"ms": 10}}
    )
    api.reset()
    assert api.admin("GET", "faults").json() == {
        "rules": [],
        "latency": {"ms": 0.0, "jitter_ms": 0.0},
        "write_quota": {"requests": 3000, "per_seconds": 150.0},
        "read_rate": {"requests": 3500, "per_seconds": 10.0},
        "methods_rate": None,
    }


# ------------------------------------------------------------------ faults given at start-up
def test_start_time_faults_and_latency(suite_material, tmp_path):
    faults_file = tmp_path / "faults.yml"
    faults_file.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "boot-503",
                        "match": {"path": "hardwareOathDevices$", "method": "GET"},
                        "count": 1,
                        "action": {"type": "status", "status": 503, "retry_after": 2},
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    proc = simlib.SimProcess(
        suite_material["seed_path"],
        tmp_path / "sim2",
        ["--faults", str(faults_file), "--latency-ms", "250", "--write-quota", "2/60"],
    )
    try:
        with simlib.http_client(proc.info) as http:
            api = simlib.SimApi(proc.info, http, suite_material["seed"])
            state = api.admin("GET", "faults").json()
            assert state["latency"] == {"ms": 250.0, "jitter_ms": 0.0}
            assert state["write_quota"] == {"requests": 2, "per_seconds": 60.0}
            assert [r["name"] for r in state["rules"]] == ["boot-503"]
            response, elapsed = timed(api.graph, "GET", DEVICES)
            assert response.status_code == 503 and response.headers["retry-after"] == "2" and elapsed >= 0.25
            assert api.graph("GET", DEVICES).status_code == 200
            assert [
                api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code for _attempt in range(3)
            ] == [
                204,
                204,
                429,
            ]
            # Reset restores the start-up configuration, not the built-in defaults.
            api.reset()
            assert api.admin("GET", "faults").json()["latency"]["ms"] == 250.0
            assert api.graph("GET", DEVICES).status_code == 503
            assert [
                api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code for _attempt in range(3)
            ] == [
                204,
                204,
                429,
            ]
    finally:
        returncode = proc.terminate()
    assert returncode == 0, proc.stderr()
    assert not proc.ready_file.exists()


def test_start_time_quota_page_size_and_lifetime(suite_material, tmp_path):
    proc = simlib.SimProcess(
        suite_material["seed_path"],
        tmp_path / "sim3",
        ["--write-quota", "off", "--read-rate", "3/60", "--page-size", "5", "--token-lifetime", "600"],
    )
    try:
        with simlib.http_client(proc.info) as http:
            api = simlib.SimApi(proc.info, http, suite_material["seed"])
            state = api.admin("GET", "faults").json()
            assert state["write_quota"] is None and state["read_rate"] == {"requests": 3, "per_seconds": 60.0}
            listing = api.graph("GET", DEVICES).json()
            assert len(listing["value"]) == 5 and "@odata.nextLink" in listing
            assert [api.graph("GET", POLICY).status_code for _attempt in range(3)] == [200, 200, 429]
            assert {
                api.graph("PATCH", POLICY, json=policy_body(state="enabled")).status_code for _attempt in range(4)
            } == {204}
            response = api.token_request(
                {
                    "grant_type": "client_credentials",
                    "client_id": AUTOMATION,
                    "client_secret": simlib.AUTOMATION_SECRET,
                    "scope": GRAPH_DEFAULT,
                }
            )
            assert response.json()["expires_in"] == 600
    finally:
        assert proc.terminate() == 0


def test_fault_seed_is_restored_by_reset(suite_material, tmp_path):
    """--fault-seed makes probabilistic faults reproducible: a reset (which restores the start-up fault
    configuration) must also restart the random sequence, or runs that reset between cases diverge."""
    faults_file = tmp_path / "coin.yml"
    faults_file.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "coin",
                        "match": {"path": "^/beta/users/"},
                        "probability": 0.5,
                        "action": {"type": "status", "status": 503},
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    proc = simlib.SimProcess(
        suite_material["seed_path"], tmp_path / "sim6", ["--faults", str(faults_file), "--fault-seed", "7"]
    )
    try:
        with simlib.http_client(proc.info) as http:
            api = simlib.SimApi(proc.info, http, suite_material["seed"])
            first = outcomes(api)
            assert set(first) == {200, 503}
            api.reset()
            assert outcomes(api) == first
    finally:
        assert proc.terminate() == 0


def test_invalid_start_time_faults(suite_material, tmp_path):
    faults_file = tmp_path / "bad.yml"
    faults_file.write_text("rules:\n  - action: {type: explode}\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="exited with 2"):
        simlib.SimProcess(suite_material["seed_path"], tmp_path / "sim4", ["--faults", str(faults_file)])
    with pytest.raises(RuntimeError, match="exited with 2"):
        simlib.SimProcess(suite_material["seed_path"], tmp_path / "sim5", ["--write-quota", "lots"])
