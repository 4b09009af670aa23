"""Listing the inventory and user methods: $filter, $select, $top and server-driven paging."""

from __future__ import annotations

import pytest

from simlib import (
    ADELE_ACTIVATED,
    AMY,
    DEVICE_KEYS,
    DEVICES,
    DIEGO,
    DIEGO_ASSIGNED,
    DIEGO_FAILED,
    GALT,
    GRADY,
    MEGAN,
    MEGAN_TOKENS,
    SEED_TOKEN_COUNT,
    SHA256_60,
    SPARE,
    TOTP123456,
    TOTP654321,
    UNKNOWN_ID,
    assert_graph_error,
    follow_pages,
    load_demo_seed,
    methods_path,
)

SEED_SERIALS = [t["serial_number"] for t in load_demo_seed()["tokens"]]
AVAILABLE = {TOTP123456, TOTP654321, GALT, SHA256_60, SPARE}


def ids(response):
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["value"]]


def list_devices(api, **params):
    return api.graph("GET", DEVICES, params=params)


def set_settings(api, **values):
    response = api.admin("POST", "settings", json=values)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def lenient(api):
    """filter_mode lenient: the inventory takes eq, in, and, parentheses, every filterable property and up to 15
    expressions (the autouse reset restores the default, documented)."""
    set_settings(api, filter_mode="lenient")


def follow(api, first_params=None, path=DEVICES):
    """Every page from the first request to the end; returns the pages' bodies."""
    return follow_pages(api, api.graph("GET", path, params=first_params or {}), api.base + "/beta/")


# ------------------------------------------------------------------ list
def test_list_all(api, sim):
    response = list_devices(api)
    body = response.json()
    assert (
        body["@odata.context"]
        == f"{sim['graph_url']}/beta/$metadata#directory/authenticationMethodDevices/hardwareOathDevices"
    )
    assert "@odata.nextLink" not in body
    assert [d["serialNumber"] for d in body["value"]] == SEED_SERIALS
    assert all(set(d) == DEVICE_KEYS and d["secretKey"] is None for d in body["value"])
    assigned = {d["id"]: d["assignedTo"] for d in body["value"] if d["assignedTo"]}
    assert assigned[DIEGO_ASSIGNED] == {"id": DIEGO, "displayName": "Diego Siciliani"}
    assert len(assigned) == 8


def test_paging_follows_next_link_to_the_end(api):
    pages = follow(api, {"$top": "4"})
    assert [len(p["value"]) for p in pages] == [4, 4, 4, 1]
    serials = [d["serialNumber"] for p in pages for d in p["value"]]
    assert serials == SEED_SERIALS


def test_paging_keeps_filter_and_select(api):
    pages = follow(api, {"$top": "3", "$filter": "manufacturer eq 'Contoso'", "$select": "serialNumber,manufacturer"})
    assert [len(p["value"]) for p in pages] == [3, 3, 3, 2]
    items = [d for p in pages for d in p["value"]]
    assert all(set(d) == {"id", "serialNumber", "manufacturer"} and d["manufacturer"] == "Contoso" for d in items)
    assert [d["serialNumber"] for d in items] == [
        s for s in SEED_SERIALS if s not in ("GALT11420104", "T2-SHA256-60-0001")
    ]


def test_paging_over_many_items(api):
    payload = {
        "@context": "#$delta",
        "value": [
            {
                "serialNumber": f"PAGE-{i:03d}",
                "manufacturer": "Paging",
                "model": "P",
                "timeIntervalInSeconds": 30,
                "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            }
            for i in range(100)
        ],
    }
    assert api.graph("PATCH", DEVICES, json=payload).status_code == 201
    pages = follow(api)  # default page size 100
    assert [len(p["value"]) for p in pages] == [100, SEED_TOKEN_COUNT]
    pages = follow(api, {"$top": "999"})
    assert [len(p["value"]) for p in pages] == [100 + SEED_TOKEN_COUNT]
    pages = follow(api, {"$filter": "manufacturer eq 'Paging'", "$top": "30"})
    assert [len(p["value"]) for p in pages] == [30, 30, 30, 10]
    serials = [d["serialNumber"] for p in pages for d in p["value"]]
    assert serials == [f"PAGE-{i:03d}" for i in range(100)]


def test_paging_is_stable_while_items_change(api):
    first = list_devices(api, **{"$top": "5"}).json()
    api.create_device("LATE-ARRIVAL")
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    response = api.graph("GET", first["@odata.nextLink"])
    rest = [response.json()]
    while rest[-1].get("@odata.nextLink"):
        rest.append(api.graph("GET", rest[-1]["@odata.nextLink"]).json())
    serials = [d["serialNumber"] for d in first["value"]] + [d["serialNumber"] for p in rest for d in p["value"]]
    assert serials == [s for s in SEED_SERIALS if s != "SPARE-0001"] + ["LATE-ARRIVAL"]
    assert len(serials) == len(set(serials))


@pytest.mark.parametrize("top", ["0", "1000", "abc", "-1", "", "1.5"])
def test_invalid_top(api, top):
    assert_graph_error(list_devices(api, **{"$top": top}), 400, "BadRequest", "page size")


@pytest.mark.parametrize("top,count", [("1", 1), ("13", 13), ("999", 13)])
def test_valid_top(api, top, count):
    response = list_devices(api, **{"$top": top})
    assert len(response.json()["value"]) == count
    assert ("@odata.nextLink" in response.json()) == (count < SEED_TOKEN_COUNT)


# ------------------------------------------------------------------ maximum page size
@pytest.mark.parametrize(
    "top,sizes",
    [(None, [4, 4, 4, 1]), ("999", [4, 4, 4, 1]), ("5", [4, 4, 4, 1]), ("4", [4, 4, 4, 1]), ("3", [3, 3, 3, 3, 1])],
)
def test_max_page_size_caps_every_page(api, top, sizes):
    set_settings(api, max_page_size=4)
    pages = follow(api, {"$top": top} if top else {})
    assert [len(p["value"]) for p in pages] == sizes
    assert [d["serialNumber"] for p in pages for d in p["value"]] == SEED_SERIALS
    if top:
        assert all(f"$top={top}" in p["@odata.nextLink"] for p in pages[:-1])


def test_max_page_size_caps_the_default_page_size(api):
    assert set_settings(api, page_size=5)["page_size"] == 5
    assert [len(p["value"]) for p in follow(api)] == [5, 5, 3]
    set_settings(api, max_page_size=2)
    assert [len(p["value"]) for p in follow(api)] == [2] * 6 + [1]


def test_max_page_size_keeps_filter_and_select(api):
    set_settings(api, max_page_size=2)
    pages = follow(api, {"$top": "10", "$filter": "status eq 'available'", "$select": "serialNumber"})
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert {d["id"] for p in pages for d in p["value"]} == AVAILABLE
    assert all(set(d) == {"id", "serialNumber"} for p in pages for d in p["value"])


def test_max_page_size_on_users_and_methods(api):
    set_settings(api, max_page_size=3)
    users = follow(api, {"$top": "999"}, path="/users")
    assert [len(p["value"]) for p in users] == [3, 3, 3, 1]
    assert len({u["id"] for p in users for u in p["value"]}) == 10
    methods = follow(api, {"$top": "999"}, path=methods_path(MEGAN))
    assert [len(p["value"]) for p in methods] == [3, 2]
    assert [m["id"] for p in methods for m in p["value"]] == MEGAN_TOKENS


@pytest.mark.parametrize("top", ["0", "1000", "abc"])
def test_max_page_size_leaves_top_validation_unchanged(api, top):
    set_settings(api, max_page_size=4)
    assert_graph_error(list_devices(api, **{"$top": top}), 400, "BadRequest", "Must be between 1 and 999")


def test_next_link_encodes_special_characters(api):
    for serial in ("R&D+1 #2", "R&D+2 %41"):
        api.create_device(serial, manufacturer="R&D + Co. 100%")
    pages = follow(api, {"$top": "1", "$filter": "manufacturer eq 'R&D + Co. 100%'"})
    assert [d["serialNumber"] for p in pages for d in p["value"]] == ["R&D+1 #2", "R&D+2 %41"]
    assert len(pages) == 2


def test_invalid_skiptoken(api):
    assert_graph_error(list_devices(api, **{"$skiptoken": "garbage!"}), 400, "BadRequest", "$skiptoken")


@pytest.mark.parametrize("option", ["$orderby", "$count", "$skip", "$search", "$expand", "$format", "$apply", "$foo"])
def test_unsupported_query_options(api, option):
    assert_graph_error(list_devices(api, **{option: "serialNumber"}), 400, "BadRequest", option)


def test_non_odata_parameters_are_ignored(api):
    assert len(ids(list_devices(api, api_version="whatever"))) == SEED_TOKEN_COUNT


# ------------------------------------------------------------------ $filter
# One eq comparison of a documented property: every filter_mode answers these.
DOCUMENTED_FILTERS = [
    ("status eq 'available'", AVAILABLE),
    ("status eq 'activated'", {ADELE_ACTIVATED, *MEGAN_TOKENS[:3]}),
    ("status eq 'assigned'", {DIEGO_ASSIGNED, *MEGAN_TOKENS[3:]}),
    ("status eq 'failedActivation'", {DIEGO_FAILED}),
    ("serialNumber eq 'TOTP123456'", {TOTP123456}),
    ("serialNumber eq 'totp123456'", {TOTP123456}),
    ("serialNumber eq 'NOPE'", set()),
    ("manufacturer eq 'Thales'", {GALT}),
    ("model eq 'C302-i'", {SHA256_60}),
    ("hashFunction eq 'hmacsha256'", {SHA256_60}),
    ("timeIntervalInSeconds eq 60", {SHA256_60}),
    (f"assignedTo/id eq '{MEGAN}'", set(MEGAN_TOKENS)),
    (f"assignedTo/id eq '{MEGAN.upper()}'", set(MEGAN_TOKENS)),
    ("assignedTo/id eq null", AVAILABLE),
]
# What only lenient answers: and, parentheses, in, properties Microsoft does not document as filterable.
LENIENT_FILTERS = [
    ("timeIntervalInSeconds eq 30 and manufacturer eq 'Token2'", set()),
    ("status eq 'available' and manufacturer eq 'Contoso'", {TOTP123456, TOTP654321, SPARE}),
    (
        "(status eq 'available') and (manufacturer eq 'Contoso' and model eq 'Hardware Key')",
        {TOTP123456, TOTP654321, SPARE},
    ),
    ("(status eq 'available')", AVAILABLE),
    (f"assignedTo/id eq '{DIEGO}' and status eq 'failedActivation'", {DIEGO_FAILED}),
    ("assignedTo/displayName eq 'Adele Vance'", {ADELE_ACTIVATED}),
    ("displayName eq 'Adele''s token'", {ADELE_ACTIVATED}),
    ("serialNumber in ('TOTP123456', 'GALT11420104', 'missing')", {TOTP123456, GALT}),
    ("status in ('assigned','failedActivation')", {DIEGO_ASSIGNED, DIEGO_FAILED, *MEGAN_TOKENS[3:]}),
    ("timeIntervalInSeconds in (60)", {SHA256_60}),
    (f"id eq '{SPARE}'", {SPARE}),
]


@pytest.mark.parametrize("expr,expected", DOCUMENTED_FILTERS + LENIENT_FILTERS)
def test_filter(api, lenient, expr, expected):
    assert set(ids(list_devices(api, **{"$filter": expr}))) == expected


@pytest.mark.parametrize("mode", ["documented", "silent"])
@pytest.mark.parametrize("expr,expected", DOCUMENTED_FILTERS)
def test_documented_filter(api, mode, expr, expected):
    set_settings(api, filter_mode=mode)
    assert set(ids(list_devices(api, **{"$filter": expr}))) == expected


DOCUMENTED_ONLY = (
    "Unsupported query: only one 'eq' comparison of serialNumber, status, manufacturer, model, "
    "hashFunction, timeIntervalInSeconds or assignedTo/id is supported."
)


@pytest.mark.parametrize("expr", [expr for expr, _expected in LENIENT_FILTERS])
def test_documented_mode_refuses_what_only_lenient_answers(api, expr):
    """The default filter_mode: Graph documents $filter (eq) on the inventory, nothing more."""
    error = assert_graph_error(list_devices(api, **{"$filter": expr}), 400, "BadRequest", DOCUMENTED_ONLY)
    assert error["message"] == DOCUMENTED_ONLY


@pytest.mark.parametrize("expr", [expr for expr, _expected in LENIENT_FILTERS])
def test_silent_mode_ignores_what_documented_refuses(api, expr):
    """Graph's known issue: an unsupported query may be ignored, the whole collection answered."""
    set_settings(api, filter_mode="silent")
    assert ids(list_devices(api, **{"$filter": expr})) == ids(list_devices(api))


def test_filter_escaped_quote_and_injection(api):
    obrien = api.create_device("O'BRIEN-1")["id"]
    assert ids(list_devices(api, **{"$filter": "serialNumber eq 'O''BRIEN-1'"})) == [obrien]
    for injection in (
        "serialNumber eq 'x'' or 1 eq 1'",
        "serialNumber eq 'x'' or ''1'' eq ''1'",
        "serialNumber eq 'O''BRIEN-1'' or serialNumber ne '''",
    ):
        assert ids(list_devices(api, **{"$filter": injection})) == [], injection
    # Unescaped, the same text is a syntax the service does not support, never a match-all.
    assert_graph_error(list_devices(api, **{"$filter": "serialNumber eq 'x' or 1 eq 1"}), 400, "BadRequest")
    assert_graph_error(list_devices(api, **{"$filter": "serialNumber eq 'O'BRIEN-1'"}), 400, "BadRequest")


def quoted(values):
    return ", ".join(f"'{v}'" for v in values)


SERIALS_15 = [f"S{i:02d}" for i in range(14)] + ["TOTP123456"]


@pytest.mark.parametrize(
    "expr",
    [
        f"serialNumber in ({quoted(SERIALS_15)})",
        f"status eq 'available' and serialNumber in ({quoted(SERIALS_15[1:])})",
        " and ".join(["manufacturer eq 'Contoso'"] * 14) + " and serialNumber eq 'TOTP123456'",
        f"(serialNumber in ({quoted(SERIALS_15[8:])})) "
        f"and (serialNumber in ({quoted(SERIALS_15[:7] + ['TOTP123456'])}))",
    ],
    ids=["in-15", "eq-and-in-14", "eq-15", "two-in-lists"],
)
def test_filter_with_15_expressions_passes(api, lenient, expr):
    assert ids(list_devices(api, **{"$filter": expr})) == [TOTP123456]


@pytest.mark.parametrize(
    "expr,count",
    [
        (f"serialNumber in ({quoted(SERIALS_15 + ['S99'])})", 16),
        (f"status eq 'available' and serialNumber in ({quoted(SERIALS_15)})", 16),
        (" and ".join(["manufacturer eq 'Contoso'"] * 16), 16),
        (f"serialNumber in ({quoted(SERIALS_15)}) and status in ('available', 'assigned', 'activated')", 18),
        (
            f"(serialNumber in ({quoted(SERIALS_15[:8])})) and (serialNumber in ({quoted(SERIALS_15[7:] + ['S99'])}))",
            17,
        ),
    ],
    ids=["in-16", "eq-and-in-15", "eq-16", "two-in-lists-18", "parenthesised-17"],
)
def test_filter_with_more_than_15_expressions_is_refused(api, lenient, expr, count):
    assert_graph_error(
        list_devices(api, **{"$filter": expr}),
        400,
        "Request_UnsupportedQuery",
        f"Too many child clauses specified in search filter expression containing 'OR' operators: "
        f"{count}. Max allowed: 15.",
    )


def test_filter_expression_limit_on_users_and_methods(api):
    users = [AMY] + [UNKNOWN_ID] * 14
    response = api.graph("GET", "/users", params={"$filter": f"id in ({quoted(users)})"})
    assert ids(response) == [AMY]
    response = api.graph("GET", "/users", params={"$filter": f"id in ({quoted(users + [MEGAN])})"})
    assert_graph_error(response, 400, "Request_UnsupportedQuery", "Too many child clauses")
    assert "operators: 16. Max allowed: 15." in response.json()["error"]["message"]
    serials = [f"MEGAN-{i:04d}" for i in range(1, 16)]
    response = api.graph("GET", methods_path(MEGAN), params={"$filter": f"device/serialNumber in ({quoted(serials)})"})
    assert ids(response) == MEGAN_TOKENS
    response = api.graph(
        "GET",
        methods_path(MEGAN),
        params={"$filter": f"device/status eq 'activated' and device/serialNumber in ({quoted(serials)})"},
    )
    assert_graph_error(response, 400, "Request_UnsupportedQuery", "operators: 16. Max allowed: 15.")


def test_filter_errors_are_checked_before_the_expression_limit(api, lenient):
    expr = f"serialNumber in ({quoted(SERIALS_15 + ['S99'])}) or status eq 'available'"
    assert_graph_error(list_devices(api, **{"$filter": expr}), 400, "BadRequest", "'or' operator")


# Unsupported by the inventory: lenient's messages. Documented refuses them all alike, silent ignores them.
UNSUPPORTED_FILTERS = [
    ("secretKey eq 'JBSWY3DP'", "secretKey"),
    ("lastUsedDateTime eq null", "lastUsedDateTime"),
    ("serialNumber ne 'TOTP123456'", "'ne' operator"),
    ("timeIntervalInSeconds gt 30", "'gt' operator"),
    ("status eq 'available' or status eq 'assigned'", "'or' operator"),
    ("startswith(serialNumber,'TOTP')", "function 'startswith'"),
    ("contains(serialNumber,'TOTP')", "function 'contains'"),
    ("not(status eq 'available')", "'not' operator"),
]
# Malformed: 400 in every filter_mode.
MALFORMED_FILTERS = [
    ("colour eq 'red'", "Could not find a property named 'colour'"),
    ("assignedTo eq 'x'", "Could not find a property named 'assignedTo'"),
    ("device/status eq 'activated'", "Could not find a property named 'device'"),
    ("status eq 'broken'", "not a valid enumeration"),
    ("status eq 'Available'", "not a valid enumeration"),
    ("hashFunction eq 'md5'", "not a valid enumeration"),
    ("status in ('available','nope')", "not a valid enumeration"),
    ("timeIntervalInSeconds eq '60'", "incompatible types"),
    ("serialNumber eq 123456", "incompatible types"),
    ("serialNumber eq TOTP123456", "incompatible types"),
    ("serialNumber eq", "ends unexpectedly"),
    ("serialNumber eq 'x' and", "ends unexpectedly"),
    ("(status eq 'available'", "ends unexpectedly"),
    ("status eq 'available')", "unexpected ')'"),
    ("status eq 'available' status", "unexpected 'status'"),
    ("serialNumber eq 'unterminated", "syntax error"),
    ("serialNumber has 'x'", "'has' is not an operator"),
    ("", "empty"),
]


@pytest.mark.parametrize("expr,fragment", UNSUPPORTED_FILTERS + MALFORMED_FILTERS)
def test_filter_errors(api, lenient, expr, fragment):
    assert_graph_error(list_devices(api, **{"$filter": expr}), 400, "BadRequest", fragment)


@pytest.mark.parametrize("expr", [expr for expr, _fragment in UNSUPPORTED_FILTERS])
def test_unsupported_filters_by_filter_mode(api, expr):
    assert_graph_error(list_devices(api, **{"$filter": expr}), 400, "BadRequest", DOCUMENTED_ONLY)
    set_settings(api, filter_mode="silent")
    assert len(ids(list_devices(api, **{"$filter": expr}))) == SEED_TOKEN_COUNT


@pytest.mark.parametrize("mode", ["documented", "silent"])
@pytest.mark.parametrize("expr,fragment", MALFORMED_FILTERS)
def test_malformed_filters_in_every_mode(api, mode, expr, fragment):
    set_settings(api, filter_mode=mode)
    assert_graph_error(list_devices(api, **{"$filter": expr}), 400, "BadRequest", fragment)


# ------------------------------------------------------------------ $select
def test_select(api):
    response = list_devices(api, **{"$select": "serialNumber,status"})
    body = response.json()
    assert body["@odata.context"].endswith("hardwareOathDevices(serialNumber,status)")
    assert all(set(d) == {"id", "serialNumber", "status"} for d in body["value"])
    assert [d["serialNumber"] for d in body["value"]] == SEED_SERIALS


def test_select_every_property(api):
    response = list_devices(api, **{"$select": ",".join(sorted(DEVICE_KEYS)), "$top": "2"})
    assert all(set(d) == DEVICE_KEYS and d["secretKey"] is None for d in response.json()["value"])


def test_select_assigned_to(api):
    body = list_devices(api, **{"$select": "assignedTo", "$filter": "serialNumber eq 'TOTP100003'"}).json()
    assert body["value"] == [{"id": DIEGO_FAILED, "assignedTo": {"id": DIEGO, "displayName": "Diego Siciliani"}}]


@pytest.mark.parametrize("select", ["colour", "serialNumber,colour", "assignTo", "assignedTo/id", ",", ""])
def test_select_errors(api, select):
    assert_graph_error(list_devices(api, **{"$select": select}), 400, "BadRequest")


# ------------------------------------------------------------------ user method collections
def test_user_methods_paging_and_filter(api):
    pages = follow(api, {"$top": "2"}, path=methods_path(MEGAN))
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert [m["id"] for p in pages for m in p["value"]] == MEGAN_TOKENS
    assert all(
        p["@odata.nextLink"].startswith(f"{api.base}/beta/users/{MEGAN}/authentication/hardwareOathMethods?")
        for p in pages[:-1]
    )
    assert set(ids(api.graph("GET", methods_path(MEGAN), params={"$filter": "device/status eq 'activated'"}))) == set(
        MEGAN_TOKENS[:3]
    )
    assert ids(api.graph("GET", methods_path(MEGAN), params={"$filter": "device/serialNumber eq 'MEGAN-0005'"})) == [
        MEGAN_TOKENS[4]
    ]
    selected = api.graph("GET", methods_path(MEGAN), params={"$select": "id,createdDateTime"}).json()["value"]
    assert all(set(m) == {"@odata.type", "id", "createdDateTime"} for m in selected)


@pytest.mark.parametrize(
    "params", [{"$filter": "status eq 'activated'"}, {"$select": "serialNumber"}, {"$top": "0"}, {"$orderby": "id"}]
)
def test_user_methods_query_errors(api, params):
    assert_graph_error(api.graph("GET", methods_path(MEGAN), params=params), 400, "BadRequest")


def test_users_list_filter(api):
    response = api.graph("GET", "/users", params={"$filter": "userType eq 'Guest'", "$select": "userPrincipalName"})
    assert response.status_code == 200
    assert response.json()["value"] == [
        {"id": GRADY, "userPrincipalName": "grady_fabrikam.com#EXT#@contoso.onmicrosoft.com"}
    ]
    everyone = api.graph("GET", "/users").json()["value"]
    assert AMY in [u["id"] for u in everyone] and len(everyone) == 10
