# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP stack (transport.py and client.py): the Transport's retries and what it sends, Graph's errors,
GraphClient's requests, pages and batches, on scripted Graph servers (fakes.Server, fakes.Batch)."""

from __future__ import annotations

import email.utils
import functools
import pathlib
import re
import socket
import ssl
import threading
import time
import traceback
import uuid
from unittest import mock

import httpx
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import (
    GraphError,
    GraphTransportError,
    WriteOutcomeUnknown,
)
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import (
    BATCHES_AT_ONCE,
    MAX_BATCH,
    GraphClient,
)
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import Destinations
from ansible_collections.tokenops.entra.plugins.module_utils._graph.odata import relative_url
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import Pacer
from ansible_collections.tokenops.entra.plugins.module_utils._graph.transport import (
    COLLECTION_VERSION,
    USER_AGENT,
    Transport,
    error_from_response,
    graph_error,
    tls_context,
)
from ansible_collections.tokenops.entra.tests.unit.plugins import fakes
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    Batch,
    Server,
    Tokens,
    items_of,
    make_transport,
    ok,
    reply,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import GRAPH

URL = GRAPH + "/beta/directory/authenticationMethodDevices/hardwareOathDevices"


# ---------------------------------------------------------------------------------------------------- version
def test_user_agent_and_version_match_galaxy_yml():
    galaxy = pathlib.Path(__file__).resolve().parents[5] / "galaxy.yml"
    version = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy.read_text(encoding="utf-8"), re.MULTILINE)
    assert version is not None
    assert version.group(1) == COLLECTION_VERSION
    assert f"tokenops.entra/{COLLECTION_VERSION}" == USER_AGENT


def test_transport_sends_user_agent_and_does_not_follow_redirects():
    server = Server(reply(302, headers={"Location": "https://evil.example/"}))
    transport = make_transport(server)
    response = transport.send("GET", URL)
    assert response.status_code == 302
    assert len(server.requests) == 1
    assert server.requests[0].headers["User-Agent"] == USER_AGENT
    transport.close()


# ---------------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize("status", [429, 503, 504])
def test_get_retried_honouring_integer_retry_after(status):
    sleeps: list[float] = []
    server = Server(
        reply(status, headers={"Retry-After": "2"}),
        reply(status, headers={"Retry-After": "7"}),
        reply(200, json={"value": []}),
    )
    transport = make_transport(server, sleeps=sleeps)
    response = transport.send("GET", URL)
    assert response.status_code == 200
    assert len(server.requests) == 3
    assert sleeps == [2.0, 7.0]


def test_get_retried_honouring_fractional_retry_after():
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "2.128"}), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps)
    assert transport.send("GET", URL).status_code == 200
    assert sleeps == [2.128]


def test_get_retried_honouring_http_date_retry_after():
    sleeps: list[float] = []
    when = email.utils.formatdate(time.time() + 100, usegmt=True)
    server = Server(reply(503, headers={"Retry-After": when}), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps, max_retry_wait=1000.0)
    assert transport.send("GET", URL).status_code == 200
    assert len(sleeps) == 1
    assert 97.0 < sleeps[0] <= 100.0


def test_retry_after_capped_at_max_retry_wait():
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3600"}), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps, max_retry_wait=12.5)
    assert transport.send("GET", URL).status_code == 200
    assert sleeps == [12.5]


def test_backoff_without_retry_after():
    sleeps: list[float] = []
    server = Server(reply(503), reply(503), reply(503), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps)
    assert transport.send("GET", URL).status_code == 200
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps, start=1):
        assert 0.0 <= wait <= 2 ** (attempt - 1)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
@pytest.mark.parametrize("status", [429, 503, 504])
def test_get_gives_up_after_max_retries_returning_the_last_response(status, max_retries):
    sleeps: list[float] = []
    answers = [reply(status, headers={"Retry-After": "1"}, json={"n": n}) for n in range(max_retries + 1)]
    answers.append(reply(200, json={"never": True}))
    server = Server(*answers)
    transport = make_transport(server, max_retries=max_retries, sleeps=sleeps)
    response = transport.send("GET", URL)
    assert response.status_code == status
    assert response.json() == {"n": max_retries}
    assert len(server.requests) == max_retries + 1
    assert sleeps == [1.0] * max_retries


def test_post_retried_on_429():
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3"}), reply(201, json={"id": "x"}))
    transport = make_transport(server, sleeps=sleeps)
    response = transport.send("POST", URL, json={"serialNumber": "A"})
    assert response.status_code == 201
    assert len(server.requests) == 2
    assert [r.content for r in server.requests] == [b'{"serialNumber":"A"}'] * 2
    assert sleeps == [3.0]


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
@pytest.mark.parametrize("status", [503, 504])
def test_a_write_answered_503_504_is_an_unknown_outcome_after_its_retry_after(method, status):
    """Graph may have acted before it answered 503 or 504: the write is not sent again here but judged by the caller
    from a re-read (verified_write), after the wait Graph asks for; Graph's details are kept."""
    sleeps: list[float] = []
    logs: list[str] = []
    body = {"error": {"code": "serviceNotAvailable", "message": "busy", "innerError": {"request-id": "rid-1"}}}
    server = Server(reply(status, json=body, headers={"Retry-After": "2"}), reply(204))
    transport = make_transport(server, sleeps=sleeps, logs=logs)
    with pytest.raises(WriteOutcomeUnknown) as info:
        transport.send(method, URL + "?$filter=x", json={})
    assert len(server.requests) == 1
    assert sleeps == [2.0]
    assert logs == [f"{method} {URL} answered {status}: it may have taken effect; reading again in 2.0s"]
    assert (info.value.status, info.value.code, info.value.request_id) == (status, "serviceNotAvailable", "rid-1")
    assert info.value.message == (
        f"{method} {URL}: Graph answered {status} serviceNotAvailable: busy (request-id rid-1); it may or may not "
        "have taken effect"
    )


def test_a_write_answered_503_without_retry_after_waits_a_backoff():
    sleeps: list[float] = []
    transport = make_transport(Server(reply(503)), sleeps=sleeps, max_retry_wait=0.5)
    with pytest.raises(WriteOutcomeUnknown):
        transport.send("POST", URL, json={})
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


def test_safe_flag_overrides_method():
    sleeps: list[float] = []
    server = Server(reply(503, headers={"Retry-After": "1"}), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps)
    assert transport.send("POST", URL, safe=True).status_code == 200
    assert len(server.requests) == 2
    server = Server(reply(503, headers={"Retry-After": "1"}), reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps)
    with pytest.raises(WriteOutcomeUnknown):
        transport.send("GET", URL, safe=False)
    assert len(server.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteError])
def test_write_with_lost_answer_raises_write_outcome_unknown_after_one_attempt(method, error):
    sleeps: list[float] = []
    server = Server(error, reply(204))
    transport = make_transport(server, sleeps=sleeps)
    with pytest.raises(WriteOutcomeUnknown) as info:
        transport.send(method, URL + "?$filter=secret", json={})
    assert len(server.requests) == 1
    assert sleeps == []
    assert isinstance(info.value, GraphTransportError)
    assert info.value.message == (
        f"{method} {URL}: the connection failed after the request was sent ({error.__name__}: "
        "scripted failure); it may or may not have taken effect"
    )


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_get_with_lost_answer_is_retried(error):
    sleeps: list[float] = []
    logs: list[str] = []
    server = Server(error, reply(200, json={"ok": 1}))
    transport = make_transport(server, sleeps=sleeps, logs=logs)
    assert transport.send("GET", URL).json() == {"ok": 1}
    assert len(server.requests) == 2
    assert len(sleeps) == 1
    assert logs[0].startswith(f"GET {URL} failed ({error.__name__}: scripted failure); retry 1/3 in ")


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_connect_error_retried_for_any_method(method):
    sleeps: list[float] = []
    server = Server(httpx.ConnectError, httpx.ConnectError, reply(200, json={}))
    transport = make_transport(server, sleeps=sleeps)
    assert transport.send(method, URL, json={}).status_code == 200
    assert len(server.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("max_retries", [0, 2, 4])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_error_gives_up_after_max_retries(method, max_retries):
    sleeps: list[float] = []
    server = Server(httpx.ConnectError)
    transport = make_transport(server, max_retries=max_retries, sleeps=sleeps)
    with pytest.raises(GraphTransportError) as info:
        transport.send(method, URL + "?$filter=serialNumber eq 'x'")
    assert not isinstance(info.value, WriteOutcomeUnknown)
    assert len(server.requests) == max_retries + 1
    assert len(sleeps) == max_retries
    assert (
        info.value.message
        == f"{method} {URL}: gave up after {max_retries} retries: could not connect (scripted failure)"
    )


def test_tls_verification_failure_is_not_retried_and_explained():
    def handler(request):
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate", request=request
        )

    server = Server(handler)
    sleeps: list[float] = []
    transport = make_transport(server, sleeps=sleeps)
    with pytest.raises(GraphTransportError) as info:
        transport.send("GET", URL)
    assert len(server.requests) == 1
    assert sleeps == []
    assert "TLS certificate verification failed" in info.value.message
    assert "Set ca_path" in info.value.message


def test_same_client_request_id_and_retry_attempt_header():
    server = Server(
        reply(429, headers={"Retry-After": "0"}),
        httpx.ReadError,
        reply(503, headers={"Retry-After": "0"}),
        reply(200, json={}),
    )
    transport = make_transport(server, max_retries=5)
    transport.send("GET", URL, headers={"Authorization": "Bearer t"})
    assert len(server.requests) == 4
    ids = {r.headers["client-request-id"] for r in server.requests}
    assert len(ids) == 1
    assert uuid.UUID(ids.pop()).version == 4
    assert [r.headers.get("Retry-Attempt") for r in server.requests] == [None, "1", "2", "3"]
    assert all(r.headers["Authorization"] == "Bearer t" for r in server.requests)
    assert all(r.headers["User-Agent"] == USER_AGENT for r in server.requests)


def test_given_client_request_id_is_kept_and_ids_differ_between_sends():
    server = Server(reply(200, json={}))
    transport = make_transport(server)
    given = {"client-request-id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"}
    transport.send("GET", URL, headers=given)
    transport.send("GET", URL)
    transport.send("GET", URL)
    assert server.requests[0].headers["client-request-id"] == "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"
    assert given == {"client-request-id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"}  # the caller's dict is untouched
    assert server.requests[1].headers["client-request-id"] != server.requests[2].headers["client-request-id"]


def test_tls_context():
    assert tls_context(False, None) is False
    assert isinstance(tls_context(True, None), ssl.SSLContext)


# ---------------------------------------------------------------------------------------------------- errors
def test_error_from_response_reads_graphs_envelope():
    envelope = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {
                "date": "2026-11-21T22:42:25",
                "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2",
                "client-request-id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10",
            },
        }
    }
    response = reply(403, json=envelope, headers={"request-id": "header-id", "date": "Sat, 21 Nov 2026 22:42:25 GMT"})
    error = error_from_response(response, "Looking up token TOTP123456")
    assert isinstance(error, GraphError)
    assert not isinstance(error, GraphTransportError)
    assert error.status == 403
    assert error.code == "Authorization_RequestDenied"
    assert error.graph_message == "Insufficient privileges to complete the operation."
    assert error.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"
    assert error.client_request_id == "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"
    assert error.date == "2026-11-21T22:42:25"
    assert (
        error.message
        == str(error)
        == (
            "Looking up token TOTP123456: Graph answered 403 Authorization_RequestDenied: Insufficient privileges to "
            "complete the operation. (request-id 94fb3b52-452a-4535-a601-69e0a90e3aa2, date 2026-11-21T22:42:25)"
        )
    )
    assert error.to_result() == {
        "graph_error": {
            "status": 403,
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "request_id": "94fb3b52-452a-4535-a601-69e0a90e3aa2",
            "client_request_id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10",
            "date": "2026-11-21T22:42:25",
        }
    }


def test_error_from_response_lower_case_innererror_and_details():
    response = reply(
        400,
        json={
            "error": {
                "code": "badRequest",
                "message": "Invalid verification code.",
                "details": [{"code": "x", "message": "y"}],
                "innererror": {"request-id": "rid", "date": "2026-01-01T00:00:00"},
            }
        },
    )
    error = error_from_response(response, "activate token T for amy")
    assert error.request_id == "rid"
    assert error.details == [{"code": "x", "message": "y"}]
    assert error.message == (
        "activate token T for amy: Graph answered 400 badRequest: Invalid verification code. "
        "(request-id rid, date 2026-01-01T00:00:00)"
    )
    assert error.to_result()["graph_error"]["details"] == [{"code": "x", "message": "y"}]


def test_error_from_response_without_a_date_names_only_the_request_id():
    error = error_from_response(reply(502, content=b"", headers={"request-id": "rid-h"}), "Looking up user amy")
    assert error.message == "Looking up user amy: Graph answered 502 Bad Gateway (request-id rid-h)"


def test_error_from_response_without_json_body():
    response = reply(
        502,
        content=b"<html>Bad gateway</html>",
        headers={"request-id": "rid-h", "client-request-id": "cid-h", "date": "Sat, 21 Nov 2026 22:42:25 GMT"},
    )
    error = error_from_response(response, "Looking up user amy")
    assert (error.status, error.code, error.graph_message, error.request_id, error.client_request_id, error.date) == (
        502,
        None,
        None,
        "rid-h",
        "cid-h",
        None,
    )
    assert error.message == (
        "Looking up user amy: Graph answered 502 Bad Gateway (request-id rid-h, date Sat, 21 Nov 2026 22:42:25 GMT)"
    )


def test_error_from_response_without_any_id():
    error = error_from_response(
        reply(404, json={"error": {"code": "itemNotFound", "message": "Not found"}}), "Reading x"
    )
    assert error.message == "Reading x: Graph answered 404 itemNotFound: Not found"
    assert error.to_result() == {"graph_error": {"status": 404, "code": "itemNotFound", "message": "Not found"}}


def test_error_from_response_429_says_it_is_still_throttled():
    response = reply(
        429,
        json={"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
        headers={"Retry-After": "2.128"},
    )
    error = error_from_response(response, "Listing tokens")
    assert error.message == (
        "Listing tokens: Graph answered 429 TooManyRequests: Please retry again later.; still "
        "throttled after the allowed retries (Retry-After: 2.128). Run again later, or raise "
        "max_retries / max_retry_wait"
    )


# ---------------------------------------------------------------------------------------------------- GraphClient
def make_client(server, **kwargs):
    tokens = Tokens()
    transport = make_transport(server)
    return GraphClient(transport, GRAPH + "/", tokens, **kwargs), tokens


def test_request_builds_the_url_and_headers():
    server = Server(reply(200, json={"id": "u1"}))
    client, tokens = make_client(server)
    body = client.request(
        "GET", "/users/amy%40contoso.com", action="Looking up user", params={"$select": "id,userPrincipalName"}
    )
    assert body == {"id": "u1"}
    request = server.requests[0]
    assert request.method == "GET"
    assert request.url.raw_path == b"/beta/users/amy%40contoso.com?%24select=id%2CuserPrincipalName"
    assert request.url.params["$select"] == "id,userPrincipalName"
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Accept"] == "application/json"
    assert tokens.calls == [False]


def test_request_sends_json():
    server = Server(reply(201, json={"id": "m1"}))
    client, _tokens = make_client(server, version="v1.0")
    assert client.request("POST", "/me/x", action="a", json={"device": {"id": "d"}}, expected=(201, 200)) == {
        "id": "m1"
    }
    assert server.requests[0].url == httpx.URL(GRAPH + "/v1.0/me/x")
    assert server.requests[0].content == b'{"device":{"id":"d"}}'


@pytest.mark.parametrize(
    "status, expected, body",
    [
        (204, (204,), None),
        (200, (204, 200), None),  # empty 200
        (201, (201, 200), {"id": "x"}),
    ],
)
def test_request_expected_statuses(status, expected, body):
    server = Server(reply(status, json=body) if body is not None else httpx.Response(status))
    client, _tokens = make_client(server)
    assert client.request("POST", "/x", action="a", expected=expected) == body


def test_request_unexpected_status_raises_naming_the_action():
    server = Server(reply(200, json={"ok": True}))
    client, _tokens = make_client(server)
    with pytest.raises(GraphError) as info:
        client.request("DELETE", "/x", action="unassign token T for amy", expected=(204,))
    assert info.value.status == 200
    assert info.value.message == "unassign token T for amy: Graph answered 200 OK"


def test_request_body_that_is_not_json():
    server = Server(reply(200, content=b"<html/>"))
    client, _tokens = make_client(server)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/x", action="Reading x")
    assert info.value.message == "Reading x: Graph answered 200 with a body that is not JSON"


def test_401_refreshes_once_and_resends():
    server = Server(
        reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        reply(200, json={"id": "u"}),
    )
    client, tokens = make_client(server)
    assert client.request("GET", "/users/u", action="a") == {"id": "u"}
    assert tokens.calls == [False, True]
    assert [r.headers["Authorization"] for r in server.requests] == ["Bearer token-1", "Bearer token-2"]


def test_401_twice_fails_after_one_refresh():
    server = Server(reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}))
    client, tokens = make_client(server)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/users/u", action="Looking up user u")
    assert info.value.status == 401
    assert info.value.message == "Looking up user u: Graph answered 401 InvalidAuthenticationToken: expired"
    assert tokens.calls == [False, True]
    assert len(server.requests) == 2


def test_401_without_refresh_fails_at_once():
    server = Server(
        reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}), reply(200, json={})
    )
    client, tokens = make_client(server, can_refresh=False)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/users/u", action="a")
    assert info.value.status == 401
    assert tokens.calls == [False]
    assert len(server.requests) == 1


def test_pages_follow_next_link_verbatim():
    link2 = (
        GRAPH + "/beta/directory/authenticationMethodDevices/hardwareOathDevices?$top=2&$skiptoken=RFNwdAIAAQAA%3D%3D"
    )
    link3 = "https://graph.microsoft.com/beta/directory/authenticationMethodDevices/hardwareOathDevices?%24skiptoken=X%2FY%2BZ"
    server = Server(
        reply(200, json={"value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": link2}),
        reply(200, json={"value": [{"id": "3"}, {"id": "4"}], "@odata.nextLink": link3}),
        reply(200, json={"value": [{"id": "5"}]}),
        reply(500),
    )
    client, _tokens = make_client(server)
    items = list(
        items_of(
            client,
            "/directory/authenticationMethodDevices/hardwareOathDevices",
            action="Listing tokens",
            params={"$top": "2", "$filter": "status eq 'available'"},
        )
    )
    assert [i["id"] for i in items] == ["1", "2", "3", "4", "5"]
    assert len(server.requests) == 3
    assert server.requests[0].url.params["$filter"] == "status eq 'available'"
    assert str(server.requests[1].url) == link2
    assert str(server.requests[2].url) == link3
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in server.requests)


def test_pages_error_on_a_later_page():
    server = Server(
        reply(200, json={"value": [{"id": "1"}], "@odata.nextLink": GRAPH + "/beta/x?$skiptoken=a"}),
        reply(400, json={"error": {"code": "badRequest", "message": "bad skiptoken"}}),
    )
    client, _tokens = make_client(server)
    pages = items_of(client, "/x", action="Listing tokens")
    assert next(pages) == {"id": "1"}
    with pytest.raises(GraphError) as info:
        next(pages)
    assert info.value.message == "Listing tokens: Graph answered 400 badRequest: bad skiptoken"


def test_get_is_a_request():
    server = Server(reply(200, json={"value": []}))
    client, _tokens = make_client(server)
    assert client.get("/x", action="a", params={"$top": "1"}) == {"value": []}
    assert server.requests[0].method == "GET"


# ------------------------------------------------------------------------------------------------ graph_error and pause
def test_graph_error_from_an_answers_parts():
    body = {
        "error": {
            "code": "Request_ResourceNotFound",
            "message": "Resource 'x' does not exist.",
            "innerError": {"request-id": "rid", "client-request-id": "cid", "date": "2026-01-01T00:00:00"},
        }
    }
    error = graph_error("Reading users (/users/x)", 404, {"request-id": "header-id"}, body)
    assert (error.status, error.code, error.graph_message, error.request_id, error.client_request_id, error.date) == (
        404,
        "Request_ResourceNotFound",
        "Resource 'x' does not exist.",
        "rid",
        "cid",
        "2026-01-01T00:00:00",
    )
    assert error.message == (
        "Reading users (/users/x): Graph answered 404 Request_ResourceNotFound: Resource 'x' does not "
        "exist. (request-id rid, date 2026-01-01T00:00:00)"
    )


def test_graph_error_without_a_body_or_reason():
    error = graph_error("Reading x", 500, {}, None)
    assert error.message == "Reading x: Graph answered 500"
    assert (error.code, error.request_id) == (None, None)
    error = graph_error(
        "Reading x", 502, {"request-id": "rid", "date": "Sat, 21 Nov 2026 22:42:25 GMT"}, "<html/>", "Bad Gateway"
    )
    assert (
        error.message
        == "Reading x: Graph answered 502 Bad Gateway (request-id rid, date Sat, 21 Nov 2026 22:42:25 GMT)"
    )


def test_graph_error_429_with_lower_case_headers():
    error = graph_error(
        "Reading x", 429, {"retry-after": "7"}, {"error": {"code": "TooManyRequests", "message": "Slow down"}}
    )
    assert error.message == (
        "Reading x: Graph answered 429 TooManyRequests: Slow down; still throttled after the allowed "
        "retries (Retry-After: 7). Run again later, or raise max_retries / max_retry_wait"
    )


def test_pause_waits_retry_after_capped_and_logs():
    sleeps: list[float] = []
    logs: list[str] = []
    transport = make_transport(Server(reply(200)), max_retries=4, max_retry_wait=10.0, sleeps=sleeps, logs=logs)
    transport.pause(1, "2.5", "2 batched request(s) answered 429/503/504")
    transport.pause(2, "3600", "why")
    transport.pause(3, None, "backoff")
    assert sleeps[:2] == [2.5, 10.0]
    assert 0.0 <= sleeps[2] <= 4.0
    assert logs[:2] == ["2 batched request(s) answered 429/503/504; retry 1/4 in 2.5s", "why; retry 2/4 in 10.0s"]
    assert logs[2].startswith("backoff; retry 3/4 in ")


# ---------------------------------------------------------------------------------------------------- get_many ($batch)
def batch_client(batch, **kwargs):
    sleeps: list[float] = []
    logs: list[str] = []
    transport = make_transport(Server(batch), sleeps=sleeps, logs=logs, **kwargs)
    return GraphClient(transport, GRAPH, lambda force: "t"), sleeps, logs


def test_get_many_one_round_trip_results_in_order():
    batch = Batch(lambda number, item_id, url: ok({"url": url}))
    client, sleeps, _logs = batch_client(batch)
    requests = [("/users/a", {"$select": "id"}), ("/users/b/authentication/hardwareOathMethods", None), ("/me", {})]
    results = client.get_many(requests, action="Reading users")
    assert results == [
        {"url": "/users/a?$select=id"},
        {"url": "/users/b/authentication/hardwareOathMethods"},
        {"url": "/me"},
    ]
    assert batch.posts == [
        [
            {"id": "0", "method": "GET", "url": "/users/a?$select=id"},
            {"id": "1", "method": "GET", "url": "/users/b/authentication/hardwareOathMethods"},
            {"id": "2", "method": "GET", "url": "/me"},
        ]
    ]
    request = batch.requests[0]
    assert (request.method, request.headers["Authorization"], request.headers["Content-Type"]) == (
        "POST",
        "Bearer t",
        "application/json",
    )
    assert sleeps == []


def test_get_many_of_nothing_sends_nothing():
    batch = Batch(lambda number, item_id, url: ok({}))
    client, _sleeps, _logs = batch_client(batch)
    assert client.get_many([], action="a") == []
    assert batch.requests == []


def test_get_many_at_most_twenty_per_round_trip_sent_side_by_side():
    assert MAX_BATCH == 20 and BATCHES_AT_ONCE >= 3
    together = threading.Barrier(3, timeout=10)  # broken unless the three round trips are in flight at once

    def item(number, item_id, url):
        if item_id in ("0", "20", "40"):
            together.wait()
        return ok({"n": int(url[len("/users/u") :])})

    batch = Batch(item)
    client, _sleeps, _logs = batch_client(batch)
    results = client.get_many([(f"/users/u{n}", None) for n in range(45)], action="a")
    assert sorted([item["id"] for item in p] for p in batch.posts) == [
        [str(n) for n in range(20)],
        [str(n) for n in range(20, 40)],
        [str(n) for n in range(40, 45)],
    ]
    assert results == [{"n": n} for n in range(45)]


def test_get_many_failed_item_is_a_graph_error_in_its_place():
    denied = {
        "status": 403,
        "headers": {"Content-Type": "application/json", "Date": "Sat, 21 Nov 2026 22:42:25 GMT"},
        "body": {
            "error": {
                "code": "Authorization_RequestDenied",
                "message": "Insufficient privileges.",
                "innerError": {"request-id": "rid-1", "client-request-id": "cid-1", "date": "2026-11-21T22:42:25"},
            }
        },
    }
    missing = {"status": 404, "headers": {"Request-Id": "rid-2", "Date": "Sat, 21 Nov 2026 22:42:26 GMT"}, "body": {}}
    batch = Batch(lambda number, item_id, url: {"0": ok({"value": []}), "1": denied, "2": missing}[item_id])
    client, sleeps, _logs = batch_client(batch)
    results = client.get_many(
        [("/users", {"$top": "1"}), ("/users/a", None), ("/users/b", None)], action="Reading users"
    )
    assert results[0] == {"value": []}
    assert isinstance(results[1], GraphError) and isinstance(results[2], GraphError)
    assert (results[1].status, results[1].code, results[1].request_id, results[1].client_request_id) == (
        403,
        "Authorization_RequestDenied",
        "rid-1",
        "cid-1",
    )
    assert results[1].message == (
        "Reading users (/users/a): Graph answered 403 Authorization_RequestDenied: Insufficient "
        "privileges. (request-id rid-1, date 2026-11-21T22:42:25)"
    )
    assert (
        results[2].message
        == "Reading users (/users/b): Graph answered 404 (request-id rid-2, date Sat, 21 Nov 2026 22:42:26 GMT)"
    )
    assert len(batch.posts) == 1
    assert sleeps == []


def test_get_many_item_missing_from_the_answer_is_a_500():
    batch = Batch(lambda number, item_id, url: None if item_id == "1" else ok({"id": item_id}))
    client, _sleeps, _logs = batch_client(batch)
    results = client.get_many([("/a", None), ("/b", None)], action="Reading")
    assert results[0] == {"id": "0"}
    assert isinstance(results[1], GraphError)
    assert results[1].status == 500
    assert results[1].message == "Reading (/b): Graph answered 500"


def test_get_many_throttled_items_are_sent_again_after_their_retry_after():
    def items(number, item_id, url):
        if number == 0 and item_id == "1":
            return {"status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"code": "TooManyRequests"}}}
        if number == 0 and item_id == "2":
            return {"status": 503, "headers": {"retry-after": "1"}, "body": None}
        if number == 0 and item_id == "3":
            return {"status": 504, "body": None}
        return ok({"id": item_id, "post": number})

    batch = Batch(items)
    client, sleeps, logs = batch_client(batch)
    results = client.get_many([("/a", None), ("/b", None), ("/c", None), ("/d", None), ("/e", None)], action="Reading")
    assert results == [
        {"id": "0", "post": 0},
        {"id": "1", "post": 1},
        {"id": "2", "post": 1},
        {"id": "3", "post": 1},
        {"id": "4", "post": 0},
    ]
    assert [[item["url"] for item in p] for p in batch.posts] == [["/a", "/b", "/c", "/d", "/e"], ["/b", "/c", "/d"]]
    assert [[item["id"] for item in p] for p in batch.posts][1] == ["1", "2", "3"]
    assert sleeps == [3.0]  # the longest Retry-After of the items sent again
    assert logs == ["3 batched request(s) answered 429/503/504; retry 1/3 in 3.0s"]


def test_get_many_longest_retry_after_whatever_the_item_order():
    waits = {"0": "1", "1": "4.5", "2": "2"}
    batch = Batch(
        lambda number, item_id, url: (
            {"status": 429, "headers": {"Retry-After": waits[item_id]}} if number == 0 else ok({})
        )
    )
    client, sleeps, _logs = batch_client(batch)
    assert client.get_many([("/a", None), ("/b", None), ("/c", None)], action="a") == [{}, {}, {}]
    assert sleeps == [4.5]


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_get_many_gives_up_after_max_retries(max_retries):
    throttled = {
        "status": 429,
        "headers": {"Retry-After": "2"},
        "body": {
            "error": {
                "code": "TooManyRequests",
                "message": "Too many requests",
                "innerError": {"request-id": "rid", "date": "2026-01-01T00:00:00"},
            }
        },
    }
    batch = Batch(lambda number, item_id, url: throttled if item_id == "0" else ok({"n": number}))
    client, sleeps, _logs = batch_client(batch, max_retries=max_retries)
    results = client.get_many([("/users", {"$top": "999"}), ("/me", None)], action="Listing users")
    # The first round got /me answered (progress), so max_retries rounds without any answer follow it.
    retries = max_retries + 1 if max_retries else 0
    assert len(batch.posts) == retries + 1
    assert [[item["id"] for item in p] for p in batch.posts] == [["0", "1"]] + [["0"]] * retries
    assert sleeps == [2.0] * retries
    assert results[1] == {"n": 0}
    assert isinstance(results[0], GraphError)
    assert results[0].status == 429
    assert results[0].message == (
        "Listing users (/users): Graph answered 429 TooManyRequests: Too many requests (request-id rid, date "
        "2026-01-01T00:00:00); still throttled after the allowed retries (Retry-After: 2). Run again later, or raise "
        "max_retries / max_retry_wait"
    )


def test_get_many_paces_itself_through_a_rate_limit():
    """A rate limit that lets one item through per round: every round is progress, so no budget runs out."""
    answered: list[str] = []

    def one_per_round(number, item_id, url):
        if len(answered) < number + 1:
            answered.append(item_id)
            return ok({"id": item_id})
        return {"status": 429, "headers": {"Retry-After": "2"}}

    batch = Batch(one_per_round)
    client, sleeps, _logs = batch_client(batch, max_retries=2)
    results = client.get_many([(f"/users/u{i}", None) for i in range(8)], action="Reading users")
    assert results == [{"id": str(i)} for i in range(8)]
    assert len(batch.posts) == 8
    assert sleeps == [2.0] * 7


def test_get_many_first_pages_only():
    link = GRAPH + "/beta/users?$skiptoken=a"
    batch = Batch(lambda number, item_id, url: ok({"value": [{"id": "u1"}], "@odata.nextLink": link}))
    client, _sleeps, _logs = batch_client(batch)
    assert client.get_many([("/users", None)], action="a", follow_pages=False) == [
        {"value": [{"id": "u1"}], "@odata.nextLink": link}
    ]
    assert len(batch.posts) == 1


def test_get_many_follows_the_next_link_of_a_collection():
    link2 = GRAPH + "/beta/users?$filter=id%20in%20('a')&$skiptoken=RFNwdAIAAQAA%3D%3D"
    link3 = GRAPH + "/beta/users?%24skiptoken=X%2FY%2BZ"
    first = {"@odata.context": "ctx", "value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": link2}
    batch = Batch(
        lambda number, item_id, url: ok(first) if item_id == "0" else ok({"id": "me"}),
        pages={
            link2: {"@odata.context": "ctx", "value": [{"id": "3"}], "@odata.nextLink": link3},
            link3: {"@odata.context": "ctx", "value": [{"id": "4"}]},
        },
    )
    client, _sleeps, _logs = batch_client(batch)
    results = client.get_many([("/users", {"$filter": "id in ('a')"}), ("/me", None)], action="a")
    assert results == [
        {"@odata.context": "ctx", "value": [{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4"}]},
        {"id": "me"},
    ]
    assert batch.gets == [link2, link3]
    assert [r.method for r in batch.requests] == ["POST", "GET", "GET"]
    assert all(r.headers["Authorization"] == "Bearer t" for r in batch.requests)


def test_get_many_error_on_a_later_page_raises():
    link = GRAPH + "/beta/users?$skiptoken=a"
    server = Server(
        reply(
            200,
            json={"responses": [{"id": "0", "status": 200, "body": {"value": [{"id": "1"}], "@odata.nextLink": link}}]},
        ),
        reply(400, json={"error": {"code": "badRequest", "message": "bad skiptoken"}}),
    )
    client = GraphClient(make_transport(server), GRAPH, lambda force: "t")
    with pytest.raises(GraphError) as info:
        client.get_many([("/users", None)], action="Listing users")
    assert info.value.message == "Listing users: Graph answered 400 badRequest: bad skiptoken"


def test_get_many_batch_post_itself_is_retried_as_a_read():
    sleeps: list[float] = []
    server = Server(
        reply(503, headers={"Retry-After": "1"}),
        reply(504, headers={"Retry-After": "2"}),
        reply(200, json={"responses": [{"id": "0", "status": 200, "body": {"id": "x"}}]}),
    )
    client = GraphClient(make_transport(server, sleeps=sleeps), GRAPH, lambda force: "t")
    assert client.get_many([("/me", None)], action="a") == [{"id": "x"}]
    assert [r.method for r in server.requests] == ["POST"] * 3
    assert sleeps == [1.0, 2.0]


def test_get_many_batch_post_failing_raises():
    server = Server(reply(400, json={"error": {"code": "BadRequest", "message": "Invalid batch payload"}}))
    client = GraphClient(make_transport(server), GRAPH, lambda force: "t")
    with pytest.raises(GraphError) as info:
        client.get_many([("/me", None)], action="Reading users")
    assert info.value.message == "Reading users: Graph answered 400 BadRequest: Invalid batch payload"


@pytest.mark.parametrize(
    "path, params, expected",
    [
        ("/me", None, "/me"),
        ("/me", {}, "/me"),
        (
            "/users",
            {"$select": "id,userPrincipalName,displayName,userType"},
            "/users?$select=id,userPrincipalName,displayName,userType",
        ),
        ("/users", {"$filter": "id in ('a', 'b')", "$top": "999"}, "/users?$filter=id%20in%20('a',%20'b')&$top=999"),
        (
            "/directory/authenticationMethodDevices/hardwareOathDevices",
            {"$filter": "serialNumber in ('A&B', 'C D', 'E#F', 'x/y', 'O''Brien', '50%+1=?') and assignedTo/id eq 'u'"},
            "/directory/authenticationMethodDevices/hardwareOathDevices?$filter=serialNumber%20in%20('A%26B',%20'C%20D',%20"
            "'E%23F',%20'x%2Fy',%20'O''Brien',%20'50%25%2B1%3D%3F')%20and%20assignedTo%2Fid%20eq%20'u'",
        ),
        ("/users/amy.masters%40contoso.com", {"$select": "id"}, "/users/amy.masters%40contoso.com?$select=id"),
    ],
)
def test_batch_item_url_encoding(path, params, expected):
    batch = Batch(lambda number, item_id, url: ok({}))
    client, _sleeps, _logs = batch_client(batch)
    client.get_many([(path, params)], action="a")
    assert batch.posts[0][0]["url"] == expected
    assert relative_url(path, params) == expected


# ---------------------------------------------------------------------------------------------------- pacer
class PacerClock:
    """The pacer's time: its sleeps move it on at once and are recorded."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def paced(quota="100/10"):
    """A pacer on a fake clock, without its margin (test_pacer.py checks that): these tests count whole tokens."""
    clock = PacerClock()
    return Pacer.from_quota(quota, clock=clock, sleep=clock.sleep, margin=0.0), clock


def paced_transport(handler, pacer, **kwargs):
    """fakes.make_transport, with ``pacer`` given to the Transport's constructor."""
    with mock.patch.object(fakes, "Transport", functools.partial(Transport, pacer=pacer)):
        return make_transport(handler, **kwargs)


def test_transport_has_no_pacer_unless_given():
    assert make_transport(Server(reply(200))).pacer is None
    pacer, _clock = paced()
    assert paced_transport(Server(reply(200)), pacer).pacer is pacer


def test_paced_writes_take_a_token_each_reads_and_batches_of_reads_none():
    pacer, clock = paced("2/10")  # 2 tokens, one more every 5 s
    sleeps: list[float] = []
    server = Server(reply(200, json={"responses": [{"id": "0", "status": 200, "body": {}}]}))
    transport = paced_transport(server, pacer, sleeps=sleeps)
    client = GraphClient(transport, GRAPH, lambda force: "t")
    for _number in range(3):
        transport.send("GET", URL)
        client.get_many([("/me", None)], action="a")
    assert clock.sleeps == []
    assert pacer.stats()["writes"] == 0
    transport.send("POST", URL, json={})
    client.request("PATCH", "/x", action="a", json={})
    transport.send("DELETE", URL, safe=True)  # safe to repeat, still a write
    assert clock.sleeps == [5.0]
    client.request("POST", "/$batch", action="a", json={}, writes=2)  # a batch of two writes
    assert clock.sleeps == [5.0, 10.0]
    assert (pacer.stats()["writes"], sleeps) == (5, [])


# How Graph's identity service answers a 429 of one of its quotas (the simulator answers the same).
WRITE_QUOTA = {
    "x-ms-throttle-scope": "Tenant_Application/ReadWrite/app/tenant",
    "x-ms-throttle-information": "WriteLimitExceeded",
}
READ_QUOTA = {
    "x-ms-throttle-scope": "Tenant_Application/Read/app/tenant",
    "x-ms-throttle-information": "ResourceUnitLimitExceeded",
}
METHODS_QUOTA = {
    "x-ms-throttle-scope": "Tenant_Application/ReadWrite/app/tenant",
    "x-ms-throttle-information": "ResourceUnitLimitExceeded",
}
# The same without x-ms-throttle-information (the simulator's throttle_information: omitted).
METHODS_QUOTA_BARE = {"x-ms-throttle-scope": "Tenant_Application/ReadWrite/app/tenant"}
METHODS_URL = GRAPH + "/beta/users/u1/authentication/hardwareOathMethods/activate"


def test_paced_write_quota_429_pauses_everyone_learns_the_rate_and_waits_once():
    pacer, clock = paced("100/10")
    sleeps: list[float] = []
    logs: list[str] = []
    server = Server(reply(429, headers={"Retry-After": "4", **WRITE_QUOTA}), reply(201, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps, logs=logs)
    assert transport.send("POST", URL, json={}).status_code == 201
    assert len(server.requests) == 2
    assert clock.sleeps == [4.0]  # the pacer's pause...
    assert sleeps == []  # ...and not the transport's own sleep on top
    assert logs == [f"POST {URL} answered 429; retry 1/3 in 4.0s"]
    stats = pacer.stats()
    assert (stats["pauses"], stats["paused"], stats["lowered"], stats["writes"]) == (1, 4.0, 1, 2)
    assert stats["rate"] == 1 / 4  # one write, then 4 s asked for


@pytest.mark.parametrize("limit", ["ReadWrite", "Write"])
def test_a_write_quota_429_is_known_by_its_scope_alone(limit):
    pacer, _clock = paced()
    transport = paced_transport(Server(reply(200)), pacer)
    transport.throttled({"Retry-After": "6", "x-ms-throttle-scope": f"Tenant_Application/{limit}/a/t"}, write=True)
    assert (pacer.pause_left(), pacer.stats()["lowered"]) == (6.0, 0)  # nothing written yet: nothing to learn


def test_a_bare_read_write_429_to_users_methods_paces_their_lane_and_stalls_no_write():
    pacer, _clock = paced()
    transport = paced_transport(Server(reply(200)), pacer)
    transport.throttled({"Retry-After": "6", **METHODS_QUOTA_BARE}, write=True, lane="methods")
    assert pacer.pause_left() == 0.0 and pacer.stats()["lowered"] == 0  # not the write quota
    assert pacer.acquire(write=True) == 0.0  # a write of the directory lane goes at once


def test_paced_429_without_a_scope_is_waited_by_its_request_alone():
    pacer, clock = paced()
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3"}), reply(201, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps)
    assert transport.send("POST", URL, json={}).status_code == 201
    assert (sleeps, clock.sleeps) == ([3.0], [])  # its own sleep; no pause for the others
    stats = pacer.stats()
    assert (stats["pauses"], stats["lowered"], stats["rate"], pacer.pause_left()) == (0, 0, 10.0, 0.0)


def test_paced_read_quota_429_paces_its_lane_capped_like_the_retry():
    pacer, clock = paced()
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3600", **READ_QUOTA}), reply(200, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps, max_retry_wait=12.5)
    assert transport.send("GET", URL).status_code == 200
    assert (clock.sleeps, sleeps) == ([12.5], [])
    assert pacer.rate == 10.0  # not the write quota: its rate is untouched
    assert pacer.acquire(write=False, lane="methods") == 0.0  # another lane goes on


def test_paced_last_429_still_pauses_the_next_request():
    pacer, clock = paced()
    server = Server(reply(429, headers={"Retry-After": "7", **WRITE_QUOTA}), reply(200, json={}))
    transport = paced_transport(server, pacer, max_retries=0)
    assert transport.send("POST", URL, json={}).status_code == 429
    assert pacer.pause_left() == 7.0
    assert transport.send("GET", URL).status_code == 200
    assert clock.sleeps == [7.0]


def test_paced_503_is_not_a_quota():
    pacer, clock = paced()
    sleeps: list[float] = []
    transport = paced_transport(Server(reply(503, headers={"Retry-After": "5"})), pacer, sleeps=sleeps)
    with pytest.raises(WriteOutcomeUnknown):  # a write is not sent again after a 503: judged from a re-read
        transport.send("POST", URL, json={})
    assert (pacer.pause_left(), pacer.stats()["lowered"], pacer.rate) == (0.0, 0, 10.0)
    assert (clock.sleeps, sleeps) == ([], [5.0])  # its own wait, no pause of the others


def test_a_scoped_503_to_a_write_pauses_but_teaches_no_write_rate():
    pacer, clock = paced()
    sleeps: list[float] = []
    transport = paced_transport(Server(reply(503, headers={"Retry-After": "5", **WRITE_QUOTA})), pacer, sleeps=sleeps)
    with pytest.raises(WriteOutcomeUnknown):  # a write is not sent again after a 503: judged from a re-read
        transport.send("POST", URL, json={})
    # The pause everyone shares was set (and waited, before the re-read); the write rate was not lowered.
    assert (clock.sleeps, sleeps, pacer.stats()["lowered"], pacer.rate) == ([5.0], [], 0, 10.0)


def test_a_429_while_others_get_answers_uses_up_no_retry():
    pacer, _clock = paced()
    sleeps: list[float] = []
    logs: list[str] = []

    def throttled_while_others_are_served(request):
        pacer.answered("directory", throttled=False)  # another thread's request was answered meanwhile
        return reply(429, headers={"Retry-After": "1"})

    server = Server(*[throttled_while_others_are_served] * 5, reply(201, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps, logs=logs, max_retries=1)
    assert transport.send("POST", URL, json={}).status_code == 201
    assert len(server.requests) == 6 and sleeps == [1.0] * 5
    assert logs[-1] == f"POST {URL} answered 429; retry 5 in 1.0s (0/1 counted: others get answers)"
    assert pacer.progress() == 6  # five others and its own


def test_a_429_while_nothing_else_gets_answers_uses_up_a_retry():
    pacer, _clock = paced()
    server = Server(reply(429, headers={"Retry-After": "1"}))
    transport = paced_transport(server, pacer, max_retries=2)
    assert transport.send("POST", URL, json={}).status_code == 429
    assert len(server.requests) == 3 and pacer.progress() == 0


class OthersAnsweredWhileWaiting(list):
    """The sleeps of a transport (recorded) during which another thread's request is answered by ``pacer``."""

    def __init__(self, pacer):
        super().__init__()
        self.pacer = pacer

    def append(self, seconds):
        super().append(seconds)
        self.pacer.answered("directory", throttled=False)


def test_a_read_whose_connection_fails_while_others_get_answers_uses_up_no_retry():
    """The soak: a $batch of 20 reads fails whenever the connection of one of its items is reset (a third of the
    time at 2 % of requests): the run failed, having given up on one batch while the others were answered."""
    pacer, _clock = paced()

    sleeps = OthersAnsweredWhileWaiting(pacer)
    server = Server(*[httpx.RemoteProtocolError] * 4, reply(200, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps, max_retries=1)
    assert transport.send("GET", URL).status_code == 200
    assert len(server.requests) == 5
    server = Server(httpx.RemoteProtocolError)  # nothing else answered: each retry counts
    with pytest.raises(GraphTransportError, match="gave up after 1 retries"):
        paced_transport(server, paced()[0], max_retries=1).send("GET", URL)


def test_a_429_after_others_got_answers_while_it_waited_uses_up_no_retry():
    """One request on the wire at a time (concurrency 1): the others are answered while this one waits out its
    Retry-After, not during its own attempt. The integration test of a killed run found a token failed so."""
    pacer, _clock = paced()

    sleeps = OthersAnsweredWhileWaiting(pacer)
    server = Server(*[reply(429, headers={"Retry-After": "1"})] * 4, reply(201, json={}))
    transport = paced_transport(server, pacer, sleeps=sleeps, max_retries=1)
    assert transport.send("POST", URL, json={}).status_code == 201
    assert len(server.requests) == 5 and sleeps == [1.0] * 4


@pytest.mark.parametrize("quota", [METHODS_QUOTA, METHODS_QUOTA_BARE])
def test_paced_methods_requests_are_paced_at_the_rate_measured_between_two_429s(quota):
    pacer, clock = paced()
    answers = [reply(429, headers={"Retry-After": "1", **quota})]
    answers += [reply(200, json={})] * 4 + answers + [reply(200, json={})] * 10
    transport = paced_transport(Server(*answers), pacer)
    for _number in range(6):
        assert transport.send("POST", METHODS_URL, json={}).status_code == 200
    # The first 429 paused the lane 1 s; 4 answers, then a 429 at 1 s: 4 a second, from the retry on.
    assert clock.sleeps[:2] == [1.0, 1.0]
    assert clock.sleeps[2:] == [pytest.approx(0.25, abs=0.01)]
    assert pacer.stats()["rate_methods"] == pytest.approx(4.0, abs=0.1)  # it doubles in a minute without a 429
    clock.sleeps.clear()
    transport.send("POST", METHODS_URL, json={})
    assert clock.sleeps == [pytest.approx(0.25, abs=0.01)]  # spaced at 4 a second
    assert transport.send("GET", URL).status_code == 200  # the directory lane is not held up
    assert len(clock.sleeps) == 1


def test_paced_pause_sleeps_only_what_the_shared_pause_does_not_cover():
    pacer, clock = paced()
    sleeps: list[float] = []
    transport = paced_transport(Server(reply(200)), pacer, sleeps=sleeps)
    pacer.throttled(10.0)  # another thread's Retry-After
    transport.pause(1, "3", "why")
    assert (clock.sleeps, sleeps) == ([10.0], [])
    pacer.throttled(2.0)
    transport.pause(2, "5", "why")
    assert (clock.sleeps, sleeps) == ([10.0, 2.0], [3.0])


def test_transport_throttled_reports_quotas_to_the_pacer_only():
    make_transport(Server(reply(200))).throttled({"Retry-After": "5", **WRITE_QUOTA}, write=True)  # no pacer
    pacer, _clock = paced()
    transport = paced_transport(Server(reply(200)), pacer, max_retry_wait=30.0)
    transport.throttled(WRITE_QUOTA)
    transport.throttled({"Retry-After": "soon", **WRITE_QUOTA})
    transport.throttled({"Retry-After": "5"})  # no scope: not a quota's
    assert pacer.stats()["pauses"] == 0
    transport.throttled({"retry-after": "45", **WRITE_QUOTA})
    assert pacer.pause_left() == 30.0


@pytest.mark.parametrize("scoped", [True, False])
def test_get_many_throttled_items_of_a_quota_pause_their_lane(scoped):
    def items(number, item_id, url):
        if number == 0 and item_id != "0":
            headers = {"Retry-After": item_id, **(METHODS_QUOTA if scoped else {})}
            return {"status": 429, "headers": headers, "body": None}
        return ok({"id": item_id})

    pacer, clock = paced()
    sleeps: list[float] = []
    logs: list[str] = []
    batch = Batch(items)
    client = GraphClient(paced_transport(Server(batch), pacer, sleeps=sleeps, logs=logs), GRAPH, lambda force: "t")
    paths = [(f"/users/u{n}/authentication/hardwareOathMethods", None) for n in range(4)]
    results = client.get_many(paths, action="a")
    assert results == [{"id": "0"}, {"id": "1"}, {"id": "2"}, {"id": "3"}]
    assert len(batch.posts) == 2
    assert logs == ["3 batched request(s) answered 429/503/504; retry 1/3 in 3.0s"]
    stats = pacer.stats()
    if scoped:  # the longest Retry-After, waited once, by the pacer, for the methods lane only
        assert (clock.sleeps, sleeps) == ([3.0], [])
        assert (stats["pauses"], stats["paused"], stats["lowered"], stats["writes"]) == (3, 3.0, 0, 0)
        assert pacer.pause_left() == 0.0 and pacer.acquire(write=True) == 0.0
    else:  # not a quota's: the batch waits on its own
        assert (clock.sleeps, sleeps) == ([], [3.0])
        assert stats["pauses"] == 0


# ------------------------------------------------------------------------------- transport errors hold no secret
# httpx's errors may quote the request: h11 refuses a header holding a newline with "Illegal header value
# b'Bearer <the token>\n'". Nothing of such a text may reach a message, a log line, a warning or a traceback.
TOKEN = "tok-3f9a1c7e5b2d4a6f8e0c"
HEADER_INJECTIONS = [
    f"Bearer {TOKEN}\n",
    f"Bearer {TOKEN}\r\nX-Injected: 1",
    f"Bearer {TOKEN}\x00",
    f"Bearer {TOKEN}\u00e9",  # not ASCII: httpx fails encoding the header (UnicodeEncodeError)
]


def _holds_no_secret(text):
    return TOKEN not in text and TOKEN[:12] not in text and "X-Injected" not in text and "Bearer" not in text


def _traceback_of(exc):
    """The texts of the exceptions a traceback of ``exc`` shows: its own, and those of the errors it is chained to."""
    texts: list[str] = []
    shown: traceback.TracebackException | None = traceback.TracebackException.from_exception(exc)
    while shown is not None:
        texts.extend(shown.format_exception_only())
        shown = shown.__cause__ or (None if shown.__suppress_context__ else shown.__context__)
    return "".join(texts)


@pytest.fixture
def plain_server():
    """A plain HTTP server on loopback (the Transport's destinations are checked by origin only): what each
    connection received, and the URL of the server. It answers 200 to anything."""
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(10)

    def serve():
        while True:
            try:
                connection, _peer = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    received.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def _real_transport(origin, logs):
    return Transport(
        destinations=Destinations(origin, origin),
        verify=True,
        timeout=5.0,
        max_retries=3,
        max_retry_wait=1.0,
        sleep=lambda seconds: None,
        log=logs.append,
    )


@pytest.mark.parametrize("header", HEADER_INJECTIONS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_header_http_refuses_fails_the_request_without_quoting_it(plain_server, method, header):
    """A real httpx client and connection (h11 refuses the header while writing the request): the error names the
    request, never the header, chains nothing a traceback would show, and nothing reaches the server."""
    received, origin = plain_server
    logs: list[str] = []
    transport = _real_transport(origin, logs)
    with pytest.raises(GraphTransportError) as info:
        transport.send(method, origin + "/beta/me?$filter=x", headers={"Authorization": header}, json={})
    transport.close()
    exc = info.value
    assert not isinstance(exc, WriteOutcomeUnknown)
    assert re.fullmatch(
        rf"{method} {origin}/beta/me: not sent: a header \(or the request line\) holds characters HTTP does not "
        r"allow \((LocalProtocolError|UnicodeEncodeError); its text is not shown, as it quotes the header, which may "
        r"hold a credential\)",
        exc.message,
    )
    assert exc.__cause__ is None and exc.__suppress_context__
    assert _holds_no_secret(_traceback_of(exc))
    assert logs == []  # not retried: it would fail the same way
    assert all(TOKEN.encode() not in data for data in received)


def test_the_same_transport_sends_a_clean_header(plain_server):
    """The control of the test above: the server and the transport work, and the server sees the header."""
    received, origin = plain_server
    transport = _real_transport(origin, [])
    assert transport.send("GET", origin + "/beta/me", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {}
    transport.close()
    assert any(f"Bearer {TOKEN}".encode() in data for data in received)


@pytest.mark.parametrize(
    "error",
    [
        httpx.LocalProtocolError,
        httpx.UnsupportedProtocol,
        httpx.ProxyError,
        httpx.DecodingError,
        httpx.TooManyRedirects,
        httpx.InvalidURL,
        httpx.StreamConsumed,
        functools.partial(UnicodeEncodeError, "ascii", f"Bearer {TOKEN}\u00e9", 29, 30, "ordinal not in range(128)"),
    ],
)
def test_any_other_httpx_error_quoting_the_request_is_not_shown(error):
    def handler(request):
        text = f"Illegal header value b'Bearer {TOKEN}\\r\\nX-Injected: 1'"
        if error is httpx.StreamConsumed:
            raise error()
        if isinstance(error, functools.partial):
            raise error()
        if error is httpx.InvalidURL:
            raise error(text)
        raise error(text, request=request)

    server = Server(handler)
    logs: list[str] = []
    transport = make_transport(server, logs=logs)
    with pytest.raises(GraphTransportError) as info:
        transport.send("POST", URL, headers={"Authorization": f"Bearer {TOKEN}"}, json={"secretKey": TOKEN})
    assert info.value.message.startswith(f"POST {URL}: ")
    assert _holds_no_secret(_traceback_of(info.value))
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(server.requests) == 1 and logs == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_a_connection_errors_text_is_shown_without_any_value_of_the_request(method, error):
    """A connection's errors describe the connection; should one quote the request anyway, every header value (and
    the token of Bearer ...), form and JSON value is cut out, as given or escaped; in retry log lines too."""
    quoted = (
        f"peer said: Authorization: Bearer {TOKEN}; b'Bearer {TOKEN}\\n'; form client_secret=s3cr3t~form-value; "
        "json 654321 and JBSWY3DPEHPK3PXP; [Errno 111] Connection refused"
    )

    def handler(request):
        raise error(quoted, request=request)

    logs: list[str] = []
    transport = make_transport(Server(handler), logs=logs, max_retries=1)
    kwargs = {"data": {"client_secret": "s3cr3t~form-value"}} if method == "POST" else {}
    body = {"json": {"secretKey": "JBSWY3DPEHPK3PXP", "verificationCode": "654321"}} if method == "GET" else {}
    with pytest.raises(GraphTransportError) as info:
        transport.send(method, URL, safe=True, headers={"Authorization": f"Bearer {TOKEN}\n"}, **kwargs, **body)
    for text in [info.value.message, _traceback_of(info.value), *logs]:
        assert _holds_no_secret(text)
        if method == "POST":
            assert "s3cr3t~form-value" not in text
        else:
            assert "JBSWY3DPEHPK3PXP" not in text and "654321" not in text
    assert "[Errno 111] Connection refused" in info.value.message  # the connection's own words are kept
    assert len(logs) == 1


def test_a_write_whose_connection_failed_quotes_no_value_of_the_request():
    def handler(request):
        raise httpx.ReadError(f"lost after sending b'Bearer {TOKEN}'", request=request)

    with pytest.raises(WriteOutcomeUnknown) as info:
        make_transport(Server(handler)).send("PATCH", URL, headers={"Authorization": f"Bearer {TOKEN}"}, json={})
    assert info.value.message == (
        f"PATCH {URL}: the connection failed after the request was sent (ReadError: lost after sending b'***'); it "
        "may or may not have taken effect"
    )
    assert info.value.__cause__ is None and _holds_no_secret(_traceback_of(info.value))


def test_a_tls_failure_is_explained_without_any_value_of_the_request():
    def handler(request):
        raise httpx.ConnectError(
            f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed for Bearer {TOKEN}", request=request
        )

    with pytest.raises(GraphTransportError) as info:
        make_transport(Server(handler)).send("GET", URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert "TLS certificate verification failed" in info.value.message
    assert info.value.__cause__ is None and _holds_no_secret(_traceback_of(info.value))
