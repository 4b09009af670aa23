"""How Graph authenticates each request: bearer token validation and the 401 error envelope."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from simlib import AUTOMATION, DEVICES, GRAPH, OTHER_TENANT_ID, RUNNER_MI, assert_graph_error, seed_secrets

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def _assert_401(response, client_request_id, message=None):
    error = assert_graph_error(
        response, 401, "InvalidAuthenticationToken", message, client_request_id=client_request_id
    )
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert set(error) == {"code", "message", "innerError"}
    assert set(error["innerError"]) == {"request-id", "date", "client-request-id"}
    return error


@pytest.mark.parametrize(
    "authorization,message",
    [
        (None, "Access token is empty."),
        ("Bearer", "Access token is empty."),
        ("Basic dXNlcjpwYXNz", "Access token is empty."),
        ("Bearer not-a-jwt", "CompactToken parsing failed"),
        ("Bearer aaa.bbb.ccc", "Access token validation failure."),
    ],
)
def test_missing_or_malformed_token(api, authorization, message):
    crid = str(uuid.uuid4())
    headers = {"client-request-id": crid}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = api.graph("GET", DEVICES, token="", headers=headers)
    _assert_401(response, crid, message)


def test_expired_token_beyond_clock_skew(api):
    crid = str(uuid.uuid4())
    token = api.token(AUTOMATION, lifetime=-400)  # expired 400 s ago: beyond the 300 s skew
    _assert_401(
        api.graph("GET", DEVICES, token=token, headers={"client-request-id": crid}),
        crid,
        "Access token has expired or is not yet valid.",
    )


def test_expired_token_within_clock_skew_is_accepted(api):
    token = api.token(AUTOMATION, lifetime=-200)
    assert api.graph("GET", DEVICES, token=token).status_code == 200


def test_token_not_yet_valid(api):
    """A token minted while the tenant clock ran 2 h ahead is not valid yet once the clock is back."""
    api.set_clock(7200)
    token = api.token(AUTOMATION)
    assert api.graph("GET", DEVICES, token=token).status_code == 200
    api.set_clock(0)
    _assert_401(
        api.graph("GET", DEVICES, token=token, headers={"client-request-id": "c1"}),
        "c1",
        "Access token has expired or is not yet valid.",
    )


def test_token_expires_when_tenant_clock_moves(api):
    token = api.token(AUTOMATION)
    api.set_clock(3599 + 400)
    _assert_401(api.graph("GET", DEVICES, token=token, headers={"client-request-id": "c2"}), "c2")


def test_foreign_signed_token(api):
    crid = str(uuid.uuid4())
    token = api.token(AUTOMATION, foreign=True)
    _assert_401(
        api.graph("GET", DEVICES, token=token, headers={"client-request-id": crid}),
        crid,
        "Access token validation failure.",
    )
    entry = api.requests_log(kind="graph")[-1]
    assert entry["status"] == 401 and entry["reason"] == "invalid signature"


def test_tampered_token(api):
    token = api.token(AUTOMATION, roles=["Policy.Read.All"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["Policy.ReadWrite.AuthenticationMethod"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _assert_401(
        api.graph("POST", DEVICES, token=f"{header}.{forged}.{signature}", json={}, headers={"client-request-id": "t"}),
        "t",
    )


def test_foreign_tenant_token(api):
    crid = str(uuid.uuid4())
    token = api.token(AUTOMATION, tenant_id=OTHER_TENANT_ID)
    _assert_401(api.graph("GET", DEVICES, token=token, headers={"client-request-id": crid}), crid)
    assert api.requests_log(kind="graph")[-1]["reason"] == "foreign tenant"


@pytest.mark.parametrize("resource", ["https://management.azure.com", "https://vault.azure.net", "api://something"])
def test_wrong_audience(api, resource):
    crid = str(uuid.uuid4())
    token = api.token(AUTOMATION, resource=resource)
    _assert_401(api.graph("GET", DEVICES, token=token, headers={"client-request-id": crid}), crid, "Invalid audience")
    assert api.requests_log(kind="graph")[-1]["reason"] == "audience"


@pytest.mark.parametrize("resource", [GRAPH, GRAPH + "/", GRAPH_APP_ID, "https://graph.microsoft.us", "SIM"])
def test_graph_audiences_accepted(api, sim, resource):
    token = api.token(AUTOMATION, resource=sim["graph_url"] if resource == "SIM" else resource)
    assert api.graph("GET", DEVICES, token=token).status_code == 200


def test_managed_identity_token_accepted(api):
    token = api.token(None, managed_identity=RUNNER_MI)
    assert api.graph("GET", DEVICES, token=token).status_code == 200
    assert api.requests_log(kind="graph")[-1]["client_id"] == RUNNER_MI


def test_client_request_id_generated_when_absent(api):
    response = api.graph("GET", DEVICES, token="")
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert error["innerError"]["client-request-id"] == error["innerError"]["request-id"]
    assert response.headers["client-request-id"] == response.headers["request-id"]


def test_successful_response_headers_echo_client_request_id(api):
    crid = str(uuid.uuid4())
    response = api.graph("GET", DEVICES, headers={"client-request-id": crid})
    assert response.status_code == 200
    assert response.headers["client-request-id"] == crid
    uuid.UUID(response.headers["request-id"])
    assert response.headers["content-type"].startswith("application/json;odata.metadata=minimal")
    assert response.headers["odata-version"] == "4.0"


def test_401_body_has_no_secrets(api, suite_material):
    for token in ("", api.token(AUTOMATION, foreign=True)):
        text = api.graph("GET", DEVICES, token=token).text
        for secret in seed_secrets(suite_material["seed"]):
            assert secret not in text
