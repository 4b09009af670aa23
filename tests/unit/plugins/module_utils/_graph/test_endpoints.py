# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where requests may go: the rules (Destinations), and that the transport applies them to every request, links
in answers and in batch answers included, before anything is sent."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import DEVICES
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import TokenProvider, resolve_credential
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import GraphClient
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import (
    Destinations,
    Origin,
    UnsafeDestination,
    endpoint,
    origin_of,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    DESTINATIONS,
    Server,
    Tokens,
    graph_params,
    items_of,
    make_transport,
    reply,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import AUTHORITY, GRAPH

BEARER = {"Authorization": "Bearer secret-access-token"}


# ---------------------------------------------------------------------------------------------------- origins
@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://graph.microsoft.com/beta/x?$top=1", Origin("https", "graph.microsoft.com", 443)),
        ("HTTPS://Graph.Microsoft.COM:443/", Origin("https", "graph.microsoft.com", 443)),
        ("https://graph.microsoft.com:8443/beta", Origin("https", "graph.microsoft.com", 8443)),
        ("http://graph.microsoft.com/beta", Origin("http", "graph.microsoft.com", 80)),
        ("https://graph.microsoft.com@evil.example/beta", Origin("https", "evil.example", 443)),
        ("https://[::1]:8443/x", Origin("https", "::1", 8443)),
        ("/beta/relative", None),
        ("ftp://graph.microsoft.com/", None),
        ("https://graph.microsoft.com:bad/", None),
        ("", None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    "origin, text",
    [
        (Origin("https", "graph.microsoft.com", 443), "https://graph.microsoft.com"),
        (Origin("https", "127.0.0.1", 8443), "https://127.0.0.1:8443"),
        (Origin("http", "::1", 80), "http://[::1]"),
    ],
)
def test_origin_text(origin, text):
    assert str(origin) == text


def test_endpoint_normalises():
    assert endpoint(" Graph.Microsoft.com/ ", "graph_endpoint") == "https://graph.microsoft.com"


# ---------------------------------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("url", [GRAPH + "/beta/users", "https://GRAPH.microsoft.com:443/beta/x?$skiptoken=a"])
def test_bearer_goes_to_graph(url):
    DESTINATIONS.check(url, BEARER)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://graph.microsoft.com/beta/users", "http://graph.microsoft.com"),  # plain HTTP, same host
        ("https://graph.microsoft.com:8443/beta/users", "https://graph.microsoft.com:8443"),  # another port
        ("https://evil.example/beta/users", "https://evil.example"),
        ("https://graph.microsoft.com.evil.example/beta", "https://graph.microsoft.com.evil.example"),
        ("https://graph.microsoft.com@evil.example/beta", "https://evil.example"),
        (AUTHORITY + "/tenant/oauth2/v2.0/token", AUTHORITY),  # the token is for Graph only
        ("/beta/relative", "'/beta/relative'"),
    ],
)
def test_bearer_refused_anywhere_else(url, shown):
    with pytest.raises(UnsafeDestination) as info:
        DESTINATIONS.check(url, {"authorization": "bearer x"})
    assert info.value.message.startswith(
        f"Refused to send the access token to {shown}: the access token goes only "
        f"to the Graph endpoint {GRAPH}, over HTTPS"
    )
    assert "nothing was sent" in info.value.message


@pytest.mark.parametrize("url", [AUTHORITY + "/t/v2.0/.well-known/openid-configuration", GRAPH + "/beta/$batch"])
def test_sign_in_goes_to_the_authority_and_graph(url):
    DESTINATIONS.check(url, {"Content-Type": "application/x-www-form-urlencoded"})


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/t/oauth2/v2.0/token",
        "http://login.microsoftonline.com/t/",
        "https://login.microsoftonline.com:444/t/",
        "http://127.0.0.1:40342/token",
        "http://169.254.169.254/metadata/identity/oauth2/token",
    ],
)
def test_sign_in_refused_anywhere_else(url):
    with pytest.raises(UnsafeDestination) as info:
        DESTINATIONS.check(url, {})
    assert info.value.message.startswith(
        f"Refused to send a request to {origin_of(url)}: requests go only to the "
        f"Graph endpoint {GRAPH} and the authority {AUTHORITY}, over HTTPS"
    )


def test_managed_identity_endpoints():
    destinations = Destinations(GRAPH, AUTHORITY, ("http://127.0.0.1:41056", "http://169.254.169.254"))
    destinations.check("http://127.0.0.1:41056/msi/token?api-version=2019-08-01", {"X-IDENTITY-HEADER": "h"})
    destinations.check("http://169.254.169.254/metadata/identity/oauth2/token", {"Metadata": "true"})
    with pytest.raises(UnsafeDestination) as info:
        destinations.check("http://10.0.0.5/msi/token", {"X-IDENTITY-HEADER": "h"})
    assert (
        "a managed identity endpoint over HTTPS or, over plain HTTP, only on this machine (loopback) or at "
        "169.254.169.254" in info.value.message
    )
    with pytest.raises(UnsafeDestination):  # never the access token, even to an allowed endpoint
        destinations.check("http://127.0.0.1:41056/msi/token", BEARER)


# ---------------------------------------------------------------------------------------------------- in the transport
def test_transport_checks_before_sending():
    server = Server(reply(200, json={}))
    transport = make_transport(server)
    with pytest.raises(UnsafeDestination):
        transport.send("GET", "http://graph.microsoft.com/beta/users", headers=BEARER)
    with pytest.raises(UnsafeDestination):
        transport.send("POST", "https://evil.example/t/oauth2/v2.0/token", data={"client_secret": "s"})
    assert server.requests == []


def client_for(server):
    return GraphClient(make_transport(server), GRAPH, Tokens("secret-access-token"))


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/beta/directory/authenticationMethodDevices/hardwareOathDevices?$skiptoken=a",
        "https://graph.microsoft.com:4443/beta/directory/authenticationMethodDevices/hardwareOathDevices?$skiptoken=a",
        "http://graph.microsoft.com/beta/directory/authenticationMethodDevices/hardwareOathDevices?$skiptoken=a",
    ],
)
def test_a_foreign_next_link_is_not_followed(link):
    server = Server(reply(200, json={"value": [{"id": "1"}], "@odata.nextLink": link}), reply(200, json={"value": []}))
    client = client_for(server)
    pages = items_of(client, DEVICES, action="Listing tokens")
    assert next(pages) == {"id": "1"}
    with pytest.raises(UnsafeDestination) as info:
        next(pages)
    assert str(origin_of(link)) in info.value.message
    assert "secret-access-token" not in info.value.message
    assert [str(r.url.copy_with(query=None)) for r in server.requests] == [GRAPH + "/beta" + DEVICES]


def test_a_foreign_next_link_in_a_batch_answer_is_not_followed():
    link = "https://evil.example:8443/beta/users?$skiptoken=a"
    batch = {"responses": [{"id": "0", "status": 200, "body": {"value": [{"id": "u1"}], "@odata.nextLink": link}}]}
    server = Server(reply(200, json=batch), reply(200, json={"value": []}))
    with pytest.raises(UnsafeDestination) as info:
        client_for(server).get_many([("/users", {"$filter": "id in ('u1')"})], action="Reading users")
    assert "https://evil.example:8443" in info.value.message
    assert len(server.requests) == 1 and server.requests[0].url.path == "/beta/$batch"


def test_an_unsafe_destination_is_a_graph_error():
    assert issubclass(UnsafeDestination, GraphError)


# ---------------------------------------------------------------------------------------------------- sign-in
def _credential(**given):
    params = graph_params(
        tenant_id="contoso.onmicrosoft.com", client_id="c", client_secret="the-client-secret", **given
    )
    return resolve_credential(params, environ={})


def test_sign_in_never_follows_metadata_to_another_host():
    """A token endpoint elsewhere in the authority's metadata: the client secret is not sent there."""

    def identity(request):
        if request.url.path.endswith("openid-configuration"):
            return reply(
                200,
                json={
                    "token_endpoint": "https://evil.example/t/oauth2/v2.0/token",
                    "authorization_endpoint": AUTHORITY + "/t/oauth2/v2.0/authorize",
                    "issuer": AUTHORITY + "/t/v2.0",
                },
            )
        return reply(200, json={"access_token": "stolen", "expires_in": 3599})

    server = Server(identity)
    credential = _credential()
    transport = make_transport(server)
    transport.destinations = Destinations(credential.graph_endpoint, credential.authority_host)
    with pytest.raises(UnsafeDestination) as info:
        TokenProvider(credential, transport.send).token()
    assert "https://evil.example" in info.value.message
    assert [r.url.host for r in server.requests] == ["login.microsoftonline.com"]
    assert all(b"the-client-secret" not in r.content for r in server.requests)


def test_the_simulated_tenant_is_one_origin_for_both():
    credential = _credential(graph_endpoint="https://127.0.0.1:8443", authority_host="127.0.0.1:8443")
    destinations = Destinations(credential.graph_endpoint, credential.authority_host)
    destinations.check("https://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token", {})
    destinations.check("https://127.0.0.1:8443/beta/users", BEARER)
    with pytest.raises(UnsafeDestination):
        destinations.check("https://127.0.0.1:8444/beta/users", BEARER)
