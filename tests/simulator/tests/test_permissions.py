"""Per-operation authorization (the least-privilege tables of the API pages): application roles, delegated scopes
and directory roles."""

from __future__ import annotations

import uuid

import jwt
import pytest

from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    ADELE_PASSWORD,
    ADELE_UPN,
    ALEX,
    AMY,
    AUTOMATION,
    CLI,
    DEVICES,
    DEVICES_ONLY_APP,
    DIEGO,
    DIEGO_ASSIGNED,
    GINA_PASSWORD,
    GINA_UPN,
    LEE,
    LEE_PASSWORD,
    LEE_UPN,
    MEGAN,
    MEGAN_PASSWORD,
    MEGAN_TOKENS,
    MEGAN_UPN,
    NOPERM_APP,
    PAT_PASSWORD,
    PAT_UPN,
    POLICY,
    READER_MI,
    REPORTING,
    REPORTING_SECRET,
    SPARE,
    TOTP123456,
    assert_graph_error,
    methods_path,
    policy_body,
    seed_secrets,
)

ALL_APP_PERMISSIONS = [
    "Policy.Read.All",
    "Policy.Read.AuthenticationMethod",
    "Policy.ReadWrite.AuthenticationMethod",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-HardwareOATH.Read.All",
    "UserAuthMethod-HardwareOATH.ReadWrite.All",
    "User.Read.All",
    "User.ReadBasic.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
]
DEVICES_READ = {"Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"}
DEVICES_WRITE = {"Policy.ReadWrite.AuthenticationMethod"}
METHODS_READ = {
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-HardwareOATH.Read.All",
    "UserAuthMethod-HardwareOATH.ReadWrite.All",
}
METHODS_WRITE = {"UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-HardwareOATH.ReadWrite.All"}
USERS_READ = {"User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "Directory.ReadWrite.All"}
POLICY_READ = {"Policy.Read.All", "Policy.Read.AuthenticationMethod", "Policy.ReadWrite.AuthenticationMethod"}
POLICY_WRITE = {"Policy.ReadWrite.AuthenticationMethod"}


def device_body(**extra):
    return {
        "serialNumber": "PERM-" + uuid.uuid4().hex[:6],
        "manufacturer": "C",
        "model": "M",
        "timeIntervalInSeconds": 30,
        "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        **extra,
    }


def code(api, totp, serial):
    return totp(serial).at(api.now())


# name -> (method, path, body factory(api, totp), accepted permissions, success status)
OPERATIONS = {
    "list devices": ("GET", DEVICES, None, DEVICES_READ, 200),
    "get device": ("GET", f"{DEVICES}/{SPARE}", None, DEVICES_READ, 200),
    "create device": ("POST", DEVICES, lambda api, totp: device_body(), DEVICES_WRITE, 201),
    "bulk devices": (
        "PATCH",
        DEVICES,
        lambda api, totp: {"@context": "#$delta", "value": [device_body()]},
        DEVICES_WRITE,
        201,
    ),
    "update device": ("PATCH", f"{DEVICES}/{SPARE}", lambda api, totp: {"displayName": "x"}, DEVICES_WRITE, 204),
    "delete device": ("DELETE", f"{DEVICES}/{SPARE}", None, DEVICES_WRITE, 204),
    "list methods": ("GET", methods_path(MEGAN), None, METHODS_READ, 200),
    "get method": ("GET", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}", None, METHODS_READ, 200),
    "assign": ("POST", methods_path(AMY), lambda api, totp: {"device": {"id": SPARE}}, METHODS_WRITE, 201),
    "unassign": ("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}", None, METHODS_WRITE, 204),
    "activate": (
        "POST",
        f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/activate",
        lambda api, totp: {"verificationCode": code(api, totp, "TOTP100001")},
        METHODS_WRITE,
        204,
    ),
    "deactivate": ("POST", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/deactivate", None, METHODS_WRITE, 204),
    "assignAndActivate": (
        "POST",
        f"{methods_path(AMY)}/assignAndActivate",
        lambda api, totp: {"device": {"id": TOTP123456}, "verificationCode": code(api, totp, "TOTP123456")},
        METHODS_WRITE,
        204,
    ),
    "assignAndActivateBySerialNumber": (
        "POST",
        f"{methods_path(AMY)}/assignAndActivateBySerialNumber",
        lambda api, totp: {"serialNumber": "TOTP123456", "verificationCode": code(api, totp, "TOTP123456")},
        METHODS_WRITE,
        204,
    ),
    "get user": ("GET", f"/users/{AMY}", None, USERS_READ, 200),
    "list users": ("GET", "/users", None, USERS_READ, 200),
    "get policy": ("GET", POLICY, None, POLICY_READ, 200),
    "update policy": ("PATCH", POLICY, lambda api, totp: policy_body(state="disabled"), POLICY_WRITE, 204),
    "reset policy": ("DELETE", POLICY, None, POLICY_WRITE, 204),
}


def call(api, totp, name, token):
    method, path, body = OPERATIONS[name][:3]
    kwargs = {"json": body(api, totp)} if body else {}
    return api.graph(method, path, token=token, **kwargs)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_exact_permission_is_enough(api, totp, name):
    accepted = OPERATIONS[name][3]
    for permission in sorted(accepted):
        api.reset()
        token = api.token(AUTOMATION, roles=[permission])
        response = call(api, totp, name, token)
        assert response.status_code == OPERATIONS[name][4], (permission, response.text)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_one_permission_short_is_denied(api, totp, name, suite_material):
    accepted = OPERATIONS[name][3]
    token = api.token(AUTOMATION, roles=[p for p in ALL_APP_PERMISSIONS if p not in accepted])
    before = api.admin_state()
    response = call(api, totp, name, token)
    if OPERATIONS[name][1].startswith("/users") and name in ("get user", "list users"):
        error = assert_graph_error(
            response, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    else:
        error = assert_graph_error(response, 403, "accessDenied", "Request Authorization failed")
    assert set(error) == {"code", "message", "innerError"}
    assert api.admin_state() == before
    for secret in seed_secrets(suite_material["seed"]):
        assert secret not in response.text
    for permission in accepted:  # the body does not explain which permission was missing
        assert permission not in response.text
    entry = api.requests_log(kind="graph")[-1]
    assert entry["status"] == 403 and "needs one of the application permissions" in entry["reason"]


def test_no_permissions_at_all(api, totp, suite_material):
    token = api.token(NOPERM_APP, secret=suite_material["noperm_secret"])
    for name in OPERATIONS:
        assert call(api, totp, name, token).status_code == 403, name


def test_reporting_app_reads_but_cannot_write(api, totp):
    token = api.token(REPORTING, secret=REPORTING_SECRET)
    for name in ("list devices", "get device", "list methods", "get method", "get user", "list users", "get policy"):
        assert call(api, totp, name, token).status_code == 200, name
    for name in (
        "create device",
        "bulk devices",
        "update device",
        "delete device",
        "assign",
        "unassign",
        "activate",
        "deactivate",
        "assignAndActivate",
        "assignAndActivateBySerialNumber",
        "update policy",
    ):
        assert_graph_error(call(api, totp, name, token), 403, "accessDenied")
    assert api.device(SPARE)["status"] == "available"


def test_create_with_assign_needs_both_permissions(api, suite_material):
    token = api.token(DEVICES_ONLY_APP, secret=suite_material["devices_only_secret"])
    assert api.graph("POST", DEVICES, token=token, json=device_body()).status_code == 201
    before = len(api.admin_state()["tokens"])
    response = api.graph("POST", DEVICES, token=token, json=device_body(assignTo={"id": AMY}))
    assert_graph_error(response, 403, "accessDenied")
    assert len(api.admin_state()["tokens"]) == before
    both = api.token(
        AUTOMATION, roles=["Policy.ReadWrite.AuthenticationMethod", "UserAuthMethod-HardwareOATH.ReadWrite.All"]
    )
    response = api.graph("POST", DEVICES, token=both, json=device_body(assignTo={"id": AMY}))
    assert response.status_code == 201 and response.json()["status"] == "assigned"


def test_user_assigned_managed_identity_permissions(api):
    token = api.token(None, managed_identity=READER_MI)
    assert api.graph("GET", DEVICES, token=token).status_code == 200
    assert_graph_error(api.graph("POST", DEVICES, token=token, json=device_body()), 403, "accessDenied")
    assert_graph_error(api.graph("GET", methods_path(MEGAN), token=token), 403, "accessDenied")


# ------------------------------------------------------------------ delegated
def test_self_service_with_user_scope(api, totp):
    token = api.token(CLI, user=MEGAN, scopes=["UserAuthenticationMethod.ReadWrite"])
    assert api.graph("GET", "/me/authentication/hardwareOathMethods", token=token).status_code == 200
    assert api.graph("GET", methods_path(MEGAN_UPN), token=token).status_code == 200  # self, by UPN
    assert (
        api.graph("DELETE", f"/me/authentication/hardwareOathMethods/{MEGAN_TOKENS[4]}", token=token).status_code == 204
    )
    assert (
        api.graph(
            "POST",
            "/me/authentication/hardwareOathMethods/assignAndActivate",
            token=token,
            json={"device": {"id": TOTP123456}, "verificationCode": code(api, totp, "TOTP123456")},
        ).status_code
        == 204
    )
    # A self-only scope does not reach anyone else, nor the inventory.
    assert_graph_error(api.graph("GET", methods_path(AMY), token=token), 403, "accessDenied")
    assert_graph_error(
        api.graph("POST", methods_path(AMY), token=token, json={"device": {"id": SPARE}}), 403, "accessDenied"
    )
    assert_graph_error(api.graph("GET", DEVICES, token=token), 403, "accessDenied")
    assert_graph_error(api.graph("GET", "/me", token=token), 403, "Authorization_RequestDenied")


def test_self_read_scope_cannot_write(api):
    token = api.token(CLI, user=MEGAN, scopes=["UserAuthenticationMethod.Read"])
    assert api.graph("GET", "/me/authentication/hardwareOathMethods", token=token).status_code == 200
    assert_graph_error(
        api.graph("DELETE", f"/me/authentication/hardwareOathMethods/{MEGAN_TOKENS[0]}", token=token),
        403,
        "accessDenied",
    )
    assert len(api.graph("GET", methods_path(MEGAN)).json()["value"]) == 5


def test_member_without_role_cannot_act_on_others(api, totp):
    token = api.token(CLI, user=MEGAN_UPN, password=MEGAN_PASSWORD)  # consented ...ReadWrite.All, but no role
    assert "UserAuthenticationMethod.ReadWrite.All" in token_scopes(token)
    assert_graph_error(api.graph("GET", methods_path(AMY), token=token), 403, "accessDenied")
    assert_graph_error(
        api.graph(
            "POST",
            f"{methods_path(AMY)}/assignAndActivate",
            token=token,
            json={"device": {"id": TOTP123456}, "verificationCode": code(api, totp, "TOTP123456")},
        ),
        403,
        "accessDenied",
    )
    assert_graph_error(api.graph("POST", DEVICES, token=token, json=device_body()), 403, "accessDenied")
    assert api.device(TOTP123456)["status"] == "available"
    entry = api.requests_log(kind="graph", status=403)[-1]
    assert "directory roles" in entry["reason"] and entry["user"] == MEGAN_UPN


def token_scopes(token):
    return jwt.decode(token, options={"verify_signature": False})["scp"].split()


def test_authentication_administrator(api, totp):
    token = api.token(CLI, user=ADELE_UPN, password=ADELE_PASSWORD)
    # A member's methods: read and write.
    assert api.graph("GET", methods_path(AMY), token=token).status_code == 200
    response = api.graph(
        "POST",
        f"{methods_path(AMY)}/assignAndActivateBySerialNumber",
        token=token,
        json={"serialNumber": "TOTP123456", "verificationCode": code(api, totp, "TOTP123456")},
    )
    assert response.status_code == 204, response.text
    assert api.graph("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}", token=token).status_code == 204
    # A Global Administrator's methods: read yes, write no.
    assert api.graph("GET", methods_path(ALEX), token=token).status_code == 200
    response = api.graph("POST", methods_path(ALEX), token=token, json={"device": {"id": SPARE}})
    error = assert_graph_error(response, 403, "accessDenied")
    assert "Privileged" not in error["message"]
    assert api.device(SPARE)["status"] == "available"
    # Another admin (Authentication Policy Administrator) is protected too.
    assert_graph_error(
        api.graph("POST", methods_path(LEE), token=token, json={"device": {"id": SPARE}}), 403, "accessDenied"
    )
    # Not an inventory role.
    assert_graph_error(api.graph("POST", DEVICES, token=token, json=device_body()), 403, "accessDenied")
    assert_graph_error(api.graph("PATCH", POLICY, token=token, json=policy_body(state="disabled")), 403, "accessDenied")


def test_privileged_authentication_administrator_writes_admins(api):
    token = api.token(CLI, user=PAT_UPN, password=PAT_PASSWORD)
    response = api.graph("POST", methods_path(ALEX), token=token, json={"device": {"id": SPARE}})
    assert response.status_code == 201, response.text
    assert api.device(SPARE)["assignedTo"]["id"] == ALEX
    assert api.graph("POST", f"{methods_path(ADELE)}/{ADELE_ACTIVATED}/deactivate", token=token).status_code == 204


def test_authentication_policy_administrator(api):
    token = api.token(CLI, user=LEE_UPN, password=LEE_PASSWORD)
    response = api.graph("POST", DEVICES, token=token, json=device_body(serialNumber="LEE-1"))
    assert response.status_code == 201, response.text
    assert api.graph("PATCH", f"{DEVICES}/{response.json()['id']}", token=token, json={"model": "N"}).status_code == 204
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}", token=token).status_code == 204
    assert api.graph("PATCH", POLICY, token=token, json=policy_body(state="disabled")).status_code == 204
    # ... but no user-method role.
    assert_graph_error(
        api.graph("POST", methods_path(AMY), token=token, json={"device": {"id": TOTP123456}}), 403, "accessDenied"
    )
    assert_graph_error(api.graph("GET", methods_path(AMY), token=token), 403, "accessDenied")


def test_policy_administrator_needs_the_scope(api):
    token = api.token(CLI, user=LEE, scopes=["User.Read"])
    assert_graph_error(api.graph("GET", DEVICES, token=token), 403, "accessDenied")
    assert_graph_error(api.graph("POST", DEVICES, token=token, json=device_body()), 403, "accessDenied")


def test_global_reader(api):
    token = api.token(CLI, user=GINA_UPN, password=GINA_PASSWORD)
    assert api.graph("GET", DEVICES, token=token).status_code == 200
    assert api.graph("GET", methods_path(MEGAN), token=token).status_code == 200
    assert api.graph("GET", POLICY, token=token).status_code == 200
    assert_graph_error(api.graph("POST", DEVICES, token=token, json=device_body()), 403, "accessDenied")
    assert_graph_error(
        api.graph("DELETE", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[0]}", token=token), 403, "accessDenied"
    )
    assert_graph_error(api.graph("PATCH", POLICY, token=token, json=policy_body(state="disabled")), 403, "accessDenied")


def test_delegated_users_read(api):
    token = api.token(CLI, user=MEGAN, scopes=["User.Read"])
    assert api.graph("GET", "/me", token=token).status_code == 200
    assert api.graph("GET", f"/users/{MEGAN}", token=token).status_code == 200
    assert_graph_error(api.graph("GET", f"/users/{AMY}", token=token), 403, "Authorization_RequestDenied")
    assert_graph_error(api.graph("GET", "/users", token=token), 403, "Authorization_RequestDenied")
    token = api.token(CLI, user=MEGAN, scopes=["User.ReadBasic.All"])
    assert api.graph("GET", f"/users/{AMY}", token=token).status_code == 200
