# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Sign-in through msal: which credential the connection options name, and the tokens it gets.

Which credential is used (``auth_method: auto``), first match wins:
``access_token`` > ``client_certificate_path`` > ``federated_token_file`` > ``client_secret`` > a managed
identity when ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set. Explicit task arguments and
``module_defaults`` beat the environment variables (``_module/options.py``), because Ansible applies the
environment fallbacks only to options left unset.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import stat
import tempfile
import threading
import time
import typing as t
import unicodedata
from dataclasses import dataclass

from .._common.errors import GraphAuthError
from .._common.validation import is_domain_name, is_guid, shown
from .endpoints import endpoint, managed_identity_origins

if t.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from cryptography.x509 import Certificate

try:
    import msal
except ImportError:  # reported by GraphModule through missing_required_lib
    msal = None

# Cloud -> (authority host, Graph endpoint), as Microsoft's national cloud deployments page lists them.
CLOUDS: dict[str, tuple[str, str]] = {
    "public": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov_dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}
AUTH_METHODS = ("auto", "access_token", "certificate", "federated", "client_secret", "managed_identity")
TOKEN_REFRESH_MARGIN = 300  # seconds of validity a cached token must still have
_BASE64_RE = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class Credential:
    """The resolved way to sign in; ``describe()`` is safe to show (no secret)."""

    method: str
    tenant_id: str | None
    client_id: str | None
    authority_host: str
    graph_endpoint: str
    scope: str
    secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    federated_token_file: str | None = None
    access_token: str | None = None
    managed_identity_origins: tuple[str, ...] = ()  # where a managed identity may ask for its token

    def describe(self) -> str:
        who = f"client {self.client_id}" if self.client_id else "the system-assigned identity"
        if self.method == "access_token":
            return "a given access token"
        return f"{self.method.replace('_', ' ')} as {who}" + (f" in tenant {self.tenant_id}" if self.tenant_id else "")


def _missing_message(missing: list[str], environ: t.Mapping[str, str]) -> str:
    message = (
        "Cannot sign in to Microsoft Graph: missing " + ", ".join(missing) + ". Give access_token; or tenant_id "
        "(AZURE_TENANT_ID or AZURE_TENANT) and client_id (AZURE_CLIENT_ID) with one of client_secret "
        "(AZURE_CLIENT_SECRET or AZURE_SECRET), client_certificate_path (AZURE_CLIENT_CERTIFICATE_PATH) or "
        "federated_token_file (AZURE_FEDERATED_TOKEN_FILE); or auth_method=managed_identity."
    )
    if environ.get("AZURE_AD_USER"):
        message += (
            " AZURE_AD_USER and AZURE_PASSWORD (a user's name and password, as AWX's Azure Resource Manager "
            "credential sets them) are not used: give that credential the app's client ID, client secret and tenant "
            "ID instead."
        )
    return message


def resolve_credential(params: dict[str, t.Any], environ: t.Mapping[str, str] | None = None) -> Credential:
    """Pick the credential from module parameters (fallbacks already applied). Raises GraphAuthError listing
    what is missing. Pure apart from reading ``environ`` (default: the process environment) for managed
    identity detection."""
    environ = os.environ if environ is None else environ
    authority_host, graph_endpoint = CLOUDS[params.get("cloud") or "public"]
    scope = graph_endpoint + "/.default"  # the cloud's Graph resource, even when graph_endpoint is overridden
    authority_host = endpoint(params.get("authority_host") or authority_host, "authority_host")
    graph_endpoint = endpoint(params.get("graph_endpoint") or graph_endpoint, "graph_endpoint")
    method = params.get("auth_method") or "auto"
    if method == "auto":
        if params.get("access_token"):
            method = "access_token"
        elif params.get("client_certificate_path"):
            method = "certificate"
        elif params.get("federated_token_file"):
            method = "federated"
        elif params.get("client_secret"):
            method = "client_secret"
        elif environ.get("IDENTITY_ENDPOINT") and environ.get("IDENTITY_HEADER"):
            method = "managed_identity"
        else:
            missing = [n for n in ("tenant_id", "client_id") if not params.get(n)]
            raise GraphAuthError(_missing_message(missing + ["a credential"], environ))
    common: dict[str, t.Any] = {
        "method": method,
        "tenant_id": params.get("tenant_id"),
        "client_id": params.get("client_id"),
        "authority_host": authority_host,
        "graph_endpoint": graph_endpoint,
        "scope": scope,
    }
    if method == "access_token":
        if not params.get("access_token"):
            raise GraphAuthError(_missing_message(["access_token"], environ))
        check_credential_text("access_token", params["access_token"])
        return Credential(access_token=params["access_token"], **common)
    if method == "managed_identity":
        return Credential(managed_identity_origins=managed_identity_origins(environ), **common)
    needed = {
        "certificate": "client_certificate_path",
        "federated": "federated_token_file",
        "client_secret": "client_secret",
    }[method]
    missing = [n for n in ("tenant_id", "client_id", needed) if not params.get(n)]
    if missing:
        raise GraphAuthError(_missing_message(missing, environ))
    check_tenant_id(params["tenant_id"])
    if method == "client_secret":
        check_credential_text("client_secret", params["client_secret"])
    if method == "certificate" and params.get("client_certificate_password"):
        check_credential_text("client_certificate_password", params["client_certificate_password"], spaces=True)
    return Credential(
        secret=params.get("client_secret") if method == "client_secret" else None,
        certificate_path=params.get("client_certificate_path") if method == "certificate" else None,
        certificate_password=params.get("client_certificate_password"),
        federated_token_file=params.get("federated_token_file") if method == "federated" else None,
        **common,
    )


def national_cloud(cloud: str | None, graph_endpoint: str) -> str | None:
    """What makes this task use a national cloud (``cloud``, or a ``graph_endpoint`` of a national cloud's Graph), or
    None for the global service."""
    if cloud and cloud != "public":
        return f"cloud={cloud}"
    for name, (_authority, graph) in CLOUDS.items():
        if name != "public" and graph_endpoint.lower() == graph:
            return f"graph_endpoint={graph_endpoint} (the {name} cloud's Graph)"
    return None


def check_tenant_id(tenant_id: str) -> None:
    """The tenant becomes a path segment of the authority URL: only a tenant id (GUID) or a domain name."""
    if not (is_guid(tenant_id) or is_domain_name(tenant_id)):
        raise GraphAuthError(
            f"tenant_id {shown(tenant_id)} is neither a tenant id (a GUID, such as "
            "9ecb43ff-60ba-4598-9c12-6fc71a8f79ee) nor a domain name of the tenant (such as "
            "contoso.onmicrosoft.com)."
        )


def check_credential_text(option: str, value: str, *, spaces: bool = False) -> None:
    """Refuse, before any request, a credential holding whitespace or control characters (with ``spaces``, a
    passphrase, only control characters). No access token or client secret Entra issues holds any; one that does
    was read with a trailing newline (a file, a command's output) or pasted with a line break or an invisible
    character. Sent on, it fails in the HTTP library, whose error quotes the header it refused (the whole
    ``Authorization`` header with the token). The message names the option, never the value."""
    if any(_not_credential_text(char, spaces) for char in value):
        what = "control characters" if spaces else "whitespace or control characters"
        raise GraphAuthError(
            f"{option} holds {what} (a trailing newline from a file or a command's output?); its value is "
            "not shown. Give it without them. Nothing was sent."
        )


def _not_credential_text(char: str, spaces: bool) -> bool:
    """A control or formatting character (category Cc or Cf: a newline, a zero-width space, a byte order mark, a
    bidirectional override), a line or paragraph separator; and, unless ``spaces``, any whitespace."""
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return True
    return not spaces and (char.isspace() or category == "Zs")


def load_certificate(path: str, password: str | None) -> dict[str, str]:
    """msal's certificate credential from ``client_certificate_path``: a PEM file holding the private key and the
    certificate, or a PKCS#12 file (``.pfx``, ``.p12``), binary or as base64 text (what AWX's file injector and Key
    Vault give). The format is told from the content, not the name. No message quotes the file or the password."""
    # Imported here, not at the top: only certificate sign-in needs it (msal depends on cryptography, so it is
    # there whenever msal is).
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415

    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise GraphAuthError(f"Cannot read client_certificate_path {path}: {exc.strerror}") from exc
    if b"-----BEGIN" in content:
        key, cert = _pem_key_and_certificate(content, password, path)
    else:
        pfx = _pkcs12_der(content)
        if pfx is None:
            raise GraphAuthError(
                f"client_certificate_path {path} is neither a PEM file (the private key and the certificate) nor a "
                "PKCS#12 file (.pfx, .p12; binary, or as base64 text)."
            )
        key, cert = _pkcs12_key_and_certificate(pfx, password, path)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # nosec - x5t is SHA-1
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }


def _pem_key_and_certificate(pem: bytes, password: str | None, path: str) -> tuple[PrivateKeyTypes, Certificate]:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        try:
            key = serialization.load_pem_private_key(pem, password=password.encode() if password else None)
        except TypeError:
            if not password:
                raise
            # A password (say, from AZURE_CLIENT_CERTIFICATE_PASSWORD) for a key that is not encrypted.
            key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        hint = "wrong or missing client_certificate_password" if b"ENCRYPTED" in pem else "no PEM private key found"
        raise GraphAuthError(f"Cannot load the private key from {path}: {hint}.") from exc
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise GraphAuthError(
            f"No PEM certificate found in {path}: it must hold the private key and the certificate."
        ) from exc
    return key, cert


def _pkcs12_der(content: bytes) -> bytes | None:
    """The PKCS#12 structure ``content`` holds, as it is or as base64 text; None when it holds none."""
    if _is_pkcs12(content):
        return content
    compact = re.sub(rb"\s+", b"", content)
    if not _BASE64_RE.fullmatch(compact):
        return None
    try:
        der = base64.b64decode(compact)
    except ValueError:  # binascii.Error: not a whole number of base64 quads
        return None
    return der if _is_pkcs12(der) else None


def _is_pkcs12(der: bytes) -> bool:
    """Whether ``der`` starts as a PKCS#12 file does: ``PFX ::= SEQUENCE { version INTEGER (3), ... }`` (RFC 7292),
    a SEQUENCE's tag and length, then 02 01 03. This tells a wrong password from a file of another kind, which
    cryptography's loader does not (the same ValueError for both)."""
    if len(der) < 5 or der[0] != 0x30:
        return False
    offset = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)  # a long form length: its number of bytes follows
    return der[offset : offset + 3] == b"\x02\x01\x03"


def _pkcs12_key_and_certificate(pfx: bytes, password: str | None, path: str) -> tuple[PrivateKeyTypes, Certificate]:
    from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: PLC0415

    try:
        try:
            key, cert, _chain = pkcs12.load_key_and_certificates(pfx, password.encode() if password else None)
        except ValueError:
            if not password:
                raise
            # A password (say, from AZURE_CLIENT_CERTIFICATE_PASSWORD) for a file that has none.
            key, cert, _chain = pkcs12.load_key_and_certificates(pfx, None)
    except ValueError as exc:
        raise GraphAuthError(
            f"Cannot open the PKCS#12 file {path}: wrong or missing client_certificate_password (or a damaged file)."
        ) from exc
    if key is None:
        raise GraphAuthError(
            f"The PKCS#12 file {path} holds no private key: it must hold the private key and the certificate."
        )
    if cert is None:
        raise GraphAuthError(
            f"The PKCS#12 file {path} holds no certificate of its private key: it must hold the private key and the "
            "certificate."
        )
    return key, cert


def _read_assertion(path: str) -> t.Callable[[], str]:
    def read() -> str:
        # Read on every use: the workload's token file is rotated underneath us.
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise GraphAuthError(f"Cannot read federated_token_file {path}: {exc.strerror}") from exc

    return read


class TokenCacheFile:
    """msal's serializable cache in a file of mode 0600 (``token_cache_path``). It holds access tokens to the
    tenant, so an existing file that other users could read or change, or that belongs to another user, is
    refused (not tightened: its tokens may have been read already)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.cache = msal.SerializableTokenCache()
        _check_private_directory(self.directory, path)
        try:
            with open(path, encoding="utf-8") as handle:
                _check_private(os.fstat(handle.fileno()), path)
                self.cache.deserialize(handle.read())
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            self.cache = msal.SerializableTokenCache()  # unreadable: start afresh, it is only a cache

    def _access_tokens(self, client_id: str, tenant_id: str, scope: str) -> list[dict]:
        return list(
            self.cache.search(
                msal.TokenCache.CredentialType.ACCESS_TOKEN,
                target=[scope],
                query={"client_id": client_id, "realm": tenant_id},
            )
        )

    def cached_token(self, client_id: str, tenant_id: str, scope: str) -> tuple[str, float] | None:
        """A cached access token still valid for TOKEN_REFRESH_MARGIN seconds. msal checks expiry the same way in
        ``acquire_token_silent``, but that needs an msal app, and building one costs a discovery GET to the
        authority: reading the cache directly makes a run with a valid cached token send no sign-in request."""
        now = time.time()
        for entry in self._access_tokens(client_id, tenant_id, scope):
            expires_on = float(entry.get("expires_on", 0))
            if expires_on - TOKEN_REFRESH_MARGIN > now:
                return entry["secret"], expires_on
        return None

    def drop(self, client_id: str, tenant_id: str, scope: str) -> None:
        for entry in self._access_tokens(client_id, tenant_id, scope):
            self.cache.remove_at(entry)

    def save(self) -> None:
        if not self.cache.has_state_changed:
            return
        directory = self.directory
        try:
            _make_private_directories(directory)
            _check_private_directory(directory, self.path)  # one made since (it existed: the constructor checked it)
            # A new file of mode 0600 with a name nobody can guess, then renamed over the old one.
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(self.path)}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(self.cache.serialize())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise GraphAuthError(f"Cannot write token_cache_path {self.path}: {exc.strerror or exc}") from exc


def _check_private(status: os.stat_result, path: str) -> None:
    if status.st_uid != os.getuid():
        raise GraphAuthError(
            f"token_cache_path {path} belongs to user id {status.st_uid}, not to the user running the "
            f"module (user id {os.getuid()}): another user could have written tokens into it or read "
            "them. Give a path of your own, or delete the file, and run again."
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise GraphAuthError(
            f"token_cache_path {path} has mode {mode:04o}: other users can read or change it, and it "
            "holds access tokens to the tenant. Delete it (its tokens may have been read; they expire "
            f"within about 90 minutes) or make it private (chmod 600 {path}), then run again."
        )


def _check_private_directory(directory: str, path: str) -> None:
    """Refuse a cache in a directory another user can write (a group or other write bit, with or without the sticky
    bit of /tmp), or that belongs to another user: whoever can write it can put files of their own beside the cache
    or in its place (a cache not written yet, a link), and its owner can change its mode. The cache file's own checks
    (``_check_private``) come after this one. A directory not there yet is made private by ``save``."""
    try:
        status = os.stat(directory)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise GraphAuthError(f"Cannot read the directory of token_cache_path {path}: {exc.strerror or exc}") from None
    if status.st_uid != os.getuid():
        raise GraphAuthError(
            f"token_cache_path {path} is in the directory {directory}, which belongs to user id {status.st_uid}, not "
            f"to the user running the module (user id {os.getuid()}): its owner could replace the cache, or read the "
            "tokens written next. Keep the cache in a directory of your own that no one else can write (a missing "
            "one is created with mode 0700), such as ~/.cache/tokenops/tokens.json."
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o022:
        raise GraphAuthError(
            f"token_cache_path {path} is in the directory {directory} of mode {mode:04o}: other users can write it, "
            "so they could replace the cache, or read the tokens written next. Keep the cache in a directory of your "
            "own that no one else can write (a missing one is created with mode 0700), such as "
            f"~/.cache/tokenops/tokens.json, or take the write permission away (chmod go-w {directory})."
        )


def _make_private_directories(directory: str) -> None:
    """Create ``directory`` and any missing parent with mode 0700 (never wider, whatever the umask)."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)


class MsalHttpClient:
    """msal's ``http_client`` over our transport, so sign-in uses the same TLS settings and retries as Graph
    (msal's own ``verify=`` is silently overridden by ``REQUESTS_CA_BUNDLE``)."""

    def __init__(self, send: t.Callable[..., t.Any]) -> None:
        self._send = send

    def get(self, url: str, params: dict | None = None, headers: dict | None = None, **_kwargs: t.Any) -> t.Any:
        return self._send("GET", url, params=params, headers=headers, writes=0)

    def post(
        self, url: str, params: dict | None = None, data: t.Any = None, headers: dict | None = None, **_kwargs: t.Any
    ) -> t.Any:
        if isinstance(data, dict):  # msal passes the client assertion as bytes
            data = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items()}
        # A sign-in writes nothing to the tenant: it takes no token of the pacer's write bucket.
        return self._send("POST", url, params=params, data=data, headers=headers, writes=0)

    def close(self) -> None:
        """The transport is closed by its owner."""


class TokenProvider:
    """Access tokens for one credential: cached in memory, optionally in ``token_cache_path``; thread-safe."""

    def __init__(self, credential: Credential, send: t.Callable[..., t.Any], cache_path: str | None = None) -> None:
        self.credential = credential
        self._http = MsalHttpClient(send)
        self._cache_path = cache_path
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if self.credential.method == "access_token":
                return t.cast(str, self.credential.access_token)
            if not force_refresh and self._token and self._token[1] - TOKEN_REFRESH_MARGIN > time.time():
                return self._token[0]
            self._token = self._acquire(force_refresh)
            return self._token[0]

    def _acquire(self, force_refresh: bool) -> tuple[str, float]:
        cred = self.credential
        # Not for managed identities: the host's endpoint is local and cheap, and documented as uncached.
        use_cache = self._cache_path is not None and cred.method != "managed_identity"
        cache_file = TokenCacheFile(t.cast(str, self._cache_path)) if use_cache else None
        if cache_file is not None:
            if force_refresh:  # Graph refused the cached token: msal would hand it out again
                cache_file.drop(t.cast(str, cred.client_id), t.cast(str, cred.tenant_id), cred.scope)
            else:
                cached = cache_file.cached_token(t.cast(str, cred.client_id), t.cast(str, cred.tenant_id), cred.scope)
                if cached:
                    return cached
        if cred.method == "managed_identity":
            identity = (
                msal.UserAssignedManagedIdentity(client_id=cred.client_id)
                if cred.client_id
                else msal.SystemAssignedManagedIdentity()
            )
            app = msal.ManagedIdentityClient(identity, http_client=self._http)
            result = app.acquire_token_for_client(resource=cred.scope[: -len("/.default")])
        else:
            if cred.method == "client_secret":
                client_credential: t.Any = cred.secret
            elif cred.method == "certificate":
                client_credential = load_certificate(t.cast(str, cred.certificate_path), cred.certificate_password)
            else:
                client_credential = {"client_assertion": _read_assertion(t.cast(str, cred.federated_token_file))}
            app = msal.ConfidentialClientApplication(
                cred.client_id,
                client_credential=client_credential,
                authority=f"{cred.authority_host}/{cred.tenant_id}",
                instance_discovery=False,
                http_client=self._http,
                token_cache=cache_file.cache if cache_file is not None else None,
            )
            result = app.acquire_token_for_client(scopes=[cred.scope])
        if "access_token" not in result:
            raise GraphAuthError(
                f"Sign-in with {cred.describe()} failed: {result.get('error')}: "
                f"{result.get('error_description', '').split(' Trace ID:')[0]}"
            )
        if cache_file is not None:
            cache_file.save()
        return result["access_token"], time.time() + float(result.get("expires_in", 3599))
