# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hardware OATH calls of Graph (HardwareOathApi): each request, over a FakeClient or a mock Graph, and the
permission each refusal names. Carrying out plans with them is _execution/test_execute.py's."""

from __future__ import annotations

import copy
import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    SET_DISPLAY_NAME,
    UNASSIGN,
    Action,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    DEVICES,
    MAX_BULK_CREATE,
    READ_AFTER_WRITE_WAIT,
    BulkRefused,
    CodeRefused,
    HardwareOathApi,
    TokenExists,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import (
    FakeClient,
    Graph,
    batch_items,
    batch_of,
    graph_api,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import (
    ADELE,
    AMY,
    DEVICE_ID,
    GRAPH,
    NAME,
    NEW_ID,
    SECRET,
    SERIAL,
    device,
    token,
    user_body,
)

# ---------------------------------------------------------------------------------------------------- writes
METHODS = f"/users/{AMY.id}/authentication/hardwareOathMethods"


CONTEXT = f"token {SERIAL} for amy.masters@contoso.com"


@pytest.mark.parametrize(
    "action, code, display_name, by_serial, expected",
    [
        (
            Action(UNASSIGN, AMY.id, ""),
            None,
            None,
            True,
            ("DELETE", f"{METHODS}/{DEVICE_ID}", f"unassign {CONTEXT}", {"expected": (204,)}),
        ),
        (
            Action(SET_DISPLAY_NAME, AMY.id, ""),
            None,
            NAME,
            True,
            (
                "PATCH",
                f"{DEVICES}/{DEVICE_ID}",
                f"set display name {CONTEXT}",
                {"json": {"displayName": NAME}, "expected": (204, 200)},
            ),
        ),
        (
            Action(ASSIGN, AMY.id, ""),
            None,
            NAME,
            True,
            ("POST", METHODS, f"assign {CONTEXT}", {"json": {"device": {"id": DEVICE_ID}}, "expected": (201, 200)}),
        ),
        (
            Action(ACTIVATE, AMY.id, ""),
            "012345",
            None,
            True,
            (
                "POST",
                f"{METHODS}/{DEVICE_ID}/activate",
                f"activate {CONTEXT}",
                {"json": {"verificationCode": "012345"}, "expected": (204, 200)},
            ),
        ),
        (
            Action(ACTIVATE, AMY.id, ""),
            "012345",
            NAME,
            False,
            (
                "POST",
                f"{METHODS}/{DEVICE_ID}/activate",
                f"activate {CONTEXT}",
                {"json": {"verificationCode": "012345", "displayName": NAME}, "expected": (204, 200)},
            ),
        ),
        (
            Action(ASSIGN_AND_ACTIVATE, AMY.id, ""),
            "012345",
            NAME,
            True,
            (
                "POST",
                f"{METHODS}/assignAndActivateBySerialNumber",
                f"assign and activate {CONTEXT}",
                {
                    "json": {"serialNumber": SERIAL, "verificationCode": "012345", "displayName": NAME},
                    "expected": (204, 200),
                },
            ),
        ),
        (
            Action(ASSIGN_AND_ACTIVATE, AMY.id, ""),
            "012345",
            None,
            False,
            (
                "POST",
                f"{METHODS}/assignAndActivate",
                f"assign and activate {CONTEXT}",
                {"json": {"device": {"id": DEVICE_ID}, "verificationCode": "012345"}, "expected": (204, 200)},
            ),
        ),
    ],
)
def test_write_requests(action, code, display_name, by_serial, expected):
    client = FakeClient()
    HardwareOathApi(client).write(action, token(), AMY, code, display_name, by_serial=by_serial, me=False)
    assert client.calls == [expected]


def test_write_for_me_and_for_the_other_holder():
    client = FakeClient()
    api = HardwareOathApi(client)
    api.write(Action(UNASSIGN, ADELE.id, ""), token("activated", ADELE), AMY, None, None, by_serial=True, me=True)
    api.write(Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token(), AMY, "123456", None, by_serial=True, me=True)
    assert [c[:3] for c in client.calls] == [
        (
            "DELETE",
            f"/users/{ADELE.id}/authentication/hardwareOathMethods/{DEVICE_ID}",
            f"unassign token {SERIAL} for {ADELE.id}",
        ),
        (
            "POST",
            "/me/authentication/hardwareOathMethods/assignAndActivateBySerialNumber",
            f"assign and activate {CONTEXT}",
        ),
    ]


def test_write_encodes_path_segments():
    client = FakeClient()
    user = UserView(id="a/b?c#d", user_principal_name="x")
    odd = TokenView(
        id="../x",
        serial_number="S",
        status="assigned",
        assigned_to_id=user.id,
        assigned_to_name=None,
        display_name=None,
    )
    HardwareOathApi(client).write(Action(UNASSIGN, user.id, ""), odd, user, None, None, by_serial=True, me=False)
    assert client.calls[0][1] == "/users/a%2Fb%3Fc%23d/authentication/hardwareOathMethods/..%2Fx"


def test_write_403_names_the_permission_and_role():
    client = FakeClient(GraphError("assign token: Graph answered 403 accessDenied", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(Action(ASSIGN, AMY.id, ""), token(), AMY, None, None, by_serial=True, me=False)
    assert info.value.message == (
        "assign token: Graph answered 403 accessDenied. The caller needs the Microsoft Graph permission "
        "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All) and, when signed in as "
        "a user, the Authentication Administrator role (Privileged Authentication Administrator for admin users)"
    )


def test_write_403_on_the_inventory():
    client = FakeClient(GraphError("x", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(
            Action(SET_DISPLAY_NAME, AMY.id, ""), token(), AMY, None, NAME, by_serial=True, me=False
        )
    assert info.value.message == (
        "x. The caller needs the Microsoft Graph permission Policy.ReadWrite.AuthenticationMethod "
        "and, when signed in as a user, the Authentication Policy Administrator role"
    )


def test_user_lookup():
    body = {
        "id": AMY.id.upper(),
        "userPrincipalName": "amy.masters@contoso.com",
        "displayName": "Amy Masters",
        "userType": "Member",
    }
    client = FakeClient(body, body)
    api = HardwareOathApi(client)
    assert api.user("amy.masters@contoso.com") == AMY
    assert api.user("me") == AMY
    assert client.calls == [
        (
            "GET",
            "/users/amy.masters%40contoso.com",
            "Looking up user amy.masters@contoso.com",
            {"params": {"$select": "id,userPrincipalName,displayName,userType"}},
        ),
        ("GET", "/me", "Looking up user me", {"params": {"$select": "id,userPrincipalName,displayName,userType"}}),
    ]


def test_user_not_found():
    client = FakeClient(GraphError("Looking up user x: Graph answered 404 Request_ResourceNotFound", status=404))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).user("nobody@contoso.com")
    assert info.value.message == (
        "User nobody@contoso.com was not found in the tenant (Looking up user x: Graph "
        "answered 404 Request_ResourceNotFound)"
    )


def test_user_forbidden_names_the_permission():
    client = FakeClient(GraphError("m", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).user("amy.masters@contoso.com")
    assert (
        info.value.message == "m. The caller needs the Microsoft Graph permission User.Read.All (or User.ReadBasic.All)"
    )


def test_token_by_id_and_reread():
    device = {
        "id": DEVICE_ID,
        "serialNumber": SERIAL,
        "status": "activated",
        "assignedTo": {"id": AMY.id, "displayName": "Amy Masters"},
    }
    client = FakeClient(device, device)
    api = HardwareOathApi(client)
    assert api.token_by_id(DEVICE_ID) == token("activated", AMY)
    assert api.reread(token()) == token("activated", AMY)
    assert client.calls == [("GET", f"{DEVICES}/{DEVICE_ID}", f"Looking up token {DEVICE_ID}", {})] * 2


def test_a_token_created_a_moment_ago_is_waited_for_when_read_again():
    """A write's answer was lost right after the token's creation: the read-again may come before the new token shows
    in reads (404). The soak found a token failed so."""
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "activated", "assignedTo": {"id": AMY.id}}
    client = FakeClient(GraphError("Graph answered 404", status=404), device)
    api = HardwareOathApi(client)
    slept: list[float] = []
    api._sleep = slept.append
    assert api.reread(token()).status == "activated"
    assert len(client.calls) == 2 and slept == [0.5]


def test_token_by_id_not_found():
    client = FakeClient(GraphError("Graph answered 404", status=404))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).token_by_id("a/b")
    assert client.calls[0][1] == f"{DEVICES}/a%2Fb"
    assert info.value.message == "No hardware OATH token with id a/b is in the tenant's inventory (Graph answered 404)"


# --------------------------------------------------------------------------------------------------- self-service (/me)
MY_METHODS = {
    "value": [
        {
            "id": "aaaa0000-0000-4000-8000-000000000001",
            "device": {"id": "aaaa0000-0000-4000-8000-000000000001", "serialNumber": "OTHER1", "status": "activated"},
        },
        {
            "id": DEVICE_ID.upper(),
            "device": {
                "id": DEVICE_ID,
                "serialNumber": SERIAL.lower(),
                "status": "activated",
                "displayName": NAME,
                "assignedTo": {"id": AMY.id, "displayName": "Amy Masters"},
            },
        },
    ]
}


MINE = TokenView(
    id=DEVICE_ID.upper(),
    serial_number=SERIAL.lower(),
    status="activated",
    assigned_to_id=AMY.id,
    assigned_to_name="Amy Masters",
    display_name=NAME,
)


@pytest.mark.parametrize("serial, device_id", [(SERIAL, None), (None, DEVICE_ID), (None, DEVICE_ID.upper())])
def test_my_token_found(serial, device_id):
    client = FakeClient(MY_METHODS)
    assert HardwareOathApi(client).my_token(serial, device_id) == MINE
    assert client.calls == [("GET", "/me/authentication/hardwareOathMethods", "Listing your hardware OATH tokens", {})]


def test_my_token_without_assigned_to_is_held_by_the_signed_in_user():
    # A method in the signed-in user's own list is theirs, even if Graph leaves device.assignedTo out.
    me = {"id": AMY.id, "userPrincipalName": AMY.user_principal_name, "displayName": "Amy Masters"}
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "activated"}
    client = FakeClient(me, {"value": [{"id": DEVICE_ID, "device": device}]})
    api = HardwareOathApi(client)
    assert api.user("me").id == AMY.id
    found = api.my_token(SERIAL, None)
    assert (found.assigned_to_id, found.assigned_to_name, found.status) == (AMY.id, "Amy Masters", "activated")


def test_my_token_not_among_my_methods():
    assert HardwareOathApi(FakeClient(MY_METHODS)).my_token("NOPE", None) is None
    assert HardwareOathApi(FakeClient({"value": []})).my_token(SERIAL, None) is None


def test_my_token_forbidden_names_the_permission():
    with pytest.raises(GraphError) as info:
        HardwareOathApi(FakeClient(GraphError("m", status=403))).my_token(SERIAL, None)
    # Reading one's own methods needs the scope, not a directory role.
    assert info.value.message == (
        "m. The caller needs the Microsoft Graph permission UserAuthenticationMethod.Read "
        "(delegated, with a signed-in user)"
    )


def test_reread_for_me_reads_my_methods():
    client = FakeClient(MY_METHODS)
    assert HardwareOathApi(client).reread(token(), True) == MINE
    assert [c[1] for c in client.calls] == ["/me/authentication/hardwareOathMethods"]


def test_reread_for_me_when_the_token_is_not_mine():
    client = FakeClient({"value": []})
    assert HardwareOathApi(client).reread(token("assigned", AMY, NAME), True) == token()


# ---------------------------------------------------------------------------------------------------- inventory writes
def test_create_update_delete_requests():
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "available", "manufacturer": "Contoso", "model": "M"}
    client = FakeClient(device, None, None)
    api = HardwareOathApi(client)
    body = {"serialNumber": SERIAL, "manufacturer": "Contoso", "model": "M", "secretKey": SECRET}
    assert api.create_token(body) == TokenView.from_graph(device)
    api.update_token(token(), {"displayName": NAME})
    api.delete_token(token())
    assert client.calls == [
        ("POST", DEVICES, f"Creating token {SERIAL}", {"json": body, "expected": (201, 200)}),
        (
            "PATCH",
            f"{DEVICES}/{DEVICE_ID}",
            f"Updating token {SERIAL}",
            {"json": {"displayName": NAME}, "expected": (204, 200)},
        ),
        ("DELETE", f"{DEVICES}/{DEVICE_ID}", f"Deleting token {SERIAL}", {"expected": (204,)}),
    ]


@pytest.mark.parametrize(
    "assign_to, hint",
    [
        (
            None,
            "Policy.ReadWrite.AuthenticationMethod and, when signed in as a user, the Authentication Policy "
            "Administrator role",
        ),
        (
            {"id": AMY.id},
            "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All) and, when "
            "signed in as a user, the Authentication Administrator role (Privileged Authentication Administrator "
            "for admin users)",
        ),
    ],
)
def test_create_token_403_names_the_permission(assign_to, hint):
    body = {"serialNumber": SERIAL, "secretKey": SECRET, **({"assignTo": assign_to} if assign_to else {})}
    with pytest.raises(GraphError) as info:
        HardwareOathApi(FakeClient(GraphError("m", status=403))).create_token(body)
    assert info.value.message == f"m. The caller needs the Microsoft Graph permission {hint}"
    assert SECRET not in info.value.message


# ------------------------------------------------------------------------------------------------ reads on a mock Graph
DENIED = (
    403,
    {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {"request-id": "rid-403", "date": "2026-11-21T22:42:25"},
        }
    },
)


DENIED_TEXT = (
    "Graph answered 403 Authorization_RequestDenied: Insufficient privileges to complete the operation. "
    "(request-id rid-403, date 2026-11-21T22:42:25)"
)


def test_list_tokens_everything_in_pages_of_999():
    link = GRAPH + "/beta" + DEVICES + "?$top=999&$skiptoken=abc"
    graph = Graph(
        {
            DEVICES: [
                (200, {"value": [device("d1", "S1"), device("d2", "S2", AMY)], "@odata.nextLink": link}),
                (200, {"value": [device("d3", "S3")]}),
            ]
        }
    )
    tokens = graph_api(graph).list_tokens()
    assert [(t.id, t.serial_number, t.assigned_to_id) for t in tokens] == [
        ("d1", "S1", None),
        ("d2", "S2", AMY.id),
        ("d3", "S3", None),
    ]
    assert len(graph.requests) == 2
    assert graph.params[0] == {"$top": "999"}
    assert str(graph.requests[1].url) == link
    assert all(r.method == "GET" and r.headers["Authorization"] == "Bearer t" for r in graph.requests)


def test_list_tokens_without_top_when_graph_refuses_it():
    refused = (400, {"error": {"code": "BadRequest", "message": "$top may not be above 100."}})
    graph = Graph({DEVICES: [refused, (200, {"value": [device("d1", "S1")]}), (200, {"value": [device("d2", "S2")]})]})
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert [t.id for t in api.list_tokens()] == ["d1"]
    assert [t.id for t in api.list_tokens(TokenQuery(statuses=("available",)))] == ["d2"]
    assert graph.params == [{"$top": "999"}, {}, {"$filter": "status eq 'available'"}]  # refused once, then never sent
    assert len(warnings) == 1 and warnings[0].startswith("Graph refused $top=999 (")


def test_list_tokens_several_values_one_eq_listing_each_in_one_batch():
    graph = Graph(
        {"/$batch": [batch_of({"value": [device("d1", "S00")]}, {"value": []}, {"value": [device("d3", "s02", AMY)]})]}
    )
    tokens = graph_api(graph).list_tokens(
        TokenQuery(serial_numbers=("S00", "S01", "s00", "S02"), statuses=("available",))
    )
    assert [t.id for t in tokens] == ["d1"]  # d3 is assigned: checked locally
    assert len(graph.requests) == 1
    sent = json.loads(graph.requests[0].content)["requests"]
    assert [item["url"] for item in sent] == [
        f"{DEVICES}?$filter=serialNumber%20eq%20'S00'",
        f"{DEVICES}?$filter=serialNumber%20eq%20'S01'",
        f"{DEVICES}?$filter=serialNumber%20eq%20'S02'",
    ]


def test_list_tokens_statuses_one_eq_listing_each_with_top_and_checked_locally():
    graph = Graph(
        {
            "/$batch": [
                batch_of(
                    {"value": [device("d1", "S1", AMY) | {"status": "activated"}]},
                    {"value": [device("d2", "S2", AMY)]},
                    # how Entra's documentation shows a token created with assignTo: available, with a holder
                    {"value": [device("d3", "S3", AMY) | {"status": "available"}, device("d4", "S4")]},
                )
            ]
        }
    )
    api = graph_api(graph)
    tokens = api.list_tokens(TokenQuery(statuses=("activated", "assigned"), model="OATH-TOTP", manufacturer="Other"))
    assert tokens == []  # the manufacturer differs: checked locally
    sent = json.loads(graph.requests[0].content)["requests"]
    assert [item["url"] for item in sent] == [
        f"{DEVICES}?$filter=status%20eq%20'activated'&$top=999",
        f"{DEVICES}?$filter=status%20eq%20'assigned'&$top=999",
        f"{DEVICES}?$filter=status%20eq%20'available'&$top=999",
    ]


def test_list_tokens_assigned_includes_a_token_graph_shows_available_with_a_holder():
    graph = Graph(
        {
            "/$batch": [
                batch_of(
                    {"value": [device("d2", "S2", AMY)]},
                    {"value": [device("d3", "S3", AMY) | {"status": "available"}, device("d4", "S4")]},
                )
            ]
        }
    )
    tokens = graph_api(graph).list_tokens(TokenQuery(statuses=("assigned",)))
    assert [(token.serial_number, token.status) for token in tokens] == [("S2", "assigned"), ("S3", "assigned")]


def test_list_tokens_a_filter_graph_ignored_never_widens_the_result():
    everything = [device("d1", "S1"), device("d2", "S2", AMY), device(DEVICE_ID, SERIAL)]
    link = GRAPH + "/beta" + DEVICES + "?$skiptoken=p2"
    graph = Graph(
        {DEVICES: [(200, {"value": everything[:2], "@odata.nextLink": link}), (200, {"value": everything[2:]})]}
    )
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert api.find_token(SERIAL).id == DEVICE_ID  # on the second page of the unfiltered answer
    assert len(graph.requests) == 2
    assert warnings == [
        f"Graph ignored the inventory filter \"serialNumber eq '{SERIAL}'\" (its answer holds other "
        "tokens); reading the whole inventory and filtering it locally."
    ]


def test_list_tokens_an_ignored_filter_in_a_batch_reads_that_answer_only():
    everything = [device("d1", "S1"), device("d2", "S2", AMY), device("d3", "S3")]
    graph = Graph({"/$batch": [batch_of({"value": everything}, {"value": everything})]})
    warnings: list[str] = []
    tokens = graph_api(graph, warnings).list_tokens(TokenQuery(serial_numbers=("S1", "S3")))
    assert [t.id for t in tokens] == ["d1", "d3"]
    assert len(graph.requests) == 1 and len(warnings) == 1


def test_list_tokens_a_refused_filter_falls_back_to_listing_everything_once():
    refused = (400, {"error": {"code": "BadRequest", "message": "Unsupported query."}})
    listing = (200, {"value": [device("d1", "S1", AMY), device("d2", "S2")]})
    graph = Graph({DEVICES: [refused, refused, listing, refused, refused, listing]})
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert [t.id for t in api.list_tokens(TokenQuery(assigned_to_id=AMY.id))] == ["d1"]
    assert [t.id for t in api.list_tokens(TokenQuery(assigned_to_id=AMY.id))] == ["d1"]
    # refused with $top, refused without it too: the filter was refused, not $top, which the listing keeps
    assert (
        graph.params
        == [
            {"$filter": f"assignedTo/id eq '{AMY.id}'", "$top": "999"},
            {"$filter": f"assignedTo/id eq '{AMY.id}'"},
            {"$top": "999"},
        ]
        * 2
    )
    assert len(warnings) == 1 and warnings[0].startswith(
        f"Graph refused the inventory filter \"assignedTo/id eq '{AMY.id}'\""
    )


def test_list_tokens_a_refused_filter_in_a_batch_falls_back_too():
    refused = {"id": "1", "status": 400, "body": {"error": {"code": "BadRequest", "message": "Unsupported query."}}}
    graph = Graph(
        {
            "/$batch": [(200, {"responses": [{"id": "0", "status": 200, "body": {"value": []}}, refused]})],
            DEVICES: [(200, {"value": [device("d1", "S1"), device("d2", "S2")]})],
        }
    )
    tokens = graph_api(graph).list_tokens(TokenQuery(serial_numbers=("S1", "S2")))
    assert [t.id for t in tokens] == ["d1", "d2"]
    assert graph.params[-1] == {"$top": "999"}


@pytest.mark.parametrize(
    "inventory, pages, lookups",
    [
        (30, 1, 0),  # the inventory fits one page: it answers everything in one round trip
        (3000, 2, 1),  # two pages (the eq listings would take two round trips), then the 5 serials not seen yet
    ],
)
def test_list_tokens_many_serial_numbers_cost_at_most_twice_the_cheaper_way(inventory, pages, lookups):
    serials = [f"S{i:04d}" for i in range(25)] + [f"T{i}" for i in range(5)]  # 30 values: 2 batch round trips
    tokens = [device(f"d{i}", f"S{i:04d}") for i in range(inventory)] + [device(f"t{i}", f"T{i}") for i in range(5)]
    by_page = [tokens[i : i + 999] for i in range(0, len(tokens), 999)]
    answers = [
        (
            200,
            {
                "value": page,
                **({"@odata.nextLink": f"{GRAPH}/beta{DEVICES}?$skiptoken={n + 1}"} if n + 1 < len(by_page) else {}),
            },
        )
        for n, page in enumerate(by_page)
    ]
    graph = Graph({DEVICES: answers, "/$batch": [batch_of(*[{"value": [device(f"t{i}", f"T{i}")]} for i in range(5)])]})
    found = graph_api(graph).list_tokens(TokenQuery(serial_numbers=tuple(serials)))
    assert sorted(t.serial_number for t in found) == sorted(serials)
    assert [r.url.path for r in graph.requests] == [f"/beta{DEVICES}"] * pages + ["/beta/$batch"] * lookups
    if lookups:
        sent = json.loads(graph.requests[-1].content)["requests"]
        assert [item["url"].rsplit("'", 2)[1] for item in sent] == [f"T{i}" for i in range(5)]


def test_list_tokens_forbidden_names_the_permission():
    graph = Graph({DEVICES: [DENIED]})
    with pytest.raises(GraphError) as info:
        graph_api(graph).list_tokens()
    assert info.value.status == 403
    assert info.value.message == (
        f"Listing the hardware OATH token inventory: {DENIED_TEXT}. The caller needs the Microsoft Graph permission "
        "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod) and, when signed in as a user, the Global Reader "
        "or Authentication Policy Administrator role"
    )
    assert len(graph.requests) == 1


def test_find_token_on_graph():
    graph = Graph({DEVICES: [(200, {"value": [device(DEVICE_ID, SERIAL.lower(), AMY)]}), (200, {"value": []})]})
    api = graph_api(graph)
    found = api.find_token(SERIAL)
    assert (found.id, found.serial_number, found.status, found.assigned_to_id) == (
        DEVICE_ID,
        SERIAL.lower(),
        "assigned",
        AMY.id,
    )
    assert api.find_token("O'Brien' or 1 eq 1") is None
    assert graph.params == [
        {"$filter": f"serialNumber eq '{SERIAL}'"},
        {"$filter": "serialNumber eq 'O''Brien'' or 1 eq 1'"},
    ]


def test_token_by_serial_waits_for_a_token_imported_a_moment_ago():
    graph = Graph(
        {DEVICES: [(200, {"value": []}), (200, {"value": []}), (200, {"value": [device(DEVICE_ID, SERIAL)]})]}
    )
    sleeps: list[float] = []
    assert graph_api(graph, sleeps=sleeps).token_by_serial(SERIAL).id == DEVICE_ID
    assert sleeps == [0.5, 1.0]


def test_token_by_serial_not_found_after_waiting():
    graph = Graph({DEVICES: lambda request: (200, {"value": []})})
    sleeps: list[float] = []
    with pytest.raises(GraphError) as info:
        graph_api(graph, sleeps=sleeps).token_by_serial("NOPE1")
    assert (info.value.status, info.value.code) == (404, "notFound")
    assert info.value.message == (
        "No hardware OATH token with serial number NOPE1 is in the tenant's inventory (looked "
        f"up again for {READ_AFTER_WRITE_WAIT:.0f} s, in case it was imported a moment ago); "
        "import it first (tokenops.entra.hardware_oath_token)."
    )
    assert sum(sleeps) == READ_AFTER_WRITE_WAIT == 10.0
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]


def test_token_exists_on_graph():
    missing = (404, {"error": {"code": "Request_ResourceNotFound", "message": "Not found"}})
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": [(200, device(DEVICE_ID, SERIAL)), missing, DENIED]})
    api = graph_api(graph)
    assert api.token_exists(DEVICE_ID) is True
    assert api.token_exists(DEVICE_ID) is False
    with pytest.raises(GraphError) as info:
        api.token_exists(DEVICE_ID)
    assert info.value.message == (
        f"Looking up token {DEVICE_ID}: {DENIED_TEXT}. The caller needs the Microsoft Graph permission "
        "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod) and, when signed in as a user, the Global Reader "
        "or Authentication Policy Administrator role"
    )
    assert len(graph.requests) == 3


def test_users_by_ids_in_batched_chunks_of_fifteen():
    others = [f"00000000-0000-4000-8000-{n:012d}" for n in range(14)]
    ids = [AMY.id, ADELE.id.upper(), *others, ADELE.id, AMY.id.upper()]  # 16 distinct ids
    graph = Graph(
        {
            "/$batch": batch_items(
                lambda url: (200, {"value": [user_body(AMY)]} if "%20in%20" in url else {"value": [user_body(ADELE)]})
            )
        }
    )
    users = graph_api(graph).users_by_ids(ids)
    assert users == {AMY.id: AMY, ADELE.id: ADELE}
    assert len(graph.requests) == 1
    sent = json.loads(graph.requests[0].content)["requests"]
    select = "&$select=id,userPrincipalName,displayName,userType"
    first = ",%20".join(f"'{i}'" for i in [AMY.id, ADELE.id.upper(), *others[:13]])
    assert sent == [
        {"id": "0", "method": "GET", "url": f"/users?$filter=id%20in%20({first}){select}"},
        {"id": "1", "method": "GET", "url": f"/users?$filter=id%20eq%20'{others[13]}'{select}"},
    ]


def test_users_by_ids_of_nobody_sends_nothing():
    graph = Graph({})
    assert graph_api(graph).users_by_ids([]) == {}
    assert graph.requests == []


def test_users_by_ids_forbidden_names_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_by_ids([AMY.id])
    assert info.value.message == (
        f"Looking up the users holding tokens (/users): {DENIED_TEXT}. The caller needs the "
        "Microsoft Graph permission User.Read.All (or User.ReadBasic.All)"
    )


AMY_METHODS = [{"id": DEVICE_ID, "device": device(DEVICE_ID, SERIAL, AMY)}]


def test_users_with_methods_in_one_batch():
    answers = {
        "/me?$select=id,userPrincipalName,displayName,userType": (200, user_body(ADELE)),
        "/me/authentication/hardwareOathMethods": (200, {"value": []}),
        "/users/amy.masters%40contoso.com?$select=id,userPrincipalName,displayName,userType": (200, user_body(AMY)),
        "/users/amy.masters%40contoso.com/authentication/hardwareOathMethods": (200, {"value": AMY_METHODS}),
    }
    graph = Graph({"/$batch": batch_items(answers.__getitem__)})
    result = graph_api(graph).users_with_methods(["me", "amy.masters@contoso.com"])
    assert result == [(ADELE, []), (AMY, AMY_METHODS)]
    assert len(graph.requests) == 1
    assert [item["url"] for item in json.loads(graph.requests[0].content)["requests"]] == list(answers)


def test_users_with_methods_user_not_found():
    missing = (404, {"error": {"code": "Request_ResourceNotFound", "message": "Resource does not exist."}})
    graph = Graph(
        {"/$batch": batch_items(lambda url: missing if url.startswith("/users/nobody") else (200, {"value": []}))}
    )
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods(["nobody@contoso.com"])
    assert info.value.status == 404
    assert info.value.message == (
        "User nobody@contoso.com was not found in the tenant (Reading the hardware OATH methods of users "
        "(/users/nobody%40contoso.com): Graph answered 404 Request_ResourceNotFound: Resource does not exist.)"
    )


def test_users_with_methods_forbidden_methods_name_the_permission():
    graph = Graph(
        {"/$batch": batch_items(lambda url: DENIED if url.endswith("hardwareOathMethods") else (200, user_body(AMY)))}
    )
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods([AMY.id])
    assert info.value.message == (
        f"Reading the hardware OATH methods of users (/users/{AMY.id}/authentication/hardwareOathMethods): "
        f"{DENIED_TEXT}. The caller needs the Microsoft Graph permission UserAuthenticationMethod.Read (for "
        "yourself) or UserAuthenticationMethod.Read.All and, when signed in as a user, the Global Reader or "
        "Authentication Administrator role"
    )


def test_users_with_methods_forbidden_user_names_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods(["me"])
    assert info.value.message == (
        f"Reading the hardware OATH methods of users (/me): {DENIED_TEXT}. The caller needs the "
        "Microsoft Graph permission User.Read.All (or User.ReadBasic.All)"
    )


# ------------------------------------------------------------------------------------------------- eventual consistency
def test_create_while_the_delete_of_its_serial_number_propagates():
    duplicate = (409, {"error": {"code": "conflict", "message": "already exists"}})
    graph = Graph({DEVICES: [duplicate, duplicate, (201, device(NEW_ID, SERIAL))]})
    sleeps: list[float] = []
    api = graph_api(graph, sleeps=sleeps)
    assert api.create_token({"serialNumber": SERIAL}, while_deleted=True).id == NEW_ID
    assert sleeps == [0.5, 1.0]
    graph = Graph({DEVICES: [duplicate]})
    with pytest.raises(TokenExists):
        graph_api(graph).create_token({"serialNumber": SERIAL})
    assert len(graph.requests) == 1


def test_users_with_methods_read_a_device_graph_left_out():
    bare = [
        {"id": DEVICE_ID, "createdDateTime": "2026-01-01T00:00:00Z"},
        {"id": "d2", "device": device("d2", "S2", AMY)},
    ]
    answers = {
        f"/users/{AMY.id}?$select=id,userPrincipalName,displayName,userType": (200, user_body(AMY)),
        f"/users/{AMY.id}/authentication/hardwareOathMethods": (200, {"value": bare}),
        f"/users/{AMY.id}/authentication/hardwareOathMethods/{DEVICE_ID}/device": (200, device(DEVICE_ID, SERIAL, AMY)),
    }
    graph = Graph({"/$batch": batch_items(answers.__getitem__)})
    [(user, methods)] = graph_api(graph).users_with_methods([AMY.id])
    assert user == AMY
    assert [TokenView.from_method(m, AMY).serial_number for m in methods] == [SERIAL, "S2"]
    assert len(graph.requests) == 2  # the users and their methods, then the one device left out
    assert [item["url"] for item in json.loads(graph.requests[1].content)["requests"]] == [
        f"/users/{AMY.id}/authentication/hardwareOathMethods/{DEVICE_ID}/device"
    ]


def test_my_token_reads_a_device_graph_left_out():
    graph = Graph(
        {
            "/me/authentication/hardwareOathMethods": [(200, {"value": [{"id": DEVICE_ID}]})],
            "/$batch": batch_items(lambda url: (200, device(DEVICE_ID, SERIAL, AMY))),
        }
    )
    found = graph_api(graph).my_token(SERIAL, None)
    assert (found.id, found.serial_number, found.assigned_to_id) == (DEVICE_ID, SERIAL, AMY.id)
    assert len(graph.requests) == 2


def test_a_device_read_refused_names_the_permission():
    graph = Graph(
        {
            "/me/authentication/hardwareOathMethods": [(200, {"value": [{"id": DEVICE_ID}]})],
            "/$batch": batch_items(lambda url: DENIED),
        }
    )
    with pytest.raises(GraphError, match="UserAuthenticationMethod.Read"):
        graph_api(graph).my_token(SERIAL, None)


# ---------------------------------------------------------------------------------------------------- refusals
OPAQUE = {"error": {"code": "badRequest", "message": "The request could not be processed."}}  # words say nothing
METHODS = f"/users/{AMY.id}/authentication/hardwareOathMethods"
ALL_METHODS = f"/users/{AMY.id}/authentication/methods"


def methods_of(oath=0, others=("#microsoft.graph.passwordAuthenticationMethod",)):
    """A user's /authentication/methods: ``oath`` hardware and software OATH methods, and ``others``."""
    types = [
        "#microsoft.graph.hardwareOathAuthenticationMethod"
        if n % 2
        else "#microsoft.graph.softwareOathAuthenticationMethod"
        for n in range(oath)
    ]
    return {"value": [{"@odata.type": kind, "id": f"m{n}"} for n, kind in enumerate([*types, *others])]}


def judged(kind, now, methods=None, *, write_path=None, status="available", holder=None, refusal=(400, OPAQUE)):
    """``api.write`` of ``kind`` for AMY refused with an opaque 400; the token re-read as ``now`` (a device, or an
    error status), AMY's methods ``methods``. Returns the error raised and the paths requested."""
    routes = {
        write_path or f"{METHODS}/assignAndActivate": [refusal],
        f"{DEVICES}/{DEVICE_ID}": [now if isinstance(now, tuple) else (200, now)],
    }
    if methods is not None:
        routes[ALL_METHODS] = [(200, methods)]
    graph = Graph(routes)
    with pytest.raises(GraphError) as info:
        graph_api(graph).write(
            Action(kind, AMY.id, ""), token(status, holder), AMY, "123456", None, by_serial=False, me=False
        )
    return info.value, [r.url.path[len("/beta") :] for r in graph.requests]


def test_a_refused_activation_with_nothing_else_to_blame_is_a_refused_code():
    error, paths = judged(ASSIGN_AND_ACTIVATE, device(DEVICE_ID, SERIAL), methods_of(oath=2))
    assert isinstance(error, CodeRefused) and (error.status, error.code, error.request_id) == (400, "badRequest", "rid")
    assert paths == [f"{METHODS}/assignAndActivate", f"{DEVICES}/{DEVICE_ID}", ALL_METHODS]


def test_a_conflict_with_nothing_else_to_blame_is_not_taken_for_a_refused_code():
    conflict = (409, {"error": {"code": "conflict", "message": "The request could not be processed."}})
    error, _paths = judged(ASSIGN_AND_ACTIVATE, device(DEVICE_ID, SERIAL), methods_of(oath=2), refusal=conflict)
    assert not isinstance(error, CodeRefused) and error.status == 409


def test_a_refused_activation_of_a_token_the_user_holds_is_a_refused_code_without_counting_methods():
    held = {**device(DEVICE_ID, SERIAL, AMY), "status": "failedActivation"}
    error, paths = judged(ACTIVATE, held, write_path=f"{METHODS}/{DEVICE_ID}/activate", status="assigned", holder=AMY)
    assert isinstance(error, CodeRefused)
    assert ALL_METHODS not in paths


@pytest.mark.parametrize("kind", [ASSIGN, ASSIGN_AND_ACTIVATE])
def test_the_five_method_limit_is_judged_from_the_users_methods(kind):
    write = METHODS if kind == ASSIGN else f"{METHODS}/assignAndActivate"
    error, _paths = judged(kind, device(DEVICE_ID, SERIAL), methods_of(oath=5), write_path=write)
    assert not isinstance(error, CodeRefused)
    assert error.message.endswith(
        ". The user holds 5 OATH methods, hardware tokens and authenticator apps together, the most Entra ID allows: "
        "remove one of theirs first (a hardware token with tokenops.entra.hardware_oath_assignment state=absent, an "
        "authenticator app in the Entra admin center), or give this token to someone else"
    )


def test_four_oath_methods_and_others_are_not_the_limit():
    others = ("#microsoft.graph.passwordAuthenticationMethod", "#microsoft.graph.phoneAuthenticationMethod")
    error, _paths = judged(ASSIGN, device(DEVICE_ID, SERIAL), methods_of(oath=4, others=others), write_path=METHODS)
    assert not isinstance(error, CodeRefused) and "OATH methods" not in error.message  # an assign sends no code


def test_a_token_someone_else_took_meanwhile_is_said_and_no_code_blamed():
    error, paths = judged(ASSIGN_AND_ACTIVATE, device(DEVICE_ID, SERIAL, ADELE))
    assert not isinstance(error, CodeRefused)
    assert f"{SERIAL}" in error.message and f"is held by Adele Vance ({ADELE.id}) now" in error.message
    assert ALL_METHODS not in paths


def test_a_refused_reactivation_is_judged_from_the_token_s_status():
    held = {**device(DEVICE_ID, SERIAL, AMY), "status": "activated"}
    error, _paths = judged(ACTIVATE, held, write_path=f"{METHODS}/{DEVICE_ID}/activate", status="activated", holder=AMY)
    assert not isinstance(error, CodeRefused)
    assert (
        "Graph does not activate an activated token again, so its display name can't be changed this way: leave "
        "display_name unset, or unassign the token and assign it again with display_name" in error.message
    )


def test_a_refusal_whose_state_can_t_be_read_is_graph_s_own():
    error, _paths = judged(ASSIGN_AND_ACTIVATE, (403, {"error": {"code": "Authorization_RequestDenied"}}))
    assert not isinstance(error, CodeRefused) and error.code == "badRequest"
    assert "held by" not in error.message and "OATH methods" not in error.message


def test_the_five_method_limit_on_a_creation_with_assign_to():
    graph = Graph({DEVICES: [(400, OPAQUE)], ALL_METHODS: [(200, methods_of(oath=5))]})
    with pytest.raises(GraphError, match="The user holds 5 OATH methods"):
        graph_api(graph).create_token({"serialNumber": SERIAL, "assignTo": {"id": AMY.id}})
    graph = Graph({DEVICES: [(400, OPAQUE)]})
    with pytest.raises(GraphError) as info:
        graph_api(graph).create_token({"serialNumber": SERIAL})  # no user: nothing to count
    assert "OATH methods" not in info.value.message and len(graph.requests) == 1


@pytest.mark.parametrize("error", [GraphError("x", status=403), GraphError("x", status=500)])
@pytest.mark.parametrize("kind", [ASSIGN, ACTIVATE, ASSIGN_AND_ACTIVATE])
def test_other_refusals_are_left_as_they_are_without_reading_anything(error, kind):
    client = FakeClient(copy.copy(error))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(
            Action(kind, AMY.id, ""), token("assigned", AMY), AMY, "123456", None, by_serial=True, me=False
        )
    assert not isinstance(info.value, CodeRefused) and info.value.status == error.status
    assert len(client.calls) == 1


def test_token_by_id_waits_for_a_token_imported_a_moment_ago():
    missing = (404, {"error": {"code": "itemNotFound", "message": "Not found"}})
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": [missing, (200, device(DEVICE_ID, SERIAL))]})
    sleeps: list[float] = []
    assert graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID, wait=True).id == DEVICE_ID
    assert sleeps == [0.5]
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": lambda request: missing})
    sleeps = []
    with pytest.raises(GraphError) as info:
        graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID, wait=True)
    assert info.value.status == 404 and sum(sleeps) == READ_AFTER_WRITE_WAIT
    assert info.value.message.endswith("; looked up again for 10 s, in case it was imported a moment ago")
    with pytest.raises(GraphError):  # without wait: one lookup
        graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID)


def test_the_wait_for_an_earlier_write_is_an_option():
    graph = Graph({DEVICES: lambda request: (200, {"value": []})})
    sleeps: list[float] = []
    transport_api = graph_api(graph, sleeps=sleeps)
    transport_api.wait = 2.0
    with pytest.raises(GraphError, match=r"looked up again for 2 s, in case it was imported a moment ago"):
        transport_api.token_by_serial("NOPE1")
    assert sleeps == [0.5, 1.0, 0.5]
    assert len(graph.requests) == 4


# ---------------------------------------------------------------------------------------------------- declared users
SELECT = "id,userPrincipalName,displayName,userType"


def listing(item):
    """A batch item's listing: (its path, its $filter, its $select)."""
    url = urlsplit(item["url"])
    query = parse_qs(url.query)
    return url.path, query["$filter"][0], query["$select"][0]


def sent_listings(graph):
    """Per $batch round trip, the listings it carried."""
    return [[listing(item) for item in json.loads(request.content)["requests"]] for request in graph.requests]


def users_route(*users):
    """A $batch route where each /users listing answers those of ``users`` its filter names, in any case."""

    def answer(url):
        text = unquote(url).casefold()
        return 200, {
            "value": [
                user_body(u)
                for u in users
                if f"'{u.id.casefold()}'" in text or f"'{u.user_principal_name.casefold()}'" in text
            ]
        }

    return batch_items(answer)


def in_list(prop, values):
    return f"{prop} in ({', '.join(repr(v) for v in values)})"


def test_users_by_refs_splits_ids_and_names_and_keys_by_the_reference_as_given():
    refs = [AMY.id.upper(), "Adele.Vance@Contoso.com", "nobody@contoso.com", AMY.user_principal_name, ADELE.id]
    graph = Graph({"/$batch": users_route(AMY, ADELE)})
    users = graph_api(graph).users_by_refs(refs)
    assert users == {
        AMY.id: AMY,  # the id as given (upper case), case-folded
        "adele.vance@contoso.com": ADELE,
        AMY.user_principal_name: AMY,
        ADELE.id: ADELE,
    }  # nobody@contoso.com names no user: left out
    assert sent_listings(graph) == [
        [
            ("/users", in_list("id", [AMY.id.upper(), ADELE.id]), SELECT),
            (
                "/users",
                in_list(
                    "userPrincipalName", ["Adele.Vance@Contoso.com", "nobody@contoso.com", AMY.user_principal_name]
                ),
                SELECT,
            ),
        ]
    ]


def test_users_by_refs_in_listings_of_fifteen_batched():
    names = [f"user{n:03d}@contoso.com" for n in range(16)]
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(16)]
    refs = [*names, *ids, names[0].upper(), ids[0].upper()]  # duplicates, in another case, are asked for once
    graph = Graph({"/$batch": users_route(AMY)})
    assert graph_api(graph).users_by_refs(refs) == {}
    assert sent_listings(graph) == [
        [
            ("/users", in_list("id", ids[:15]), SELECT),
            ("/users", f"id eq '{ids[15]}'", SELECT),
            ("/users", in_list("userPrincipalName", names[:15]), SELECT),
            ("/users", f"userPrincipalName eq '{names[15]}'", SELECT),
        ]
    ]


def test_users_by_refs_more_than_twenty_listings_take_two_round_trips():
    names = [f"user{n:03d}@contoso.com" for n in range(15 * 20)] + [AMY.user_principal_name.upper()]
    graph = Graph({"/$batch": users_route(AMY)})
    assert graph_api(graph).users_by_refs(names) == {AMY.user_principal_name: AMY}
    batches = sorted(sent_listings(graph), key=len, reverse=True)  # sent side by side: in either order
    assert [len(listings) for listings in batches] == [20, 1]
    assert batches[1] == [("/users", f"userPrincipalName eq '{AMY.user_principal_name.upper()}'", SELECT)]


def test_users_by_refs_quotes_a_name_with_an_apostrophe():
    graph = Graph({"/$batch": users_route()})
    assert graph_api(graph).users_by_refs(["o'neil@contoso.com"]) == {}
    assert sent_listings(graph) == [[("/users", "userPrincipalName eq 'o''neil@contoso.com'", SELECT)]]


def test_users_by_refs_forbidden_names_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_by_refs([AMY.user_principal_name])
    assert info.value.message == (
        f"Looking up the declared users (/users): {DENIED_TEXT}. The caller needs the Microsoft Graph permission "
        "User.Read.All (or User.ReadBasic.All)"
    )


# ---------------------------------------------------------------------------------------------------- bulk creation
def body(serial, holder=None):
    """A creation body (with the secret) of token ``serial``, for ``holder``."""
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "secretKey": SECRET,
        "timeIntervalInSeconds": 30,
        "hashFunction": "hmacsha1",
        **({"assignTo": {"id": holder.id}} if holder else {}),
    }


def delta(*items):
    """The delta payload of ``(contentId, body)`` items."""
    return {"@context": "#$delta", "value": [{"@contentId": content_id, **b} for content_id, b in items]}


def answered(*devices):
    """Graph's answer to a delta payload: the devices created, each with its @contentId."""
    return {"@context": "#$delta", "value": [{"@contentId": str(n), **d} for n, d in enumerate(devices)]}


def bulk_refusal(*targets, status=400, code="badRequest", item_code="conflict"):
    return GraphError(
        f"Creating 3 tokens: Graph answered {status} {code}",
        status=status,
        code=code,
        request_id="rid-400",
        details=[{"code": item_code, "message": f"Refused ({t})", "target": t} for t in targets],
    )


def test_create_tokens_sends_one_delta_payload():
    devices = [device("d0", "S0"), device("d1", "S1", AMY)]
    client = FakeClient(answered(*devices))
    made, refusals = HardwareOathApi(client).create_tokens([body("S0"), body("S1", AMY)])
    assert made == [TokenView.from_graph(d) for d in devices]
    assert refusals == {}
    assert client.calls == [
        (
            "PATCH",
            DEVICES,
            "Creating 2 tokens",
            {"json": delta(("0", body("S0")), ("1", body("S1", AMY))), "expected": (200, 201, 204)},
        )
    ]
    assert MAX_BULK_CREATE == 100


@pytest.mark.parametrize(
    "bodies, hint",
    [
        ([body("S0"), body("S1")], "Policy.ReadWrite.AuthenticationMethod and"),
        ([body("S0"), body("S1", AMY)], "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH"),
    ],
)
def test_create_tokens_403_names_the_permission(bodies, hint):
    with pytest.raises(GraphError) as info:
        HardwareOathApi(FakeClient(GraphError("m", status=403))).create_tokens(bodies)
    assert info.value.message.startswith(f"m. The caller needs the Microsoft Graph permission {hint}")
    assert SECRET not in info.value.message


def test_create_tokens_refused_items_are_left_out_and_the_rest_sent_again():
    devices = [device("d0", "S0"), device("d2", "S2", AMY)]
    client = FakeClient(bulk_refusal("1"), answered(*devices))
    bodies = [body("S0"), body("S1"), body("S2", AMY)]
    made, refusals = HardwareOathApi(client).create_tokens(bodies)
    assert made == [TokenView.from_graph(d) for d in devices]
    assert list(refusals) == [1]
    assert refusals[1].message == ("Creating token S1: Graph refused it in a bulk creation: conflict: Refused (1)")
    assert (refusals[1].status, refusals[1].request_id) == (400, "rid-400")
    assert [call[3]["json"] for call in client.calls] == [
        delta(("0", bodies[0]), ("1", bodies[1]), ("2", bodies[2])),
        delta(("0", bodies[0]), ("2", bodies[2])),  # the items keep their @contentId
    ]
    assert [call[2] for call in client.calls] == ["Creating 3 tokens", "Creating 2 tokens"]
    assert all(SECRET not in error.message for error in refusals.values())


def test_create_tokens_the_permission_follows_the_items_sent_again():
    client = FakeClient(bulk_refusal("1", item_code="badRequest"), {"value": []}, GraphError("m", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).create_tokens([body("S0"), body("S1", AMY)])
    assert "Policy.ReadWrite.AuthenticationMethod" in info.value.message  # assignTo left with the refused item


def test_create_tokens_an_item_refused_as_a_conflict_is_in_use():
    client = FakeClient(bulk_refusal("1"), answered(device("d0", "S0")))
    made, refusals = HardwareOathApi(client).create_tokens([body("S0"), body("S1", AMY)])
    assert [token.serial_number for token in made] == ["S0"]
    assert isinstance(refusals[1], TokenExists)  # not judged further: the caller looks the token up
    assert len(client.calls) == 2


def test_create_tokens_refusals_over_several_rounds_and_all_refused():
    client = FakeClient(bulk_refusal("0"), bulk_refusal("2"), bulk_refusal("1"))
    made, refusals = HardwareOathApi(client).create_tokens([body("S0"), body("S1"), body("S2")])
    assert made == [] and sorted(refusals) == [0, 1, 2]
    assert [[item["@contentId"] for item in call[3]["json"]["value"]] for call in client.calls] == [
        ["0", "1", "2"],
        ["1", "2"],
        ["1"],
    ]


@pytest.mark.parametrize("error", [bulk_refusal(), bulk_refusal("7")])  # naming no item, or none that was sent
def test_create_tokens_a_refusal_naming_no_item_sent_is_bulk_refused(error):
    client = FakeClient(error)
    with pytest.raises(BulkRefused) as info:
        HardwareOathApi(client).create_tokens([body("S0"), body("S1"), body("S2")])
    assert (info.value.status, info.value.request_id, info.value.message) == (400, "rid-400", error.message)
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        bulk_refusal("1", status=409, code="conflict"),
        GraphError("Creating 3 tokens: Graph answered 500", status=500),
    ],
)
def test_create_tokens_other_errors_are_raised(error):
    client = FakeClient(error)
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).create_tokens([body("S0"), body("S1"), body("S2")])
    assert info.value is error
    assert len(client.calls) == 1


def wrapped(*devices):
    """The answer Graph's page shows: methods, each wrapping its device, without @contentId."""
    return {
        "value": [
            {"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethod", "id": d["id"], "device": d}
            for d in devices
        ]
    }


@pytest.mark.parametrize(
    "answer, listed",
    [
        (lambda devices: wrapped(*devices), 2),  # 201, as Graph's page shows
        (lambda devices: answered(*devices), 2),  # 200, the devices flat
        (lambda devices: {"value": [devices[1]]}, 1),  # some listed only
        (lambda devices: None, 0),  # 204, no body
    ],
)
def test_create_tokens_parses_every_answer_shape(answer, listed):
    devices = [device("d0", "S0"), device("d1", "S1", AMY)]
    made, refusals = HardwareOathApi(FakeClient(answer(devices))).create_tokens([body("S0"), body("S1", AMY)])
    assert made == [TokenView.from_graph(d) for d in devices][2 - listed :]
    assert refusals == {}


def test_create_tokens_a_wrapped_device_takes_its_id_from_the_method_when_it_has_none():
    inner = {k: v for k, v in device("d0", "S0").items() if k != "id"}
    answer = {
        "value": [{"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethod", "id": "d0", "device": inner}]
    }
    made, _refused = HardwareOathApi(FakeClient(answer)).create_tokens([body("S0")])
    assert [(token.id, token.serial_number) for token in made] == [("d0", "S0")]


def test_create_tokens_on_a_mock_graph():
    refusal = {
        "error": {
            "code": "badRequest",
            "message": "1 of 2 hardware OATH tokens in the delta payload are invalid; nothing was changed.",
            "details": [{"code": "conflict", "message": "S1 exists.", "target": "1"}],
        }
    }
    graph = Graph({DEVICES: [(400, refusal), (200, answered(device("d0", "S0")))]})
    made, refusals = graph_api(graph).create_tokens([body("S0"), body("S1")])
    assert [token_view.serial_number for token_view in made] == ["S0"]
    assert refusals[1].message == "Creating token S1: Graph refused it in a bulk creation: conflict: S1 exists."
    assert refusals[1].request_id == "rid"
    assert [(r.method, r.url.path) for r in graph.requests] == [("PATCH", f"/beta{DEVICES}")] * 2
    assert [json.loads(r.content) for r in graph.requests] == [
        delta(("0", body("S0")), ("1", body("S1"))),
        delta(("0", body("S0"))),
    ]


# ---------------------------------------------------------------------------------------------------- legacy twins
LEGACY_ID = "1e9ac7c0-0000-4000-8000-00000000beef"
MY_METHODS_PATH = "/me/authentication/hardwareOathMethods"


def method_of(method_id, serial=SERIAL):
    return {"id": method_id, "device": {**device(method_id, serial, AMY), "status": "activated"}}


def methods_listing(*devices):
    return 200, {"value": list(devices)}


def test_my_token_held_twice_is_the_inventory_s_and_the_legacy_one_is_warned_of():
    graph = Graph(
        {
            MY_METHODS_PATH: [methods_listing(method_of(LEGACY_ID), method_of(DEVICE_ID), method_of("other", "S-2"))],
            DEVICES: [methods_listing(device(DEVICE_ID, SERIAL, AMY))],
        }
    )
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    api.me = AMY
    assert api.my_token(SERIAL, None).id == DEVICE_ID
    assert graph.params[1]["$filter"] == f"serialNumber eq '{SERIAL}'"  # the inventory's, found by a listing
    assert warnings == [
        f"me holds a legacy hardware OATH token with serial number {SERIAL} (method id {LEGACY_ID}): it is not in "
        "the inventory, and was left alone. To remove it, as Entra's guide to duplicate tokens says: DELETE "
        f"/me/authentication/hardwareOathMethods/{LEGACY_ID}, then DELETE {DEVICES}/{LEGACY_ID} (Graph beta), or "
        "delete it among the user's authentication methods in the Entra admin center."
    ]


def test_my_token_twins_that_can_t_be_told_apart_fail_asking_for_the_device_id():
    denied = (403, {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}})
    graph = Graph({MY_METHODS_PATH: [methods_listing(method_of(LEGACY_ID), method_of(DEVICE_ID))], DEVICES: [denied]})
    api = graph_api(graph)
    api.me = AMY
    with pytest.raises(GraphError) as info:
        api.my_token(SERIAL, None)
    assert info.value.status == 403
    assert (
        f"2 hardware OATH methods of me have serial number {SERIAL} (ids {LEGACY_ID}, {DEVICE_ID}): one is in the "
        "inventory, the others are legacy tokens (from the old CSV upload), and telling them apart needs the "
        "inventory. Give device_id" in info.value.message
    )


def test_my_token_by_device_id_needs_no_inventory():
    graph = Graph({MY_METHODS_PATH: [methods_listing(method_of(LEGACY_ID), method_of(DEVICE_ID))]})
    api = graph_api(graph)
    api.me = AMY
    assert api.my_token(None, DEVICE_ID).id == DEVICE_ID and len(graph.requests) == 1


def test_legacy_twins_of_a_token_given_to_a_user_are_warned_of():
    path = f"/users/{AMY.id}/authentication/hardwareOathMethods"
    graph = Graph({path: [methods_listing(method_of(LEGACY_ID), method_of(DEVICE_ID), method_of("x", "S-2"))]})
    warnings: list[str] = []
    graph_api(graph, warnings).warn_of_legacy_twins(AMY, token("activated", AMY))
    assert len(warnings) == 1 and f"(method id {LEGACY_ID})" in warnings[0]
    assert warnings[0].startswith(f"{AMY.user_principal_name} holds a legacy hardware OATH token")
    graph = Graph({path: [(403, {"error": {"code": "accessDenied"}})]})
    warnings.clear()
    graph_api(graph, warnings).warn_of_legacy_twins(AMY, token("activated", AMY))  # best effort: no read, no warning
    assert warnings == []


def test_create_tokens_an_item_refused_for_a_user_at_five_methods_says_so():
    refusal = {
        "error": {
            "code": "badRequest",
            "message": "The request could not be processed.",
            "details": [{"code": "badRequest", "message": "The request could not be processed.", "target": "1"}],
        }
    }
    graph = Graph(
        {DEVICES: [(400, refusal), (201, wrapped(device("d0", "S0")))], ALL_METHODS: [(200, methods_of(oath=5))]}
    )
    made, refusals = graph_api(graph).create_tokens([body("S0"), body("S1", AMY)])
    assert [token.serial_number for token in made] == ["S0"]
    assert refusals[1].message.startswith("Creating token S1: Graph refused it in a bulk creation: badRequest: ")
    assert ". The user holds 5 OATH methods" in refusals[1].message
    assert [r.url.path[len("/beta") :] for r in graph.requests] == [DEVICES, ALL_METHODS, DEVICES]


# ---------------------------------------------------------------------------------------------------- directory roles
def membership(kind, number, **properties):
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": f"{kind}-{number}", **properties}


def test_directory_roles_are_the_roles_among_every_page_of_transitive_memberships():
    role = membership("directoryRole", 1, displayName="Global Administrator", roleTemplateId="62e90394")
    hidden = membership("directoryRole", 2, displayName=None, roleTemplateId=None)  # an app that may not read roles
    first = {
        "value": [membership("group", 1, displayName="Staff"), role],
        "@odata.nextLink": f"{GRAPH}/users/{AMY.id}/transitiveMemberOf?$skiptoken=x",
    }
    client = FakeClient(first, {"value": [membership("administrativeUnit", 1), hidden]})
    assert HardwareOathApi(client).directory_roles(AMY.id) == [
        {"id": "directoryRole-1", "display_name": "Global Administrator", "role_template_id": "62e90394"},
        {"id": "directoryRole-2", "display_name": None, "role_template_id": None},
    ]
    # the documented listing, no cast and no query option (both need Graph's advanced query parameters)
    assert [(c[0], c[1], c[3]) for c in client.calls] == [
        ("GET", f"/users/{AMY.id}/transitiveMemberOf", {}),
        ("GET", "", {"absolute_url": f"{GRAPH}/users/{AMY.id}/transitiveMemberOf?$skiptoken=x"}),
    ]


def test_directory_roles_of_the_signed_in_user_and_a_refusal_naming_the_permission():
    client = FakeClient({"value": []}, GraphError("x", status=403))
    assert HardwareOathApi(client).directory_roles(AMY.id, me=True) == []
    assert client.calls[0][1] == "/me/transitiveMemberOf"
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).directory_roles("amy.masters@contoso.com")
    assert info.value.message == (
        "x. The caller needs the Microsoft Graph permission User.Read.All (or Directory.Read.All; a role's name needs "
        "RoleManagement.Read.Directory)"
    )
