"""Every link the simulator hands out is https on its own origin (the host and port of ``graph_url``), so a client
that sends its credentials only there (as the modules must) can follow all of them; and SimApi itself refuses to
send the bearer token anywhere else."""

from __future__ import annotations

import re
import ssl
from urllib.parse import urlsplit

import httpx
import pytest

from simlib import DEVICES, MEGAN, TENANT_ID, SimApi, methods_path

JSON = {"Content-Type": "application/json"}


def assert_own_origin(sim, url):
    link, own = urlsplit(url), urlsplit(sim["graph_url"])
    assert own.scheme == "https" and own.hostname == "127.0.0.1" and own.port, sim["graph_url"]
    assert (link.scheme, link.hostname, link.port) == ("https", own.hostname, own.port), url
    assert link.username is None and link.password is None, url
    assert url.startswith(sim["graph_url"] + "/"), url


def set_page_size(api, size):
    response = api.admin("POST", "settings", json={"page_size": size})
    assert response.status_code == 200, response.text


def follow(api, sim, path, params=None):
    """Every page of a collection; asserts each next link (and context) before following it."""
    pages = []
    response = api.graph("GET", path, params=params or {})
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        assert_own_origin(sim, pages[-1]["@odata.context"])
        link = pages[-1].get("@odata.nextLink")
        if link is None:
            return pages
        assert_own_origin(sim, link)
        response = api.graph("GET", link)


# ------------------------------------------------------------------ next links
def test_inventory_next_links(api, sim):
    set_page_size(api, 2)
    pages = follow(api, sim, DEVICES)
    assert len(pages) >= 5 and all("@odata.nextLink" in p for p in pages[:-1])
    assert all(p["@odata.nextLink"].startswith(f"{sim['graph_url']}/beta{DEVICES}?") for p in pages[:-1])


def test_inventory_next_links_keep_the_query(api, sim):
    pages = follow(api, sim, DEVICES, {"$top": "3", "$filter": "manufacturer eq 'Contoso'", "$select": "serialNumber"})
    assert len(pages) >= 2
    assert all("$top=3" in p["@odata.nextLink"] for p in pages[:-1])


def test_users_next_links(api, sim):
    set_page_size(api, 2)
    pages = follow(api, sim, "/users")
    assert len(pages) >= 3
    assert all(p["@odata.nextLink"].startswith(f"{sim['graph_url']}/beta/users?") for p in pages[:-1])


def test_users_next_links_v1(api, sim):
    pages = follow(api, sim, "/v1.0/users", {"$top": "3"})
    assert len(pages) >= 2
    assert all(p["@odata.nextLink"].startswith(f"{sim['graph_url']}/v1.0/users?") for p in pages[:-1])


def test_user_methods_next_links(api, sim):
    set_page_size(api, 2)
    pages = follow(api, sim, methods_path(MEGAN))
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert all(
        p["@odata.nextLink"].startswith(f"{sim['graph_url']}/beta/users/{MEGAN}/authentication/hardwareOathMethods?")
        for p in pages[:-1]
    )


def test_batch_item_next_links(api, sim):
    set_page_size(api, 2)
    response = api.graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {"id": "users", "method": "GET", "url": "/users?$top=1"},
                {"id": "devices", "method": "GET", "url": DEVICES},
                {"id": "methods", "method": "GET", "url": f"{methods_path(MEGAN)}?$top=1"},
                {
                    "id": "create",
                    "method": "POST",
                    "url": DEVICES,
                    "headers": JSON,
                    "body": {
                        "serialNumber": "LINK-BATCH-1",
                        "manufacturer": "Contoso",
                        "model": "Links",
                        "timeIntervalInSeconds": 30,
                        "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                    },
                },
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert "@odata.nextLink" not in response.json()
    items = {r["id"]: r for r in response.json()["responses"]}
    for item_id in ("users", "devices", "methods"):
        body = items[item_id]["body"]
        assert items[item_id]["status"] == 200, body
        assert_own_origin(sim, body["@odata.context"])
        assert_own_origin(sim, body["@odata.nextLink"])
        assert api.graph("GET", body["@odata.nextLink"]).status_code == 200
    assert items["create"]["status"] == 201
    assert_own_origin(sim, items["create"]["headers"]["Location"])
    assert_own_origin(sim, items["create"]["body"]["@odata.context"])


# ------------------------------------------------------------------ other links
def test_location_of_a_create(api, sim):
    response = api.graph(
        "POST",
        DEVICES,
        json={
            "serialNumber": "LINK-1",
            "manufacturer": "Contoso",
            "model": "Links",
            "timeIntervalInSeconds": 30,
            "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        },
    )
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert_own_origin(sim, location)
    assert location == f"{sim['graph_url']}/beta{DEVICES}/{response.json()['id']}"
    assert api.graph("GET", location).json()["serialNumber"] == "LINK-1"


@pytest.mark.parametrize("tenant", [TENANT_ID, "contoso.onmicrosoft.com"])
def test_openid_configuration_links(sim, client, tenant):
    response = client.get(f"{sim['graph_url']}/{tenant}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    for key in (
        "token_endpoint",
        "jwks_uri",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "end_session_endpoint",
        "userinfo_endpoint",
        "issuer",
    ):
        assert_own_origin(sim, doc[key])
    urls = [v for v in doc.values() if isinstance(v, str) and "://" in v]
    assert len(urls) >= 7
    for url in urls:
        assert_own_origin(sim, url)
    assert doc["token_endpoint"] == sim["token_endpoint"]
    assert client.get(doc["jwks_uri"]).json()["keys"]


def test_ready_file_links(sim, sim_process, client):
    for url in (
        sim["authority"],
        sim["authority_host"],
        sim["graph_url"],
        sim["graph_resource"],
        sim["token_endpoint"],
        sim["admin_url"],
        sim["managed_identity"]["endpoint"],
    ):
        assert_own_origin(sim, url + "/")
    assert sim["authority_host"] == sim["graph_url"]
    assert urlsplit(sim["graph_url"]).port == sim["port"]
    assert client.get(f"{sim['admin_url']}/info").json() == sim == sim_process.info


def test_www_authenticate_has_no_foreign_link(api, sim):
    response = api.graph("GET", DEVICES, token="")
    assert response.status_code == 401
    for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\"\s,]+", response.headers["www-authenticate"]):
        assert_own_origin(sim, url)


# ------------------------------------------------------------------ SimApi refuses foreign links
@pytest.fixture
def both_cas(sim, hostile):
    """A client that trusts the simulator's CA and the hostile one: only SimApi's own check stands between the
    bearer token and the hostile server."""
    context = ssl.create_default_context(cafile=sim["ca_bundle"])
    context.load_verify_locations(cafile=hostile.info()["ca_bundle"])
    with httpx.Client(verify=context, timeout=15) as http:
        yield http


def foreign_links(sim, hostile):
    own = urlsplit(sim["graph_url"])
    info = hostile.info()
    path = f"/beta{DEVICES}?$skiptoken=abc"
    return [
        info["https_url"] + path,  # another port, https, a valid certificate
        info["http_url"] + path,  # another port, plain http
        f"http://{own.hostname}:{own.port}{path}",  # the simulator's origin, plain http
        f"https://localhost:{own.port}{path}",  # another host name for the same server
        f"https://{own.hostname}{path}",  # no port: 443
        f"https://user@{own.hostname}:{info['https_port']}{path}",
        f"//{own.hostname}:{info['http_port']}{path}",  # scheme-relative
        f"ftp://{own.hostname}:{own.port}{path}",
    ]


def test_sim_api_refuses_foreign_links(api, sim, hostile, both_cas):
    before = len(api.requests_log())
    for link in foreign_links(sim, hostile):
        with pytest.raises(AssertionError, match="refusing to send"):
            api.graph("GET", link, client=both_cas)
        with pytest.raises(AssertionError, match="own origin"):
            api.url(link)
    assert hostile.requests() == []
    assert len(api.requests_log()) == before
    # The same client does reach the hostile server when asked directly: the refusal is SimApi's.
    assert both_cas.get(hostile.info()["https_url"] + "/probe").status_code == 200
    assert [e["path"] for e in hostile.requests()] == ["/probe"]


def test_sim_api_refuses_a_next_link_pointed_elsewhere(api, sim, hostile, both_cas):
    set_page_size(api, 2)
    for base in (hostile.info()["https_url"], hostile.info()["http_url"]):
        api.faults(
            {
                "rules": [
                    {
                        "name": "elsewhere",
                        "match": {"path": "hardwareOathDevices$"},
                        "action": {"type": "next_link", "base": base},
                    }
                ]
            }
        )
        link = api.graph("GET", DEVICES).json()["@odata.nextLink"]
        assert link.startswith(base + f"/beta{DEVICES}?")
        with pytest.raises(AssertionError, match="refusing to send"):
            api.graph("GET", link, client=both_cas)
    assert hostile.requests() == []


def test_sim_api_accepts_its_own_origin(api, sim):
    assert api.url("/users") == f"{sim['graph_url']}/beta/users"
    assert api.url(f"{sim['graph_url']}/v1.0/users") == f"{sim['graph_url']}/v1.0/users"
    other = SimApi({**sim, "graph_url": "https://127.0.0.1:1"}, api.client, api.seed)
    with pytest.raises(AssertionError):
        other.url(f"{sim['graph_url']}/beta/users")
