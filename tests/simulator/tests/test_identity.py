"""The identity platform: OIDC metadata, JWKS, the v2.0 token endpoint through real msal, managed identity."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings

import jwt
import msal
import pytest
from cryptography.hazmat.primitives import hashes

from simlib import (
    ADELE,
    ADELE_PASSWORD,
    ADELE_UPN,
    AMY_UPN,
    AUTOMATION,
    AUTOMATION_SECRET,
    CERT_APP,
    CLI,
    DANA_PASSWORD,
    DANA_UPN,
    DEVICES,
    FED_APP,
    GH_ISSUER,
    GH_SUBJECT,
    GITLAB_ISSUER,
    GITLAB_SUBJECT,
    GRAPH,
    GRAPH_DEFAULT,
    MEGAN,
    MEGAN_PASSWORD,
    MEGAN_UPN,
    OTHER_TENANT_ID,
    READER_MI,
    READER_MI_NAME,
    READER_MI_OBJECT_ID,
    REPORTING,
    RUNNER_MI,
    TENANT_ID,
    UNKNOWN_ID,
    assert_identity_error,
    make_certificate,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cca(sim, http, client_id, credential, authority=None):
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=authority or sim["authority"],
        instance_discovery=False,
        http_client=http,
    )


# ------------------------------------------------------------------ metadata
def test_openid_configuration(sim, client):
    response = client.get(f"{sim['authority']}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["token_endpoint"] == sim["token_endpoint"] == f"{sim['graph_url']}/{TENANT_ID}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{sim['graph_url']}/{TENANT_ID}/v2.0"
    assert doc["jwks_uri"] == f"{sim['graph_url']}/{TENANT_ID}/discovery/v2.0/keys"
    for key in ("authorization_endpoint", "device_authorization_endpoint", "end_session_endpoint", "token_endpoint"):
        assert doc[key].startswith(sim["graph_url"] + "/"), key
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert "client_secret_post" in doc["token_endpoint_auth_methods_supported"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_openid_configuration_by_verified_domain(sim, client):
    response = client.get(f"{sim['graph_url']}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json()["token_endpoint"] == sim["token_endpoint"]


def test_openid_configuration_unknown_tenant(sim, client):
    response = client.get(f"{sim['graph_url']}/{OTHER_TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert_identity_error(response, 400, "invalid_tenant", 90002)


def test_jwks_verifies_issued_access_tokens(sim, client, api):
    keys = client.get(f"{sim['authority']}/discovery/v2.0/keys")
    assert keys.status_code == 200
    jwks = keys.json()["keys"]
    assert len(jwks) == 1 and jwks[0]["kty"] == "RSA" and jwks[0]["use"] == "sig"
    token = api.token(AUTOMATION, secret=AUTOMATION_SECRET)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == jwks[0]["kid"]
    key = jwt.PyJWK(jwks[0]).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=GRAPH)
    assert claims["iss"] == f"https://sts.windows.net/{TENANT_ID}/"
    assert claims["tid"] == TENANT_ID
    assert claims["appid"] == AUTOMATION
    assert claims["idtyp"] == "app"
    assert claims["appidacr"] == "1"
    assert sorted(claims["roles"]) == sorted(
        ["Policy.ReadWrite.AuthenticationMethod", "UserAuthenticationMethod.ReadWrite.All", "User.Read.All"]
    )
    assert claims["exp"] - claims["iat"] == 3599
    assert abs(claims["iat"] - time.time()) < 60
    # A foreign-signed token does not verify with the published key.
    foreign = api.mint(client_id=AUTOMATION, foreign=True)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(foreign, key, algorithms=["RS256"], audience=GRAPH)


def test_token_endpoint_rejects_get(sim, client):
    response = client.get(sim["token_endpoint"])
    assert response.status_code == 405


# ------------------------------------------------------------------ client credentials through msal
def test_msal_client_secret(sim, api, msal_http, requests_log):
    app = cca(sim, msal_http, AUTOMATION, AUTOMATION_SECRET)
    result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert result["token_source"] == "identity_provider"
    assert 3500 < result["expires_in"] <= 3599
    assert claims_of(result["access_token"])["appid"] == AUTOMATION
    again = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert again["token_source"] == "cache" and again["access_token"] == result["access_token"]
    assert api.graph("GET", DEVICES, token=result["access_token"]).status_code == 200
    identity = requests_log(kind="identity")
    assert [(e["method"], e["path"]) for e in identity] == [
        ("GET", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT_ID}/oauth2/v2.0/token"),
    ]
    assert identity[1]["client_id"] == AUTOMATION and identity[1]["grant_type"] == "client_credentials"
    assert identity[1]["status"] == 200


def test_msal_client_secret_with_domain_authority(sim, msal_http):
    app = cca(
        sim,
        msal_http,
        REPORTING,
        "reporting-secret-for-the-local-simulator-only",
        authority=f"{sim['graph_url']}/contoso.com",
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["tid"] == TENANT_ID


@pytest.mark.parametrize("form", ["public_certificate", "thumbprint"])
def test_msal_certificate(sim, api, msal_http, suite_material, form):
    if form == "public_certificate":
        credential = {"private_key": suite_material["cert_key_pem"], "public_certificate": suite_material["cert_pem"]}
    else:
        credential = {
            "private_key": suite_material["cert_key_pem"],
            "thumbprint": suite_material["cert"].fingerprint(hashes.SHA1()).hex(),
        }
    result = cca(sim, msal_http, CERT_APP, credential).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["appid"] == CERT_APP and claims["appidacr"] == "2" and claims["roles"] == ["Policy.Read.All"]
    assert api.graph("GET", DEVICES, token=result["access_token"]).status_code == 200


def test_msal_federated_assertion(sim, api, msal_http):
    minted = api.admin("POST", "federated-assertions", json={"issuer": GH_ISSUER, "subject": GH_SUBJECT})
    assert minted.status_code == 200
    assertion = minted.json()["assertion"]
    claims = claims_of(assertion)
    assert (claims["iss"], claims["sub"], claims["aud"]) == (GH_ISSUER, GH_SUBJECT, "api://AzureADTokenExchange")
    result = cca(sim, msal_http, FED_APP, {"client_assertion": lambda: assertion}).acquire_token_for_client(
        scopes=[GRAPH_DEFAULT]
    )
    assert "access_token" in result, result
    token_claims = claims_of(result["access_token"])
    assert token_claims["appid"] == FED_APP and token_claims["appidacr"] == "2"
    assert api.graph("GET", DEVICES, token=result["access_token"]).status_code == 200


def test_federated_credential_with_custom_audience(api):
    assertion = api.admin(
        "POST",
        "federated-assertions",
        json={"issuer": GITLAB_ISSUER, "subject": GITLAB_SUBJECT, "audience": GITLAB_ISSUER},
    ).json()["assertion"]
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": FED_APP,
            "scope": GRAPH_DEFAULT,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
    )
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------ managed identity
def test_msal_managed_identity_system_assigned(sim, api, msal_http, clean_identity_env):
    clean_identity_env.setenv("IDENTITY_ENDPOINT", sim["managed_identity"]["endpoint"])
    clean_identity_env.setenv("IDENTITY_HEADER", sim["managed_identity"]["header"])
    mi = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=msal_http)
    result = mi.acquire_token_for_client(resource=GRAPH)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["appid"] == RUNNER_MI and claims["aud"] == GRAPH
    assert "UserAuthenticationMethod.ReadWrite.All" in claims["roles"]
    assert api.graph("GET", DEVICES, token=result["access_token"]).status_code == 200
    entry = api.requests_log(kind="managed_identity")[-1]
    assert entry["status"] == 200 and entry["client_id"] == RUNNER_MI
    assert entry["query"] == {"api-version": "2019-08-01", "resource": GRAPH}


@pytest.mark.parametrize("selector", ["client_id", "object_id", "resource_id"])
def test_msal_managed_identity_user_assigned(sim, api, msal_http, clean_identity_env, selector):
    clean_identity_env.setenv("IDENTITY_ENDPOINT", sim["managed_identity"]["endpoint"])
    clean_identity_env.setenv("IDENTITY_HEADER", sim["managed_identity"]["header"])
    value = {
        "client_id": READER_MI,
        "object_id": READER_MI_OBJECT_ID,
        "resource_id": f"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        f"userAssignedIdentities/{READER_MI_NAME}",
    }[selector]
    mi = msal.ManagedIdentityClient(msal.UserAssignedManagedIdentity(**{selector: value}), http_client=msal_http)
    result = mi.acquire_token_for_client(resource=GRAPH)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["appid"] == READER_MI and claims["oid"] == READER_MI_OBJECT_ID
    assert claims["roles"] == ["Policy.Read.All"]
    assert api.graph("GET", DEVICES, token=result["access_token"]).status_code == 200
    assert api.graph("POST", DEVICES, token=result["access_token"], json={}).status_code == 403


def test_managed_identity_raw_response(sim, client):
    response = client.get(
        sim["managed_identity"]["endpoint"],
        params={"api-version": "2019-08-01", "resource": GRAPH},
        headers={"X-IDENTITY-HEADER": sim["managed_identity"]["header"]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["resource"] == GRAPH and body["client_id"] == RUNNER_MI
    assert isinstance(body["expires_on"], str) and int(body["expires_on"]) > time.time() + 3000


@pytest.mark.parametrize("header", [None, "wrong-header-value"])
def test_managed_identity_wrong_header(sim, client, header):
    headers = {"X-IDENTITY-HEADER": header} if header else {}
    response = client.get(
        sim["managed_identity"]["endpoint"], params={"api-version": "2019-08-01", "resource": GRAPH}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert "access_token" not in response.json()


def test_msal_managed_identity_wrong_header(sim, msal_http, clean_identity_env):
    clean_identity_env.setenv("IDENTITY_ENDPOINT", sim["managed_identity"]["endpoint"])
    clean_identity_env.setenv("IDENTITY_HEADER", "not-the-header")
    mi = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=msal_http)
    result = mi.acquire_token_for_client(resource=GRAPH)
    assert "access_token" not in result
    assert "401" in result["error_description"]


def test_managed_identity_unknown_resource(sim, client, msal_http, clean_identity_env):
    response = client.get(
        sim["managed_identity"]["endpoint"],
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": sim["managed_identity"]["header"]},
    )
    assert response.status_code == 500
    assert response.json()["statusCode"] == 500
    clean_identity_env.setenv("IDENTITY_ENDPOINT", sim["managed_identity"]["endpoint"])
    clean_identity_env.setenv("IDENTITY_HEADER", sim["managed_identity"]["header"])
    result = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=msal_http
    ).acquire_token_for_client(resource="https://vault.azure.net")
    assert result.get("error") == "invalid_scope", result
    assert result["error_description"].startswith("500, ")


@pytest.mark.parametrize(
    "params,status",
    [
        ({"api-version": "2018-02-01", "resource": GRAPH}, 400),
        ({"resource": GRAPH}, 400),
        ({"api-version": "2019-08-01", "resource": GRAPH, "client_id": UNKNOWN_ID}, 400),
    ],
)
def test_managed_identity_bad_requests(sim, client, params, status):
    response = client.get(
        sim["managed_identity"]["endpoint"],
        params=params,
        headers={"X-IDENTITY-HEADER": sim["managed_identity"]["header"]},
    )
    assert response.status_code == status
    assert "access_token" not in response.json()


# ------------------------------------------------------------------ delegated: password grant
def test_msal_username_password(sim, api, msal_http):
    app = msal.PublicClientApplication(CLI, authority=sim["authority"], instance_discovery=False, http_client=msal_http)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = app.acquire_token_by_username_password(
            ADELE_UPN,
            ADELE_PASSWORD,
            scopes=[f"{GRAPH}/UserAuthenticationMethod.ReadWrite.All", f"{GRAPH}/User.Read.All"],
        )
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == ADELE_UPN
    assert result["id_token_claims"]["oid"] == ADELE
    claims = claims_of(result["access_token"])
    assert claims["idtyp"] == "user" and claims["oid"] == ADELE and claims["upn"] == ADELE_UPN
    assert set(claims["scp"].split()) == {"UserAuthenticationMethod.ReadWrite.All", "User.Read.All"}
    assert claims["appid"] == CLI
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == [ADELE_UPN]
    assert accounts[0]["home_account_id"] == f"{ADELE}.{TENANT_ID}"
    me = api.graph("GET", "/me", token=result["access_token"])
    assert me.status_code == 200 and me.json()["userPrincipalName"] == ADELE_UPN
    # The refresh token works too (refresh_token grant).
    refreshed = app.acquire_token_silent(
        [f"{GRAPH}/UserAuthenticationMethod.ReadWrite.All", f"{GRAPH}/User.Read.All"],
        account=accounts[0],
        force_refresh=True,
    )
    assert refreshed and "access_token" in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    grants = [e["grant_type"] for e in api.requests_log(kind="identity", method="POST")]
    assert grants == ["password", "refresh_token"]


def test_password_grant_raw_response(api):
    response = api.token_request(
        {
            "grant_type": "password",
            "client_id": CLI,
            "username": MEGAN_UPN,
            "password": MEGAN_PASSWORD,
            "scope": f"{GRAPH}/UserAuthenticationMethod.ReadWrite openid profile offline_access",
        }
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert body["scope"] == f"{GRAPH}/UserAuthenticationMethod.ReadWrite"
    client_info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert client_info == {"uid": MEGAN, "utid": TENANT_ID}
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == CLI and id_claims["preferred_username"] == MEGAN_UPN and id_claims["tid"] == TENANT_ID
    assert claims_of(body["access_token"])["scp"] == "UserAuthenticationMethod.ReadWrite"


def test_password_grant_default_scope_grants_consented_permissions(api):
    response = api.token_request(
        {
            "grant_type": "password",
            "client_id": CLI,
            "username": MEGAN_UPN,
            "password": MEGAN_PASSWORD,
            "scope": GRAPH_DEFAULT,
        }
    )
    assert response.status_code == 200, response.text
    assert "id_token" not in response.json()
    scopes = set(claims_of(response.json()["access_token"])["scp"].split())
    assert scopes == {
        "UserAuthenticationMethod.ReadWrite.All",
        "UserAuthenticationMethod.ReadWrite",
        "Policy.ReadWrite.AuthenticationMethod",
        "User.Read.All",
    }


@pytest.mark.parametrize(
    "username,password", [(MEGAN_UPN, "wrong-password"), (AMY_UPN, "anything"), ("nobody@contoso.com", MEGAN_PASSWORD)]
)
def test_password_grant_bad_credentials(api, username, password):
    response = api.token_request(
        {"grant_type": "password", "client_id": CLI, "username": username, "password": password, "scope": GRAPH_DEFAULT}
    )
    assert_identity_error(response, 400, "invalid_grant", 50126)


def test_password_grant_unconsented_scope(api):
    response = api.token_request(
        {
            "grant_type": "password",
            "client_id": CLI,
            "username": MEGAN_UPN,
            "password": MEGAN_PASSWORD,
            "scope": f"{GRAPH}/Directory.ReadWrite.All",
        }
    )
    assert_identity_error(response, 400, "invalid_grant", 65001)


def test_msal_username_password_wrong_password(sim, msal_http):
    app = msal.PublicClientApplication(CLI, authority=sim["authority"], instance_discovery=False, http_client=msal_http)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = app.acquire_token_by_username_password(MEGAN_UPN, "nope", scopes=[f"{GRAPH}/User.Read.All"])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [50126]


# ------------------------------------------------------------------ token endpoint errors
def test_msal_wrong_secret(sim, msal_http):
    result = cca(sim, msal_http, AUTOMATION, "not-the-secret").acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]
    assert "access_token" not in result


def test_wrong_secret_raw(api):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": "not-the-secret",
            "scope": GRAPH_DEFAULT,
        }
    )
    body = assert_identity_error(response, 401, "invalid_client", 7000215)
    assert AUTOMATION_SECRET not in response.text and "not-the-secret" not in json.dumps(body)


def test_msal_unknown_client(sim, msal_http):
    result = cca(sim, msal_http, str(uuid.uuid4()), "whatever").acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]


def test_unknown_client_raw(api):
    client_id = str(uuid.uuid4())
    response = api.token_request(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x", "scope": GRAPH_DEFAULT}
    )
    body = assert_identity_error(response, 400, "unauthorized_client", 700016)
    assert client_id in body["error_description"]


@pytest.mark.parametrize("tenant", [OTHER_TENANT_ID, "fabrikam.com", "common"])
def test_unknown_tenant(api, tenant):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "scope": GRAPH_DEFAULT,
        },
        tenant=tenant,
    )
    assert_identity_error(response, 400, "invalid_request", 90002)


def test_token_by_domain_tenant(api):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "scope": GRAPH_DEFAULT,
        },
        tenant="contoso.com",
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("scope", [f"{GRAPH}/User.Read.All", "User.Read.All", f"{GRAPH}/.default {GRAPH}/User.Read"])
def test_client_credentials_scope_without_default(api, scope):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "scope": scope,
        }
    )
    assert_identity_error(response, 400, "invalid_scope", 1002012)


def test_msal_bad_scope(sim, msal_http):
    result = cca(sim, msal_http, AUTOMATION, AUTOMATION_SECRET).acquire_token_for_client(
        scopes=[f"{GRAPH}/User.Read.All"]
    )
    assert result["error"] == "invalid_scope" and result["error_codes"] == [1002012]


@pytest.mark.parametrize("scope", ["https://management.azure.com/.default", "https://vault.azure.net/.default"])
def test_unknown_resource(api, scope):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "scope": scope,
        }
    )
    assert_identity_error(response, 400, "invalid_resource", 500011)


@pytest.mark.parametrize(
    "scope",
    [
        "https://graph.microsoft.us/.default",
        "00000003-0000-0000-c000-000000000000/.default",
        "https://graph.microsoft.com//.default",
    ],
)
def test_other_graph_resource_identifiers(api, scope):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "scope": scope,
        }
    )
    assert response.status_code == 200, response.text


def test_missing_and_unsupported_grant(api):
    assert_identity_error(api.token_request({"client_id": AUTOMATION}), 400, "invalid_request", 900144)
    assert_identity_error(
        api.token_request({"grant_type": "authorization_code", "client_id": AUTOMATION}),
        400,
        "unsupported_grant_type",
        70003,
    )
    assert_identity_error(
        api.token_request(
            {"grant_type": "client_credentials", "client_id": AUTOMATION, "client_secret": AUTOMATION_SECRET}
        ),
        400,
        "invalid_request",
        900144,
    )


def test_client_credentials_without_credential(api):
    response = api.token_request({"grant_type": "client_credentials", "client_id": AUTOMATION, "scope": GRAPH_DEFAULT})
    assert_identity_error(response, 401, "invalid_client", 7000218)


def test_failed_sign_ins_are_logged(api):
    api.token_request(
        {"grant_type": "client_credentials", "client_id": AUTOMATION, "client_secret": "bad", "scope": GRAPH_DEFAULT}
    )
    entry = api.requests_log(kind="identity")[-1]
    assert entry["status"] == 401 and entry["error_code"] == "invalid_client" and entry["reason"] == "AADSTS7000215"
    assert entry["client_id"] == AUTOMATION


# ------------------------------------------------------------------ certificate assertions built by hand
def _cert_assertion(
    sim, suite_material, *, key=None, cert=None, exp_offset=600, aud=None, iss=CERT_APP, sub=CERT_APP, header=None
):
    cert = cert or suite_material["cert"]
    key = key or suite_material["cert_key"]
    now = int(time.time())
    claims = {
        "aud": aud or sim["token_endpoint"],
        "iss": iss,
        "sub": sub,
        "jti": str(uuid.uuid4()),
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + exp_offset,
    }
    headers = header if header is not None else {"x5t#S256": b64url(cert.fingerprint(hashes.SHA256()))}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def _post_assertion(api, assertion, client_id=CERT_APP):
    return api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": GRAPH_DEFAULT,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
    )


def test_hand_built_certificate_assertion_is_accepted(sim, api, suite_material):
    response = _post_assertion(api, _cert_assertion(sim, suite_material))
    assert response.status_code == 200, response.text
    sha1 = {"x5t": b64url(suite_material["cert"].fingerprint(hashes.SHA1()))}
    response = _post_assertion(api, _cert_assertion(sim, suite_material, header=sha1))
    assert response.status_code == 200, response.text


def test_expired_certificate_assertion(sim, api, suite_material):
    response = _post_assertion(api, _cert_assertion(sim, suite_material, exp_offset=-3600))
    assert_identity_error(response, 401, "invalid_client", 700024)


def test_foreign_signed_certificate_assertion(sim, api, suite_material):
    other_key = make_certificate("attacker")[0]
    response = _post_assertion(api, _cert_assertion(sim, suite_material, key=other_key))
    body = assert_identity_error(response, 401, "invalid_client", 700027)
    assert "signature" in body["error_description"]


def test_unregistered_certificate(sim, api, suite_material):
    other_key, other_cert = make_certificate("unregistered")[:2]
    response = _post_assertion(api, _cert_assertion(sim, suite_material, key=other_key, cert=other_cert))
    body = assert_identity_error(response, 401, "invalid_client", 700027)
    assert other_cert.fingerprint(hashes.SHA256()).hex().upper() in body["error_description"]


@pytest.mark.parametrize(
    "aud",
    [
        "https://login.microsoftonline.com/{tid}/oauth2/v2.0/token",
        "{base}/{other}/oauth2/v2.0/token",
        "api://AzureADTokenExchange",
    ],
)
def test_wrong_audience_certificate_assertion(sim, api, suite_material, aud):
    aud = aud.format(tid=TENANT_ID, base=sim["graph_url"], other=OTHER_TENANT_ID)
    response = _post_assertion(api, _cert_assertion(sim, suite_material, aud=aud))
    body = assert_identity_error(response, 401, "invalid_client", 700027)
    assert "audience" in body["error_description"]


def test_certificate_assertion_subject_mismatch(sim, api, suite_material):
    response = _post_assertion(api, _cert_assertion(sim, suite_material, sub=AUTOMATION))
    assert_identity_error(response, 401, "invalid_client", 700021)


def test_certificate_assertion_without_thumbprint(sim, api, suite_material):
    response = _post_assertion(api, _cert_assertion(sim, suite_material, header={}))
    assert_identity_error(response, 401, "invalid_client", 700027)


def test_certificate_of_another_app(sim, api, suite_material):
    """The certificate is registered on CERT_APP only: presenting it for AUTOMATION fails."""
    assertion = _cert_assertion(sim, suite_material, iss=AUTOMATION, sub=AUTOMATION)
    assert_identity_error(_post_assertion(api, assertion, client_id=AUTOMATION), 401, "invalid_client", 700027)


def test_wrong_assertion_type(sim, api, suite_material):
    response = api.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": CERT_APP,
            "scope": GRAPH_DEFAULT,
            "client_assertion_type": "urn:bogus",
            "client_assertion": _cert_assertion(sim, suite_material),
        }
    )
    assert_identity_error(response, 400, "invalid_request", 50027)


# ------------------------------------------------------------------ federated assertions: mismatches
def _federated(api, subject=GH_SUBJECT, audience="api://AzureADTokenExchange", issuer=GH_ISSUER, lifetime=600):
    response = api.admin(
        "POST",
        "federated-assertions",
        json={"issuer": issuer, "subject": subject, "audience": audience, "lifetime": lifetime},
    )
    assert response.status_code == 200
    return response.json()["assertion"]


def test_federated_subject_mismatch(api):
    response = _post_assertion(api, _federated(api, subject="repo:tokenops/entra:ref:refs/heads/evil"), FED_APP)
    assert_identity_error(response, 400, "invalid_request", 700213)


def test_federated_audience_mismatch(api):
    response = _post_assertion(api, _federated(api, audience="api://SomethingElse"), FED_APP)
    assert_identity_error(response, 400, "invalid_request", 700212)


def test_federated_unknown_issuer(api):
    response = _post_assertion(api, _federated(api, issuer="https://issuer.example.org"), FED_APP)
    assert_identity_error(response, 400, "invalid_request", 700211)


def test_federated_expired_assertion(api):
    response = _post_assertion(api, _federated(api, lifetime=-1000), FED_APP)
    assert_identity_error(response, 400, "invalid_client", 700024)


def test_federated_assertion_lifetime_follows_the_simulated_clock(api):
    # Minted and checked on the same (shifted) clock: accepted. The same assertion a day later: expired.
    api.set_clock(86400 * 3)
    assertion = _federated(api)
    assert _post_assertion(api, assertion, FED_APP).status_code == 200
    api.set_clock(86400 * 4)
    assert_identity_error(_post_assertion(api, assertion, FED_APP), 400, "invalid_client", 700024)


def test_federated_assertion_for_app_without_credential(api):
    response = _post_assertion(api, _federated(api), AUTOMATION)
    assert_identity_error(response, 400, "invalid_request", 700211)


def test_msal_federated_subject_mismatch(sim, api, msal_http):
    assertion = _federated(api, subject="repo:someone/else:ref:refs/heads/main")
    result = cca(sim, msal_http, FED_APP, {"client_assertion": lambda: assertion}).acquire_token_for_client(
        scopes=[GRAPH_DEFAULT]
    )
    assert result["error"] == "invalid_request" and result["error_codes"] == [700213]


def test_client_secret_basic(api, sim):
    """The discovery document advertises client_secret_basic: HTTP Basic client authentication must work."""
    assert (
        "client_secret_basic"
        in api.client.get(f"{sim['authority']}/v2.0/.well-known/openid-configuration").json()[
            "token_endpoint_auth_methods_supported"
        ]
    )
    response = api.token_request(
        {"grant_type": "client_credentials", "scope": GRAPH_DEFAULT}, auth=(AUTOMATION, AUTOMATION_SECRET)
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["appid"] == AUTOMATION
    response = api.token_request(
        {"grant_type": "client_credentials", "scope": GRAPH_DEFAULT}, auth=(AUTOMATION, "not-the-secret")
    )
    assert_identity_error(response, 401, "invalid_client", 7000215)


def test_identity_errors_carry_the_client_request_id(api):
    crid = str(uuid.uuid4())
    response = api.token_request(
        {"grant_type": "client_credentials", "client_id": AUTOMATION, "client_secret": "bad", "scope": GRAPH_DEFAULT},
        headers={"client-request-id": crid},
    )
    body = assert_identity_error(response, 401, "invalid_client", 7000215)
    assert body["correlation_id"] == crid and f"Correlation ID: {crid}" in body["error_description"]
    assert response.headers["client-request-id"] == crid


def test_refresh_token_is_bound_to_its_client(api):
    first = api.token_request(
        {
            "grant_type": "password",
            "client_id": CLI,
            "username": MEGAN_UPN,
            "password": MEGAN_PASSWORD,
            "scope": f"{GRAPH}/User.Read.All offline_access",
        }
    ).json()
    ok = api.token_request(
        {
            "grant_type": "refresh_token",
            "client_id": CLI,
            "refresh_token": first["refresh_token"],
            "scope": f"{GRAPH}/User.Read.All",
        }
    )
    assert ok.status_code == 200 and claims_of(ok.json()["access_token"])["oid"] == MEGAN
    stolen = api.token_request(
        {
            "grant_type": "refresh_token",
            "client_id": AUTOMATION,
            "client_secret": AUTOMATION_SECRET,
            "refresh_token": first["refresh_token"],
        }
    )
    assert_identity_error(stolen, 400, "invalid_grant", 9002313)
    bogus = api.token_request({"grant_type": "refresh_token", "client_id": CLI, "refresh_token": "nope"})
    assert_identity_error(bogus, 400, "invalid_grant", 9002313)


def test_password_grant_disabled_account(api):
    """A disabled account (seed account_enabled: false) can't sign in: AADSTS50057."""
    response = api.token_request(
        {
            "grant_type": "password",
            "client_id": CLI,
            "username": DANA_UPN,
            "password": DANA_PASSWORD,
            "scope": GRAPH_DEFAULT,
        }
    )
    assert_identity_error(response, 400, "invalid_grant", 50057)


def test_password_grant_confidential_client_needs_its_secret(api):
    form = {
        "grant_type": "password",
        "client_id": AUTOMATION,
        "username": MEGAN_UPN,
        "password": MEGAN_PASSWORD,
        "scope": GRAPH_DEFAULT,
    }
    assert_identity_error(api.token_request(form), 401, "invalid_client", 7000218)
    response = api.token_request({**form, "client_secret": AUTOMATION_SECRET})
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["idtyp"] == "user"


def test_forged_federated_assertion(api, sim):
    """An assertion that names GitHub's issuer but is signed by someone else's key is refused."""
    _federated(api)  # the simulated GitHub issuer exists
    other_key = make_certificate("not-github")[0]
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": GH_ISSUER,
            "sub": GH_SUBJECT,
            "aud": "api://AzureADTokenExchange",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        },
        other_key,
        algorithm="RS256",
    )
    assert_identity_error(_post_assertion(api, forged, FED_APP), 401, "invalid_client", 700027)
