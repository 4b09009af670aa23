"""User methods (/users/{id|upn}/authentication/hardwareOathMethods, /me), users, and the hardwareOath policy."""

from __future__ import annotations

import datetime

import pyotp
import pytest

from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    ADELE_UPN,
    AMY,
    AMY_UPN,
    CLI,
    DEVICES,
    DIEGO,
    DIEGO_ASSIGNED,
    DIEGO_FAILED,
    GALT,
    GRADY,
    GRADY_UPN,
    GROUP_BREAKGLASS,
    GROUP_HOLDERS,
    MEGAN,
    MEGAN_PASSWORD,
    MEGAN_TOKENS,
    MEGAN_UPN,
    POLICY,
    REPORTING,
    SPARE,
    TOTP123456,
    TOTP654321,
    UNKNOWN_ID,
    assert_graph_error,
    methods_path,
    policy_body,
)

METHOD_TYPE = "#microsoft.graph.hardwareOathAuthenticationMethod"


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def code_for(api, totp, serial, offset=0):
    return totp(serial).at(api.now() + offset)


# ------------------------------------------------------------------ users
@pytest.mark.parametrize(
    "ref", [AMY, AMY.upper(), "amy.masters%40contoso.com", "amy.masters@contoso.com", "AMY.MASTERS%40CONTOSO.COM"]
)
def test_get_user_by_id_or_upn(api, sim, ref):
    response = api.graph("GET", f"/users/{ref}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "@odata.context": f"{sim['graph_url']}/beta/$metadata#users/$entity",
        "id": AMY,
        "userPrincipalName": AMY_UPN,
        "displayName": "Amy Masters",
        "userType": "Member",
        "accountEnabled": True,
    }


def test_get_guest_by_encoded_upn(api):
    response = api.graph("GET", "/users/grady_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com")
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["userType"], response.json()["userPrincipalName"]) == (
        GRADY,
        "Guest",
        GRADY_UPN,
    )
    methods = api.graph(
        "GET", "/users/grady_fabrikam.com%23EXT%23%40contoso.onmicrosoft.com/authentication/hardwareOathMethods"
    )
    assert methods.status_code == 200 and methods.json()["value"] == []


def test_get_user_select(api):
    response = api.graph("GET", f"/users/{AMY}", params={"$select": "displayName"})
    assert {k: v for k, v in response.json().items() if k != "@odata.context"} == {
        "id": AMY,
        "displayName": "Amy Masters",
    }
    assert_graph_error(api.graph("GET", f"/users/{AMY}", params={"$select": "mail"}), 400, "BadRequest")


@pytest.mark.parametrize(
    "path",
    [
        "/users/{u}",
        "/users/{u}/authentication/hardwareOathMethods",
        "/users/{u}/authentication/hardwareOathMethods/" + SPARE,
    ],
)
@pytest.mark.parametrize("ref", ["nobody%40contoso.com", UNKNOWN_ID])
def test_unknown_user(api, path, ref):
    assert_graph_error(api.graph("GET", path.format(u=ref)), 404, "Request_ResourceNotFound", "does not exist")


def test_unknown_user_on_writes(api, totp):
    path = methods_path("nobody@contoso.com")
    assert_graph_error(api.graph("POST", path, json={"device": {"id": SPARE}}), 404, "Request_ResourceNotFound")
    assert_graph_error(
        api.graph(
            "POST",
            f"{path}/assignAndActivateBySerialNumber",
            json={"serialNumber": "SPARE-0001", "verificationCode": "123456"},
        ),
        404,
        "Request_ResourceNotFound",
    )
    assert api.device(SPARE)["status"] == "available"


def test_v1_user_works_but_hardware_paths_rejected(api):
    assert api.graph("GET", f"/v1.0/users/{AMY}").status_code == 200
    for path in (
        f"/v1.0/users/{AMY}/authentication/hardwareOathMethods",
        f"/v1.0{DEVICES}",
        f"/v1.0{DEVICES}/{SPARE}",
        f"/v1.0{POLICY}",
    ):
        assert_graph_error(api.graph("GET", path), 400, "BadRequest", "Resource not found for the segment")
    response = api.graph(
        "POST", f"/v1.0/users/{AMY}/authentication/hardwareOathMethods", json={"device": {"id": SPARE}}
    )
    assert_graph_error(response, 400, "BadRequest")
    assert api.device(SPARE)["status"] == "available"


@pytest.mark.parametrize("path", ["/groups", "/users/{a}/authentication/phoneMethods", "/directory", "/beta"])
def test_unknown_segments(api, path):
    assert_graph_error(api.graph("GET", path.format(a=AMY)), 400, "BadRequest", "Resource not found for the segment")


# ------------------------------------------------------------------ list / get
def test_list_methods(api, sim):
    response = api.graph("GET", methods_path(MEGAN))
    assert response.status_code == 200
    body = response.json()
    assert (
        body["@odata.context"]
        == f"{sim['graph_url']}/beta/$metadata#users('{MEGAN}')/authentication/hardwareOathMethods"
    )
    assert [m["id"] for m in body["value"]] == MEGAN_TOKENS
    for method in body["value"]:
        assert set(method) == {"@odata.type", "id", "createdDateTime", "lastUsedDateTime", "device"}
        assert method["@odata.type"] == METHOD_TYPE
        assert method["device"]["id"] == method["id"] and method["device"]["secretKey"] is None
        assert method["device"]["assignedTo"] == {"id": MEGAN, "displayName": "Megan Bowen"}
        parse_time(method["createdDateTime"])
    assert [m["device"]["status"] for m in body["value"]] == ["activated"] * 3 + ["assigned"] * 2


@pytest.mark.parametrize("ref", [MEGAN_UPN, "megan.bowen%40contoso.com", "MEGAN.BOWEN@CONTOSO.COM"])
def test_list_methods_by_upn(api, ref):
    response = api.graph("GET", f"/users/{ref}/authentication/hardwareOathMethods")
    assert [m["id"] for m in response.json()["value"]] == MEGAN_TOKENS


def test_get_method(api, sim):
    response = api.graph("GET", f"{methods_path(ADELE_UPN)}/{ADELE_ACTIVATED}")
    assert response.status_code == 200
    body = response.json()
    assert (
        body["@odata.context"]
        == f"{sim['graph_url']}/beta/$metadata#users('{ADELE}')/authentication/hardwareOathMethods/$entity"
    )
    assert body["@odata.type"] == METHOD_TYPE and body["id"] == ADELE_ACTIVATED
    assert body["device"]["serialNumber"] == "TOTP100002" and body["device"]["status"] == "activated"


@pytest.mark.parametrize("token_id", [SPARE, DIEGO_ASSIGNED, UNKNOWN_ID])
def test_get_method_not_owned(api, token_id):
    assert_graph_error(api.graph("GET", f"{methods_path(ADELE)}/{token_id}"), 404, "itemNotFound")


# ------------------------------------------------------------------ assign / unassign
def test_assign(api, sim):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    response = api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP123456}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["@odata.type"] == METHOD_TYPE and body["id"] == TOTP123456
    assert body["@odata.context"].startswith(f"{sim['graph_url']}/beta/$metadata#users('{AMY}')/authentication/")
    assert parse_time(body["createdDateTime"]) >= before
    device = api.device(TOTP123456)
    assert device["status"] == "assigned" and device["assignedTo"] == {"id": AMY, "displayName": "Amy Masters"}
    assert [m["id"] for m in api.graph("GET", methods_path(AMY)).json()["value"]] == [TOTP123456]
    state = api.admin_state()
    assert next(u for u in state["users"] if u["id"] == AMY)["hardware_oath_methods"] == [TOTP123456]


def test_assign_sdk_body_by_upn(api):
    body = {
        "@odata.type": METHOD_TYPE,
        "device": {"id": TOTP654321, "@odata.type": "#microsoft.graph.hardwareOathTokenAuthenticationMethodDevice"},
    }
    response = api.graph("POST", methods_path("amy.masters@contoso.com"), json=body)
    assert response.status_code == 201, response.text
    assert api.device(TOTP654321)["assignedTo"]["id"] == AMY


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"device": {"id": UNKNOWN_ID}}, 404, "itemNotFound"),
        ({}, 400, "badRequest"),
        ({"device": SPARE}, 400, "badRequest"),
        ({"device": {"serialNumber": "SPARE-0001"}}, 400, "badRequest"),
        ({"device": {"id": SPARE}, "colour": "red"}, 400, "BadRequest"),
        ({"device": {"id": SPARE}, "createdDateTime": "2025-01-01T00:00:00Z"}, 400, "BadRequest"),
    ],
)
def test_assign_errors(api, body, status, code):
    assert_graph_error(api.graph("POST", methods_path(AMY), json=body), status, code)
    assert api.graph("GET", methods_path(AMY)).json()["value"] == []


def test_unassign(api):
    response = api.graph("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}")
    assert response.status_code == 204 and response.content == b""
    device = api.device(DIEGO_ASSIGNED)
    assert device["status"] == "available" and device["assignedTo"] is None
    assert [m["id"] for m in api.graph("GET", methods_path(DIEGO)).json()["value"]] == [DIEGO_FAILED]
    assert api.token_state(DIEGO_ASSIGNED)["method_created"] is None
    assert_graph_error(api.graph("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}"), 404, "itemNotFound")


def test_unassign_activated_token_by_upn(api):
    assert api.graph("DELETE", f"{methods_path(ADELE_UPN)}/{ADELE_ACTIVATED}").status_code == 204
    assert api.device(ADELE_ACTIVATED)["status"] == "available"


def test_unassign_someone_elses_token(api):
    assert_graph_error(api.graph("DELETE", f"{methods_path(AMY)}/{DIEGO_ASSIGNED}"), 404, "itemNotFound")
    assert api.device(DIEGO_ASSIGNED)["assignedTo"]["id"] == DIEGO


# ------------------------------------------------------------------ activate / deactivate
def test_activate(api, totp):
    code = code_for(api, totp, "TOTP100001")
    response = api.graph(
        "POST",
        f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/activate",
        json={"verificationCode": code, "displayName": "Diego's key"},
    )
    assert response.status_code == 204, response.text
    device = api.device(DIEGO_ASSIGNED)
    assert (device["status"], device["displayName"], device["assignedTo"]["id"]) == ("activated", "Diego's key", DIEGO)
    assert api.token_state(DIEGO_ASSIGNED)["activations"] == {"accepted": 1, "rejected": 0, "replayed": 0}


def test_activate_not_owned(api, totp):
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/{DIEGO_ASSIGNED}/activate",
        json={"verificationCode": code_for(api, totp, "TOTP100001")},
    )
    assert_graph_error(response, 404, "itemNotFound")
    assert api.device(DIEGO_ASSIGNED)["status"] == "assigned"


def test_deactivate(api):
    response = api.graph("POST", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/deactivate")
    assert response.status_code == 204, response.text
    device = api.device(ADELE_ACTIVATED)
    assert device["status"] == "assigned" and device["assignedTo"]["id"] == ADELE


def test_deactivate_with_empty_json_body(api):
    response = api.graph("POST", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/deactivate", json={})
    assert response.status_code == 204
    assert_graph_error(
        api.graph("POST", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/deactivate", json={"verificationCode": "123456"}),
        400,
        "BadRequest",
    )


def test_assign_and_activate(api, totp):
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivate",
        json={
            "device": {"id": TOTP123456, "@odata.type": "#microsoft.graph.hardwareOathTokenAuthenticationMethodDevice"},
            "displayName": "tok",
            "verificationCode": code_for(api, totp, "TOTP123456"),
        },
    )
    assert response.status_code == 204, response.text
    device = api.device(TOTP123456)
    assert (device["status"], device["assignedTo"]["id"], device["displayName"]) == ("activated", AMY, "tok")


def test_assign_and_activate_by_serial_number(api, totp):
    response = api.graph(
        "POST",
        f"{methods_path(AMY_UPN)}/assignAndActivateBySerialNumber",
        json={
            "serialNumber": "TOTP123456",
            "verificationCode": code_for(api, totp, "TOTP123456"),
            "displayName": "Amy Masters Token",
        },
    )
    assert response.status_code == 204, response.text
    device = api.device(TOTP123456)
    assert (device["status"], device["assignedTo"]["id"], device["displayName"]) == (
        "activated",
        AMY,
        "Amy Masters Token",
    )


def test_assign_and_activate_by_serial_is_case_insensitive(api, totp):
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivateBySerialNumber",
        json={"serialNumber": "galt11420104", "verificationCode": code_for(api, totp, "GALT11420104")},
    )
    assert response.status_code == 204, response.text
    assert api.device(GALT)["status"] == "activated"


def test_assign_and_activate_by_serial_after_create_with_assign_to(api):
    """The community script pattern (S36): create with assignTo, then activate by serial for the same user."""
    created = api.create_device("SCRIPTED-1", assignTo={"id": AMY})
    code = pyotp.TOTP(created["_secret"]).at(api.now())
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivateBySerialNumber",
        json={"serialNumber": "SCRIPTED-1", "verificationCode": code},
    )
    assert response.status_code == 204, response.text
    assert api.device(created["id"])["status"] == "activated"


@pytest.mark.parametrize(
    "action,body,status,code",
    [
        (
            "assignAndActivateBySerialNumber",
            {"serialNumber": "NOPE-1", "verificationCode": "123456"},
            404,
            "itemNotFound",
        ),
        ("assignAndActivateBySerialNumber", {"verificationCode": "123456"}, 400, "badRequest"),
        ("assignAndActivateBySerialNumber", {"serialNumber": "SPARE-0001"}, 400, "badRequest"),
        (
            "assignAndActivateBySerialNumber",
            {"serialNumber": "SPARE-0001", "verificationCode": "123456", "x": 1},
            400,
            "BadRequest",
        ),
        ("assignAndActivate", {"device": {"id": UNKNOWN_ID}, "verificationCode": "123456"}, 404, "itemNotFound"),
        ("assignAndActivate", {"verificationCode": "123456"}, 400, "badRequest"),
        ("assignAndActivate", {"device": {"id": SPARE}}, 400, "badRequest"),
        (
            "assignAndActivate",
            {"device": {"id": SPARE}, "verificationCode": "123456", "displayName": 5},
            400,
            "badRequest",
        ),
    ],
)
def test_assign_and_activate_errors(api, action, body, status, code):
    assert_graph_error(api.graph("POST", f"{methods_path(AMY)}/{action}", json=body), status, code)
    assert api.device(SPARE)["status"] == "available"
    assert api.graph("GET", methods_path(AMY)).json()["value"] == []


@pytest.mark.parametrize(
    "method,path",
    [
        ("PATCH", "{m}"),
        ("DELETE", "{m}"),
        ("GET", "{m}/assignAndActivate"),
        ("GET", "{m}/assignAndActivateBySerialNumber"),
        ("GET", "{m}/" + MEGAN_TOKENS[0] + "/activate"),
        ("PATCH", "{m}/" + MEGAN_TOKENS[0]),
    ],
)
def test_methods_method_not_allowed(api, method, path):
    assert_graph_error(api.graph(method, path.format(m=methods_path(MEGAN)), json={}), 405, "Request_BadRequest")


def test_methods_unknown_action(api):
    assert_graph_error(
        api.graph("POST", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}/reactivate", json={}), 400, "BadRequest"
    )


# ------------------------------------------------------------------ /me
def test_me_with_app_token(api):
    for path in ("/me", "/me/authentication/hardwareOathMethods"):
        assert_graph_error(api.graph("GET", path), 400, "BadRequest", "/me request is only valid with delegated")


def test_me_with_delegated_token(api):
    token = api.token(CLI, user=MEGAN_UPN, password=MEGAN_PASSWORD)
    me = api.graph("GET", "/me", token=token)
    assert me.status_code == 200 and me.json()["id"] == MEGAN
    methods = api.graph("GET", "/me/authentication/hardwareOathMethods", token=token)
    assert methods.status_code == 200 and [m["id"] for m in methods.json()["value"]] == MEGAN_TOKENS
    assert methods.json()["@odata.context"].endswith(f"$metadata#users('{MEGAN}')/authentication/hardwareOathMethods")
    assert api.graph("GET", f"/me/authentication/hardwareOathMethods/{MEGAN_TOKENS[0]}", token=token).status_code == 200


def test_me_self_service_lifecycle(api, totp):
    token = api.token(CLI, user=AMY, scopes=["UserAuthenticationMethod.ReadWrite"])
    response = api.graph(
        "POST",
        "/me/authentication/hardwareOathMethods/assignAndActivate",
        token=token,
        json={"device": {"id": TOTP123456}, "verificationCode": code_for(api, totp, "TOTP123456")},
    )
    assert response.status_code == 204, response.text
    assert api.device(TOTP123456)["assignedTo"]["id"] == AMY
    assert (
        api.graph("POST", f"/me/authentication/hardwareOathMethods/{TOTP123456}/deactivate", token=token).status_code
        == 204
    )
    assert api.graph("DELETE", f"/me/authentication/hardwareOathMethods/{TOTP123456}", token=token).status_code == 204
    assert api.device(TOTP123456)["status"] == "available"


# ------------------------------------------------------------------ policy
def test_get_policy(api, sim):
    response = api.graph("GET", POLICY)
    assert response.status_code == 200
    assert response.json() == {
        "@odata.context": f"{sim['graph_url']}/beta/$metadata#policies/authenticationMethodsPolicy/"
        "authenticationMethodConfigurations/$entity",
        "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
        "id": "HardwareOath",
        "state": "enabled",
        "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}],
        "excludeTargets": [],
    }


def test_patch_policy_targets(api):
    response = api.graph(
        "PATCH",
        POLICY,
        json={
            "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
            "state": "enabled",
            "includeTargets": [{"targetType": "group", "id": GROUP_HOLDERS, "isRegistrationRequired": True}],
            "excludeTargets": [{"targetType": "group", "id": GROUP_BREAKGLASS}],
        },
    )
    assert response.status_code == 204, response.text
    body = api.graph("GET", POLICY).json()
    assert body["includeTargets"] == [{"targetType": "group", "id": GROUP_HOLDERS, "isRegistrationRequired": True}]
    assert body["excludeTargets"] == [{"targetType": "group", "id": GROUP_BREAKGLASS}]
    assert api.admin_state()["policy"]["hardware_oath"] == {
        "state": "enabled",
        "include_targets": body["includeTargets"],
        "exclude_targets": body["excludeTargets"],
    }


def test_patch_policy_state_only_keeps_targets(api):
    api.graph("PATCH", POLICY, json=policy_body(excludeTargets=[{"targetType": "group", "id": GROUP_BREAKGLASS}]))
    assert api.graph("PATCH", POLICY, json=policy_body(state="disabled")).status_code == 204
    body = api.graph("GET", POLICY).json()
    assert body["state"] == "disabled" and body["excludeTargets"] == [{"targetType": "group", "id": GROUP_BREAKGLASS}]


@pytest.mark.parametrize(
    "body,code,fragment",
    [
        ({"includeTargets": [{"targetType": "group", "id": UNKNOWN_ID}]}, "badRequest", "was not found"),
        ({"excludeTargets": [{"targetType": "group", "id": UNKNOWN_ID}]}, "badRequest", "was not found"),
        (
            {"excludeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}]},
            "BadRequest",
            "isRegistrationRequired",
        ),
        ({"includeTargets": [{"targetType": "user", "id": AMY}]}, "badRequest", "Only group targets"),
        ({"includeTargets": {"id": GROUP_HOLDERS}}, "badRequest", "array"),
        ({"includeTargets": [{"id": GROUP_HOLDERS, "isRegistrationRequired": "yes"}]}, "badRequest", "boolean"),
        ({"state": "on"}, "BadRequest", "enumeration"),
        ({"colour": "red"}, "BadRequest", "'colour' does not exist"),
        (
            {"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "state": "enabled"},
            "BadRequest",
            "does not match",
        ),
        ({"id": "Fido2"}, "BadRequest", "read-only"),
    ],
)
def test_patch_policy_errors(api, body, code, fragment):
    before = api.graph("GET", POLICY).json()
    assert_graph_error(api.graph("PATCH", POLICY, json=policy_body(**body)), 400, code, fragment)
    assert api.graph("GET", POLICY).json() == before


def test_delete_policy_reverts_to_default(api):
    api.graph("PATCH", POLICY, json=policy_body(excludeTargets=[{"targetType": "group", "id": GROUP_BREAKGLASS}]))
    response = api.graph("DELETE", POLICY)
    assert response.status_code == 204
    body = api.graph("GET", POLICY).json()
    assert body["state"] == "disabled"
    assert body["includeTargets"] == [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}]
    assert body["excludeTargets"] == []


def test_policy_read_only_app(api):
    token = api.token(REPORTING, secret="reporting-secret-for-the-local-simulator-only")
    assert api.graph("GET", POLICY, token=token).status_code == 200
    assert_graph_error(api.graph("PATCH", POLICY, token=token, json=policy_body(state="disabled")), 403, "accessDenied")
    assert_graph_error(api.graph("DELETE", POLICY, token=token), 403, "accessDenied")
    assert api.graph("GET", POLICY).json()["state"] == "enabled"


def test_policy_method_not_allowed(api):
    assert_graph_error(api.graph("POST", POLICY, json={}), 405, "Request_BadRequest")


def test_unassigned_members_of_other_users_untouched(api, totp):
    """Assigning Amy's token leaves every other token as seeded."""
    before = {t["id"]: t for t in api.admin_state()["tokens"] if t["id"] != TOTP123456}
    api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP123456}})
    after = {t["id"]: t for t in api.admin_state()["tokens"] if t["id"] != TOTP123456}
    assert after == before


# ------------------------------------------------------------------ directory roles
@pytest.mark.parametrize("relation", ["memberOf", "transitiveMemberOf"])
def test_a_users_directory_roles(api, relation):
    """The cast needs the advanced query parameters (aad-advanced-queries); a role's properties need a permission
    that reads roles (else its type and id only). test_memberships.py covers the rest."""
    path = f"/users/{ADELE_UPN}/{relation}/microsoft.graph.directoryRole"
    advanced = {"headers": {"ConsistencyLevel": "eventual"}, "params": {"$count": "true"}}
    assert_graph_error(api.graph("GET", path), 400, "Request_UnsupportedQuery")
    reader = api.token(REPORTING, roles=["User.Read.All", "RoleManagement.Read.Directory"])
    response = api.graph("GET", path, token=reader, **advanced)
    assert response.status_code == 200, response.text
    assert response.json()["@odata.count"] == 1
    assert [
        (role["@odata.type"], role["displayName"], role["roleTemplateId"]) for role in response.json()["value"]
    ] == [("#microsoft.graph.directoryRole", "Authentication Administrator", "c4e39bd9-1100-46d3-8c65-fb160da0071f")]
    limited = api.graph("GET", path, **advanced).json()["value"]  # the automation app: User.Read.All only
    assert [(role["id"], role["displayName"], role["roleTemplateId"]) for role in limited] == [
        (response.json()["value"][0]["id"], None, None)
    ]
    amy = api.graph("GET", f"/users/{AMY}/{relation}/microsoft.graph.directoryRole", token=reader, **advanced)
    assert (amy.json()["@odata.count"], amy.json()["value"]) == (0, [])
    selected = api.graph(
        "GET",
        path,
        token=reader,
        headers=advanced["headers"],
        params={"$count": "true", "$select": "id,roleTemplateId"},
    )
    assert [sorted(role) for role in selected.json()["value"]] == [["@odata.type", "id", "roleTemplateId"]]
    unknown = api.graph("GET", f"/users/{UNKNOWN_ID}/{relation}/microsoft.graph.directoryRole", **advanced)
    assert_graph_error(unknown, 404, "Request_ResourceNotFound")
    assert api.graph("POST", path, json={}, **advanced).status_code == 405
