# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test 2: the modules read the documented answers. A Graph behind httpx.MockTransport answers every request with
its operation's documented answer, built from the fixtures, after checking the request against the operation's
documented request (no undocumented key, every required one); the modules' own calls (HardwareOathApi, PolicyApi,
GraphClient, Transport) read those answers, and what they make of them is checked field by field."""

from __future__ import annotations

import json
import re
import typing as t

import conformance_shapes
import httpx
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    UNASSIGN,
    Action,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    DEVICES,
    HardwareOathApi,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.policy_api import PolicyApi
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import GraphClient
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import Destinations
from ansible_collections.tokenops.entra.plugins.module_utils._graph.transport import Transport
from ansible_collections.tokenops.entra.plugins.module_utils._planning.policy import (
    PolicySpec,
    plan_policy,
    policy_result,
)
from ansible_collections.tokenops.entra.plugins.module_utils._planning.token import TokenSpec, create_body

FIXTURES = conformance_shapes.Fixtures.load()
BASE = "https://graph.example.test"
SECRET = "6PJ4UKIW33NNXYZAEHQNFUFTZF7WFTFB"
# Not routed by method, path and query: answers of another operation's request, or of any request.
NOT_ROUTED = {"error_envelope", "throttled", "list_inventory_next_page"}

DEVICE = FIXTURES.example({"ref": "device"})
METHOD = FIXTURES.example({"ref": "method"})
USER = FIXTURES.example({"ref": "user"})
TOKEN = TokenView(  # what the documented device says, field by field
    id=DEVICE["id"],
    serial_number=DEVICE["serialNumber"],
    status=DEVICE["status"],
    assigned_to_id=DEVICE["assignedTo"]["id"].lower(),
    assigned_to_name=DEVICE["assignedTo"]["displayName"],
    display_name=DEVICE["displayName"],
    hash_function=DEVICE["hashFunction"],
    time_interval=DEVICE["timeIntervalInSeconds"],
    manufacturer=DEVICE["manufacturer"],
    model=DEVICE["model"],
    last_used=None,
)
USER_VIEW = UserView(
    id=USER["id"].lower(),
    user_principal_name=USER["userPrincipalName"],
    display_name=USER["displayName"],
    user_type=USER["userType"],
)
Answer = t.Tuple[int, t.Dict[str, str], t.Any]


def _pattern(template: str, part: str) -> str:
    """A regular expression from a fixture's path or query template: ``{name}`` stands for any ``part``."""
    return "".join(part if piece.startswith("{") else re.escape(piece) for piece in re.split(r"(\{[^}]*\})", template))


def route(method: str, path: str, params: dict[str, str]) -> str:
    """The documented operation a request is (the most literal path wins: /assignAndActivate over /{methodId})."""
    if "$skiptoken" in params:
        return "list_inventory_next_page"
    found = []
    for name, op in FIXTURES.operations.items():
        if name in NOT_ROUTED or "request_like" in op or op["method"] != method:
            continue
        query = op.get("query") or {}
        if (
            re.fullmatch(_pattern(op["path"], "[^/]+"), path)
            and set(query) == set(params)
            and all(re.fullmatch(_pattern(value, ".+"), params[key]) for key, value in query.items())
        ):
            found.append((op["path"].count("{"), name))
    assert found, f"no documented operation is {method} {path} {params}"
    return min(found)[1]


class DocumentedGraph:
    """Answers each request with its operation's documented answer (or the one a test gives: one, or a list used
    in turn), after checking the request body against the operation's documented request."""

    def __init__(self, answers: dict[str, Answer | list[Answer]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.seen: list[str] = []
        self.problems: list[str] = []

    def answer(self, method: str, path: str, params: dict[str, str], body: t.Any) -> Answer:
        name = route(method, path, params)
        self.seen.append(name)
        self.problems += [f"{name}: {problem}" for problem in FIXTURES.check_request(name, body)]
        given = self.answers.get(name)
        if isinstance(given, list):
            return given.pop(0) if len(given) > 1 else given[0]
        return given or FIXTURES.example_answer(name)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "graph.example.test" and request.url.path.startswith("/beta/")
        assert request.headers["authorization"] == "Bearer test-token"
        path = request.url.path[len("/beta") :]
        body = json.loads(request.content) if request.content else None
        if path == "/$batch":
            assert isinstance(body, dict)
            self.seen.append("batch")
            self.problems += [f"batch: {problem}" for problem in FIXTURES.check_request("batch", body)]
            responses = []
            for item in body["requests"]:
                url = httpx.URL(BASE + "/beta" + item["url"])
                status, headers, answer = self.answer(
                    item["method"], url.path[len("/beta") :], dict(url.params), item.get("body")
                )
                responses.append({"id": item["id"], "status": status, "headers": headers, "body": answer})
            return httpx.Response(200, json={"responses": responses})
        status, headers, answer = self.answer(request.method, path, dict(request.url.params), body)
        if answer is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, headers=headers, json=answer)


def client(graph: DocumentedGraph, pacer: t.Any = None) -> GraphClient:
    transport = Transport(
        destinations=Destinations(BASE, "https://login.example.test"),
        verify=True,
        timeout=5.0,
        max_retries=2,
        max_retry_wait=0.0,
        pacer=pacer,
    )
    transport.client.close()
    transport.client = httpx.Client(transport=httpx.MockTransport(graph.handle), follow_redirects=False)
    return GraphClient(transport, BASE, lambda _force: "test-token")


def api(graph: DocumentedGraph) -> HardwareOathApi:
    return HardwareOathApi(client(graph), sleep=lambda _seconds: None)


def page(*items: dict, link: str | None = None) -> Answer:
    body: dict[str, t.Any] = {"value": list(items)}
    if link:
        body["@odata.nextLink"] = link
    return 200, {}, body


# ---------------------------------------------------------------------- the inventory
@pytest.mark.parametrize(
    "query, seen",
    [
        (TokenQuery(serial_numbers=(TOKEN.serial_number,)), ["list_inventory_by_serial"]),
        (TokenQuery(assigned_to_id=TOKEN.assigned_to_id), ["list_inventory_by_holder"]),
        (TokenQuery(statuses=("activated",)), ["list_inventory_by_status"]),
        # "assigned" asks for "available" with a holder too: two listings, batched
        (TokenQuery(statuses=("assigned",)), ["batch", "list_inventory_by_status", "list_inventory_by_status"]),
    ],
)
def test_a_listing(query, seen):
    graph = DocumentedGraph(
        {"list_inventory_by_status": page({**DEVICE, "status": query.statuses[0]})} if query.statuses else {}
    )
    expected = TOKEN if not query.statuses else TokenView(**{**TOKEN.__dict__, "status": query.statuses[0]})
    assert api(graph).list_tokens(query) == [expected]
    assert (graph.seen, graph.problems) == (seen, [])


def test_the_whole_inventory_page_by_page():
    link = f"{BASE}/beta{DEVICES}?$top=999&$skiptoken=next"
    other = {**DEVICE, "id": "3dee0e53-9b1a-4c2d-8e3f-0a1b2c3d4e5f", "serialNumber": "TOTP654321"}
    graph = DocumentedGraph({"list_inventory_all": page(DEVICE, link=link), "list_inventory_next_page": page(other)})
    tokens = api(graph).list_tokens()
    assert tokens == [TOKEN, TokenView(**{**TOKEN.__dict__, "id": other["id"], "serial_number": "TOTP654321"})]
    assert (graph.seen, graph.problems) == (["list_inventory_all", "list_inventory_next_page"], [])


def test_a_listing_in_the_form_of_the_pages_examples():
    graph = DocumentedGraph({"list_inventory_by_serial": page(METHOD)})
    assert api(graph).list_tokens(TokenQuery(serial_numbers=(TOKEN.serial_number,))) == [TOKEN]


def test_one_token():
    graph = DocumentedGraph()
    assert api(graph).token_by_id(TOKEN.id) == TOKEN
    assert (graph.seen, graph.problems) == (["get_token"], [])


def spec(**changes: t.Any) -> TokenSpec:
    return TokenSpec(serial_number=TOKEN.serial_number, manufacturer="Contoso", model="Hardware Token 1000", **changes)


def test_a_creation():
    graph = DocumentedGraph()
    body = create_body(spec(display_name="Amy Masters Token"), SECRET, USER_VIEW.id)
    assert api(graph).create_token(body) == TOKEN
    assert (graph.seen, graph.problems) == (["create_token"], [])


def test_a_bulk_creation():
    """The page's answer: 201, each token a method wrapping its device (the answer parser, TokenView.from_graph)."""
    graph = DocumentedGraph()
    assert api(graph).create_tokens([create_body(spec(), SECRET, None)]) == ([TOKEN], {})
    assert (graph.seen, graph.problems) == (["bulk_create"], [])


def test_a_bulk_creation_with_a_display_name_sends_only_documented_keys():
    graph = DocumentedGraph()
    api(graph).create_tokens([create_body(spec(display_name="Amy Masters Token"), SECRET, None)])
    assert graph.problems == []


def test_an_update_and_a_deletion():
    graph = DocumentedGraph()
    api(graph).update_token(TOKEN, {"displayName": "Amy Masters Token"})
    api(graph).delete_token(TOKEN)
    assert (graph.seen, graph.problems) == (["update_token", "delete_token"], [])


# ---------------------------------------------------------------------- users and their methods
def test_users():
    graph = DocumentedGraph()
    assert api(graph).user(USER_VIEW.user_principal_name) == USER_VIEW
    other = "3dee0e53-9b1a-4c2d-8e3f-0a1b2c3d4e5f"  # two ids: one "id in (...)" filter
    assert api(graph).users_by_ids([USER_VIEW.id, other]) == {USER_VIEW.id: USER_VIEW}
    assert (graph.seen, graph.problems) == (["get_user", "batch", "list_users_by_ids"], [])


def test_a_users_methods():
    graph = DocumentedGraph()
    [(user, methods)] = api(graph).users_with_methods([USER_VIEW.user_principal_name])
    assert (user, methods) == (USER_VIEW, [METHOD])
    assert TokenView.from_method(methods[0], user) == TOKEN
    assert (graph.seen, graph.problems) == (["batch", "get_user", "list_user_methods"], [])


def test_a_method_without_its_device_is_completed():
    bare = {key: value for key, value in METHOD.items() if key != "device"}
    graph = DocumentedGraph({"list_user_methods": page(bare)})
    [(_user, methods)] = api(graph).users_with_methods([USER_VIEW.user_principal_name])
    assert methods == [METHOD]
    assert graph.seen[-2:] == ["batch", "get_method_device"] and graph.problems == []


@pytest.mark.parametrize(
    "answer, count",
    [
        (None, 1),  # the fixture's example: one authenticator app
        (
            page(
                {"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethod", "id": "a"},
                {"@odata.type": "#microsoft.graph.softwareOathAuthenticationMethod", "id": "b"},
                {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "c"},
            ),
            2,
        ),
    ],
)
def test_the_oath_methods_a_user_holds(answer, count):
    graph = DocumentedGraph({"list_user_all_methods": answer} if answer else {})
    assert api(graph).oath_method_count(USER_VIEW.id) == count
    assert (graph.seen, graph.problems) == (["list_user_all_methods"], [])


def test_a_users_directory_roles():
    graph = DocumentedGraph()  # the fixture's example: one directory role
    roles = api(graph).directory_roles(USER_VIEW.id)
    # the example's optional keys left out, as Graph leaves a role's name out for an app that may not read roles
    assert roles == [{"id": "3a7c5b1e-9d2f-4e6a-8b0c-1d2e3f4a5b6c", "display_name": None, "role_template_id": None}]
    assert (graph.seen, graph.problems) == (["list_user_memberships"], [])


@pytest.mark.parametrize(
    "kind, by_serial, operation",
    [
        (ASSIGN, False, "assign"),
        (ACTIVATE, False, "activate"),
        (ASSIGN_AND_ACTIVATE, False, "assign_and_activate"),
        (ASSIGN_AND_ACTIVATE, True, "assign_and_activate_by_serial"),
        (UNASSIGN, False, "unassign"),
    ],
)
def test_a_write_on_a_users_methods(kind, by_serial, operation):
    graph = DocumentedGraph()
    api(graph).write(
        Action(kind, USER_VIEW.id, "test"),
        TOKEN,
        USER_VIEW,
        "012345",
        "Amy Masters Token",
        by_serial=by_serial,
        me=False,
    )
    assert (graph.seen, graph.problems) == ([operation], [])


# ---------------------------------------------------------------------- the policy
def test_the_policy():
    graph = DocumentedGraph()
    policies = PolicyApi(client(graph))
    config = policies.read()
    assert policy_result(config) == {
        "id": "HardwareOath",
        "state": "enabled",
        "include_targets": [{"id": "all_users", "target_type": "group", "is_registration_required": False}],
        "exclude_targets": [{"id": "8361d191-fd0f-42ba-b637-98f616a7f4d7", "target_type": "group"}],
    }
    policies.update(plan_policy(config, PolicySpec(state="disabled")).patch)
    assert (graph.seen, graph.problems) == (["get_policy", "update_policy"], [])


# ---------------------------------------------------------------------- Graph's errors and throttling
def test_the_error_envelope():
    status = FIXTURES.example_answer("error_envelope")[0]
    body = FIXTURES.example({"ref": "error"}, optional=True)  # with innerError, which the page calls optional
    graph = DocumentedGraph({"get_token": (status, {}, body)})
    assert api(graph).token_exists(TOKEN.id) is False
    with pytest.raises(GraphError) as raised:
        api(graph).token_by_id(TOKEN.id)
    error, inner = raised.value, body["error"]["innerError"]
    assert (error.status, error.code, error.graph_message) == (404, body["error"]["code"], body["error"]["message"])
    assert (error.request_id, error.date) == (inner["request-id"], inner["date"])


class Pacing:
    """What a 429 tells the pacer (Transport.throttled)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def throttled(self, seconds: float, write: bool = False, longest: float = float("inf")) -> None:
        self.calls.append(("every request (the write quota)", min(seconds, longest)))

    def throttled_lane(self, lane: str, seconds: float) -> None:
        self.calls.append((f"lane {lane}", seconds))


def test_a_throttled_request_is_sent_again():
    status, headers, body = FIXTURES.example_answer("throttled")
    graph = DocumentedGraph({"get_token": [(status, headers, body), FIXTURES.example_answer("get_token")]})
    assert api(graph).token_by_id(TOKEN.id) == TOKEN
    assert graph.seen == ["get_token", "get_token"]


def test_the_documented_throttle_headers_pause_the_write_quota():
    _status, headers, _body = FIXTURES.example_answer("throttled")
    pacing = Pacing()
    transport = client(DocumentedGraph(), pacer=pacing).transport
    transport.max_retry_wait = 60.0
    transport.throttled(headers, write=True, lane="directory")
    assert pacing.calls == [("every request (the write quota)", 2.128)]
