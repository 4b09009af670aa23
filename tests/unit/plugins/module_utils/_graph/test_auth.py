# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import stat
import time

import httpx
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphAuthError, GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._graph import auth
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import (
    CLOUDS,
    TOKEN_REFRESH_MARGIN,
    Credential,
    MsalHttpClient,
    TokenCacheFile,
    TokenProvider,
    load_certificate,
    national_cloud,
    resolve_credential,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import graph_params

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10"
SECRET = "s3cr3t~value"
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJ4IjoxfQ."
SCOPE = "https://graph.microsoft.com/.default"
IDENTITY_ENV = {"IDENTITY_ENDPOINT": "http://localhost:42356/msi/token", "IDENTITY_HEADER": "h"}

MISSING_TAIL = (
    ". Give access_token; or tenant_id (AZURE_TENANT_ID or AZURE_TENANT) and client_id (AZURE_CLIENT_ID) with one of "
    "client_secret (AZURE_CLIENT_SECRET or AZURE_SECRET), client_certificate_path (AZURE_CLIENT_CERTIFICATE_PATH) or "
    "federated_token_file (AZURE_FEDERATED_TOKEN_FILE); or auth_method=managed_identity."
)


ALL_CREDENTIALS = {
    "tenant_id": TENANT,
    "client_id": CLIENT,
    "access_token": ACCESS_TOKEN,
    "client_certificate_path": "/etc/app.pem",
    "federated_token_file": "/var/run/token",
    "client_secret": SECRET,
}


# --------------------------------------------------------------------------------------------------- resolve_credential
@pytest.mark.parametrize(
    "drop, method",
    [
        ((), "access_token"),
        (("access_token",), "certificate"),
        (("access_token", "client_certificate_path"), "federated"),
        (("access_token", "client_certificate_path", "federated_token_file"), "client_secret"),
    ],
)
@pytest.mark.parametrize("environ", [{}, IDENTITY_ENV])
def test_auto_precedence(drop, method, environ):
    given = {k: v for k, v in ALL_CREDENTIALS.items() if k not in drop}
    credential = resolve_credential(graph_params(**given), environ=environ)
    assert credential.method == method
    assert credential.tenant_id == TENANT and credential.client_id == CLIENT
    assert credential.access_token == (ACCESS_TOKEN if method == "access_token" else None)
    assert credential.certificate_path == ("/etc/app.pem" if method == "certificate" else None)
    assert credential.federated_token_file == ("/var/run/token" if method == "federated" else None)
    assert credential.secret == (SECRET if method == "client_secret" else None)


def test_auto_managed_identity_from_environment():
    credential = resolve_credential(graph_params(), environ=dict(IDENTITY_ENV))
    assert credential == Credential(
        method="managed_identity",
        tenant_id=None,
        client_id=None,
        authority_host="https://login.microsoftonline.com",
        graph_endpoint="https://graph.microsoft.com",
        scope=SCOPE,
        managed_identity_origins=("http://localhost:42356", "http://169.254.169.254", "http://localhost:40342"),
    )
    assert credential.describe() == "managed identity as the system-assigned identity"
    user_assigned = resolve_credential(graph_params(client_id=CLIENT), environ=dict(IDENTITY_ENV))
    assert user_assigned.method == "managed_identity" and user_assigned.client_id == CLIENT
    assert user_assigned.describe() == f"managed identity as client {CLIENT}"


@pytest.mark.parametrize(
    "environ",
    [
        {"IDENTITY_ENDPOINT": "http://localhost/msi"},
        {"IDENTITY_HEADER": "h"},
        {"IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "h"},
        {"MSI_ENDPOINT": "http://localhost/msi"},
        {},
    ],
)
def test_auto_without_managed_identity_environment(environ):
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(), environ=environ)
    assert (
        info.value.message
        == "Cannot sign in to Microsoft Graph: missing tenant_id, client_id, a credential" + MISSING_TAIL
    )


def test_auto_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    assert resolve_credential(graph_params()).method == "managed_identity"
    monkeypatch.delenv("IDENTITY_HEADER")
    with pytest.raises(GraphAuthError):
        resolve_credential(graph_params())


def test_a_secret_in_the_environment_beats_managed_identity():
    credential = resolve_credential(
        graph_params(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET), environ=dict(IDENTITY_ENV)
    )
    assert credential.method == "client_secret"


@pytest.mark.parametrize(
    "given, missing",
    [
        ({}, "tenant_id, client_id, a credential"),
        ({"tenant_id": TENANT}, "client_id, a credential"),
        ({"client_id": CLIENT}, "tenant_id, a credential"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, "a credential"),
        ({"client_secret": SECRET}, "tenant_id, client_id"),
        ({"client_secret": SECRET, "tenant_id": TENANT}, "client_id"),
        ({"client_certificate_path": "/etc/app.pem", "client_id": CLIENT}, "tenant_id"),
        ({"federated_token_file": "/var/run/token"}, "tenant_id, client_id"),
        ({"client_secret": ""}, "tenant_id, client_id, a credential"),
    ],
)
def test_auto_missing_pieces(given, missing):
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(**given), environ={})
    assert info.value.message == f"Cannot sign in to Microsoft Graph: missing {missing}" + MISSING_TAIL
    assert SECRET not in info.value.message


def test_a_user_and_password_of_awx_azure_credential_are_named_as_unused():
    """AWX's Azure Resource Manager credential with a username and password (and no client) sets AZURE_AD_USER and
    AZURE_PASSWORD only: the failure says they are not used, and never shows the password."""
    environ = {"AZURE_SUBSCRIPTION_ID": "sub", "AZURE_AD_USER": "amy@contoso.com", "AZURE_PASSWORD": "hunter2-pass"}
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(), environ=environ)
    assert info.value.message == (
        "Cannot sign in to Microsoft Graph: missing tenant_id, client_id, a credential"
        + MISSING_TAIL
        + " AZURE_AD_USER and AZURE_PASSWORD (a user's name and password, as AWX's Azure Resource Manager credential "
        "sets them) are not used: give that credential the app's client ID, client secret and tenant ID instead."
    )
    assert "hunter2-pass" not in info.value.message


@pytest.mark.parametrize(
    "method, given, missing",
    [
        ("access_token", {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET}, "access_token"),
        ("client_secret", {"tenant_id": TENANT, "client_id": CLIENT, "access_token": ACCESS_TOKEN}, "client_secret"),
        ("client_secret", {"client_secret": SECRET}, "tenant_id, client_id"),
        ("certificate", {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET}, "client_certificate_path"),
        ("certificate", {}, "tenant_id, client_id, client_certificate_path"),
        ("federated", {"tenant_id": TENANT, "client_secret": SECRET}, "client_id, federated_token_file"),
    ],
)
def test_explicit_method_missing_pieces(method, given, missing):
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(auth_method=method, **given), environ=dict(IDENTITY_ENV))
    assert info.value.message == f"Cannot sign in to Microsoft Graph: missing {missing}" + MISSING_TAIL
    assert SECRET not in info.value.message and ACCESS_TOKEN not in info.value.message


@pytest.mark.parametrize("method", ["access_token", "certificate", "federated", "client_secret", "managed_identity"])
def test_explicit_method_wins_over_auto_order(method):
    credential = resolve_credential(graph_params(auth_method=method, **ALL_CREDENTIALS), environ={})
    assert credential.method == method


def test_explicit_managed_identity_needs_no_environment():
    credential = resolve_credential(graph_params(auth_method="managed_identity"), environ={})
    assert credential.method == "managed_identity"
    assert credential.secret is None and credential.access_token is None


def test_explicit_certificate_credential():
    credential = resolve_credential(
        graph_params(
            auth_method="certificate",
            tenant_id=TENANT,
            client_id=CLIENT,
            client_certificate_path="/etc/app.pem",
            client_certificate_password="pw",
            client_secret=SECRET,
        ),
        environ={},
    )
    assert credential == Credential(
        method="certificate",
        tenant_id=TENANT,
        client_id=CLIENT,
        authority_host="https://login.microsoftonline.com",
        graph_endpoint="https://graph.microsoft.com",
        scope=SCOPE,
        certificate_path="/etc/app.pem",
        certificate_password="pw",
    )
    assert credential.describe() == f"certificate as client {CLIENT} in tenant {TENANT}"


def test_describe_never_shows_a_secret():
    for method in ("access_token", "certificate", "federated", "client_secret"):
        credential = resolve_credential(
            graph_params(auth_method=method, client_certificate_password="pw", **ALL_CREDENTIALS), environ={}
        )
        text = credential.describe()
        assert SECRET not in text and ACCESS_TOKEN not in text and "pw" not in text
    assert resolve_credential(graph_params(access_token=ACCESS_TOKEN), environ={}).describe() == "a given access token"
    assert (
        resolve_credential(
            graph_params(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET), environ={}
        ).describe()
        == f"client secret as client {CLIENT} in tenant {TENANT}"
    )
    assert (
        resolve_credential(
            graph_params(tenant_id=TENANT, client_id=CLIENT, federated_token_file="/t"), environ={}
        ).describe()
        == f"federated as client {CLIENT} in tenant {TENANT}"
    )


@pytest.mark.parametrize(
    "cloud, authority, graph",
    [
        ("public", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgov_dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_clouds(cloud, authority, graph):
    assert CLOUDS[cloud] == (authority, graph)
    credential = resolve_credential(graph_params(cloud=cloud, access_token=ACCESS_TOKEN), environ={})
    assert (credential.authority_host, credential.graph_endpoint, credential.scope) == (
        authority,
        graph,
        graph + "/.default",
    )
    overridden = resolve_credential(
        graph_params(
            cloud=cloud,
            access_token=ACCESS_TOKEN,
            graph_endpoint="https://127.0.0.1:8443/",
            authority_host="https://127.0.0.1:8444/",
        ),
        environ={},
    )
    assert overridden.graph_endpoint == "https://127.0.0.1:8443"
    assert overridden.authority_host == "https://127.0.0.1:8444"
    assert overridden.scope == graph + "/.default"  # the cloud's Graph resource, not the override


def test_cloud_none_means_public():
    credential = resolve_credential(graph_params(cloud=None, access_token=ACCESS_TOKEN), environ={})
    assert credential.graph_endpoint == "https://graph.microsoft.com"
    assert credential.scope == SCOPE


@pytest.mark.parametrize(
    "given, expected",
    [
        ("login.microsoftonline.us", "https://login.microsoftonline.us"),
        ("login.microsoftonline.us/", "https://login.microsoftonline.us"),
        ("127.0.0.1:8444", "https://127.0.0.1:8444"),
        ("https://login.example.test", "https://login.example.test"),
        ("HTTPS://Login.Example.TEST:443/", "https://login.example.test"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_authority_host_without_scheme_gets_https(given, expected):
    credential = resolve_credential(graph_params(authority_host=given, access_token=ACCESS_TOKEN), environ={})
    assert credential.authority_host == expected
    assert credential.scope == SCOPE


@pytest.mark.parametrize("given", ["graph.microsoft.com", "graph.microsoft.com/", "https://graph.microsoft.com:443"])
def test_graph_endpoint_without_scheme_gets_https(given):
    credential = resolve_credential(graph_params(graph_endpoint=given, access_token=ACCESS_TOKEN), environ={})
    assert credential.graph_endpoint == "https://graph.microsoft.com"


@pytest.mark.parametrize("option", ["graph_endpoint", "authority_host"])
@pytest.mark.parametrize(
    "given, problem",
    [
        ("http://127.0.0.1:8080", "must use https://"),
        ("HTTP://graph.microsoft.com", "must use https://"),
        ("ftp://graph.microsoft.com", "must use https://"),
        ("https://graph.microsoft.com/beta", "without a path"),
        ("https://graph.microsoft.com/../evil", "without a path"),
        ("https://graph.microsoft.com?x=1", "without a path, query"),
        ("https://graph.microsoft.com#frag", "without a path, query or fragment"),
        ("https://graph.microsoft.com?", "without a path, query"),
        ("https://user:pw@graph.microsoft.com", "with no user name"),
        ("https://graph.microsoft.com@evil.example", "with no user name"),
        ("https://", "must name a host"),
        ("https://bad_host!", "must name a host"),
        ("https://graph.microsoft.com:http", "is not a valid URL"),
        ("https://graph.microsoft.com:99999", "is not a valid URL"),
        ("https://graph.microsoft.com\\@evil.example", "a backslash"),
        ("https://graph.microsoft.com%2f..%2fevil", "percent sign"),
        ("https://graph.microsoft.com\nHost: evil", "control character"),
        ("https://graph .microsoft.com", "whitespace"),
    ],
)
def test_endpoints_refused_before_any_request(option, given, problem):
    with pytest.raises(GraphError) as info:
        resolve_credential(graph_params(access_token=ACCESS_TOKEN, **{option: given}), environ={})
    assert info.value.message.startswith(f"{option} ")
    assert problem in info.value.message
    assert ACCESS_TOKEN not in info.value.message
    assert "pw@" not in info.value.message


def test_an_endpoint_password_is_never_shown():
    with pytest.raises(GraphError) as info:
        resolve_credential(
            graph_params(access_token=ACCESS_TOKEN, graph_endpoint="https://admin:s3cr3t@graph.example"), environ={}
        )
    assert "s3cr3t" not in info.value.message and "admin" not in info.value.message
    assert info.value.message.startswith("graph_endpoint 'https://***@graph.example' must name a host")


def test_validate_certs_false_does_not_allow_http():
    with pytest.raises(GraphError, match="must use https://.*validate_certs=false does not change that"):
        resolve_credential(
            graph_params(access_token=ACCESS_TOKEN, validate_certs=False, graph_endpoint="http://graph.microsoft.com"),
            environ={},
        )


# ------------------------------------------------------------------------------------------- credentials' own text
# Characters no access token or client secret holds: a trailing newline (a file, a command's output), a header
# injection, whitespace of every kind, NUL and DEL, a zero-width space, a byte order mark, a bidirectional override.
NOT_IN_A_CREDENTIAL = [
    "\n",
    "\r\n",
    "\r\nX-Injected: 1",
    " ",
    "\t",
    "\x00",
    "\x7f",
    "\x85",
    "\u00a0",
    "\u2003",
    "\u2028",
    "\u200b",
    "\ufeff",
    "\u202e",
]
REFUSED_TAIL = (
    " (a trailing newline from a file or a command's output?); its value is not shown. Give it without them. "
    "Nothing was sent."
)


def _spoiled(value, bad, where):
    return {"end": value + bad, "start": bad + value, "middle": value[:5] + bad + value[5:]}[where]


@pytest.mark.parametrize("where", ["end", "start", "middle"])
@pytest.mark.parametrize("bad", NOT_IN_A_CREDENTIAL)
@pytest.mark.parametrize(
    "option, value, given",
    [
        ("access_token", ACCESS_TOKEN, {}),
        ("access_token", ACCESS_TOKEN, {"auth_method": "access_token", "client_secret": SECRET}),
        ("client_secret", SECRET, {"tenant_id": TENANT, "client_id": CLIENT}),
        ("client_secret", SECRET, {"tenant_id": TENANT, "client_id": CLIENT, "auth_method": "client_secret"}),
    ],
)
def test_a_credential_with_whitespace_or_control_characters_is_refused_by_name(option, value, given, bad, where):
    """Refused before any request (resolve_credential sends nothing): sent on, httpx's error quoted the whole
    Authorization header, the token with it, in the task's result."""
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(**{option: _spoiled(value, bad, where)}, **given), environ={})
    assert info.value.message == f"{option} holds whitespace or control characters" + REFUSED_TAIL
    assert value[:5] not in info.value.message and value[5:] not in info.value.message


@pytest.mark.parametrize("bad", [b for b in NOT_IN_A_CREDENTIAL if not b.isspace() or b in "\n\r\x85\u2028"])
def test_a_certificate_password_with_control_characters_is_refused_by_name(bad):
    params = graph_params(
        tenant_id=TENANT, client_id=CLIENT, client_certificate_path="/etc/app.pem", client_certificate_password="pw"
    )
    params["client_certificate_password"] = "pass phrase" + bad
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(params, environ={})
    assert info.value.message == "client_certificate_password holds control characters" + REFUSED_TAIL
    assert "phrase" not in info.value.message


def test_a_certificate_password_may_hold_spaces():
    """A passphrase, chosen by a person: spaces (even around it) are its own."""
    credential = resolve_credential(
        graph_params(
            tenant_id=TENANT,
            client_id=CLIENT,
            client_certificate_path="/etc/app.pem",
            client_certificate_password=" correct horse\u00a0battery staple ",
        ),
        environ={},
    )
    assert credential.certificate_password == " correct horse\u00a0battery staple "


@pytest.mark.parametrize(
    "method, given",
    [
        ("access_token", {"client_secret": SECRET + "\n", "client_certificate_password": "pw\n"}),
        ("client_secret", {"access_token": ACCESS_TOKEN + "\n", "client_certificate_password": "pw\n"}),
        ("certificate", {"access_token": ACCESS_TOKEN + "\n", "client_secret": SECRET + "\n"}),
        ("federated", {"access_token": ACCESS_TOKEN + "\n", "client_secret": SECRET + "\n"}),
        ("managed_identity", {"access_token": ACCESS_TOKEN + "\n", "client_secret": SECRET + "\n"}),
    ],
)
def test_only_the_credential_in_use_is_checked(method, given):
    params = {**ALL_CREDENTIALS, "client_certificate_password": "pw", **given}
    assert resolve_credential(graph_params(auth_method=method, **params), environ={}).method == method


def test_a_credential_of_printable_text_is_accepted():
    printable = "".join(chr(c) for c in range(0x21, 0x7F)) + "é~ß"
    assert resolve_credential(graph_params(access_token=printable), environ={}).access_token == printable
    assert _secret_credential(printable).secret == printable


@pytest.mark.parametrize(
    "tenant", [TENANT, TENANT.upper(), "contoso.onmicrosoft.com", "Contoso.COM", "sub.xn--bcher-kva.example"]
)
def test_tenant_id_guid_or_domain(tenant):
    credential = resolve_credential(graph_params(tenant_id=tenant, client_id=CLIENT, client_secret=SECRET), environ={})
    assert credential.tenant_id == tenant


@pytest.mark.parametrize(
    "tenant",
    [
        "../common",
        "contoso.com/v2.0",
        "contoso.com?x=1",
        "contoso",
        "common",
        "72f988bf-86f1-41af-91ab",
        "contoso.com\n",
        "con toso.com",
        "-bad.example",
        "contoso.123",
        "a" * 300 + ".com",
        "contoso.com%2f",
    ],
)
@pytest.mark.parametrize(
    "method, credential",
    [
        ("client_secret", {"client_secret": SECRET}),
        ("certificate", {"client_certificate_path": "/etc/app.pem"}),
        ("federated", {"federated_token_file": "/var/run/token"}),
    ],
)
def test_tenant_id_refused_before_any_request(tenant, method, credential):
    with pytest.raises(GraphAuthError) as info:
        resolve_credential(graph_params(tenant_id=tenant, client_id=CLIENT, **credential), environ={})
    assert info.value.message.startswith("tenant_id ")
    assert "is neither a tenant id (a GUID" in info.value.message
    assert len(info.value.message) < 400


def test_tenant_id_not_checked_where_it_is_not_used():
    assert (
        resolve_credential(graph_params(tenant_id="not a tenant", access_token=ACCESS_TOKEN), environ={}).method
        == "access_token"
    )
    assert (
        resolve_credential(graph_params(tenant_id="not a tenant", auth_method="managed_identity"), environ={}).method
        == "managed_identity"
    )


@pytest.mark.parametrize(
    "environ, origins",
    [
        ({}, ("http://169.254.169.254", "http://localhost:40342")),
        (
            {"IDENTITY_ENDPOINT": "https://10.0.0.5:8081/msi/token"},
            ("https://10.0.0.5:8081", "http://169.254.169.254", "http://localhost:40342"),
        ),
        (
            {"IDENTITY_ENDPOINT": "http://127.0.0.1:41056/msi/token"},
            ("http://127.0.0.1:41056", "http://169.254.169.254", "http://localhost:40342"),
        ),
        (
            {"MSI_ENDPOINT": "http://[::1]:50342/oauth2/token"},
            ("http://[::1]:50342", "http://169.254.169.254", "http://localhost:40342"),
        ),
        # Plain HTTP to another machine is never an endpoint the identity header goes to.
        ({"IDENTITY_ENDPOINT": "http://10.0.0.5/msi/token"}, ("http://169.254.169.254", "http://localhost:40342")),
        (
            {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://10.0.0.9"},
            ("http://169.254.169.254", "http://localhost:40342"),
        ),
        ({"IDENTITY_ENDPOINT": "not a url"}, ("http://169.254.169.254", "http://localhost:40342")),
    ],
)
def test_managed_identity_origins(environ, origins):
    credential = resolve_credential(graph_params(auth_method="managed_identity"), environ=environ)
    assert credential.managed_identity_origins == origins
    assert (
        resolve_credential(
            graph_params(client_id=CLIENT, client_secret=SECRET, tenant_id=TENANT), environ=environ
        ).managed_identity_origins
        == ()
    )


# ---------------------------------------------------------------------------------------------------- certificates
def _key_and_cert(common_name="tokenops unit test"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def key_and_cert():
    return _key_and_cert()


def _write_pem(path, key, cert, password=None, key_format=serialization.PrivateFormat.PKCS8):
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    parts = []
    if key is not None:
        parts.append(key.private_bytes(serialization.Encoding.PEM, key_format, encryption))
    if cert is not None:
        parts.append(cert.public_bytes(serialization.Encoding.PEM))
    path.write_bytes(b"".join(parts))
    return str(path)


def _check_loaded(loaded, key, cert):
    assert sorted(loaded) == ["private_key", "public_certificate", "thumbprint"]
    der = cert.public_bytes(serialization.Encoding.DER)
    assert loaded["thumbprint"] == hashlib.sha1(der).hexdigest()
    assert len(loaded["thumbprint"]) == 40
    assert loaded["public_certificate"] == cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    assert loaded["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    again = serialization.load_pem_private_key(loaded["private_key"].encode(), password=None)
    assert again.private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    "key_format", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_load_certificate_unencrypted(tmp_path, key_and_cert, key_format):
    key, cert = key_and_cert
    path = _write_pem(tmp_path / "app.pem", key, cert, key_format=key_format)
    _check_loaded(load_certificate(path, None), key, cert)


def test_load_certificate_cert_before_key(tmp_path, key_and_cert):
    key, cert = key_and_cert
    path = tmp_path / "app.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _check_loaded(load_certificate(str(path), None), key, cert)


def test_load_certificate_encrypted(tmp_path, key_and_cert):
    key, cert = key_and_cert
    path = _write_pem(tmp_path / "app.pem", key, cert, password="correct horse")
    assert b"ENCRYPTED" in (tmp_path / "app.pem").read_bytes()
    _check_loaded(load_certificate(path, "correct horse"), key, cert)


@pytest.mark.parametrize("password", ["wrong password", None, ""])
def test_load_certificate_wrong_or_missing_password(tmp_path, key_and_cert, password):
    key, cert = key_and_cert
    path = _write_pem(tmp_path / "app.pem", key, cert, password="correct horse")
    with pytest.raises(GraphAuthError) as info:
        load_certificate(path, password)
    assert (
        info.value.message == f"Cannot load the private key from {path}: wrong or missing client_certificate_password."
    )
    assert "correct horse" not in info.value.message
    if password:
        assert password not in info.value.message


def test_load_certificate_password_for_an_unencrypted_key(tmp_path, key_and_cert):
    """Either the needless password is ignored, or the error says what is wrong (not that there is no key)."""
    key, cert = key_and_cert
    path = _write_pem(tmp_path / "app.pem", key, cert)
    try:
        loaded = load_certificate(path, "needless")
    except GraphAuthError as exc:
        assert "no PEM private key found" not in exc.message
        assert "client_certificate_password" in exc.message
        assert "needless" not in exc.message
    else:
        _check_loaded(loaded, key, cert)


def test_load_certificate_without_certificate(tmp_path, key_and_cert):
    key, _cert = key_and_cert
    path = _write_pem(tmp_path / "key-only.pem", key, None)
    with pytest.raises(GraphAuthError) as info:
        load_certificate(path, None)
    assert info.value.message == (
        f"No PEM certificate found in {path}: it must hold the private key and the certificate."
    )


def test_load_certificate_without_key(tmp_path, key_and_cert):
    _key, cert = key_and_cert
    path = _write_pem(tmp_path / "cert-only.pem", None, cert)
    with pytest.raises(GraphAuthError) as info:
        load_certificate(path, None)
    assert info.value.message == f"Cannot load the private key from {path}: no PEM private key found."


def test_load_certificate_missing_file(tmp_path):
    path = str(tmp_path / "nope.pem")
    with pytest.raises(GraphAuthError) as info:
        load_certificate(path, None)
    assert info.value.message == f"Cannot read client_certificate_path {path}: No such file or directory"


def test_load_certificate_not_pem(tmp_path):
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"\x00\x01 not a pem file")
    with pytest.raises(GraphAuthError) as info:
        load_certificate(str(path), None)
    assert info.value.message == (
        f"client_certificate_path {path} is neither a PEM file (the private key and the certificate) nor a PKCS#12 "
        "file (.pfx, .p12; binary, or as base64 text)."
    )


# PKCS#12 (.pfx, .p12): binary, or as base64 text (what AWX's file injector writes from a credential's field, with a
# newline added at the end of a multiline field; how Azure Key Vault hands out a certificate's secret).
def _pkcs12(key, cert, password=None, extra=None, encryption=None):
    if encryption is None:
        encryption = (
            serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        )
    return pkcs12.serialize_key_and_certificates(b"tokenops", key, cert, extra, encryption)


def _as(form, der):
    if form == "binary":
        return der
    text = base64.b64encode(der)
    if form == "base64":
        return text
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\n"  # wrapped, with a newline at the end


@pytest.mark.parametrize("form", ["binary", "base64", "base64 wrapped"])
@pytest.mark.parametrize("password", [None, "correct horse"])
def test_load_certificate_pkcs12(tmp_path, key_and_cert, form, password):
    key, cert = key_and_cert
    path = tmp_path / "app.pfx"
    path.write_bytes(_as(form, _pkcs12(key, cert, password)))
    _check_loaded(load_certificate(str(path), password), key, cert)


def test_load_certificate_format_from_the_content_not_the_name(tmp_path, key_and_cert):
    key, cert = key_and_cert
    pkcs12_named_pem = tmp_path / "app.pem"
    pkcs12_named_pem.write_bytes(_pkcs12(key, cert, "pw"))
    _check_loaded(load_certificate(str(pkcs12_named_pem), "pw"), key, cert)
    pem_named_pfx = _write_pem(tmp_path / "app.pfx", key, cert)
    _check_loaded(load_certificate(pem_named_pfx, None), key, cert)


def test_load_certificate_pkcs12_with_a_chain(tmp_path, key_and_cert):
    """The certificate of the key is used, not one of the chain."""
    key, cert = key_and_cert
    _other_key, other_cert = _key_and_cert("tokenops unit test CA")
    path = tmp_path / "app.p12"
    path.write_bytes(_pkcs12(key, cert, "pw", extra=[other_cert]))
    _check_loaded(load_certificate(str(path), "pw"), key, cert)


def test_load_certificate_pkcs12_of_windows_legacy_encryption(tmp_path, key_and_cert):
    """Triple DES and a SHA-1 MAC, as Windows exports a .pfx unless told AES."""
    key, cert = key_and_cert
    legacy = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(b"correct horse")
    )
    path = tmp_path / "app.pfx"
    path.write_bytes(_pkcs12(key, cert, encryption=legacy))
    _check_loaded(load_certificate(str(path), "correct horse"), key, cert)


@pytest.mark.parametrize("form", ["binary", "base64 wrapped"])
@pytest.mark.parametrize("password", ["wrong password", None, ""])
def test_load_certificate_pkcs12_wrong_or_missing_password(tmp_path, key_and_cert, form, password):
    key, cert = key_and_cert
    path = tmp_path / "app.pfx"
    path.write_bytes(_as(form, _pkcs12(key, cert, "correct horse")))
    with pytest.raises(GraphAuthError) as info:
        load_certificate(str(path), password)
    assert info.value.message == (
        f"Cannot open the PKCS#12 file {path}: wrong or missing client_certificate_password (or a damaged file)."
    )
    assert "correct horse" not in info.value.message
    if password:
        assert password not in info.value.message


def test_load_certificate_pkcs12_password_for_a_file_without_one(tmp_path, key_and_cert):
    """A needless password (say, from AZURE_CLIENT_CERTIFICATE_PASSWORD) is ignored, as for a PEM."""
    key, cert = key_and_cert
    path = tmp_path / "app.pfx"
    path.write_bytes(_pkcs12(key, cert))
    _check_loaded(load_certificate(str(path), "needless"), key, cert)


def test_load_certificate_pkcs12_without_a_key(tmp_path, key_and_cert):
    """What openssl pkcs12 -export -nokeys writes: certificates only."""
    _key, cert = key_and_cert
    path = tmp_path / "cert-only.pfx"
    path.write_bytes(_pkcs12(None, None, "pw", extra=[cert]))
    with pytest.raises(GraphAuthError) as info:
        load_certificate(str(path), "pw")
    assert info.value.message == (
        f"The PKCS#12 file {path} holds no private key: it must hold the private key and the certificate."
    )


def test_load_certificate_pkcs12_without_a_certificate(tmp_path, key_and_cert):
    key, _cert = key_and_cert
    path = tmp_path / "key-only.pfx"
    path.write_bytes(_pkcs12(key, None, "pw"))
    with pytest.raises(GraphAuthError) as info:
        load_certificate(str(path), "pw")
    assert info.value.message == (
        f"The PKCS#12 file {path} holds no certificate of its private key: it must hold the private key and the "
        "certificate."
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x01 not a certificate", id="binary garbage"),
        pytest.param(base64.b64encode(b"\x30\x03\x02\x01\x04 not a pfx"), id="base64, not of a PKCS#12"),
        pytest.param(b"QUJD\nREVG=\n", id="base64 alphabet, no whole quads"),
        pytest.param(b"ZmFrZS1zZWNyZXQtaW4tYS1maWxl\n", id="a secret's base64"),
        pytest.param("der certificate", id="a DER certificate"),
    ],
)
def test_load_certificate_neither_pem_nor_pkcs12(tmp_path, key_and_cert, content):
    if content == "der certificate":
        content = key_and_cert[1].public_bytes(serialization.Encoding.DER)
    path = tmp_path / "app.pfx"
    path.write_bytes(content)
    with pytest.raises(GraphAuthError) as info:
        load_certificate(str(path), "pw")
    assert info.value.message == (
        f"client_certificate_path {path} is neither a PEM file (the private key and the certificate) nor a PKCS#12 "
        "file (.pfx, .p12; binary, or as base64 text)."
    )
    assert "ZmFrZS1zZWNyZXQtaW4tYS1maWxl" not in info.value.message


@pytest.mark.parametrize(
    "header, pkcs12_header",
    [
        (b"\x30\x82\x09\x92\x02\x01\x03", True),  # DER, a two-byte length (what every tool writes)
        (b"\x30\x81\x90\x02\x01\x03", True),
        (b"\x30\x7f\x02\x01\x03", True),
        (b"\x30\x80\x02\x01\x03", True),  # BER, indefinite length
        (b"\x30\x82\x09\x92\x02\x01\x01", False),  # version 1
        (b"\x30\x82\x09\x92\x30\x82\x01", False),  # a certificate: a SEQUENCE first
        (b"\x31\x03\x02\x01\x03", False),
        (b"\x30\x03\x02\x01", False),
    ],
)
def test_is_pkcs12(header, pkcs12_header):
    assert auth._is_pkcs12(header + b"\x00" * 8) is pkcs12_header  # pylint: disable=protected-access


# ---------------------------------------------------------------------------------------------------- token cache
def _add_token(cache, access_token="at-1", expires_in=3600, client_id=CLIENT, tenant_id=TENANT, scope=SCOPE, now=None):
    cache.add(
        {
            "client_id": client_id,
            "scope": [scope],
            "token_endpoint": f"https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token",
            "environment": "login.microsoftonline.com",
            "grant_type": "client_credentials",
            "response": {"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"},
        },
        now=now,
    )


def test_token_cache_file_save_creates_a_private_file(tmp_path):
    path = tmp_path / "cache" / "tokens.json"
    cache = TokenCacheFile(str(path))
    _add_token(cache.cache)
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text(encoding="utf-8"))["AccessToken"]
    assert sorted(os.listdir(path.parent)) == ["tokens.json"]  # no temporary file left behind


def test_token_cache_file_save_keeps_0600_when_replacing(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o600)
    cache = TokenCacheFile(str(path))
    _add_token(cache.cache)
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["tokens.json"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o620, 0o602, 0o610])
def test_token_cache_file_open_to_others_is_refused_and_left_alone(tmp_path, mode):
    path = tmp_path / "tokens.json"
    cache = TokenCacheFile(str(path))
    _add_token(cache.cache)
    cache.save()
    content = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(GraphAuthError) as info:
        TokenCacheFile(str(path))
    assert info.value.message == (
        f"token_cache_path {path} has mode {mode:04o}: other users can read or change it, and it holds access tokens "
        f"to the tenant. Delete it (its tokens may have been read; they expire within about 90 minutes) or make it "
        f"private (chmod 600 {path}), then run again."
    )
    assert "at-1" not in info.value.message
    assert stat.S_IMODE(path.stat().st_mode) == mode  # refused, not silently tightened
    assert path.read_bytes() == content


def test_token_cache_file_of_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "tokens.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o600)
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    # The file's own check: its directory's (which the fake user id fails first) is tested on its own below.
    monkeypatch.setattr(auth, "_check_private_directory", lambda directory, path: None)
    with pytest.raises(GraphAuthError) as info:
        TokenCacheFile(str(path))
    assert info.value.message.startswith(
        f"token_cache_path {path} belongs to user id {owner}, not to the user running the module (user id {owner + 1})"
    )


@pytest.mark.parametrize("mode", [0o770, 0o775, 0o730, 0o720, 0o707, 0o702, 0o777, 0o1777, 0o1770])
@pytest.mark.parametrize("cache_exists", [True, False])
def test_token_cache_in_a_directory_others_can_write_is_refused(tmp_path, mode, cache_exists):
    directory = tmp_path / "shared"
    directory.mkdir()
    path = directory / "tokens.json"
    if cache_exists:
        cache = TokenCacheFile(str(path))
        _add_token(cache.cache)
        cache.save()
    content = path.read_bytes() if cache_exists else None
    directory.chmod(mode)
    with pytest.raises(GraphAuthError) as info:
        TokenCacheFile(str(path))
    assert info.value.message == (
        f"token_cache_path {path} is in the directory {directory} of mode {mode:04o}: other users can "
        "write it, so they could replace the cache, or read the tokens written next. Keep the cache in a directory "
        "of your own that no one else can write (a missing one is created with mode 0700), such as "
        f"~/.cache/tokenops/tokens.json, or take the write permission away (chmod go-w {directory})."
    )
    assert stat.S_IMODE(directory.stat().st_mode) == mode  # refused, not silently tightened
    assert (path.read_bytes() if cache_exists else path.exists()) == (content if cache_exists else False)


def test_token_cache_in_a_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    owner = directory.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    with pytest.raises(GraphAuthError) as info:
        TokenCacheFile(str(directory / "tokens.json"))
    assert info.value.message == (
        f"token_cache_path {directory / 'tokens.json'} is in the directory {directory}, which belongs to user id "
        f"{owner}, not to the user running the module (user id {owner + 1}): its owner could replace the cache, or "
        "read the tokens written next. Keep the cache in a directory of your own that no one else can write (a "
        "missing one is created with mode 0700), such as ~/.cache/tokenops/tokens.json."
    )


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o711, 0o500])
def test_token_cache_in_a_directory_only_its_owner_can_write_is_used(tmp_path, mode):
    path = tmp_path / "tokens.json"
    cache = TokenCacheFile(str(path))
    _add_token(cache.cache)
    cache.save()
    tmp_path.chmod(mode)
    try:
        assert TokenCacheFile(str(path)).cached_token(CLIENT, TENANT, SCOPE)[0] == "at-1"
    finally:
        tmp_path.chmod(0o700)


def test_token_cache_directory_is_checked_again_before_writing(tmp_path, monkeypatch):
    """A directory made between reading and writing (by someone else, or loosened since): refused, nothing written."""
    directory = tmp_path / "late"
    path = directory / "tokens.json"
    cache = TokenCacheFile(str(path))  # no directory yet: nothing to check
    _add_token(cache.cache)
    directory.mkdir(mode=0o700)
    directory.chmod(0o777)
    with pytest.raises(GraphAuthError, match=f"^token_cache_path {path} is in the directory {directory} of mode 0777"):
        cache.save()
    assert os.listdir(directory) == []


def test_token_cache_file_directories_are_created_private_whatever_the_umask(tmp_path):
    path = tmp_path / "a" / "b" / "tokens.json"
    cache = TokenCacheFile(str(path))
    _add_token(cache.cache)
    previous = os.umask(0)
    try:
        cache.save()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_cache_file_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    cache = TokenCacheFile(str(blocker / "tokens.json"))
    _add_token(cache.cache)
    with pytest.raises(GraphAuthError, match="^Cannot write token_cache_path "):
        cache.save()


def test_token_cache_file_save_without_changes_writes_nothing(tmp_path):
    path = tmp_path / "tokens.json"
    TokenCacheFile(str(path)).save()
    assert not path.exists()


def test_token_cache_file_finds_a_valid_token(tmp_path):
    path = str(tmp_path / "tokens.json")
    cache = TokenCacheFile(path)
    now = time.time()
    _add_token(cache.cache, expires_in=3600, now=now)
    assert cache.cached_token(CLIENT, TENANT, SCOPE) == ("at-1", float(int(now) + 3600))
    cache.save()
    reloaded = TokenCacheFile(path)
    assert reloaded.cached_token(CLIENT, TENANT, SCOPE) == ("at-1", float(int(now) + 3600))


@pytest.mark.parametrize(
    "client_id, tenant_id, scope",
    [
        ("other-client", TENANT, SCOPE),
        (CLIENT, "other-tenant", SCOPE),
        (CLIENT, TENANT, "https://graph.microsoft.us/.default"),
    ],
)
def test_token_cache_file_matches_client_tenant_and_scope(tmp_path, client_id, tenant_id, scope):
    cache = TokenCacheFile(str(tmp_path / "tokens.json"))
    _add_token(cache.cache)
    assert cache.cached_token(client_id, tenant_id, scope) is None


@pytest.mark.parametrize(
    "seconds_left, found",
    [
        (3600, True),
        (TOKEN_REFRESH_MARGIN + 60, True),
        (TOKEN_REFRESH_MARGIN - 1, False),
        (60, False),
        (0, False),
        (-100, False),
    ],
)
def test_token_cache_file_ignores_tokens_about_to_expire(tmp_path, seconds_left, found):
    assert TOKEN_REFRESH_MARGIN == 300
    cache = TokenCacheFile(str(tmp_path / "tokens.json"))
    # msal truncates `now`; start from a whole second so expires_on is now + seconds_left exactly
    now = float(int(time.time()))
    _add_token(cache.cache, expires_in=seconds_left, now=now)
    result = cache.cached_token(CLIENT, TENANT, SCOPE)
    assert (result is not None) is found


def test_token_cache_file_drop(tmp_path):
    path = str(tmp_path / "tokens.json")
    cache = TokenCacheFile(path)
    _add_token(cache.cache, access_token="at-1")
    _add_token(cache.cache, access_token="at-other", client_id="other-client")
    cache.save()
    cache = TokenCacheFile(path)
    cache.drop(CLIENT, TENANT, SCOPE)
    assert cache.cached_token(CLIENT, TENANT, SCOPE) is None
    cache.save()
    reloaded = TokenCacheFile(path)
    assert reloaded.cached_token(CLIENT, TENANT, SCOPE) is None
    assert reloaded.cached_token("other-client", TENANT, SCOPE)[0] == "at-other"


@pytest.mark.parametrize("content", ["not json", "", "[1, 2"])
def test_token_cache_file_unreadable_starts_afresh(tmp_path, content):
    path = tmp_path / "tokens.json"
    path.write_text(content, encoding="utf-8")
    path.chmod(0o600)
    cache = TokenCacheFile(str(path))
    assert cache.cached_token(CLIENT, TENANT, SCOPE) is None
    _add_token(cache.cache)
    cache.save()
    assert TokenCacheFile(str(path)).cached_token(CLIENT, TENANT, SCOPE)[0] == "at-1"


# ---------------------------------------------------------------------------------------------------- msal over httpx
class Recorder:
    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def __call__(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.answer(method, url, kwargs) if callable(self.answer) else self.answer


def test_msal_http_client_post_decodes_bytes():
    send = Recorder("response")
    client = MsalHttpClient(send)
    assert (
        client.post(
            "https://login/t/oauth2/v2.0/token",
            params={"a": "1"},
            data={"client_assertion": b"eyJ.abc.def", "grant_type": "client_credentials", "n": 1},
            headers={"X": "y"},
            timeout=5,
        )
        == "response"
    )
    assert send.calls == [
        (
            "POST",
            "https://login/t/oauth2/v2.0/token",
            {
                "params": {"a": "1"},
                "data": {"client_assertion": "eyJ.abc.def", "grant_type": "client_credentials", "n": 1},
                "headers": {"X": "y"},
                "writes": 0,  # a sign-in takes no token of the write bucket
            },
        )
    ]


def test_msal_http_client_post_passes_other_data_unchanged():
    send = Recorder("r")
    MsalHttpClient(send).post("https://x", data="a=b")
    assert send.calls == [("POST", "https://x", {"params": None, "data": "a=b", "headers": None, "writes": 0})]


def test_msal_http_client_get():
    send = Recorder("r")
    client = MsalHttpClient(send)
    assert client.get("https://x/.well-known", params={"p": "1"}, headers={"H": "v"}, timeout=3) == "r"
    assert send.calls == [("GET", "https://x/.well-known", {"params": {"p": "1"}, "headers": {"H": "v"}, "writes": 0})]
    assert client.close() is None


class FakeIdentityPlatform:
    """Answers msal's discovery and token requests, counting token grants."""

    def __init__(self, authority="https://login.microsoftonline.com"):
        self.authority = authority
        self.grants = []

    def __call__(self, method, url, kwargs):
        base = f"{self.authority}/{TENANT}"
        if method == "GET" and "openid-configuration" in url:
            return httpx.Response(
                200,
                json={
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                },
            )
        if method == "POST" and url == f"{base}/oauth2/v2.0/token":
            self.grants.append(kwargs["data"])
            if kwargs["data"].get("client_secret") == "wrong":
                return httpx.Response(
                    401,
                    json={
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. "
                        "Trace ID: 1 Correlation ID: 2",
                    },
                )
            return httpx.Response(
                200, json={"access_token": f"at-{len(self.grants)}", "expires_in": 3599, "token_type": "Bearer"}
            )
        return httpx.Response(404, json={"error": "unexpected"})


def _secret_credential(secret=SECRET):
    return resolve_credential(graph_params(tenant_id=TENANT, client_id=CLIENT, client_secret=secret), environ={})


def test_token_provider_access_token_is_returned_as_given():
    send = Recorder()
    provider = TokenProvider(resolve_credential(graph_params(access_token=ACCESS_TOKEN), environ={}), send)
    assert provider.token() == ACCESS_TOKEN
    assert provider.token(force_refresh=True) == ACCESS_TOKEN
    assert send.calls == []


def test_token_provider_client_secret_caches_in_memory_and_refreshes_on_demand():
    platform = FakeIdentityPlatform()
    provider = TokenProvider(_secret_credential(), Recorder(platform))
    assert provider.token() == "at-1"
    assert provider.token() == "at-1"
    assert len(platform.grants) == 1
    grant = platform.grants[0]
    assert (grant["grant_type"], grant["client_id"], grant["client_secret"], grant["scope"]) == (
        "client_credentials",
        CLIENT,
        SECRET,
        SCOPE,
    )
    assert provider.token(force_refresh=True) == "at-2"
    assert len(platform.grants) == 2


def test_token_provider_uses_and_drops_the_cache_file(tmp_path):
    path = str(tmp_path / "tokens.json")
    platform = FakeIdentityPlatform()
    assert TokenProvider(_secret_credential(), Recorder(platform), path).token() == "at-1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a second task (a new provider) reuses the cached token without signing in
    second = TokenProvider(_secret_credential(), Recorder(platform), path)
    assert second.token() == "at-1"
    assert len(platform.grants) == 1
    # Graph refused it: a forced refresh drops it from the file and signs in again
    assert second.token(force_refresh=True) == "at-2"
    assert len(platform.grants) == 2
    assert TokenCacheFile(path).cached_token(CLIENT, TENANT, SCOPE)[0] == "at-2"


def test_token_provider_refuses_a_cache_open_to_others_before_any_request(tmp_path):
    path = tmp_path / "tokens.json"
    platform = FakeIdentityPlatform()
    assert TokenProvider(_secret_credential(), Recorder(platform), str(path)).token() == "at-1"
    path.chmod(0o644)
    send = Recorder(platform)
    with pytest.raises(GraphAuthError, match="has mode 0644"):
        TokenProvider(_secret_credential(), send, str(path)).token()
    assert send.calls == []


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_token_provider_refuses_a_cache_in_a_directory_others_can_write_before_any_request(tmp_path, mode):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    directory.chmod(mode)
    send = Recorder(FakeIdentityPlatform())
    with pytest.raises(GraphAuthError, match=f"is in the directory {directory} of mode {mode:04o}"):
        TokenProvider(_secret_credential(), send, str(directory / "tokens.json")).token()
    assert send.calls == []
    assert os.listdir(directory) == []


def test_token_provider_sign_in_failure():
    platform = FakeIdentityPlatform()
    provider = TokenProvider(_secret_credential("wrong"), Recorder(platform))
    with pytest.raises(GraphAuthError) as info:
        provider.token()
    assert info.value.message == (
        f"Sign-in with client secret as client {CLIENT} in tenant {TENANT} failed: "
        "invalid_client: AADSTS7000215: Invalid client secret provided."
    )
    assert "wrong" not in info.value.message


def test_token_provider_federated_reads_the_file_at_each_sign_in(tmp_path):
    token_file = tmp_path / "oidc-token"
    token_file.write_text("assertion-1\n", encoding="utf-8")
    platform = FakeIdentityPlatform()
    credential = resolve_credential(
        graph_params(tenant_id=TENANT, client_id=CLIENT, federated_token_file=str(token_file)), environ={}
    )
    provider = TokenProvider(credential, Recorder(platform))
    assert provider.token() == "at-1"
    token_file.write_text("assertion-2", encoding="utf-8")
    assert provider.token(force_refresh=True) == "at-2"
    assert [g["client_assertion"] for g in platform.grants] == ["assertion-1", "assertion-2"]
    assert all(
        g["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" for g in platform.grants
    )


def test_token_provider_federated_missing_file(tmp_path):
    path = str(tmp_path / "missing-token")
    credential = resolve_credential(
        graph_params(tenant_id=TENANT, client_id=CLIENT, federated_token_file=path), environ={}
    )
    with pytest.raises(GraphAuthError) as info:
        TokenProvider(credential, Recorder(FakeIdentityPlatform())).token()
    assert info.value.message == f"Cannot read federated_token_file {path}: No such file or directory"


def test_msal_is_importable():
    assert msal.SerializableTokenCache is not None


@pytest.mark.parametrize(
    "cloud, graph_endpoint, expected",
    [
        ("public", "https://graph.microsoft.com", None),
        (None, "https://127.0.0.1:8443", None),
        ("usgov", "https://graph.microsoft.us", "cloud=usgov"),
        ("china", "https://127.0.0.1:8443", "cloud=china"),
        ("public", "https://graph.microsoft.us", "graph_endpoint=https://graph.microsoft.us (the usgov cloud's Graph)"),
        (
            "public",
            "https://dod-graph.microsoft.us",
            "graph_endpoint=https://dod-graph.microsoft.us (the usgov_dod cloud's Graph)",
        ),
    ],
)
def test_national_cloud(cloud, graph_endpoint, expected):
    assert national_cloud(cloud, graph_endpoint) == expected
