"""The indexes behind filtered reads: tokens by serial number and by holder, users by id and by UPN.

Over HTTP: filters by serial number, holder, id and UPN answer right after creates, deletes, case changes and
reassignments, reads lagging writes included, and a coarse performance guard on the ``examined`` counter of
``GET /_admin/stats`` (objects turned into their Graph representation, not wall time: it can't flake on a loaded
machine). In process (entrasim imported, see conftest.py): random writes, after each of which every listing
answers exactly what the former full scan answered (same items, order, pages and next links) and the indexes
equal ones rebuilt from scratch.
"""

from __future__ import annotations

import copy
import json
import random
import time
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import pytest

import simlib
from entrasim import odata
from entrasim.errors import ErrorAnswer
from entrasim.graph import (
    DEVICE_SELECT,
    DEVICE_TYPE,
    DEVICES_PATH,
    METHOD_PROPERTIES,
    METHOD_SELECT,
    METHOD_TYPE,
    USER_FILTERS,
    USER_PROPERTIES,
    USER_SELECT,
    USER_TYPE,
    GraphApi,
    Request,
)
from entrasim.identity import Principal
from entrasim.tenant import Tenant, Token
from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    ALEX,
    ALEX_UPN,
    AMY,
    AMY_UPN,
    DEVICES,
    DIEGO,
    DIEGO_ASSIGNED,
    DIEGO_FAILED,
    LEE,
    LEE_UPN,
    MEGAN,
    SEED_TOKEN_COUNT,
    SPARE,
    TOTP123456,
    TOTP654321,
    UNKNOWN_ID,
    assert_graph_error,
    methods_path,
)

DELAY_MS = 400


def new_device(serial: str, **extra) -> dict:
    return {
        "serialNumber": serial,
        "manufacturer": "Contoso",
        "model": "Index",
        "timeIntervalInSeconds": 30,
        "secretKey": pyotp.random_base32(32),
        **extra,
    }


def set_settings(api, **values) -> None:
    response = api.admin("POST", "settings", json=values)
    assert response.status_code == 200, response.text


def device_filter(api, text: str) -> list[dict]:
    response = api.graph("GET", f"{DEVICES}?$filter={quote(text)}")
    assert response.status_code == 200, response.text
    assert "@odata.nextLink" not in response.json()
    return response.json()["value"]


def serials_where(api, text: str) -> list[str]:
    return [d["serialNumber"] for d in device_filter(api, text)]


def ids_where(api, text: str) -> list[str]:
    return [d["id"] for d in device_filter(api, text)]


def user_ids_where(api, text: str) -> list[str]:
    response = api.graph("GET", f"/users?$filter={quote(text)}")
    assert response.status_code == 200, response.text
    return [u["id"] for u in response.json()["value"]]


def stats(api, **params) -> dict:
    response = api.admin("GET", "stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def assert_indexes_consistent(api) -> None:
    assert stats(api, check_indexes="true")["indexes"] == {"consistent": True, "problems": []}


def examined(api, method: str, path: str, **kwargs) -> tuple[dict, dict]:
    """The response body of a Graph call and the tokens and users it examined (the counter's difference)."""
    before = stats(api)["examined"]
    response = api.graph(method, path, **kwargs)
    assert response.status_code < 300, response.text
    after = stats(api)["examined"]
    return response.json(), {kind: after[kind] - before[kind] for kind in after}


def bulk_create(api, serials: list[str], **extra) -> list[dict]:
    response = api.graph(
        "PATCH", DEVICES, json={"@context": "#$delta", "value": [new_device(s, **extra) for s in serials]}
    )
    assert response.status_code == 201, response.text
    return response.json()["value"]  # the created methods; their id is the device's


# ---------------------------------------------------------------------------- over HTTP: tokens
def test_serial_filter_follows_creates_deletes_and_case(api):
    created = api.create_device("Idx-Case-0001")
    assert ids_where(api, "serialNumber eq 'idx-case-0001'") == [created["id"]]
    assert ids_where(api, "serialNumber eq 'IDX-CASE-0001'") == [created["id"]]
    assert_graph_error(api.graph("POST", DEVICES, json=new_device("IDX-CASE-0001")), 409, "conflict")
    assert api.graph("DELETE", f"{DEVICES}/{created['id']}").status_code == 204
    assert device_filter(api, "serialNumber eq 'Idx-Case-0001'") == []
    # The serial number is free again, in another case: the filter finds the new token, under its own spelling.
    again = api.create_device("IDX-CASE-0001")
    assert again["id"] != created["id"]
    assert [(d["id"], d["serialNumber"]) for d in device_filter(api, "serialNumber eq 'idx-case-0001'")] == [
        (again["id"], "IDX-CASE-0001")
    ]
    set_settings(api, filter_mode="lenient")  # id is not among the documented filters
    assert ids_where(api, f"id eq '{again['id'].upper()}'") == [again["id"]]
    assert device_filter(api, f"id eq '{created['id']}'") == []
    # Seeded tokens are indexed too; an unknown serial number matches nothing.
    assert ids_where(api, "serialNumber eq 'spare-0001'") == [SPARE]
    assert device_filter(api, "serialNumber eq 'NO-SUCH-SERIAL'") == []
    assert_indexes_consistent(api)


def test_serial_filter_after_bulk_create_and_update(api):
    serials = [f"Idx-Bulk-{i:03d}" for i in range(20)]
    created = bulk_create(api, serials)
    for item, serial in zip(created, serials):
        found = device_filter(api, f"serialNumber eq '{serial.swapcase()}'")
        assert [(d["id"], d["serialNumber"]) for d in found] == [(item["id"], serial)]
    # A bulk update (by id) changes what the filter answers, not which token it finds.
    update = {"@context": "#$delta", "value": [{"id": created[3]["id"], "displayName": "Renamed"}]}
    assert api.graph("PATCH", DEVICES, json=update).status_code == 201
    assert [d["displayName"] for d in device_filter(api, f"serialNumber eq '{serials[3]}'")] == ["Renamed"]
    # A conflicting bulk create changes nothing: the serial numbers it carried stay free.
    clash = {"@context": "#$delta", "value": [new_device("Idx-Bulk-New"), new_device("IDX-BULK-000")]}
    assert_graph_error(api.graph("PATCH", DEVICES, json=clash), 400, "badRequest")
    assert device_filter(api, "serialNumber eq 'Idx-Bulk-New'") == []
    assert ids_where(api, "serialNumber eq 'idx-bulk-000'") == [created[0]["id"]]
    assert_indexes_consistent(api)


def test_serial_filter_in_list_and_conjunction(api):
    set_settings(api, filter_mode="lenient")
    created = bulk_create(api, ["Idx-In-1", "Idx-In-2"])
    found = ids_where(api, "serialNumber in ('IDX-IN-2', 'idx-in-1', 'TOTP123456', 'IDX-IN-2', 'nothing')")
    assert found == [TOTP123456, created[0]["id"], created[1]["id"]]  # the inventory's order, each once
    assert ids_where(api, "serialNumber eq 'TOTP100001' and status eq 'assigned'") == [DIEGO_ASSIGNED]
    assert device_filter(api, "serialNumber eq 'TOTP100001' and status eq 'available'") == []
    assert ids_where(api, f"status eq 'assigned' and assignedTo/id eq '{DIEGO.upper()}'") == [DIEGO_ASSIGNED]


def test_holder_filter_follows_assignments(api, totp):
    def held_by(user: str) -> list[str]:
        return ids_where(api, f"assignedTo/id eq '{user}'")

    assert held_by(DIEGO) == [DIEGO_ASSIGNED, DIEGO_FAILED]
    assert held_by(DIEGO.upper()) == [DIEGO_ASSIGNED, DIEGO_FAILED]
    assert held_by(AMY) == []
    assert api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP123456}}).status_code == 201
    assert held_by(AMY) == [TOTP123456]
    activate = {"device": {"id": TOTP654321}, "verificationCode": totp("TOTP654321").at(api.now())}
    assert api.graph("POST", f"{methods_path(AMY_UPN)}/assignAndActivate", json=activate).status_code == 204
    assert held_by(AMY) == [TOTP123456, TOTP654321]
    assert [d["status"] for d in device_filter(api, f"assignedTo/id eq '{AMY}'")] == ["assigned", "activated"]
    # Reassigned: unassigned from Amy, assigned to Lee.
    assert api.graph("DELETE", f"{methods_path(AMY)}/{TOTP123456}").status_code == 204
    assert held_by(AMY) == [TOTP654321]
    assert api.graph("POST", methods_path(LEE_UPN), json={"device": {"id": TOTP123456}}).status_code == 201
    assert held_by(LEE) == [TOTP123456]
    assert ids_where(api, "serialNumber eq 'TOTP123456'") == [TOTP123456]
    assert [d["assignedTo"]["id"] for d in device_filter(api, "serialNumber eq 'TOTP123456'")] == [LEE]
    # An assigned create and a bulk create with assignTo are indexed under their holder at once.
    one = api.create_device("Idx-Holder-1", assignTo={"id": ADELE})
    bulk = bulk_create(api, ["Idx-Holder-2"], assignTo={"id": ADELE})
    assert held_by(ADELE) == [ADELE_ACTIVATED, one["id"], bulk[0]["id"]]
    # The user's methods answer the same, by id and by UPN.
    methods = api.graph("GET", methods_path(LEE_UPN)).json()["value"]
    assert [m["id"] for m in methods] == [TOTP123456]
    assert_indexes_consistent(api)


def test_serial_and_holder_filters_lag_writes_like_reads(api):
    set_settings(api, read_after_write_delay_ms=DELAY_MS)
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    created = api.create_device("Idx-Lag-1")
    assert api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP123456}}).status_code == 201
    # Reads still see the old state: SPARE, no Idx-Lag-1, TOTP123456 unassigned.
    assert ids_where(api, "serialNumber eq 'SPARE-0001'") == [SPARE]
    assert device_filter(api, "serialNumber eq 'Idx-Lag-1'") == []
    assert device_filter(api, f"assignedTo/id eq '{AMY}'") == []
    assert_indexes_consistent(api)
    time.sleep(DELAY_MS / 1000 + 0.1)
    assert device_filter(api, "serialNumber eq 'SPARE-0001'") == []
    assert ids_where(api, "serialNumber eq 'idx-lag-1'") == [created["id"]]
    assert ids_where(api, f"assignedTo/id eq '{AMY}'") == [TOTP123456]
    assert api.create_device("SPARE-0001")["serialNumber"] == "SPARE-0001"
    assert_indexes_consistent(api)


def test_reset_restores_the_indexes(api):
    bulk_create(api, ["Idx-Reset-1"])
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    api.reset()
    assert device_filter(api, "serialNumber eq 'Idx-Reset-1'") == []
    assert ids_where(api, "serialNumber eq 'SPARE-0001'") == [SPARE]
    assert len(api.graph("GET", f"{DEVICES}?$top=999").json()["value"]) == SEED_TOKEN_COUNT
    assert_indexes_consistent(api)


# ---------------------------------------------------------------------------- over HTTP: users
def test_user_filters_by_id_and_upn_in_any_case(api):
    assert user_ids_where(api, f"userPrincipalName eq '{AMY_UPN.upper()}'") == [AMY]
    assert user_ids_where(api, f"id eq '{LEE.upper()}'") == [LEE]
    expected = sorted([AMY, LEE, ALEX])
    upns = f"'{ALEX_UPN}', '{AMY_UPN.upper()}', '{LEE_UPN}', 'nobody@contoso.com', '{AMY_UPN}'"
    assert user_ids_where(api, f"userPrincipalName in ({upns})") == expected
    assert user_ids_where(api, f"id in ('{LEE}', '{UNKNOWN_ID}', '{AMY.upper()}', '{ALEX}')") == expected
    assert user_ids_where(api, f"id in ('{UNKNOWN_ID}')") == []
    # With a term no index answers: the index narrows, the whole filter decides.
    assert user_ids_where(api, f"id in ('{AMY}', '{LEE}') and startswith(displayName, 'lee')") == [LEE]
    assert user_ids_where(api, f"userPrincipalName eq '{AMY_UPN}' and userType eq 'Guest'") == []
    # Paged: the next link carries on after the last id of the page.
    response = api.graph("GET", f"/users?$top=2&$filter={quote(f'userPrincipalName in ({upns})')}")
    body = response.json()
    assert [u["id"] for u in body["value"]] == expected[:2]
    rest = api.graph("GET", body["@odata.nextLink"]).json()
    assert [u["id"] for u in rest["value"]] == expected[2:] and "@odata.nextLink" not in rest


# ---------------------------------------------------------------------------- the performance guard
def filtered(path: str, text: str, **query) -> str:
    return f"{path}?" + "&".join([f"$filter={quote(text)}", *(f"${k}={v}" for k, v in query.items())])


def test_indexed_reads_examine_only_what_they_answer(api):
    """Counts of objects examined, not time: a filter an index answers looks at its matches only, a page at the
    page (and one more item, to know whether there is a next page)."""
    for batch in range(3):
        bulk_create(api, [f"Idx-Guard-{batch}-{i:03d}" for i in range(100)])
    total = SEED_TOKEN_COUNT + 300
    body, counted = examined(api, "GET", filtered(DEVICES, "serialNumber eq 'IDX-GUARD-1-050'"))
    assert [d["serialNumber"] for d in body["value"]] == ["Idx-Guard-1-050"]
    assert counted == {"tokens": 1, "users": 0}
    body, counted = examined(api, "GET", filtered(DEVICES, f"assignedTo/id eq '{MEGAN}'"))
    assert len(body["value"]) == 5 and counted["tokens"] == 5
    _body, counted = examined(api, "GET", filtered(DEVICES, "serialNumber eq 'none'"))
    assert counted["tokens"] == 0
    # What no index answers is scanned, as before (the counter does see scans).
    body, counted = examined(api, "GET", filtered(DEVICES, "status eq 'available'", top=999))
    assert counted["tokens"] == total and len(body["value"]) == total - 8
    # Pages of the whole inventory: each looks at its own items and one more.
    first, counted = examined(api, "GET", f"{DEVICES}?$top=100")
    assert counted["tokens"] == 101
    second, counted = examined(api, "GET", first["@odata.nextLink"])
    assert counted["tokens"] == 101 and len(second["value"]) == 100
    # Users: a listing of a few by id or UPN examines those few.
    body, counted = examined(api, "GET", filtered("/users", f"id in ('{AMY}', '{LEE}')"))
    assert [u["id"] for u in body["value"]] == sorted([AMY, LEE])
    assert counted == {"tokens": 0, "users": 2}
    _body, counted = examined(api, "GET", filtered("/users", f"userPrincipalName eq '{ALEX_UPN}'"))
    assert counted == {"tokens": 0, "users": 1}
    _body, counted = examined(api, "GET", "/users?$top=2")
    assert counted == {"tokens": 0, "users": 3}
    # One user's methods: those methods only.
    _body, counted = examined(api, "GET", methods_path(MEGAN))
    assert counted["tokens"] == 5


# ---------------------------------------------------------------------------- in process: the former full scans
PRINCIPAL = Principal(
    "app",
    simlib.AUTOMATION,
    roles=frozenset(
        {"Policy.ReadWrite.AuthenticationMethod", "UserAuthenticationMethod.ReadWrite.All", "User.Read.All"}
    ),
)
NEVER_MS = 3_600_000  # a read_after_write_delay_ms no write gets past during a test


def in_process(seed: dict) -> GraphApi:
    api = GraphApi(Tenant(copy.deepcopy(seed), str(simlib.SIM_DIR / "seeds")))
    api.base_url = "https://sim"
    return api


def call(api: GraphApi, method: str, path: str, query: dict | None = None, body: dict | None = None):
    """``(status, body)`` of a Graph request, or ``(status, code, message)`` of its error."""
    request = Request(
        method,
        path.strip("/").split("/"),
        dict(query or {}),
        {"content-type": "application/json"},
        json.dumps(body).encode() if body is not None else b"",
        PRINCIPAL,
    )
    try:
        status, answer, _headers = api.handle(request)
    except ErrorAnswer as exc:
        return exc.status, exc.code, exc.message
    return status, answer


def scanned_tokens(tenant: Tenant) -> list[Token]:
    """Tenant.visible_tokens() as it was: every id, each as reads see it, sorted."""
    ids = set(tenant.tokens) | set(tenant.versions)
    return sorted((t for t in map(tenant.visible_token, ids) if t is not None), key=lambda t: t.order)


def scanned_page(api: GraphApi, items: list, key, query: dict, render, path: str):
    page, next_query = odata.paginate(
        items,
        key,
        query,
        api.config.page_size,
        max_page_size=api.config.max_page_size,
        top_above_max=api.config.top_above_max,
    )
    out: dict = {"value": [render(item) for item in page]}
    if next_query:
        out["@odata.nextLink"] = api.url(path + "?" + odata.build_query_string(next_query))
    return out


def scanned_devices(api: GraphApi, query: dict) -> dict:
    """GraphApi._list_devices as it was: a full scan and a full sort for every page."""
    tenant = api.tenant
    odata.check_options(query)
    parsed = api._device_filter(query["$filter"]) if "$filter" in query else None
    fields = odata.parse_select(query.get("$select"), DEVICE_SELECT, DEVICE_TYPE)
    tokens = [t for t in scanned_tokens(tenant) if not t.legacy]  # legacy tokens are never listed
    if parsed is not None:
        tokens = [t for t in tokens if parsed.matches(tenant.device_json(t))]
    return scanned_page(
        api,
        tokens,
        lambda t: t.order,
        query,
        lambda t: odata.apply_select(tenant.device_json(t), fields),
        "/".join(DEVICES_PATH),
    )


def scanned_users(api: GraphApi, query: dict) -> dict:
    tenant = api.tenant
    odata.check_options(query)
    users = [tenant.user_json(u) for u in tenant.users.values()]
    if "$filter" in query:
        parsed = odata.parse_filter(query["$filter"], USER_PROPERTIES, USER_TYPE, USER_FILTERS)
        users = [u for u in users if parsed.matches(u)]
    fields = odata.parse_select(query.get("$select"), USER_SELECT, USER_TYPE)
    return scanned_page(api, users, lambda u: u["id"], query, lambda u: odata.apply_select(u, fields), "users")


def scanned_methods(api: GraphApi, user_id: str, query: dict) -> dict:
    tenant = api.tenant
    odata.check_options(query)
    tokens = [t for t in scanned_tokens(tenant) if t.assigned_to == user_id]
    if "$filter" in query:
        parsed = odata.parse_filter(query["$filter"], METHOD_PROPERTIES, METHOD_TYPE, odata.Support())
        tokens = [t for t in tokens if parsed.matches(tenant.method_json(t))]
    fields = odata.parse_select(query.get("$select"), METHOD_SELECT, METHOD_TYPE)
    return scanned_page(
        api,
        tokens,
        lambda t: t.order,
        query,
        lambda t: odata.apply_select(api._method_json(t), fields),
        f"users/{user_id}/authentication/hardwareOathMethods",
    )


def outcome(function, *args):
    """What a listing answers: its body, its error, or the exception it raises."""
    try:
        return function(*args)
    except ErrorAnswer as exc:
        return (exc.status, exc.code, exc.message)
    except TypeError as exc:  # a forged $skiptoken of the wrong type, compared with the items
        return type(exc)


def assert_same_pages(api: GraphApi, path: str, query: dict, scanned) -> None:
    """Every page of ``path`` as the indexes answer it and as the full scan did, following the next links."""
    pages = 0
    while True:

        def indexed(q=query):
            answer = call(api, "GET", path, q)
            if answer[0] != 200:
                return answer
            return {k: v for k, v in answer[1].items() if k != "@odata.context"}

        expected, actual = outcome(scanned, query), outcome(indexed)
        assert actual == expected, (path, query)
        pages += 1
        if not isinstance(actual, dict) or "@odata.nextLink" not in actual:
            return
        assert pages < 200
        query = {k: v[0] for k, v in parse_qs(urlsplit(actual["@odata.nextLink"]).query).items()}


class Scenario:
    """Random writes through GraphApi on an in-process tenant, and random reads compared with the full scans."""

    def __init__(self, seed: dict, rng: random.Random) -> None:
        self.api = in_process(seed)
        self.tenant = self.api.tenant
        self.rng = rng
        self.serials = [f"R-{i:02d}" for i in range(30)] + [t["serial_number"] for t in seed["tokens"]]
        self.user_ids = [u["id"] for u in seed["users"]] + [UNKNOWN_ID]
        self.upns = [u["user_principal_name"] for u in seed["users"]] + ["nobody@contoso.com"]

    def cased(self, text: str) -> str:
        return self.rng.choice([text, text.upper(), text.lower(), text.swapcase()])

    def some_token(self) -> str:
        ids = list(self.tenant.tokens) + list(self.tenant.versions) or [UNKNOWN_ID]
        return self.rng.choice(ids)

    def write(self) -> None:
        rng, api = self.rng, self.api
        choice = rng.randrange(9)
        if choice == 0:
            body = new_device(self.cased(rng.choice(self.serials)))
            if rng.random() < 0.3:
                body["assignTo"] = {"id": rng.choice(self.user_ids[:-1])}
            call(api, "POST", "/".join(DEVICES_PATH), body=body)
        elif choice == 1:
            items = []
            for _item in range(rng.randrange(1, 5)):
                if rng.random() < 0.3:
                    items.append({"id": self.some_token(), "displayName": rng.choice(["D1", "D2", None])})
                else:
                    items.append(new_device(self.cased(rng.choice(self.serials))))
            call(api, "PATCH", "/".join(DEVICES_PATH), body={"@context": "#$delta", "value": items})
        elif choice == 2:
            body = {"displayName": rng.choice(["D1", "D2"])}
            call(api, "PATCH", "/".join(DEVICES_PATH) + "/" + self.some_token(), body=body)
        elif choice == 3:
            call(api, "DELETE", "/".join(DEVICES_PATH) + "/" + self.some_token())
        elif choice == 4:
            user = self.cased(rng.choice(self.user_ids + self.upns))
            body = {"device": {"id": self.some_token()}}
            call(api, "POST", f"users/{user}/authentication/hardwareOathMethods", body=body)
        elif choice == 5:
            token = self.tenant.tokens.get(self.some_token())
            if token is not None and token.assigned_to is not None:
                call(api, "DELETE", f"users/{token.assigned_to}/authentication/hardwareOathMethods/{token.id}")
        elif choice == 6:
            token = self.tenant.tokens.get(self.some_token())
            if token is not None:
                code = pyotp.TOTP(token.secret_key).at(self.tenant.now())
                user = token.assigned_to or rng.choice(self.user_ids[:-1])
                body = {"device": {"id": token.id}, "verificationCode": code}
                call(api, "POST", f"users/{user}/authentication/hardwareOathMethods/assignAndActivate", body=body)
        elif choice == 7:
            self.tenant.config.update({"read_after_write_delay_ms": rng.choice([0, 0, NEVER_MS])})
        else:
            self.tenant.config.update({"filter_mode": rng.choice(["documented", "silent", "lenient", "lenient"])})

    def device_query(self) -> dict:
        rng = self.rng
        serials = [self.cased(rng.choice(self.serials)) for _serial in range(rng.randrange(1, 4))]
        user = self.cased(rng.choice(self.user_ids))
        text = rng.choice(
            [
                None,
                f"serialNumber eq '{serials[0]}'",
                f"serialNumber in ({', '.join(repr(s) for s in serials)})",
                f"assignedTo/id eq '{user}'",
                f"assignedTo/id in ('{user}', '{self.cased(rng.choice(self.user_ids))}')",
                "assignedTo/id eq null",
                f"id eq '{self.cased(self.some_token())}'",
                f"serialNumber eq '{serials[0]}' and status eq 'available'",
                f"status eq 'assigned' and assignedTo/id eq '{user}'",
                "status eq 'activated'",
                "displayName eq 'd1'",
            ]
        )
        query = {"$top": str(rng.randrange(1, 6))} if rng.random() < 0.8 else {}
        if text is not None:
            query["$filter"] = text
        if rng.random() < 0.2:
            query["$select"] = "serialNumber,assignedTo"
        if rng.random() < 0.1:
            query["$skiptoken"] = odata.encode_skiptoken(rng.choice([3, "abc", None, 2.5]))
        return query

    def user_query(self) -> dict:
        rng = self.rng
        upns = ", ".join(repr(self.cased(rng.choice(self.upns))) for _upn in range(rng.randrange(1, 5)))
        ids = ", ".join(repr(self.cased(rng.choice(self.user_ids))) for _user in range(rng.randrange(1, 5)))
        text = rng.choice(
            [
                None,
                f"userPrincipalName eq '{self.cased(rng.choice(self.upns))}'",
                f"userPrincipalName in ({upns})",
                f"id in ({ids})",
                f"id eq '{self.cased(rng.choice(self.user_ids))}'",
                f"id in ({ids}) and userType eq 'Member'",
                "not(userType eq 'Guest')",
                "startswith(displayName, 'a')",
                f"id ne '{rng.choice(self.user_ids)}'",
            ]
        )
        query = {"$top": str(rng.randrange(1, 6))} if rng.random() < 0.8 else {}
        if text is not None:
            query["$filter"] = text
        if rng.random() < 0.1:
            query["$skiptoken"] = odata.encode_skiptoken(rng.choice(["a", "m", 7]))
        return query

    def read(self) -> None:
        api, rng = self.api, self.rng
        assert_same_pages(api, "/".join(DEVICES_PATH), self.device_query(), lambda q: scanned_devices(api, q))
        assert_same_pages(api, "users", self.user_query(), lambda q: scanned_users(api, q))
        user = rng.choice(self.user_ids[:-1])
        query = {"$top": str(rng.randrange(1, 4))}
        if rng.random() < 0.3:
            query["$filter"] = f"device/serialNumber eq '{self.cased(rng.choice(self.serials))}'"
        path = f"users/{user}/authentication/hardwareOathMethods"
        assert_same_pages(api, path, query, lambda q: scanned_methods(api, user, q))


def with_legacy_tokens(seed: dict) -> dict:
    """``seed`` with two legacy tokens for Alex: serial numbers that random writes create and the seed's inventory
    holds (a legacy token may share one with an inventory token)."""
    legacy = [
        {"serial_number": serial, "manufacturer": "Contoso", "model": "Legacy"} for serial in ("R-01", "TOTP123456")
    ]
    users = [{**u, "legacy_oath_tokens": legacy} if u["id"] == ALEX else u for u in seed["users"]]
    return {**seed, "users": users}


@pytest.mark.parametrize("seed_number", range(6))
def test_indexed_reads_answer_what_full_scans_answered(suite_material, seed_number):
    scenario = Scenario(with_legacy_tokens(suite_material["seed"]), random.Random(seed_number))
    for _step in range(150):
        scenario.write()
        assert scenario.tenant.check_indexes() == []
        scenario.read()
    # Once every write is past the delay (and a write forgets the versions), reads see the current state.
    scenario.tenant.config.update({"read_after_write_delay_ms": 0})
    assert call(scenario.api, "POST", "/".join(DEVICES_PATH), body=new_device("Settled"))[0] == 201
    assert scenario.tenant.check_indexes() == []
    assert scenario.tenant.versions == {}
    scenario.read()


def test_reset_rebuilds_the_indexes(suite_material):
    scenario = Scenario(suite_material["seed"], random.Random(99))
    for _step in range(60):
        scenario.write()
    scenario.tenant.reset()
    assert scenario.tenant.check_indexes() == []
    fresh = in_process(suite_material["seed"]).tenant
    assert [t.serial_number for t in scenario.tenant.tokens.values()] == [
        t.serial_number for t in fresh.tokens.values()
    ]
    scenario.read()


def test_users_changed_rebuilds_the_user_indexes(suite_material):
    api = in_process(suite_material["seed"])
    tenant = api.tenant
    assert call(api, "GET", "users", {"$top": "1"})[0] == 200  # the sorted users are cached now
    tenant.users[AMY].user_principal_name = "amy.renamed@contoso.com"
    del tenant.users[LEE]
    assert tenant.check_indexes() == [
        "the user principal name index is stale",
        "the sorted users are stale",
    ]
    tenant.users_changed()
    assert tenant.check_indexes() == []
    assert tenant.find_user_by_upn("AMY.RENAMED@contoso.com") is tenant.users[AMY]
    assert tenant.find_user_by_upn(AMY_UPN) is None
    assert_same_pages(api, "users", {"$top": "3"}, lambda q: scanned_users(api, q))
