"""The admin API: request log, state, reset, settings, clock, token and assertion minting."""

from __future__ import annotations

import datetime
import json
import time
import uuid

import jwt
import pyotp
import pytest
import yaml

import simlib
from simlib import (
    ADELE_PASSWORD,
    ADELE_UPN,
    AMY,
    AUTOMATION,
    AUTOMATION_SECRET,
    CLI,
    DEVICES,
    DEVICES_ONLY_APP,
    DIEGO,
    DIEGO_ASSIGNED,
    GH_ISSUER,
    GH_SUBJECT,
    GRAPH,
    GRAPH_DEFAULT,
    POLICY,
    REPORTING,
    REPORTING_SECRET,
    RUNNER_MI,
    SEED_TOKEN_COUNT,
    SPARE,
    TENANT_ID,
    TOTP123456,
    UNKNOWN_ID,
    methods_path,
    policy_body,
    seed_secrets,
)


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def without_volatile(state):
    """State minus the seed-load timestamps of seeded assignments."""
    state = json.loads(json.dumps(state))
    for token in state["tokens"]:
        token.pop("method_created")
    return state


# ------------------------------------------------------------------ request log
def test_request_log_entry_fields(api):
    crid = str(uuid.uuid4())
    started = datetime.datetime.now(datetime.timezone.utc)
    response = api.graph(
        "GET",
        DEVICES,
        params={"$top": "2", "$filter": "status eq 'available'"},
        headers={"client-request-id": crid, "User-Agent": "suite/1.0"},
    )
    assert response.status_code == 200
    entries = api.requests_log()
    assert len(entries) == 1
    entry = entries[0]
    assert entry["kind"] == "graph" and entry["method"] == "GET"
    assert entry["path"] == f"/beta{DEVICES}"
    assert entry["query"] == {"$top": "2", "$filter": "status eq 'available'"}
    assert entry["status"] == 200 and entry["client_id"] == AUTOMATION
    assert entry["client_request_id"] == crid and entry["user_agent"] == "suite/1.0"
    assert entry["request_id"] == response.headers["request-id"]
    assert entry["write"] is False and entry["reset"] is False and entry["faults"] == []
    assert entry["retry_attempt"] is None
    assert isinstance(entry["seq"], int) and entry["duration_ms"] >= 0
    assert abs((parse_iso(entry["time"]) - started).total_seconds()) < 5


def test_request_log_records_errors_and_writes(api):
    api.graph("POST", DEVICES, json={"colour": "red"}, headers={"Retry-Attempt": "2"})
    entry = api.requests_log()[-1]
    assert (entry["method"], entry["status"], entry["write"], entry["error_code"], entry["retry_attempt"]) == (
        "POST",
        400,
        True,
        "BadRequest",
        "2",
    )


def test_request_log_identity_and_managed_identity(api, sim):
    api.token(AUTOMATION, secret=AUTOMATION_SECRET)
    api.client.get(
        sim["managed_identity"]["endpoint"],
        params={"api-version": "2019-08-01", "resource": GRAPH},
        headers={"X-IDENTITY-HEADER": sim["managed_identity"]["header"]},
    )
    identity, mi = api.requests_log()
    assert (
        identity["kind"],
        identity["method"],
        identity["grant_type"],
        identity["client_id"],
        identity["status"],
    ) == ("identity", "POST", "client_credentials", AUTOMATION, 200)
    assert (mi["kind"], mi["client_id"], mi["status"]) == ("managed_identity", RUNNER_MI, 200)


def test_request_log_filters(api):
    api.token(REPORTING, secret=REPORTING_SECRET)  # identity POST
    api.graph("GET", DEVICES)  # graph GET 200
    api.graph("GET", "/users/nobody@contoso.com")  # graph GET 404
    api.graph("PATCH", POLICY, json=policy_body(state="enabled"))  # graph PATCH 204
    every = api.requests_log()
    assert [e["kind"] for e in every] == ["identity", "graph", "graph", "graph"]
    assert [e["seq"] for e in every] == sorted(e["seq"] for e in every)
    assert [e["kind"] for e in api.requests_log(kind="identity")] == ["identity"]
    assert [e["method"] for e in api.requests_log(kind="graph", method="get")] == ["GET", "GET"]
    assert [e["path"] for e in api.requests_log(method="POST")] == [f"/{TENANT_ID}/oauth2/v2.0/token"]
    assert [e["path"] for e in api.requests_log(status=404)] == ["/beta/users/nobody@contoso.com"]
    assert len(api.requests_log(path="hardwareOath")) == 2
    assert [e["client_id"] for e in api.requests_log(client_id=REPORTING)] == [REPORTING]
    since = every[1]["seq"]
    assert [e["seq"] for e in api.requests_log(since=since)] == [e["seq"] for e in every[2:]]
    assert api.requests_log(since=every[-1]["seq"]) == []


def test_request_log_clear(api):
    api.graph("GET", DEVICES)
    assert len(api.requests_log()) == 1
    assert api.admin("DELETE", "requests").status_code == 204
    assert api.requests_log() == []
    body = api.admin("GET", "requests").json()
    assert body == {"requests": [], "count": 0, "dropped": 0}
    api.graph("GET", DEVICES)
    assert len(api.requests_log()) == 1


def test_admin_calls_are_not_logged(api):
    api.admin_state()
    api.mint(client_id=AUTOMATION)
    api.faults({"rules": []})
    api.set_clock(0)
    assert api.requests_log() == []


def test_unknown_endpoints_answer_404(api, sim):
    response = api.client.get(f"{sim['graph_url']}/nothing/here")
    assert response.status_code == 404
    assert api.admin("GET", "nothing").status_code == 404
    assert api.admin("DELETE", "state").status_code == 404


# ------------------------------------------------------------------ secrets never exposed
def test_state_and_log_never_contain_secrets(api, totp, suite_material):
    created_secret = pyotp.random_base32(40)
    api.graph(
        "POST",
        DEVICES,
        json={
            "serialNumber": "SECRET-1",
            "manufacturer": "C",
            "model": "M",
            "secretKey": created_secret,
            "timeIntervalInSeconds": 30,
        },
    )
    api.token(AUTOMATION, secret=AUTOMATION_SECRET)
    api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": "x" + AUTOMATION_SECRET,
            "scope": GRAPH_DEFAULT,
        }
    )
    api.token(CLI, user=ADELE_UPN, password=ADELE_PASSWORD)
    api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivateBySerialNumber",
        json={"serialNumber": "TOTP123456", "verificationCode": totp("TOTP123456").at(api.now())},
    )
    api.graph("PATCH", f"{DEVICES}/{SPARE}", json={"secretKey": created_secret})
    dumps = [api.admin("GET", "state").text, api.admin("GET", "requests").text, api.admin("GET", "faults").text]
    secrets = seed_secrets(suite_material["seed"]) + [
        created_secret,
        suite_material["devices_only_secret"],
        suite_material["noperm_secret"],
    ]
    for text in dumps:
        for secret in secrets:
            assert secret not in text, secret
    state = api.admin_state()
    assert all("secret_key" not in t and "secretKey" not in t for t in state["tokens"])
    assert all("password" not in u for u in state["users"])
    assert all("client_secrets" not in a and "client_secret" not in a for a in state["apps"])


# ------------------------------------------------------------------ state and reset
def test_state_shape(api):
    state = api.admin_state()
    assert state["tenant_id"] == TENANT_ID and state["clock_offset"] == 0
    assert len(state["tokens"]) == SEED_TOKEN_COUNT
    diego = next(t for t in state["tokens"] if t["id"] == DIEGO_ASSIGNED)
    assert diego["assigned_to"] == {
        "id": DIEGO,
        "user_principal_name": "diego.siciliani@contoso.com",
        "display_name": "Diego Siciliani",
    }
    assert diego["activations"] == {"accepted": 0, "rejected": 0, "replayed": 0}
    assert (diego["serial_number"], diego["hash_function"], diego["time_interval"], diego["status"]) == (
        "TOTP100001",
        "hmacsha1",
        30,
        "assigned",
    )
    users = {u["user_principal_name"]: u for u in state["users"]}
    assert users["diego.siciliani@contoso.com"]["hardware_oath_methods"] == [
        DIEGO_ASSIGNED,
        "cf9e3c7a-8b0d-4e45-9a6b-7c8d9e0f1a2b",
    ]
    assert users["adele.vance@contoso.com"]["roles"] == ["Authentication Administrator"]
    assert {a["client_id"] for a in state["apps"]} >= {AUTOMATION, REPORTING, CLI}
    assert [m["client_id"] for m in state["managed_identities"]][0] == RUNNER_MI
    assert state["policy"]["hardware_oath"]["state"] == "enabled"


def test_reset_restores_the_seed(api, totp):
    initial = without_volatile(api.admin_state())
    api.create_device("RESET-ME", assignTo={"id": AMY})
    api.graph("DELETE", f"{DEVICES}/{SPARE}")
    api.graph("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}")
    api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivate",
        json={"device": {"id": TOTP123456}, "verificationCode": totp("TOTP123456").at(api.now())},
    )
    api.graph("PATCH", POLICY, json=policy_body(state="disabled"))
    api.set_clock(12345)
    api.faults({"rules": [{"action": {"type": "status", "status": 503}, "match": {"path": "^/nothing"}}]})
    changed = without_volatile(api.admin_state())
    assert changed != initial
    assert api.admin("POST", "reset").status_code == 204
    assert without_volatile(api.admin_state()) == initial
    assert api.requests_log() == []
    assert api.admin("GET", "faults").json()["rules"] == []
    assert api.graph("GET", f"{DEVICES}/{SPARE}").status_code == 200
    # Tokens issued before the reset stay valid (same signing key).
    assert api.graph("GET", DEVICES).status_code == 200


def test_reset_clears_replay_memory(api, totp):
    code = totp("TOTP123456").at(api.now())
    body = {"serialNumber": "TOTP123456", "verificationCode": code}
    assert api.graph("POST", f"{methods_path(AMY)}/assignAndActivateBySerialNumber", json=body).status_code == 204
    api.reset()
    assert api.graph("POST", f"{methods_path(AMY)}/assignAndActivateBySerialNumber", json=body).status_code == 204


# ------------------------------------------------------------------ settings
DEFAULT_SETTINGS = {
    "page_size": 100,
    "max_page_size": 999,
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
    "activation_last_used": "unchanged",
    "quota_model": "token_bucket",
    "throttled_requests": "charged",
    "read_after_write_delay_ms": 0,
    "bulk_max_items": 100,
}


def settings(**changed):
    """The default settings with some changed."""
    return {**DEFAULT_SETTINGS, **changed}


def page_sizes(api, params=None):
    """The sizes of the inventory's pages, following every next link."""
    sizes, response = [], api.graph("GET", DEVICES, params=params or {})
    while True:
        assert response.status_code == 200, response.text
        sizes.append(len(response.json()["value"]))
        if "@odata.nextLink" not in response.json():
            return sizes
        response = api.graph("GET", response.json()["@odata.nextLink"])


def test_settings_defaults(api):
    response = api.admin("GET", "settings")
    assert response.status_code == 200
    assert response.json() == DEFAULT_SETTINGS


def test_settings_change_the_running_simulator(api):
    response = api.admin("POST", "settings", json={"page_size": 6})
    assert response.status_code == 200 and response.json() == settings(page_size=6, max_page_size=999)
    assert page_sizes(api) == [6, 6, 1]
    assert api.admin("POST", "settings", json={"max_page_size": 4}).json() == settings(page_size=6, max_page_size=4)
    assert page_sizes(api) == [4, 4, 4, 1]
    assert page_sizes(api, {"$top": "999"}) == [4, 4, 4, 1]
    both = api.admin("POST", "settings", json={"page_size": 999, "max_page_size": 999})
    assert both.json() == settings(page_size=999, max_page_size=999)
    assert api.admin("GET", "settings").json() == settings(page_size=999, max_page_size=999)
    assert page_sizes(api) == [SEED_TOKEN_COUNT]
    assert api.requests_log(kind="graph")  # Graph calls are logged, settings calls are not
    assert not api.requests_log(path="settings")


def test_page_size_above_999_is_capped_by_max_page_size(api):
    assert api.admin("POST", "settings", json={"page_size": 5000}).json() == settings(page_size=5000, max_page_size=999)
    assert page_sizes(api) == [SEED_TOKEN_COUNT]
    api.admin("POST", "settings", json={"max_page_size": 10})
    assert page_sizes(api) == [10, SEED_TOKEN_COUNT - 10]


def test_reset_restores_the_settings(api):
    api.admin("POST", "settings", json={"page_size": 2, "max_page_size": 3})
    assert api.admin("POST", "reset").status_code == 204
    assert api.admin("GET", "settings").json() == DEFAULT_SETTINGS
    assert page_sizes(api) == [SEED_TOKEN_COUNT]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"page_size": 0}, "page_size must be a positive integer"),
        ({"page_size": -5}, "page_size must be a positive integer"),
        ({"page_size": "10"}, "page_size must be a positive integer"),
        ({"page_size": 2.5}, "page_size must be a positive integer"),
        ({"page_size": True}, "page_size must be a positive integer"),
        ({"page_size": None}, "page_size must be a positive integer"),
        ({"max_page_size": 0}, "max_page_size must be a positive integer"),
        ({"max_page_size": 1000}, "max_page_size must be at most 999"),
        ({"max_page_size": [5]}, "max_page_size must be a positive integer"),
        ({"page_size": 5, "max_page_size": 1000}, "max_page_size must be at most 999"),
        ({"page_size": 5, "colour": "red"}, "unknown setting 'colour'"),
        ({"pageSize": 5}, "unknown setting 'pageSize'"),
        ({}, "must be a JSON object"),
        ([{"page_size": 5}], "must be a JSON object"),
        (5, "must be a JSON object"),
        ({"create_assign_without_permission": "allow"}, "create_assign_without_permission must be forbid or ignore"),
        ({"create_assign_without_permission": "IGNORE"}, "create_assign_without_permission must be forbid or ignore"),
        ({"create_assign_without_permission": True}, "create_assign_without_permission must be forbid or ignore"),
        ({"create_assign_without_permission": None}, "create_assign_without_permission must be forbid or ignore"),
        ({"page_size": 5, "create_assign_without_permission": "maybe"}, "create_assign_without_permission must be"),
        ({"create_assign_without_permission": "ignore", "page_size": 0}, "page_size must be a positive integer"),
    ],
    ids=[
        "zero",
        "negative",
        "string",
        "float",
        "bool",
        "null",
        "max-zero",
        "max-1000",
        "max-list",
        "half-valid",
        "unknown-key",
        "camel-case",
        "empty",
        "list",
        "number",
        "assign-allow",
        "assign-upper-case",
        "assign-bool",
        "assign-null",
        "assign-half-valid",
        "assign-valid-page-invalid",
    ],
)
def test_settings_errors(api, data, fragment):
    response = api.admin("POST", "settings", json=data)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert api.admin("GET", "settings").json() == DEFAULT_SETTINGS  # nothing changed


def test_create_assign_without_permission_at_run_time(api, suite_material):
    """forbid (the seed's default): a create with assignTo by a caller who may not write methods is 403 and
    creates nothing. ignore: the token is created, available, assignTo silently dropped (Graph's create page)."""
    token = api.token(DEVICES_ONLY_APP, secret=suite_material["devices_only_secret"])
    body = {
        "serialNumber": "ASSIGN-IGNORED-1",
        "manufacturer": "Contoso",
        "model": "Test Key",
        "secretKey": pyotp.random_base32(32),
        "timeIntervalInSeconds": 30,
        "assignTo": {"id": AMY},
    }
    before = len(api.admin_state()["tokens"])
    forbidden = api.graph("POST", DEVICES, token=token, json=body)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "accessDenied"
    assert len(api.admin_state()["tokens"]) == before

    changed = api.admin("POST", "settings", json={"create_assign_without_permission": "ignore"})
    assert changed.status_code == 200 and changed.json() == settings(create_assign_without_permission="ignore")
    assert api.admin("GET", "settings").json() == settings(create_assign_without_permission="ignore")
    created = api.graph("POST", DEVICES, token=token, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "available" and created.json()["assignedTo"] is None
    state = api.admin_state()
    assert len(state["tokens"]) == before + 1
    assert next(t for t in state["tokens"] if t["serial_number"] == "ASSIGN-IGNORED-1")["assigned_to"] is None
    assert not [
        m for u in state["users"] if u["id"] == AMY for m in u["hardware_oath_methods"] if m == created.json()["id"]
    ]
    # A caller with the permission is still assigned.
    assigned = api.graph("POST", DEVICES, json={**body, "serialNumber": "ASSIGN-IGNORED-2"})
    assert assigned.status_code == 201 and assigned.json()["status"] == "assigned"
    assert assigned.json()["assignedTo"]["id"] == AMY
    # The other settings are untouched; forbid can be set again at run time, and a reset restores it too.
    assert api.admin("POST", "settings", json={"create_assign_without_permission": "forbid"}).json() == DEFAULT_SETTINGS
    assert api.graph("POST", DEVICES, token=token, json={**body, "serialNumber": "ASSIGN-IGNORED-3"}).status_code == 403
    api.admin("POST", "settings", json={"create_assign_without_permission": "ignore", "page_size": 7})
    assert api.admin("POST", "reset").status_code == 204
    assert api.admin("GET", "settings").json() == DEFAULT_SETTINGS
    assert api.graph("POST", DEVICES, token=token, json=body).status_code == 403
    assert not api.requests_log(path="settings")


def test_seeded_create_assign_without_permission_is_the_start_up_setting(suite_material, tmp_path):
    """A seed with ``create_assign_without_permission: ignore``: reset restores ignore, not the built-in forbid."""
    seed = {
        **suite_material["seed"],
        "settings": {**suite_material["seed"].get("settings", {}), "create_assign_without_permission": "ignore"},
    }
    seed_path = tmp_path / "ignore-seed.yml"
    seed_path.write_text(yaml.safe_dump(seed, sort_keys=False), encoding="utf-8")
    proc = simlib.SimProcess(str(seed_path), tmp_path / "sim")
    try:
        with simlib.http_client(proc.info) as http:
            api = simlib.SimApi(proc.info, http, seed)
            assert api.admin("GET", "settings").json() == settings(create_assign_without_permission="ignore")
            api.admin("POST", "settings", json={"create_assign_without_permission": "forbid"})
            api.reset()
            assert api.admin("GET", "settings").json() == settings(create_assign_without_permission="ignore")
    finally:
        assert proc.terminate() == 0


def test_settings_need_json(api):
    response = api.admin("POST", "settings", content=b"page_size=5")
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert api.admin("DELETE", "settings").status_code == 404


def test_start_time_settings(suite_material, tmp_path):
    proc = simlib.SimProcess(
        suite_material["seed_path"], tmp_path / "sim", ["--page-size", "5", "--max-page-size", "3"]
    )
    try:
        with simlib.http_client(proc.info) as http:
            api = simlib.SimApi(proc.info, http, suite_material["seed"])
            assert api.admin("GET", "settings").json() == settings(page_size=5, max_page_size=3)
            assert page_sizes(api) == [3, 3, 3, 3, 1]
            assert page_sizes(api, {"$top": "2"}) == [2] * 6 + [1]
            api.admin("POST", "settings", json={"max_page_size": 999})
            assert page_sizes(api) == [5, 5, 3]
            # Reset restores the start-up settings, not the built-in defaults.
            api.reset()
            assert api.admin("GET", "settings").json() == settings(page_size=5, max_page_size=3)
    finally:
        assert proc.terminate() == 0


@pytest.mark.parametrize(
    "args", [["--max-page-size", "1000"], ["--max-page-size", "0"], ["--page-size", "0"], ["--max-page-size", "many"]]
)
def test_invalid_start_time_settings(suite_material, tmp_path, args):
    with pytest.raises(RuntimeError, match="exited with 2"):
        simlib.SimProcess(suite_material["seed_path"], tmp_path / "sim", args)


# ------------------------------------------------------------------ clock
def test_clock(api):
    response = api.admin("POST", "clock", json={"offset_seconds": 7200})
    assert response.status_code == 200
    body = response.json()
    assert body["offset_seconds"] == 7200 and abs(body["now"] - (time.time() + 7200)) < 5
    assert api.admin_state()["clock_offset"] == 7200
    token = api.token(AUTOMATION)
    assert abs(jwt.decode(token, options={"verify_signature": False})["iat"] - (time.time() + 7200)) < 5
    assert api.admin("POST", "clock", json={"offset_seconds": "soon"}).status_code == 400
    assert api.admin("POST", "clock", content=b"not json").status_code == 400
    assert api.admin("POST", "clock", json={}).json()["offset_seconds"] == 0


# ------------------------------------------------------------------ minting
def test_mint_app_token(api):
    token = api.mint(client_id=REPORTING, roles=["Policy.Read.All"], lifetime=60)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["appid"], claims["roles"], claims["exp"] - claims["iat"], claims["aud"], claims["idtyp"]) == (
        REPORTING,
        ["Policy.Read.All"],
        60,
        GRAPH,
        "app",
    )
    default = jwt.decode(api.mint(client_id=REPORTING), options={"verify_signature": False})
    assert sorted(default["roles"]) == ["Policy.Read.All", "User.Read.All", "UserAuthenticationMethod.Read.All"]


def test_mint_delegated_token(api):
    delegated = jwt.decode(api.mint(client_id=CLI, user=ADELE_UPN), options={"verify_signature": False})
    assert delegated["idtyp"] == "user" and delegated["upn"] == ADELE_UPN
    assert set(delegated["scp"].split()) == {
        "UserAuthenticationMethod.ReadWrite.All",
        "UserAuthenticationMethod.ReadWrite",
        "Policy.ReadWrite.AuthenticationMethod",
        "User.Read.All",
    }


def test_minted_managed_identity_token_matches_the_msi_endpoint(api, sim):
    """A managed identity token minted through the admin API carries the same claims as one from /msi/token."""
    issued = api.client.get(
        sim["managed_identity"]["endpoint"],
        params={"api-version": "2019-08-01", "resource": GRAPH},
        headers={"X-IDENTITY-HEADER": sim["managed_identity"]["header"]},
    ).json()["access_token"]
    minted = api.mint(managed_identity=RUNNER_MI)
    volatile = {"iat", "nbf", "exp", "uti"}
    issued_claims = {
        k: v for k, v in jwt.decode(issued, options={"verify_signature": False}).items() if k not in volatile
    }
    minted_claims = {
        k: v for k, v in jwt.decode(minted, options={"verify_signature": False}).items() if k not in volatile
    }
    assert minted_claims == issued_claims


@pytest.mark.parametrize(
    "data, status",
    [
        ({"client_id": UNKNOWN_ID}, 404),
        ({}, 400),
        ({"managed_identity": UNKNOWN_ID}, 404),
        ({"client_id": CLI, "user": "nobody@contoso.com"}, 404),
    ],
    ids=["unknown-app", "no-client", "unknown-managed-identity", "unknown-user"],
)
def test_mint_errors(api, data, status):
    response = api.admin("POST", "tokens", json=data)
    assert response.status_code == status
    assert "access_token" not in response.text


def test_federated_assertion_minting(api):
    response = api.admin(
        "POST", "federated-assertions", json={"issuer": GH_ISSUER, "subject": GH_SUBJECT, "lifetime": 120}
    )
    claims = jwt.decode(response.json()["assertion"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120 and claims["jti"]
    assert api.admin("POST", "federated-assertions", json={"issuer": GH_ISSUER}).status_code == 400


def test_info_matches_ready_file(api, sim):
    assert api.admin("GET", "info").json() == sim


def _stats(api, **params) -> dict:
    response = api.admin("GET", "stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_report_cpu_time_requests_and_examined_objects(api, sim, client):
    api.default_token()  # minted (an admin call) before counting
    before = _stats(api)
    assert before["pid"] == sim["pid"] and before["uptime_seconds"] > 0 and before["threads"] >= 2
    cpu = before["cpu_seconds"]
    assert cpu["total"] == pytest.approx(cpu["user"] + cpu["system"])
    assert 0 <= cpu["handling"] <= cpu["total"]
    assert set(before["requests"]) == {
        "graph",
        "identity",
        "managed_identity",
        "unknown",
        "batch_items",
        "admin",
        "total",
    }
    assert before["tenant"] == {"tokens": SEED_TOKEN_COUNT, "users": len(api.seed["users"]), "remembered_versions": 0}
    assert "indexes" not in before  # only on request: a full rebuild
    for _attempt in range(3):
        assert api.graph("GET", f"{DEVICES}/{SPARE}").status_code == 200
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"{DEVICES}/{SPARE}"},
            {"id": "2", "method": "GET", "url": "/users"},
        ]
    }
    assert api.graph("POST", "/$batch", json=batch).status_code == 200
    assert client.get(f"{sim['authority']}/v2.0/.well-known/openid-configuration").status_code == 200
    assert client.get(f"{sim['graph_url']}/nowhere").status_code == 404
    after = _stats(api)
    delta = {kind: after["requests"][kind] - before["requests"][kind] for kind in after["requests"]}
    assert delta == {
        "graph": 4,  # three GETs and the $batch
        "batch_items": 2,
        "identity": 1,
        "managed_identity": 0,
        "unknown": 1,
        "admin": 1,  # this GET /_admin/stats
        "total": 6,
    }
    assert after["cpu_seconds"]["total"] >= cpu["total"]
    assert after["cpu_seconds"]["handling"] > cpu["handling"]
    users = len(api.seed["users"])
    assert after["examined"]["tokens"] - before["examined"]["tokens"] == 4
    assert after["examined"]["users"] - before["examined"]["users"] == users
    # Counted since the start: a reset of the tenant leaves them.
    api.reset()
    again = _stats(api, check_indexes="true")
    assert again["requests"]["graph"] == after["requests"]["graph"]
    assert again["examined"] == after["examined"]
    assert again["indexes"] == {"consistent": True, "problems": []}


def test_stats_track_the_tenant(api):
    api.create_device("STATS-0001")
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    assert _stats(api)["tenant"]["tokens"] == SEED_TOKEN_COUNT
    response = api.admin("POST", "stats")
    assert response.status_code == 404
