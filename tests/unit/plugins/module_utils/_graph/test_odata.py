# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How user values enter Graph URLs (_graph/odata.py): OData string literals and path segments, down to what Graph
receives."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import GraphClient
from ansible_collections.tokenops.entra.plugins.module_utils._graph.odata import odata_string, segment
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import Server, make_transport, reply
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import GRAPH


# ---------------------------------------------------------------------------------------------------- OData and paths
@pytest.mark.parametrize(
    "value, expected",
    [
        ("TOTP123456", "'TOTP123456'"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("", "''"),
        ("x' or serialNumber ne 'y", "'x'' or serialNumber ne ''y'"),
    ],
)
def test_odata_string(value, expected):
    assert odata_string(value) == expected


@pytest.mark.parametrize("value", ["x' or 1 eq 1 or serialNumber eq 'y", "') or true or ('", "a'b'c''d", "'"])
def test_odata_string_injection_stays_one_literal(value):
    literal = odata_string(value)
    assert literal.startswith("'") and literal.endswith("'")
    inner = literal[1:-1]
    assert "'" not in inner.replace("''", "")  # no lone quote: the literal never ends early
    assert inner.replace("''", "'") == value


@pytest.mark.parametrize(
    "value, expected",
    [
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
    ],
)
def test_segment(value, expected):
    assert segment(value) == expected


@pytest.mark.parametrize(
    "value", ["../x", "..", ".", "../../../me", "a/../../b", "?$select=x", "#frag", "..%2F..", "%2e%2e"]
)
def test_segment_never_leaves_its_path_segment(value):
    """What Graph receives: the value stays one segment under /users/, whatever it holds."""
    server = Server(reply(200, json={"id": "x"}))
    client = GraphClient(make_transport(server), GRAPH, lambda force: "t")
    try:
        encoded = segment(value)
    except (ValueError, GraphError):  # refusing such a value is as good as encoding it
        return
    client.request("GET", f"/users/{encoded}", action="x")
    path = server.requests[0].url.raw_path.decode("ascii").split("?", 1)[0]
    assert path.startswith("/beta/users/")
    rest = path[len("/beta/users/") :]
    assert rest and "/" not in rest and "?" not in rest and "#" not in rest
    assert rest not in (".", "..")
    assert server.requests[0].url.query == b""
