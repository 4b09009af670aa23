# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import email.utils
import pathlib
import re
import ssl
import time
import uuid

import httpx
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils import _graph_client
from ansible_collections.tokenops.entra.plugins.module_utils._errors import (
    GraphError, GraphTransportError, WriteOutcomeUnknown)
from ansible_collections.tokenops.entra.plugins.module_utils._graph_client import (
    COLLECTION_VERSION, USER_AGENT, GraphClient, Transport, error_from_response, odata_string, segment, tls_context)

GRAPH = "https://graph.microsoft.com"
URL = GRAPH + "/beta/directory/authenticationMethodDevices/hardwareOathDevices"


class Server:
    """A scripted Graph: each request gets the next answer (a Response, an exception class, or a callable)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("scripted failure", request=request)
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def reply(status: int, json=None, headers=None, **kwargs) -> httpx.Response:
    return httpx.Response(status, json=json, headers=headers, **kwargs)


def make_transport(server: Server, monkeypatch, *, max_retries=3, max_retry_wait=60.0, sleeps=None, logs=None):
    """A Transport built by its own constructor, with httpx.Client given a MockTransport and a recording sleep."""
    real_client = httpx.Client

    def client(**kwargs):
        return real_client(transport=httpx.MockTransport(server), **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(_graph_client.httpx, "Client", client)
        transport = Transport(verify=True, timeout=5.0, max_retries=max_retries, max_retry_wait=max_retry_wait,
                              sleep=(sleeps if sleeps is not None else []).append,
                              log=(logs if logs is not None else []).append)
    return transport


# ---------------------------------------------------------------------------------------------------- version
def test_user_agent_and_version_match_galaxy_yml():
    galaxy = pathlib.Path(__file__).resolve().parents[4] / "galaxy.yml"
    version = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy.read_text(encoding="utf-8"), re.MULTILINE)
    assert version is not None
    assert COLLECTION_VERSION == version.group(1)
    assert USER_AGENT == f"tokenops.entra/{COLLECTION_VERSION}"
    assert USER_AGENT == "tokenops.entra/0.1.0"


def test_transport_sends_user_agent_and_does_not_follow_redirects(monkeypatch):
    server = Server(reply(302, headers={"Location": "https://evil.example/"}))
    transport = make_transport(server, monkeypatch)
    response = transport.send("GET", URL)
    assert response.status_code == 302
    assert len(server.requests) == 1
    assert server.requests[0].headers["User-Agent"] == "tokenops.entra/0.1.0"
    transport.close()


# ---------------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize("status", [429, 503, 504])
def test_get_retried_honouring_integer_retry_after(status, monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(status, headers={"Retry-After": "2"}), reply(status, headers={"Retry-After": "7"}),
                    reply(200, json={"value": []}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    response = transport.send("GET", URL)
    assert response.status_code == 200
    assert len(server.requests) == 3
    assert sleeps == [2.0, 7.0]


def test_get_retried_honouring_fractional_retry_after(monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "2.128"}), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send("GET", URL).status_code == 200
    assert sleeps == [2.128]


def test_get_retried_honouring_http_date_retry_after(monkeypatch):
    sleeps: list[float] = []
    when = email.utils.formatdate(time.time() + 100, usegmt=True)
    server = Server(reply(503, headers={"Retry-After": when}), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps, max_retry_wait=1000.0)
    assert transport.send("GET", URL).status_code == 200
    assert len(sleeps) == 1
    assert 97.0 < sleeps[0] <= 100.0


def test_retry_after_capped_at_max_retry_wait(monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3600"}), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps, max_retry_wait=12.5)
    assert transport.send("GET", URL).status_code == 200
    assert sleeps == [12.5]


def test_backoff_without_retry_after(monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(503), reply(503), reply(503), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send("GET", URL).status_code == 200
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps, start=1):
        assert 0.0 <= wait <= 2 ** (attempt - 1)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
@pytest.mark.parametrize("status", [429, 503, 504])
def test_get_gives_up_after_max_retries_returning_the_last_response(status, max_retries, monkeypatch):
    sleeps: list[float] = []
    answers = [reply(status, headers={"Retry-After": "1"}, json={"n": n}) for n in range(max_retries + 1)]
    answers.append(reply(200, json={"never": True}))
    server = Server(*answers)
    transport = make_transport(server, monkeypatch, max_retries=max_retries, sleeps=sleeps)
    response = transport.send("GET", URL)
    assert response.status_code == status
    assert response.json() == {"n": max_retries}
    assert len(server.requests) == max_retries + 1
    assert sleeps == [1.0] * max_retries


def test_post_retried_on_429(monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(429, headers={"Retry-After": "3"}), reply(201, json={"id": "x"}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    response = transport.send("POST", URL, json={"serialNumber": "A"})
    assert response.status_code == 201
    assert len(server.requests) == 2
    assert [r.content for r in server.requests] == [b'{"serialNumber":"A"}'] * 2
    assert sleeps == [3.0]


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
@pytest.mark.parametrize("status", [503, 504])
def test_writes_not_retried_on_503_504(method, status, monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(status, headers={"Retry-After": "1"}), reply(204))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send(method, URL, json={}).status_code == status
    assert len(server.requests) == 1
    assert sleeps == []


def test_safe_flag_overrides_method(monkeypatch):
    sleeps: list[float] = []
    server = Server(reply(503, headers={"Retry-After": "1"}), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send("POST", URL, safe=True).status_code == 200
    assert len(server.requests) == 2
    server = Server(reply(503, headers={"Retry-After": "1"}), reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send("GET", URL, safe=False).status_code == 503
    assert len(server.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteError])
def test_write_with_lost_answer_raises_write_outcome_unknown_after_one_attempt(method, error, monkeypatch):
    sleeps: list[float] = []
    server = Server(error, reply(204))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    with pytest.raises(WriteOutcomeUnknown) as info:
        transport.send(method, URL + "?$filter=secret", json={})
    assert len(server.requests) == 1
    assert sleeps == []
    assert isinstance(info.value, GraphTransportError)
    assert info.value.message == (f"{method} {URL}: the connection failed after the request was sent ({error.__name__}: "
                                  "scripted failure); it may or may not have taken effect")


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_get_with_lost_answer_is_retried(error, monkeypatch):
    sleeps: list[float] = []
    logs: list[str] = []
    server = Server(error, reply(200, json={"ok": 1}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps, logs=logs)
    assert transport.send("GET", URL).json() == {"ok": 1}
    assert len(server.requests) == 2
    assert len(sleeps) == 1
    assert logs[0].startswith(f"GET {URL} failed ({error.__name__}: scripted failure); retry 1/3 in ")


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_connect_error_retried_for_any_method(method, monkeypatch):
    sleeps: list[float] = []
    server = Server(httpx.ConnectError, httpx.ConnectError, reply(200, json={}))
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    assert transport.send(method, URL, json={}).status_code == 200
    assert len(server.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("max_retries", [0, 2, 4])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_error_gives_up_after_max_retries(method, max_retries, monkeypatch):
    sleeps: list[float] = []
    server = Server(httpx.ConnectError)
    transport = make_transport(server, monkeypatch, max_retries=max_retries, sleeps=sleeps)
    with pytest.raises(GraphTransportError) as info:
        transport.send(method, URL + "?$filter=serialNumber eq 'x'")
    assert not isinstance(info.value, WriteOutcomeUnknown)
    assert len(server.requests) == max_retries + 1
    assert len(sleeps) == max_retries
    assert info.value.message == f"{method} {URL}: gave up after {max_retries} retries: could not connect (scripted failure)"


def test_tls_verification_failure_is_not_retried_and_explained(monkeypatch):
    def handler(request):
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
                                 request=request)
    server = Server(handler)
    sleeps: list[float] = []
    transport = make_transport(server, monkeypatch, sleeps=sleeps)
    with pytest.raises(GraphTransportError) as info:
        transport.send("GET", URL)
    assert len(server.requests) == 1
    assert sleeps == []
    assert "TLS certificate verification failed" in info.value.message
    assert "Set ca_path" in info.value.message


def test_same_client_request_id_and_retry_attempt_header(monkeypatch):
    server = Server(reply(429, headers={"Retry-After": "0"}), httpx.ReadError, reply(503, headers={"Retry-After": "0"}),
                    reply(200, json={}))
    transport = make_transport(server, monkeypatch, max_retries=5)
    transport.send("GET", URL, headers={"Authorization": "Bearer t"})
    assert len(server.requests) == 4
    ids = {r.headers["client-request-id"] for r in server.requests}
    assert len(ids) == 1
    assert uuid.UUID(ids.pop()).version == 4
    assert [r.headers.get("Retry-Attempt") for r in server.requests] == [None, "1", "2", "3"]
    assert all(r.headers["Authorization"] == "Bearer t" for r in server.requests)
    assert all(r.headers["User-Agent"] == USER_AGENT for r in server.requests)


def test_given_client_request_id_is_kept_and_ids_differ_between_sends(monkeypatch):
    server = Server(reply(200, json={}))
    transport = make_transport(server, monkeypatch)
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


# ---------------------------------------------------------------------------------------------------- OData and paths
@pytest.mark.parametrize("value, expected", [
    ("TOTP123456", "'TOTP123456'"),
    ("O'Brien", "'O''Brien'"),
    ("''", "''''''"),
    ("", "''"),
    ("x' or serialNumber ne 'y", "'x'' or serialNumber ne ''y'"),
])
def test_odata_string(value, expected):
    assert odata_string(value) == expected


@pytest.mark.parametrize("value", ["x' or 1 eq 1 or serialNumber eq 'y", "') or true or ('", "a'b'c''d", "'"])
def test_odata_string_injection_stays_one_literal(value):
    literal = odata_string(value)
    assert literal.startswith("'") and literal.endswith("'")
    inner = literal[1:-1]
    assert "'" not in inner.replace("''", "")  # no lone quote: the literal never ends early
    assert inner.replace("''", "'") == value


@pytest.mark.parametrize("value, expected", [
    ("grady_fabrikam.com#EXT#@contoso.onmicrosoft.com", "grady_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com"),
    ("amy.masters@contoso.com", "amy.masters%40contoso.com"),
    ("a/b", "a%2Fb"),
    ("what?x=1", "what%3Fx%3D1"),
    ("100%", "100%25"),
    ("%2F", "%252F"),
    ("../x", "..%2Fx"),
    ("../../me", "..%2F..%2Fme"),
    ("a b", "a%20b"),
    ("6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b", "6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b"),
])
def test_segment(value, expected):
    assert segment(value) == expected


@pytest.mark.parametrize("value", ["../x", "..", ".", "../../../me", "a/../../b", "?$select=x", "#frag", "..%2F..", "%2e%2e"])
def test_segment_never_leaves_its_path_segment(value, monkeypatch):
    """What Graph receives: the value stays one segment under /users/, whatever it holds."""
    server = Server(reply(200, json={"id": "x"}))
    client = GraphClient(make_transport(server, monkeypatch), GRAPH, lambda force: "t")
    try:
        encoded = segment(value)
    except (ValueError, GraphError):  # refusing such a value is as good as encoding it
        return
    client.request("GET", f"/users/{encoded}", action="x")
    path = server.requests[0].url.raw_path.decode("ascii").split("?", 1)[0]
    assert path.startswith("/beta/users/")
    rest = path[len("/beta/users/"):]
    assert rest and "/" not in rest and "?" not in rest and "#" not in rest
    assert rest not in (".", "..")
    assert server.requests[0].url.query == b""


# ---------------------------------------------------------------------------------------------------- errors
def test_error_from_response_reads_graphs_envelope():
    envelope = {"error": {
        "code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.",
        "innerError": {"date": "2026-11-21T22:42:25", "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2",
                       "client-request-id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"}}}
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
    assert error.message == str(error) == (
        "Looking up token TOTP123456: Graph answered 403 Authorization_RequestDenied: Insufficient privileges to "
        "complete the operation. (request-id 94fb3b52-452a-4535-a601-69e0a90e3aa2, date 2026-11-21T22:42:25)")
    assert error.to_result() == {"graph_error": {
        "status": 403, "code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.",
        "request_id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "client_request_id": "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10",
        "date": "2026-11-21T22:42:25"}}


def test_error_from_response_lower_case_innererror_and_details():
    response = reply(400, json={"error": {"code": "badRequest", "message": "Invalid verification code.",
                                          "details": [{"code": "x", "message": "y"}],
                                          "innererror": {"request-id": "rid", "date": "2026-01-01T00:00:00"}}})
    error = error_from_response(response, "activate token T for amy")
    assert error.request_id == "rid"
    assert error.details == [{"code": "x", "message": "y"}]
    assert error.message == ("activate token T for amy: Graph answered 400 badRequest: Invalid verification code. "
                             "(request-id rid, date 2026-01-01T00:00:00)")
    assert error.to_result()["graph_error"]["details"] == [{"code": "x", "message": "y"}]


def test_error_from_response_without_json_body():
    response = reply(502, content=b"<html>Bad gateway</html>",
                     headers={"request-id": "rid-h", "client-request-id": "cid-h", "date": "Sat, 21 Nov 2026 22:42:25 GMT"})
    error = error_from_response(response, "Looking up user amy")
    assert (error.status, error.code, error.graph_message, error.request_id, error.client_request_id, error.date) == \
        (502, None, None, "rid-h", "cid-h", None)
    assert error.message == ("Looking up user amy: Graph answered 502 Bad Gateway (request-id rid-h, date Sat, 21 Nov "
                             "2026 22:42:25 GMT)")


def test_error_from_response_without_any_id():
    error = error_from_response(reply(404, json={"error": {"code": "itemNotFound", "message": "Not found"}}), "Reading x")
    assert error.message == "Reading x: Graph answered 404 itemNotFound: Not found"
    assert error.to_result() == {"graph_error": {"status": 404, "code": "itemNotFound", "message": "Not found"}}


def test_error_from_response_429_says_it_is_still_throttled():
    response = reply(429, json={"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
                     headers={"Retry-After": "2.128"})
    error = error_from_response(response, "Listing tokens")
    assert error.message == ("Listing tokens: Graph answered 429 TooManyRequests: Please retry again later.; still "
                             "throttled after the allowed retries (Retry-After: 2.128). Run again later, or raise "
                             "max_retries / max_retry_wait")


def test_graph_error_with_context():
    error = GraphError("Graph answered 400", status=400)
    assert error.with_context("activate token T") is error
    assert error.message == str(error) == "activate token T: Graph answered 400"
    assert GraphError("no status").to_result() == {}


# ---------------------------------------------------------------------------------------------------- GraphClient
class Tokens:
    def __init__(self):
        self.calls: list[bool] = []

    def __call__(self, force_refresh: bool) -> str:
        self.calls.append(force_refresh)
        return f"token-{len(self.calls)}"


def make_client(server, monkeypatch, **kwargs):
    tokens = Tokens()
    transport = make_transport(server, monkeypatch)
    return GraphClient(transport, GRAPH + "/", tokens, **kwargs), tokens


def test_request_builds_the_url_and_headers(monkeypatch):
    server = Server(reply(200, json={"id": "u1"}))
    client, tokens = make_client(server, monkeypatch)
    body = client.request("GET", "/users/amy%40contoso.com", action="Looking up user",
                          params={"$select": "id,userPrincipalName"})
    assert body == {"id": "u1"}
    request = server.requests[0]
    assert request.method == "GET"
    assert request.url.raw_path == b"/beta/users/amy%40contoso.com?%24select=id%2CuserPrincipalName"
    assert request.url.params["$select"] == "id,userPrincipalName"
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Accept"] == "application/json"
    assert tokens.calls == [False]


def test_request_sends_json(monkeypatch):
    server = Server(reply(201, json={"id": "m1"}))
    client, _tokens = make_client(server, monkeypatch, version="v1.0")
    assert client.request("POST", "/me/x", action="a", json={"device": {"id": "d"}}, expected=(201, 200)) == {"id": "m1"}
    assert server.requests[0].url == httpx.URL(GRAPH + "/v1.0/me/x")
    assert server.requests[0].content == b'{"device":{"id":"d"}}'


@pytest.mark.parametrize("status, expected, body", [
    (204, (204,), None),
    (200, (204, 200), None),  # empty 200
    (201, (201, 200), {"id": "x"}),
])
def test_request_expected_statuses(status, expected, body, monkeypatch):
    server = Server(reply(status, json=body) if body is not None else httpx.Response(status))
    client, _tokens = make_client(server, monkeypatch)
    assert client.request("POST", "/x", action="a", expected=expected) == body


def test_request_unexpected_status_raises_naming_the_action(monkeypatch):
    server = Server(reply(200, json={"ok": True}))
    client, _tokens = make_client(server, monkeypatch)
    with pytest.raises(GraphError) as info:
        client.request("DELETE", "/x", action="unassign token T for amy", expected=(204,))
    assert info.value.status == 200
    assert info.value.message == "unassign token T for amy: Graph answered 200 OK"


def test_request_body_that_is_not_json(monkeypatch):
    server = Server(reply(200, content=b"<html/>"))
    client, _tokens = make_client(server, monkeypatch)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/x", action="Reading x")
    assert info.value.message == "Reading x: Graph answered 200 with a body that is not JSON"


def test_401_refreshes_once_and_resends(monkeypatch):
    server = Server(reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
                    reply(200, json={"id": "u"}))
    client, tokens = make_client(server, monkeypatch)
    assert client.request("GET", "/users/u", action="a") == {"id": "u"}
    assert tokens.calls == [False, True]
    assert [r.headers["Authorization"] for r in server.requests] == ["Bearer token-1", "Bearer token-2"]


def test_401_twice_fails_after_one_refresh(monkeypatch):
    server = Server(reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}))
    client, tokens = make_client(server, monkeypatch)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/users/u", action="Looking up user u")
    assert info.value.status == 401
    assert info.value.message == "Looking up user u: Graph answered 401 InvalidAuthenticationToken: expired"
    assert tokens.calls == [False, True]
    assert len(server.requests) == 2


def test_401_without_refresh_fails_at_once(monkeypatch):
    server = Server(reply(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
                    reply(200, json={}))
    client, tokens = make_client(server, monkeypatch, can_refresh=False)
    with pytest.raises(GraphError) as info:
        client.request("GET", "/users/u", action="a")
    assert info.value.status == 401
    assert tokens.calls == [False]
    assert len(server.requests) == 1


def test_paged_follows_next_link_verbatim(monkeypatch):
    link2 = GRAPH + "/beta/directory/authenticationMethodDevices/hardwareOathDevices?$top=2&$skiptoken=RFNwdAIAAQAA%3D%3D"
    link3 = "https://graph.microsoft.com/beta/directory/authenticationMethodDevices/hardwareOathDevices?%24skiptoken=X%2FY%2BZ"
    server = Server(reply(200, json={"value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": link2}),
                    reply(200, json={"value": [{"id": "3"}, {"id": "4"}], "@odata.nextLink": link3}),
                    reply(200, json={"value": [{"id": "5"}]}),
                    reply(500))
    client, _tokens = make_client(server, monkeypatch)
    items = list(client.paged("/directory/authenticationMethodDevices/hardwareOathDevices", action="Listing tokens",
                              params={"$top": "2", "$filter": "status eq 'available'"}))
    assert [i["id"] for i in items] == ["1", "2", "3", "4", "5"]
    assert len(server.requests) == 3
    assert server.requests[0].url.params["$filter"] == "status eq 'available'"
    assert str(server.requests[1].url) == link2
    assert str(server.requests[2].url) == link3
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in server.requests)


def test_paged_error_on_a_later_page(monkeypatch):
    server = Server(reply(200, json={"value": [{"id": "1"}], "@odata.nextLink": GRAPH + "/beta/x?$skiptoken=a"}),
                    reply(400, json={"error": {"code": "badRequest", "message": "bad skiptoken"}}))
    client, _tokens = make_client(server, monkeypatch)
    pages = client.paged("/x", action="Listing tokens")
    assert next(pages) == {"id": "1"}
    with pytest.raises(GraphError) as info:
        next(pages)
    assert info.value.message == "Listing tokens: Graph answered 400 badRequest: bad skiptoken"


def test_get_is_a_request(monkeypatch):
    server = Server(reply(200, json={"value": []}))
    client, _tokens = make_client(server, monkeypatch)
    assert client.get("/x", action="a", params={"$top": "1"}) == {"value": []}
    assert server.requests[0].method == "GET"
