"""A user's memberships: GET /users/{id | UPN}/memberOf and /transitiveMemberOf (and /me/...), uncast or with an
OData cast, as Microsoft's pages user-list-memberof, user-list-transitivememberof and aad-advanced-queries document
them: a directoryObject collection, paged; an OData cast, $filter, $search, $orderby and $count need the advanced
query parameters; limited information for objects of a type the caller may not read."""

from __future__ import annotations

import copy

import pytest
import yaml

import simlib
from simlib import (
    AMY,
    AUTOMATION,
    CLI,
    GROUP_BREAKGLASS,
    GROUP_HOLDERS,
    UNKNOWN_ID,
    assert_graph_error,
)

MORGAN, MORGAN_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000301", "morgan.member@contoso.com"  # 2 groups + 1 role
PAGER, PAGER_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000302", "pat.pager@contoso.com"  # 150 groups + 1 role
MANY_GROUPS = [f"6d2f1c3e-9a1b-4c5d-8e7f-{i:012d}" for i in range(1000, 1150)]
ROLE_NAME, ROLE_TEMPLATE = "Authentication Administrator", "c4e39bd9-1100-46d3-8c65-fb160da0071f"
GROUP_TYPE, ROLE_TYPE = "#microsoft.graph.group", "#microsoft.graph.directoryRole"
RELATIONS = ["memberOf", "transitiveMemberOf"]
ADVANCED = {"ConsistencyLevel": "eventual"}
COUNT = {"$count": "true"}


@pytest.fixture(scope="module")
def members_sim(suite_material, tmp_path_factory):
    """A simulator of its own: the suite's seed plus 150 groups, Morgan (two groups and a role) and Pat Pager (every
    one of the 150 groups and a role)."""
    seed = copy.deepcopy(suite_material["seed"])
    seed["groups"] = seed["groups"] + [{"id": g, "display_name": f"Paged group {g[-4:]}"} for g in MANY_GROUPS]
    seed["users"] = seed["users"] + [
        {
            "id": MORGAN,
            "user_principal_name": MORGAN_UPN,
            "display_name": "Morgan Member",
            "groups": [GROUP_HOLDERS, GROUP_BREAKGLASS.upper()],  # ids are case-insensitive
            "roles": [ROLE_NAME],
        },
        {
            "id": PAGER,
            "user_principal_name": PAGER_UPN,
            "display_name": "Pat Pager",
            "groups": MANY_GROUPS,
            "roles": [ROLE_NAME],
        },
    ]
    with simlib.seeded_api(seed, tmp_path_factory.mktemp("memberships")) as api:
        yield api


@pytest.fixture
def members(members_sim):
    members_sim.reset()
    return members_sim


def app_token(api, *permissions):
    """An app-only token of the automation app holding exactly ``permissions``."""
    return api.token(AUTOMATION, roles=list(permissions))


def get(api, path, token=None, headers=None, **params):
    return api.graph("GET", path, token=token, headers=headers, params=params)


# ------------------------------------------------------------------ the uncast lists
@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("ref", [MORGAN, MORGAN_UPN])
def test_memberships_are_directory_objects_groups_then_roles(members, relation, ref):
    token = app_token(members, "Directory.Read.All")
    response = get(members, f"/users/{ref}/{relation}", token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "@odata.context": f"{members.base}/beta/$metadata#directoryObjects",
        "value": [
            {"@odata.type": GROUP_TYPE, "id": GROUP_HOLDERS, "displayName": "Hardware token holders"},
            {"@odata.type": GROUP_TYPE, "id": GROUP_BREAKGLASS, "displayName": "Break-glass accounts"},
            {
                "@odata.type": ROLE_TYPE,
                "id": body["value"][2]["id"],
                "displayName": ROLE_NAME,
                "description": None,
                "roleTemplateId": ROLE_TEMPLATE,
            },
        ],
    }
    assert len(body["value"][2]["id"]) == 36
    # The same on v1.0, whose context says so; a user with no membership has an empty list.
    v1 = get(members, f"/v1.0/users/{ref}/{relation}", token)
    assert v1.status_code == 200, v1.text
    assert v1.json()["@odata.context"] == f"{members.base}/v1.0/$metadata#directoryObjects"
    assert v1.json()["value"] == body["value"]
    assert get(members, f"/users/{AMY}/{relation}", token).json()["value"] == []


@pytest.mark.parametrize(
    "permissions, groups_readable, roles_readable",
    [
        (["User.Read.All"], False, False),
        (["GroupMember.Read.All"], True, False),
        (["Group.Read.All"], True, False),
        (["User.Read.All", "RoleManagement.Read.Directory"], False, True),
        (["Directory.Read.All"], True, True),
        (["User.Read.All", "Group.ReadWrite.All", "RoleManagement.Read.All"], True, True),
    ],
)
@pytest.mark.parametrize("relation", RELATIONS)
def test_limited_information_for_types_the_app_may_not_read(
    members, relation, permissions, groups_readable, roles_readable
):
    """The objects are all returned; one of a type the app may not read has its type and id, the rest null."""
    response = get(members, f"/users/{MORGAN}/{relation}", app_token(members, *permissions))
    assert response.status_code == 200, response.text
    value = response.json()["value"]
    assert [(m["@odata.type"], m["id"]) for m in value[:2]] == [
        (GROUP_TYPE, GROUP_HOLDERS),
        (GROUP_TYPE, GROUP_BREAKGLASS),
    ]
    assert [m["displayName"] for m in value[:2]] == (
        ["Hardware token holders", "Break-glass accounts"] if groups_readable else [None, None]
    )
    role = value[2]
    assert (role["@odata.type"], len(role["id"])) == (ROLE_TYPE, 36)
    assert sorted(role) == ["@odata.type", "description", "displayName", "id", "roleTemplateId"]  # keys stay
    expected = (ROLE_NAME, ROLE_TEMPLATE) if roles_readable else (None, None)
    assert (role["displayName"], role["roleTemplateId"]) == expected


@pytest.mark.parametrize(
    "permissions", [["Policy.Read.All"], ["User.ReadBasic.All"], ["UserAuthenticationMethod.Read.All"], []]
)
def test_memberships_need_a_documented_permission(members, permissions):
    for relation in RELATIONS:
        response = get(members, f"/users/{MORGAN}/{relation}", app_token(members, *permissions))
        assert_graph_error(response, 403, "Authorization_RequestDenied")


def test_my_memberships_with_a_delegated_token(members):
    limited = members.token(CLI, user=MORGAN, scopes=["User.Read"])
    full = members.token(CLI, user=MORGAN, scopes=["User.Read", "Directory.Read.All"])
    for relation in RELATIONS:
        mine = get(members, f"/me/{relation}", limited)
        assert mine.status_code == 200, mine.text
        assert [(m["id"], m["displayName"]) for m in mine.json()["value"][:2]] == [
            (GROUP_HOLDERS, None),
            (GROUP_BREAKGLASS, None),
        ]
        assert mine.json()["value"][2]["roleTemplateId"] is None
        assert [m["displayName"] for m in get(members, f"/me/{relation}", full).json()["value"]] == [
            "Hardware token holders",
            "Break-glass accounts",
            ROLE_NAME,
        ]
        # User.Read reads one's own memberships only; /me needs a signed-in user.
        assert get(members, f"/users/{MORGAN}/{relation}", limited).status_code == 200
        assert_graph_error(get(members, f"/users/{PAGER}/{relation}", limited), 403, "Authorization_RequestDenied")
        assert get(members, f"/users/{PAGER}/{relation}", full).status_code == 200
        app_only = get(members, f"/me/{relation}", app_token(members, "Directory.Read.All"))
        assert_graph_error(app_only, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")


# ------------------------------------------------------------------ advanced query parameters
@pytest.mark.parametrize(
    "headers, params",
    [
        ({}, {}),
        (ADVANCED, {}),  # the header without $count=true
        ({}, COUNT),  # $count=true without the header
        ({"ConsistencyLevel": "session"}, COUNT),
        (ADVANCED, {"$count": "false"}),
    ],
    ids=["neither", "header-only", "count-only", "other-level", "count-false"],
)
@pytest.mark.parametrize("cast", ["microsoft.graph.directoryRole", "microsoft.graph.group"])
@pytest.mark.parametrize("relation", RELATIONS)
def test_a_cast_needs_the_advanced_query_parameters(members, relation, cast, headers, params):
    response = get(members, f"/users/{MORGAN}/{relation}/{cast}", headers=headers, **params)
    error = assert_graph_error(response, 400, "Request_UnsupportedQuery", "advanced query parameters")
    assert cast in error["message"]


@pytest.mark.parametrize("relation", RELATIONS)
def test_a_cast_with_the_advanced_query_parameters(members, relation):
    token = app_token(members, "Directory.Read.All")
    level = {"ConsistencyLevel": "EVENTUAL"}  # the header's value is case-insensitive
    roles = get(members, f"/users/{MORGAN_UPN}/{relation}/microsoft.graph.directoryRole", token, level, **COUNT)
    assert roles.status_code == 200, roles.text
    assert roles.json() == {
        "@odata.context": f"{members.base}/beta/$metadata#directoryRoles",
        "@odata.count": 1,
        "value": [
            {
                "@odata.type": ROLE_TYPE,
                "id": roles.json()["value"][0]["id"],
                "displayName": ROLE_NAME,
                "description": None,
                "roleTemplateId": ROLE_TEMPLATE,
            }
        ],
    }
    groups = get(members, f"/users/{MORGAN}/{relation}/microsoft.graph.group", token, ADVANCED, **COUNT)
    assert groups.status_code == 200, groups.text
    assert groups.json()["@odata.context"] == f"{members.base}/beta/$metadata#groups"
    assert (groups.json()["@odata.count"], [g["id"] for g in groups.json()["value"]]) == (
        2,
        [GROUP_HOLDERS, GROUP_BREAKGLASS],
    )
    units = get(members, f"/users/{MORGAN}/{relation}/microsoft.graph.administrativeUnit", token, ADVANCED, **COUNT)
    assert (units.status_code, units.json()["@odata.count"], units.json()["value"]) == (200, 0, [])
    # The limited-information rule applies to a cast too.
    limited = get(members, f"/users/{MORGAN}/{relation}/microsoft.graph.directoryRole", None, ADVANCED, **COUNT)
    assert (limited.json()["value"][0]["displayName"], limited.json()["value"][0]["roleTemplateId"]) == (None, None)


@pytest.mark.parametrize("relation", RELATIONS)
def test_count_on_the_uncast_list(members, relation):
    path = f"/users/{MORGAN}/{relation}"
    assert_graph_error(get(members, path, **COUNT), 400, "Request_BadRequest", "$count is not currently supported.")
    counted = get(members, path, headers=ADVANCED, **COUNT)
    assert counted.status_code == 200, counted.text
    assert (counted.json()["@odata.count"], len(counted.json()["value"])) == (3, 3)
    plain = get(members, path, headers=ADVANCED)  # the header alone: an ordinary list, no count
    assert plain.status_code == 200 and "@odata.count" not in plain.json()
    assert_graph_error(get(members, path, headers=ADVANCED, **{"$count": "yes"}), 400, "BadRequest", "$count")


@pytest.mark.parametrize(
    "option, value",
    [("$filter", "startswith(displayName, 'a')"), ("$search", '"displayName:tier"'), ("$orderby", "displayName")],
)
@pytest.mark.parametrize("cast", [None, "microsoft.graph.group"])
def test_filter_search_orderby_need_the_advanced_query_parameters(members, option, value, cast):
    path = f"/users/{MORGAN}/memberOf" + (f"/{cast}" if cast else "")
    without = get(members, path, **{option: value})
    error = assert_graph_error(without, 400, "Request_UnsupportedQuery", "advanced query parameters")
    assert option in error["message"]
    # With them the simulator still refuses, saying so.
    refused = get(members, path, headers=ADVANCED, **{option: value, **COUNT})
    assert_graph_error(refused, 400, "Request_UnsupportedQuery", f"the simulator does not support {option}")


def test_a_cast_in_a_batch_item_takes_its_headers(members):
    url = f"/users/{MORGAN}/transitiveMemberOf/microsoft.graph.directoryRole?$count=true"
    response = members.graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {"id": "with", "method": "GET", "url": url, "headers": {"consistencylevel": "eventual"}},
                {"id": "without", "method": "GET", "url": url},
            ]
        },
    )
    assert response.status_code == 200, response.text
    answers = {r["id"]: r for r in response.json()["responses"]}
    assert (answers["with"]["status"], answers["with"]["body"]["@odata.count"]) == (200, 1)
    assert (answers["without"]["status"], answers["without"]["body"]["error"]["code"]) == (
        400,
        "Request_UnsupportedQuery",
    )


# ------------------------------------------------------------------ paging
def pages(api, path, token=None, headers=None, **params):
    """Every page of a listing, following @odata.nextLink (on the simulator's own origin) with the same headers."""
    first = get(api, path, token, headers, **params)
    return simlib.follow_pages(api, first, f"{api.base}/beta/users/{PAGER}/", token=token, headers=headers)


@pytest.mark.parametrize("relation", RELATIONS)
def test_paging_over_more_than_a_hundred_memberships(members, relation):
    token = app_token(members, "Directory.Read.All")
    default = pages(members, f"/users/{PAGER_UPN}/{relation}", token)
    assert [len(p["value"]) for p in default] == [100, 51]
    items = [m for p in default for m in p["value"]]
    assert [m["id"] for m in items[:-1]] == MANY_GROUPS  # groups in seed order, then the role
    assert (items[-1]["@odata.type"], items[-1]["displayName"]) == (ROLE_TYPE, ROLE_NAME)
    assert all("@odata.count" not in p for p in default)
    assert [len(p["value"]) for p in pages(members, f"/users/{PAGER}/{relation}", token, **{"$top": "40"})] == [
        40,
        40,
        40,
        31,
    ]
    whole = pages(members, f"/users/{PAGER}/{relation}", token, **{"$top": "999"})  # 999 at most
    assert [[m["id"] for m in p["value"]] for p in whole] == [[m["id"] for m in items]]
    for top in ("0", "1000"):
        response = get(members, f"/users/{PAGER}/{relation}", token, **{"$top": top})
        assert_graph_error(response, 400, "BadRequest", "Must be between 1 and 999 inclusive.")


def test_paging_a_cast_keeps_the_advanced_query_parameters(members):
    path = f"/users/{PAGER}/memberOf/microsoft.graph.group"
    paged = pages(members, path, None, ADVANCED, **COUNT)
    assert [(len(p["value"]), p["@odata.count"]) for p in paged] == [(100, 150), (50, 150)]
    assert [g["id"] for p in paged for g in p["value"]] == MANY_GROUPS
    assert "$count=true" in paged[0]["@odata.nextLink"]
    # The next link without the header is refused as the first request would be.
    refused = members.graph("GET", paged[0]["@odata.nextLink"])
    assert_graph_error(refused, 400, "Request_UnsupportedQuery")


def test_a_bad_skiptoken_is_refused(members):
    # Not base64url JSON; well formed but not a position ({"after": "x"}, {"after": true}).
    for skiptoken in ("garbage!", "eyJhZnRlciI6ICJ4In0", "eyJhZnRlciI6IHRydWV9"):
        response = get(members, f"/users/{PAGER}/memberOf", **{"$skiptoken": skiptoken})
        assert_graph_error(response, 400, "BadRequest", "$skiptoken")


# ------------------------------------------------------------------ $select
@pytest.mark.parametrize("relation", RELATIONS)
def test_select_on_memberships(members, relation):
    token = app_token(members, "Directory.Read.All")
    path = f"/users/{MORGAN}/{relation}"
    names = get(members, path, token, **{"$select": "displayName"}).json()["value"]
    assert [sorted(m) for m in names] == [["@odata.type", "displayName", "id"]] * 3
    templates = get(members, path, token, **{"$select": "roleTemplateId"}).json()["value"]
    assert [sorted(m) for m in templates] == [["@odata.type", "id"]] * 2 + [["@odata.type", "id", "roleTemplateId"]]
    assert templates[2]["roleTemplateId"] == ROLE_TEMPLATE
    cast = get(members, f"{path}/microsoft.graph.directoryRole", token, ADVANCED, **COUNT, **{"$select": "id"})
    assert [sorted(m) for m in cast.json()["value"]] == [["@odata.type", "id"]]
    assert_graph_error(get(members, path, token, **{"$select": "mail"}), 400, "BadRequest", "mail")
    wrong_type = get(members, f"{path}/microsoft.graph.group", token, ADVANCED, **COUNT, **{"$select": "description"})
    assert_graph_error(wrong_type, 400, "BadRequest", "microsoft.graph.group")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("suffix", ["", "/microsoft.graph.directoryRole", "/microsoft.graph.group"])
@pytest.mark.parametrize("relation", RELATIONS)
def test_unknown_user_and_other_methods(members, relation, suffix):
    unknown = get(members, f"/users/{UNKNOWN_ID}/{relation}{suffix}", headers=ADVANCED, **COUNT)
    assert_graph_error(unknown, 404, "Request_ResourceNotFound")
    assert_graph_error(get(members, f"/users/nobody@contoso.com/{relation}{suffix}"), 404, "Request_ResourceNotFound")
    for method in ("POST", "PATCH", "DELETE"):
        response = members.graph(method, f"/users/{MORGAN}/{relation}{suffix}", json={})
        assert_graph_error(response, 405, "Request_BadRequest")


@pytest.mark.parametrize("suffix", ["microsoft.graph.user", GROUP_HOLDERS, "microsoft.graph.group/extra"])
def test_unknown_segments_under_memberships(members, suffix):
    response = get(members, f"/users/{MORGAN}/memberOf/{suffix}", headers=ADVANCED, **COUNT)
    assert_graph_error(response, 400, "BadRequest", "Resource not found for the segment")


@pytest.mark.parametrize("option", ["$expand", "$skip"])
def test_other_query_options_are_refused(members, option):
    assert_graph_error(get(members, f"/users/{MORGAN}/memberOf", **{option: "1"}), 400, "BadRequest", option)


# ------------------------------------------------------------------ the seed and the admin state
def test_the_admin_state_lists_a_users_groups(members):
    users = {u["id"]: u for u in members.admin_state()["users"]}
    assert (users[MORGAN]["groups"], users[MORGAN]["roles"]) == ([GROUP_HOLDERS, GROUP_BREAKGLASS], [ROLE_NAME])
    assert users[PAGER]["groups"] == MANY_GROUPS
    assert users[AMY]["groups"] == []


@pytest.mark.parametrize(
    "groups, message",
    [
        ([GROUP_HOLDERS, UNKNOWN_ID], f"users[0].groups[1]: unknown group id {UNKNOWN_ID}"),
        ([GROUP_HOLDERS, GROUP_HOLDERS.upper()], f"users[0].groups[1]: duplicate group id {GROUP_HOLDERS}"),
        ("not-a-list", "users[0].groups[0]: unknown group id not-a-list"),
        ([GROUP_HOLDERS, 7], "users[0].groups: expected a list of strings"),
    ],
)
def test_a_bad_seed_membership_exits_2(suite_material, tmp_path, groups, message):
    seed = copy.deepcopy(suite_material["seed"])
    seed["users"][0]["groups"] = groups
    path = tmp_path / "seed.yml"
    path.write_text(yaml.safe_dump(seed, sort_keys=False), encoding="utf-8")
    with pytest.raises(RuntimeError, match="exited with 2") as failure:
        simlib.SimProcess(str(path), tmp_path / "sim")
    assert message in str(failure.value)
