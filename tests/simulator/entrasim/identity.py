"""The Microsoft identity platform side: OIDC metadata, the v2.0 token endpoint, the App Service style managed
identity endpoint, access-token minting and the validation Graph applies to every request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote_plus

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import IdentityError, unauthenticated
from .tenant import App, Tenant, User, b64url, b64url_decode

if TYPE_CHECKING:
    from jwt.types import Options

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Graph resource identifiers of every cloud (Microsoft Graph's national cloud deployments); the simulator's own URL
# is added at start.
GRAPH_RESOURCES = (
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
    GRAPH_APP_ID,
)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
_NO_TIME_CHECKS: Options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}


@dataclass
class Principal:
    """Who a validated access token speaks for."""

    kind: str  # "app", "user" (delegated) or "managed_identity"
    client_id: str
    roles: frozenset = frozenset()
    scopes: frozenset = frozenset()
    user: User | None = None
    claims: dict = field(default_factory=dict)

    @property
    def delegated(self) -> bool:
        return self.kind == "user"

    @property
    def signed_in_user(self) -> User:
        """The user a delegated token speaks for; :meth:`IdentityPlatform.authenticate` gives every one a user."""
        if self.user is None:
            raise ValueError(f"the {self.kind} principal of {self.client_id} has no signed-in user")
        return self.user


class SigningKey:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = b64url(hashlib.sha1(der).digest())

    def sign(self, claims: dict, extra_headers: dict | None = None) -> str:
        headers = {"kid": self.kid, "x5t": self.kid, **(extra_headers or {})}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)

    def jwk(self) -> dict:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes(3, "big")),
        }


MAX_VERIFIED_TOKENS = 4096


def _canonical_resource(resource: str) -> str:
    return resource.rstrip("/")


class IdentityPlatform:
    def __init__(self, tenant: Tenant, *, token_lifetime: int = 3599, clock_skew: int = 300) -> None:
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.clock_skew = clock_skew
        self.base_url = ""  # set by the server once the port is known
        self.graph_resources: set[str] = set(GRAPH_RESOURCES)
        self.signing_key = SigningKey()
        self.foreign_key = SigningKey()  # signs deliberately untrusted tokens for tests
        self.issuer_keys: dict[str, SigningKey] = {}
        self.managed_identity_header = secrets.token_urlsafe(24)
        self._refresh_tokens: dict[str, tuple[str, str, tuple]] = {}
        self._lock = threading.Lock()
        # Access tokens whose signature checked out, with their claims: a client sends the same token again and
        # again, and checking its base64 and signature costs more than the rest of a request (at most
        # MAX_VERIFIED_TOKENS, then forgotten all at once).
        self._verified: dict[str, dict] = {}

    def _verified_claims(self, raw: str) -> dict:
        """The claims of an access token signed by this platform (whatever its lifetime, audience or tenant)."""
        claims = self._verified.get(raw)
        if claims is None:
            claims = jwt.decode(
                raw,
                self.signing_key.private_key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, **_NO_TIME_CHECKS},
            )
            if len(self._verified) >= MAX_VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[raw] = claims
        return dict(claims)

    def session_of(self, authorization: str | None) -> str | None:
        """The ``uti`` of the bearer token in ``authorization`` if this platform signed it (whatever its lifetime,
        audience or tenant), else None: the request log's ``session``, also for a request answered by a fault."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        try:
            uti = self._verified_claims(authorization[7:].strip()).get("uti")
        except jwt.PyJWTError:
            return None
        return uti if isinstance(uti, str) else None

    def known_claims(self, raw: str) -> dict | None:
        """The claims of an access token already verified (``authenticate``), else None."""
        claims = self._verified.get(raw)
        return None if claims is None else dict(claims)

    def set_base_url(self, base_url: str) -> None:
        self.base_url = base_url
        self.graph_resources.add(base_url)

    # ------------------------------------------------------------------ metadata
    def tenant_matches(self, segment: str) -> bool:
        segment = segment.lower()
        domains = {d.lower() for d in self.tenant.settings.get("domains", [])}
        return segment == self.tenant.tenant_id or segment in domains

    def openid_configuration(self) -> dict:
        tid = self.tenant.tenant_id
        base = f"{self.base_url}/{tid}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "tid", "oid", "ver"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    def jwks(self) -> dict:
        return {"keys": [self.signing_key.jwk()]}

    # ------------------------------------------------------------------ minting
    def _sts_issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant.tenant_id}/"

    def mint_access_token(
        self,
        *,
        client_id: str,
        app_display_name: str,
        object_id: str,
        resource: str,
        roles: list[str] | None = None,
        scopes: list[str] | None = None,
        user: User | None = None,
        lifetime: int | None = None,
        tenant_id: str | None = None,
        foreign: bool = False,
        appidacr: str = "1",
    ) -> tuple[str, int]:
        now = int(self.tenant.now())
        lifetime = self.token_lifetime if lifetime is None else lifetime
        claims = {
            "aud": _canonical_resource(resource),
            "iss": f"https://sts.windows.net/{tenant_id or self.tenant.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "app_displayname": app_display_name,
            "appid": client_id,
            "appidacr": appidacr,
            "idp": self._sts_issuer(),
            "tid": tenant_id or self.tenant.tenant_id,
            "uti": b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if user is not None:
            claims.update(
                {
                    "idtyp": "user",
                    "oid": user.id,
                    "sub": user.id,
                    "upn": user.user_principal_name,
                    "unique_name": user.user_principal_name,
                    "name": user.display_name,
                    "scp": " ".join(scopes or []),
                }
            )
        else:
            claims.update({"idtyp": "app", "oid": object_id, "sub": object_id, "roles": list(roles or [])})
        key = self.foreign_key if foreign else self.signing_key
        return key.sign(claims), lifetime

    def issuer_key(self, issuer: str) -> SigningKey:
        with self._lock:
            if issuer not in self.issuer_keys:
                self.issuer_keys[issuer] = SigningKey()
            return self.issuer_keys[issuer]

    def mint_federated_assertion(
        self, issuer: str, subject: str, audience: str = DEFAULT_FEDERATION_AUDIENCE, lifetime: int = 600
    ) -> str:
        """What GitHub/GitLab/Kubernetes would hand a workload: an OIDC token from an external issuer."""
        now = int(self.tenant.now())
        return self.issuer_key(issuer).sign(
            {
                "iss": issuer,
                "sub": subject,
                "aud": audience,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
                "jti": str(uuid.uuid4()),
            }
        )

    # ------------------------------------------------------------------ validation (Graph side)
    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise unauthenticated("Access token is empty.", reason="missing bearer token")
        raw = authorization[7:].strip()
        if not raw:
            raise unauthenticated("Access token is empty.", reason="missing bearer token")
        if raw.count(".") != 2:
            raise unauthenticated("CompactToken parsing failed with error code: 80049217", reason="not a JWT")
        try:
            claims = self._verified_claims(raw)
        except jwt.InvalidSignatureError as exc:
            raise unauthenticated("Access token validation failure.", reason="invalid signature") from exc
        except jwt.PyJWTError as exc:
            raise unauthenticated("Access token validation failure.", reason=f"malformed token: {exc}") from exc
        now = self.tenant.now()
        if (
            not isinstance(claims.get("exp"), (int, float))
            or claims["exp"] + self.clock_skew < now
            or claims.get("nbf", 0) - self.clock_skew > now
        ):
            raise unauthenticated("Access token has expired or is not yet valid.", reason="token lifetime")
        if _canonical_resource(str(claims.get("aud", ""))) not in self.graph_resources:
            raise unauthenticated("Access token validation failure. Invalid audience.", reason="audience")
        if str(claims.get("tid", "")).lower() != self.tenant.tenant_id:
            raise unauthenticated("Access token validation failure. Invalid audience.", reason="foreign tenant")
        client_id = str(claims.get("appid", "")).lower()
        if claims.get("idtyp") == "user":
            user = self.tenant.users.get(str(claims.get("oid", "")).lower())
            if user is None:
                raise unauthenticated("Access token validation failure.", reason="unknown user")
            return Principal(
                "user", client_id, scopes=frozenset(str(claims.get("scp", "")).split()), user=user, claims=claims
            )
        kind = "managed_identity" if client_id in self.tenant.managed_identities else "app"
        return Principal(kind, client_id, roles=frozenset(claims.get("roles") or []), claims=claims)

    # ------------------------------------------------------------------ token endpoint
    def token_endpoint(
        self, tenant_segment: str, form_body: bytes, request_base: str, authorization: str | None = None
    ) -> dict:
        """Handle ``POST /{tenant}/oauth2/v2.0/token``; returns the JSON body or raises IdentityError."""
        if not self.tenant_matches(tenant_segment):
            raise IdentityError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant_segment}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if authorization and authorization.lower().startswith("basic "):
            form.update(_basic_credentials(authorization[6:]))
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        if grant == "client_credentials":
            return self._client_credentials(form, tenant_segment, request_base)
        if grant == "password":
            return self._password(form, tenant_segment, request_base)
        if grant == "refresh_token":
            return self._refresh(form, tenant_segment, request_base)
        raise IdentityError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type ''{grant}''."
        )

    def _app(self, form: dict) -> App:
        client_id = form.get("client_id", "").lower()
        if not client_id:
            raise _missing("client_id")
        app = self.tenant.apps.get(client_id)
        if app is None:
            raise IdentityError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        return app

    def _assertion_audiences(self, tenant_segment: str, request_base: str) -> list[str]:
        auds = []
        for base in sorted({self.base_url, request_base}):
            for tenant in sorted({tenant_segment, self.tenant.tenant_id}):
                auds += [f"{base}/{tenant}/oauth2/v2.0/token", f"{base}/{tenant}/v2.0"]
        return auds

    def _authenticate_client(
        self, app: App, form: dict, tenant_segment: str, request_base: str, required: bool = True
    ) -> str:
        """Verify the client credential; returns appidacr ("1" secret, "2" certificate or federated)."""
        if form.get("client_secret"):
            if not any(hmac.compare_digest(form["client_secret"].encode(), s.encode()) for s in app.client_secrets):
                raise IdentityError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app '{app.client_id}'.",
                )
            return "1"
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise IdentityError(
                    400, "invalid_request", 50027, "Invalid client_assertion_type; expected " + ASSERTION_TYPE + "."
                )
            self._verify_assertion(app, form["client_assertion"], tenant_segment, request_base)
            return "2"
        if required:
            raise IdentityError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        return "0"

    def _verify_assertion(self, app: App, assertion: str, tenant_segment: str, request_base: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise IdentityError(401, "invalid_client", 50027, f"JWT token is invalid or malformed: {exc}.") from exc
        # A certificate assertion is issued by the app itself (iss == client_id); anything else is federated.
        if str(unverified.get("iss", "")).lower() == app.client_id:
            if "x5t" not in header and "x5t#S256" not in header:
                raise IdentityError(
                    401,
                    "invalid_client",
                    700027,
                    "Client assertion must carry an x5t or x5t#S256 header naming its certificate.",
                )
            self._verify_certificate_assertion(app, assertion, header, tenant_segment, request_base)
        else:
            self._verify_federated_assertion(app, assertion, unverified)

    def _verify_certificate_assertion(
        self, app: App, assertion: str, header: dict, tenant_segment: str, request_base: str
    ) -> None:
        try:
            if "x5t#S256" in header:
                thumb, attr = b64url_decode(header["x5t#S256"]), "sha256"
            else:
                thumb, attr = b64url_decode(header["x5t"]), "sha1"
        except ValueError as exc:
            raise IdentityError(
                401, "invalid_client", 700027, "Client assertion contains an invalid thumbprint."
            ) from exc
        cert = next((c for c in app.certificates if hmac.compare_digest(getattr(c, attr), thumb)), None)
        if cert is None:
            raise IdentityError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not registered "
                f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{thumb.hex().upper()}']",
            )
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key,
                algorithms=["RS256", "PS256"],
                audience=self._assertion_audiences(tenant_segment, request_base),
                options={"require": ["exp", "aud", "iss", "sub"], **_NO_TIME_CHECKS},
            )
        except jwt.InvalidSignatureError as exc:
            raise IdentityError(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
        except jwt.InvalidAudienceError as exc:
            raise IdentityError(
                401,
                "invalid_client",
                700027,
                "Client assertion audience claim does not match the token endpoint of this tenant.",
            ) from exc
        except jwt.PyJWTError as exc:
            raise IdentityError(401, "invalid_client", 50027, f"JWT token is invalid or malformed: {exc}.") from exc
        self._check_assertion_lifetime(claims, 401)
        if str(claims["iss"]).lower() != app.client_id or str(claims["sub"]).lower() != app.client_id:
            raise IdentityError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )

    def _check_assertion_lifetime(self, claims: dict, status: int) -> None:
        """``exp``/``nbf`` against the simulated clock (PyJWT would use the real one)."""
        now = self.tenant.now()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if (
            not isinstance(exp, (int, float))
            or not isinstance(nbf, (int, float))
            or exp + self.clock_skew < now
            or nbf - self.clock_skew > now
        ):
            raise IdentityError(
                status, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )

    def _verify_federated_assertion(self, app: App, assertion: str, unverified: dict) -> None:
        issuer = str(unverified.get("iss", ""))
        candidates = [f for f in app.federated_credentials if f.issuer == issuer]
        if not candidates or issuer not in self.issuer_keys:
            raise IdentityError(
                400,
                "invalid_request",
                700211,
                f"No matching federated identity record found for presented assertion issuer '{issuer}'.",
            )
        try:
            claims = jwt.decode(
                assertion,
                self.issuer_keys[issuer].private_key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "sub", "aud"], **_NO_TIME_CHECKS},
            )
        except jwt.InvalidSignatureError as exc:
            raise IdentityError(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
        except jwt.PyJWTError as exc:
            raise IdentityError(401, "invalid_client", 50027, f"JWT token is invalid or malformed: {exc}.") from exc
        self._check_assertion_lifetime(claims, 400)
        candidates = [f for f in candidates if f.subject == claims["sub"]]
        if not candidates:
            raise IdentityError(
                400,
                "invalid_request",
                700213,
                f"No matching federated identity record found for presented assertion subject '{claims['sub']}'.",
            )
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not any(a in f.audiences for f in candidates for a in audiences):
            raise IdentityError(
                400,
                "invalid_request",
                700212,
                "No matching federated identity record found for presented assertion audience "
                f"'{', '.join(audiences)}'.",
            )

    def _graph_resource(self, scope_string: str | None, *, delegated: bool) -> tuple[str, list[str], bool]:
        """Split a scope string into (resource, permission names, wants_openid)."""
        if not scope_string:
            raise _missing("scope")
        resource = None
        names: list[str] = []
        openid = False
        for scope in scope_string.split():
            if scope in OIDC_SCOPES:
                openid = True
                continue
            if "/" in scope and not scope.startswith(GRAPH_APP_ID + "/") and scope.count("/") >= 3:
                res, name = scope.rsplit("/", 1)
            elif scope.startswith(GRAPH_APP_ID + "/"):
                res, name = scope.split("/", 1)
            elif delegated and "/" not in scope:
                res, name = "https://graph.microsoft.com", scope
            else:
                raise IdentityError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must "
                    "have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
            res = _canonical_resource(res)
            if res not in self.graph_resources:
                raise IdentityError(
                    400,
                    "invalid_resource",
                    500011,
                    f"The resource principal named {res} was not found in the tenant named "
                    f"{self.tenant.display_name}. This can happen if the application has not been "
                    "installed by the administrator of the tenant.",
                )
            if resource is not None and resource != res:
                raise IdentityError(
                    400, "invalid_scope", 70011, "The provided request must include scopes for one resource only."
                )
            resource = res
            names.append(name)
        if resource is None:
            raise _missing("scope")
        if not delegated and names != [".default"]:
            raise IdentityError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope_string} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        return resource, names, openid

    def _client_credentials(self, form: dict, tenant_segment: str, request_base: str) -> dict:
        app = self._app(form)
        appidacr = self._authenticate_client(app, form, tenant_segment, request_base)
        resource = self._graph_resource(form.get("scope"), delegated=False)[0]
        token, lifetime = self.mint_access_token(
            client_id=app.client_id,
            app_display_name=app.display_name,
            object_id=app.object_id,
            resource=resource,
            roles=app.application_permissions,
            appidacr=appidacr,
        )
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    def _delegated_response(
        self, app: App, user: User, resource: str, names: list[str], *, openid: bool, appidacr: str
    ) -> dict:
        if names == [".default"]:
            granted = list(app.delegated_permissions)
        else:
            missing = [n for n in names if n not in app.delegated_permissions]
            if missing:
                raise IdentityError(
                    400,
                    "invalid_grant",
                    65001,
                    f"The user or administrator has not consented to use the application with ID "
                    f"'{app.client_id}' named '{app.display_name}'. Send an interactive authorization "
                    f"request for this user and resource. Missing: {' '.join(missing)}.",
                )
            granted = names
        token, lifetime = self.mint_access_token(
            client_id=app.client_id,
            app_display_name=app.display_name,
            object_id=user.id,
            resource=resource,
            scopes=granted,
            user=user,
            appidacr=appidacr,
        )
        refresh = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[refresh] = (user.id, app.client_id, (resource, tuple(names), openid))
        body = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{g}" for g in granted),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
            "refresh_token": refresh,
        }
        if openid:
            now = int(self.tenant.now())
            body["id_token"] = self.signing_key.sign(
                {
                    "aud": app.client_id,
                    "iss": f"{self.base_url}/{self.tenant.tenant_id}/v2.0",
                    "iat": now,
                    "nbf": now,
                    "exp": now + lifetime,
                    "name": user.display_name,
                    "oid": user.id,
                    "preferred_username": user.user_principal_name,
                    "sub": user.id,
                    "tid": self.tenant.tenant_id,
                    "ver": "2.0",
                }
            )
            body["client_info"] = b64url(json.dumps({"uid": user.id, "utid": self.tenant.tenant_id}).encode())
        return body

    def _password(self, form: dict, tenant_segment: str, request_base: str) -> dict:
        app = self._app(form)
        appidacr = self._authenticate_client(app, form, tenant_segment, request_base, required=not app.public_client)
        for key in ("username", "password"):
            if not form.get(key):
                raise _missing(key)
        user = self.tenant.find_user_by_upn(form["username"])
        if (
            user is None
            or not user.password
            or not hmac.compare_digest(user.password.encode(), form["password"].encode())
        ):
            raise IdentityError(
                400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
            )
        if not user.account_enabled:
            raise IdentityError(400, "invalid_grant", 50057, "The user account is disabled.")
        resource, names, openid = self._graph_resource(form.get("scope"), delegated=True)
        return self._delegated_response(app, user, resource, names, openid=openid, appidacr=appidacr)

    def _refresh(self, form: dict, tenant_segment: str, request_base: str) -> dict:
        app = self._app(form)
        appidacr = self._authenticate_client(app, form, tenant_segment, request_base, required=not app.public_client)
        with self._lock:
            entry = self._refresh_tokens.get(form.get("refresh_token", ""))
        if entry is None or entry[1] != app.client_id:
            raise IdentityError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        user = self.tenant.users[entry[0]]
        resource, names, openid = entry[2]
        return self._delegated_response(app, user, resource, list(names), openid=openid, appidacr=appidacr)

    # ------------------------------------------------------------------ managed identity (App Service style)
    def managed_identity_token(self, query: dict, identity_header: str | None) -> tuple[int, dict]:
        correlation = str(uuid.uuid4())
        if not identity_header or not hmac.compare_digest(identity_header, self.managed_identity_header):
            return 401, {
                "statusCode": 401,
                "message": "Unauthorized request: missing or wrong X-IDENTITY-HEADER.",
                "correlationId": correlation,
            }
        if query.get("api-version") != "2019-08-01":
            return 400, {
                "statusCode": 400,
                "message": "Unsupported or missing api-version; expected 2019-08-01.",
                "correlationId": correlation,
            }
        resource = _canonical_resource(query.get("resource", ""))
        if resource not in self.graph_resources:
            # App Service answers an unknown resource with a vague 500 (see msal's managed_identity.py).
            return 500, {
                "statusCode": 500,
                "message": "An unexpected error occured while fetching the AAD Token.",
                "correlationId": correlation,
            }
        mis = self.tenant.managed_identities.values()
        if query.get("client_id"):
            mi = next((m for m in mis if m.client_id == query["client_id"].lower()), None)
        elif query.get("object_id"):
            mi = next((m for m in mis if m.object_id == query["object_id"].lower()), None)
        elif query.get("mi_res_id"):
            mi = next((m for m in mis if query["mi_res_id"].lower().endswith("/" + m.display_name.lower())), None)
        else:
            mi = next((m for m in mis if m.system_assigned), None)
        if mi is None:
            return 400, {
                "statusCode": 400,
                "message": "Unable to load the proper Managed Identity.",
                "correlationId": correlation,
            }
        token, lifetime = self.mint_access_token(
            client_id=mi.client_id,
            app_display_name=mi.display_name,
            object_id=mi.object_id,
            resource=resource,
            roles=mi.application_permissions,
            appidacr="2",
        )
        return 200, {
            "access_token": token,
            "expires_on": str(int(self.tenant.now()) + lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi.client_id,
        }


def _basic_credentials(encoded: str) -> dict:
    """client_secret_basic (RFC 6749 2.3.1): form-urlencoded id and secret, joined by ':', base64."""
    try:
        client_id, _sep, secret = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise IdentityError(401, "invalid_client", 7000215, "Malformed HTTP Basic client credentials.") from exc
    return {"client_id": unquote_plus(client_id), "client_secret": unquote_plus(secret)}


def _missing(parameter: str) -> IdentityError:
    return IdentityError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{parameter}'."
    )
