"""Helpers shared by the simulator test suite: the seed's well-known objects, starting the real simulator as a
subprocess, the hostile server (tests/simulator/hostile.py), an httpx adapter for msal, a Graph/admin client (which
sends the bearer token to the simulator's own https origin only) and TOTP code helpers.

Imported by conftest.py and the test modules (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.util
import json
import secrets
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import httpx
import pyotp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SIM_DIR = Path(__file__).resolve().parents[1]
SERVE = SIM_DIR / "serve.py"
HOSTILE = SIM_DIR / "hostile.py"
DEMO_SEED = SIM_DIR / "seeds" / "demo.yml"

TENANT_ID = "9ecb43ff-60ba-4598-9c12-6fc71a8f79ee"
OTHER_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
UNKNOWN_ID = "0badc0de-5eed-4bad-8bad-000000000000"  # no object of the seed has this id
GRAPH = "https://graph.microsoft.com"
GRAPH_DEFAULT = GRAPH + "/.default"

# Seeded apps (demo.yml)
AUTOMATION = "e4f4d1a6-5df6-4204-99ad-d67852d51f00"
AUTOMATION_SECRET = "demo-secret-for-the-local-simulator-only"
REPORTING = "53e1b72d-2591-4b6f-aa44-e8367da52ce0"
REPORTING_SECRET = "reporting-secret-for-the-local-simulator-only"
CLI = "d035e831-23f3-40f8-a56f-74252dd3282d"
RUNNER_MI = "764344a8-d7c2-4bc5-a2c2-dbc8b42351c6"

# Extra apps the suite adds to the seed (see build_suite_seed)
CERT_APP = "c3a7e0b1-5d1e-4f6a-8b2c-000000000001"
FED_APP = "c3a7e0b1-5d1e-4f6a-8b2c-000000000002"
DEVICES_ONLY_APP = "c3a7e0b1-5d1e-4f6a-8b2c-000000000003"
NOPERM_APP = "c3a7e0b1-5d1e-4f6a-8b2c-000000000004"
READER_MI = "c3a7e0b1-5d1e-4f6a-8b2c-000000000005"
READER_MI_OBJECT_ID = "c3a7e0b1-5d1e-4f6a-8b2c-0000000000a5"
READER_MI_NAME = "tokenops-reader-mi"
GH_ISSUER = "https://token.actions.githubusercontent.com"
GH_SUBJECT = "repo:tokenops/entra:ref:refs/heads/main"
GITLAB_ISSUER = "https://gitlab.example.com"
GITLAB_SUBJECT = "project_path:tokenops/entra:ref_type:branch:ref:main"

# Seeded users
AMY, AMY_UPN = "e55cb360-e3ee-4757-bdd2-04b1e5a00e32", "amy.masters@contoso.com"
ADELE, ADELE_UPN = "d073bb3d-66bd-4d66-b193-cf6a43af2889", "adele.vance@contoso.com"
ADELE_PASSWORD = "Adele-simulator-password-1"
LEE, LEE_UPN = "a5049c2d-2b28-4e46-aec8-da29b571a7c7", "lee.gu@contoso.com"
LEE_PASSWORD = "Lee-simulator-password-1"
MEGAN, MEGAN_UPN = "31485733-1893-47cd-b1d6-391539c91ba4", "megan.bowen@contoso.com"
MEGAN_PASSWORD = "Megan-simulator-password-1"
ALEX, ALEX_UPN = "33748d6d-5eb8-4890-9970-ba1a7bbecf41", "alex.wilber@contoso.com"
GRADY, GRADY_UPN = "42611269-4dcf-4979-86ef-5ac3cedc7a51", "grady_fabrikam.com#EXT#@contoso.onmicrosoft.com"
DIEGO, DIEGO_UPN = "2fc0678e-9176-4c99-a7e3-a74b57f9810e", "diego.siciliani@contoso.com"
# Extra users of the suite seed
PAT, PAT_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000101", "pat.privileged@contoso.com"
PAT_PASSWORD = "Pat-simulator-password-1"
GINA, GINA_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000102", "gina.reader@contoso.com"
GINA_PASSWORD = "Gina-simulator-password-1"
DANA, DANA_UPN = "6d2f1c3e-9a1b-4c5d-8e7f-000000000103", "dana.disabled@contoso.com"
DANA_PASSWORD = "Dana-simulator-password-1"

GROUP_HOLDERS = "8361d191-fd0f-42ba-b637-98f616a7f4d7"
GROUP_BREAKGLASS = "0464e283-b086-4607-8b49-e7344869c57b"

# Seeded tokens
TOTP123456 = "6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b"  # available, sha1/30
TOTP654321 = "7a4f8d2b-3c5e-4f90-8b1c-2d3e4f5a6b7c"  # available
GALT = "8b5a9e3c-4d6f-4a01-9c2d-3e4f5a6b7c8d"  # available, Thales
SHA256_60 = "9c6b0f4d-5e7a-4b12-8d3e-4f5a6b7c8d9e"  # available, sha256/60
DIEGO_ASSIGNED = "ad7c1a5e-6f8b-4c23-9e4f-5a6b7c8d9e0f"  # TOTP100001 assigned to Diego
ADELE_ACTIVATED = "be8d2b6f-7a9c-4d34-8f5a-6b7c8d9e0f1a"  # TOTP100002 activated for Adele
DIEGO_FAILED = "cf9e3c7a-8b0d-4e45-9a6b-7c8d9e0f1a2b"  # TOTP100003 failedActivation for Diego
MEGAN_TOKENS = [
    "d0af4d8b-9c1e-4f56-8b7c-8d9e0f1a2b3c",
    "e1b05e9c-0d2f-4a67-9c8d-9e0f1a2b3c4d",
    "f2c16fad-1e3a-4b78-8d9e-0f1a2b3c4d5e",
    "a3d27abe-2f4b-4c89-9e0f-1a2b3c4d5e6f",
    "b4e38bcf-3a5c-4d9a-8f1a-2b3c4d5e6f7a",
]
SPARE = "c5f49cd0-4b6d-4eab-9a2b-3c4d5e6f7a8b"  # SPARE-0001 available
SEED_TOKEN_COUNT = 13

DEVICES = "/directory/authenticationMethodDevices/hardwareOathDevices"
POLICY = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath"
POLICY_TYPE = "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration"
DEVICE_CONTEXT = "$metadata#directory/authenticationMethodDevices/hardwareOathDevices/$entity"
DEVICE_KEYS = {
    "id",
    "displayName",
    "serialNumber",
    "manufacturer",
    "model",
    "secretKey",
    "timeIntervalInSeconds",
    "status",
    "lastUsedDateTime",
    "hashFunction",
    "assignedTo",
}


def policy_body(**fields: Any) -> dict:
    """A PATCH of the policy: its update page requires the ``@odata.type``."""
    return {"@odata.type": POLICY_TYPE, **fields}


def methods_path(user: str) -> str:
    return f"/users/{quote(user, safe='')}/authentication/hardwareOathMethods"


def load_demo_seed() -> dict:
    with open(DEMO_SEED, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# ---------------------------------------------------------------------------- certificates
def make_certificate(common_name: str = "tokenops-test", days: int = 2) -> tuple[Any, x509.Certificate, str, str]:
    """A self-signed RSA certificate: (private key, certificate, key PEM, certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key, cert, key_pem, cert_pem


def build_suite_seed(directory: Path) -> dict:
    """demo.yml plus the suite's extra apps, identities and users; returns the material tests need."""
    seed = load_demo_seed()
    key, cert, key_pem, cert_pem = make_certificate("tokenops-cert-app")
    devices_only_secret = "devonly-" + secrets.token_urlsafe(18)
    noperm_secret = "noperm-" + secrets.token_urlsafe(18)
    seed["apps"] += [
        {
            "client_id": CERT_APP,
            "display_name": "tokenops-cert",
            "certificates": [cert_pem],
            "application_permissions": ["Policy.Read.All"],
        },
        {
            "client_id": FED_APP,
            "display_name": "tokenops-github",
            "federated_credentials": [
                {"name": "main", "issuer": GH_ISSUER, "subject": GH_SUBJECT},
                {"name": "gitlab", "issuer": GITLAB_ISSUER, "subject": GITLAB_SUBJECT, "audiences": [GITLAB_ISSUER]},
            ],
            "application_permissions": ["Policy.Read.All", "UserAuthenticationMethod.Read.All"],
        },
        {
            "client_id": DEVICES_ONLY_APP,
            "display_name": "tokenops-inventory-only",
            "client_secret": devices_only_secret,
            "application_permissions": ["Policy.ReadWrite.AuthenticationMethod"],
        },
        {"client_id": NOPERM_APP, "display_name": "tokenops-nothing", "client_secret": noperm_secret},
    ]
    seed["managed_identities"].append(
        {
            "client_id": READER_MI,
            "object_id": READER_MI_OBJECT_ID,
            "display_name": READER_MI_NAME,
            "application_permissions": ["Policy.Read.All"],
        }
    )
    seed["users"] += [
        {
            "id": PAT,
            "user_principal_name": PAT_UPN,
            "display_name": "Pat Privileged",
            "roles": ["Privileged Authentication Administrator"],
            "password": PAT_PASSWORD,
        },
        {
            "id": GINA,
            "user_principal_name": GINA_UPN,
            "display_name": "Gina Reader",
            "roles": ["Global Reader"],
            "password": GINA_PASSWORD,
        },
        {
            "id": DANA,
            "user_principal_name": DANA_UPN,
            "display_name": "Dana Disabled",
            "password": DANA_PASSWORD,
            "account_enabled": False,
        },
    ]
    path = directory / "suite-seed.yml"
    path.write_text(yaml.safe_dump(seed, sort_keys=False), encoding="utf-8")
    return {
        "seed_path": str(path),
        "seed": seed,
        "cert_key": key,
        "cert": cert,
        "cert_key_pem": key_pem,
        "cert_pem": cert_pem,
        "devices_only_secret": devices_only_secret,
        "noperm_secret": noperm_secret,
    }


def seed_secrets(seed: dict) -> list[str]:
    """Every secret in a seed: client secrets, token seeds (as given and upper-cased) and passwords."""
    out = []
    for app in seed.get("apps") or []:
        out += list(app.get("client_secrets") or [])
        if app.get("client_secret"):
            out.append(app["client_secret"])
    for token in seed.get("tokens") or []:
        out += [token["secret_key"], token["secret_key"].upper()]
    for user in seed.get("users") or []:
        if user.get("password"):
            out.append(user["password"])
    return out


# ---------------------------------------------------------------------------- the simulator process
class SimProcess:
    """The real simulator: ``serve.py`` in a subprocess, up once its ready file exists."""

    def __init__(self, seed_path: str, workdir: Path, extra_args: list[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file = self.workdir / "ready.json"
        self.stderr_path = self.workdir / "stderr.log"
        # The simulator's stderr, open while the process runs: closed when it fails to start and in terminate().
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115  pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, str(SERVE), "--seed", seed_path, "--ready-file", str(self.ready_file)]
            + list(extra_args or []),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + 30
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                self._stderr.close()
                raise RuntimeError(f"simulator exited with {self.proc.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self._stderr.close()
                raise RuntimeError(f"simulator did not become ready: {self.stderr()}")
            time.sleep(0.02)
        self.info = json.loads(self.ready_file.read_text(encoding="utf-8"))

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, wait, return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._stderr.close()


# ---------------------------------------------------------------------------- the hostile server
def hostile_module() -> ModuleType:
    """tests/simulator/hostile.py (beside serve.py, not on sys.path), imported once."""
    if "hostile" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hostile", HOSTILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["hostile"] = module
        spec.loader.exec_module(module)
    return sys.modules["hostile"]


def http_client(info: dict, **kwargs) -> httpx.Client:
    """An httpx client that trusts the simulator CA only (certificate verification on)."""
    kwargs.setdefault("timeout", 15)
    return httpx.Client(verify=ssl_context(info), **kwargs)


def ssl_context(info: dict) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info["ca_bundle"])


class MsalHttpClient:
    """msal's http_client over httpx: certificate verification through the simulator CA, never REQUESTS_CA_BUNDLE."""

    def __init__(self, client: httpx.Client, sim_base: str | None = None) -> None:
        self.client = client
        self.sim_base = sim_base
        self.calls: list[tuple[str, str]] = []

    def _route(self, url: str) -> str:
        # msal builds the user-realm discovery URL (ROPC) from the authority's host *without its port*
        # (https://127.0.0.1/common/userrealm/...). Real Entra listens on 443; send it to the simulator's port.
        if self.sim_base:
            parsed, sim = httpx.URL(url), httpx.URL(self.sim_base)
            if parsed.host == sim.host and parsed.port is None:
                return str(parsed.copy_with(port=sim.port))
        return url

    def get(self, url, params=None, headers=None, **_kwargs):
        url = self._route(url)
        self.calls.append(("GET", url))
        return self.client.get(url, params=params, headers=headers)

    def post(self, url, params=None, data=None, headers=None, **_kwargs):
        url = self._route(url)
        self.calls.append(("POST", url))
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        elif isinstance(data, bytes):
            data = data.decode()
        if isinstance(data, str):
            return self.client.post(url, params=params, content=data.encode(), headers=headers)
        return self.client.post(url, params=params, data=data, headers=headers)

    def close(self):
        pass


# ---------------------------------------------------------------------------- TOTP
class Totp:
    """Codes of one token computed with pyotp, honouring its hash function and interval."""

    DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}

    def __init__(self, secret: str, hash_function: str = "hmacsha1", interval: int = 30) -> None:
        self.secret = secret
        self.hash_function = hash_function
        self.interval = interval
        self.totp = pyotp.TOTP(secret, digits=6, digest=self.DIGESTS[hash_function], interval=interval)

    def step_of(self, when: float) -> int:
        return int(when // self.interval)

    def code_for_step(self, step: int) -> str:
        return self.totp.generate_otp(step)

    def at(self, when: float) -> str:
        return self.code_for_step(self.step_of(when))

    def window_codes(self, when: float, steps: int = 2880) -> set[str]:
        """Every code the simulator accepts around ``when`` (its activation drift window)."""
        current = self.step_of(when)
        return {self.code_for_step(s) for s in range(current - steps, current + steps + 1)}

    def repeats_after(self, step: int, after: int, when: float, steps: int = 2880) -> bool:
        """Whether the code of ``step`` is also that of a step after ``after`` in the drift window around ``when``: a
        replay of it would then be accepted as that later step's code (six digits recur about once a million steps)."""
        code = self.code_for_step(step)
        return any(self.code_for_step(s) == code for s in range(after + 1, self.step_of(when) + steps + 1))

    def replayable_step(self, when: float, gap: int = 0) -> int:
        """The latest step at or before ``when`` such that no later step repeats the code of ``gap`` steps before it:
        accepting that step makes a replay of that code certain to be refused."""
        current = self.step_of(when)
        return next(s for s in range(current, current - 100, -1) if not self.repeats_after(s - gap, s, when))

    def wrong_code(self, when: float, steps: int = 2880) -> str:
        """A well-formed code that matches no step of the drift window."""
        valid = self.window_codes(when, steps)
        for candidate in range(123456, 1_000_000, 7919):
            code = f"{candidate:06d}"
            if code not in valid:
                return code
        raise AssertionError("no wrong code found")


def seed_token(seed: dict, serial: str) -> dict:
    return next(t for t in seed["tokens"] if t["serial_number"] == serial)


def totp_of(seed: dict, serial: str) -> Totp:
    token = seed_token(seed, serial)
    return Totp(token["secret_key"], token.get("hash_function", "hmacsha1"), token.get("time_interval", 30))


# ---------------------------------------------------------------------------- the API client
def follow_pages(api: SimApi, response: httpx.Response, link_prefix: str, **graph_kwargs: Any) -> list[dict]:
    """Each page's body, from the first ``response`` on, following ``@odata.nextLink`` (which must start with
    ``link_prefix`` and carry a ``$skiptoken``) with the same ``graph_kwargs`` (token, headers)."""
    bodies = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        link = body.get("@odata.nextLink")
        if not link:
            return bodies
        assert link.startswith(link_prefix) and "$skiptoken=" in link, link
        response = api.graph("GET", link, **graph_kwargs)


@contextlib.contextmanager
def seeded_api(seed: dict, directory: Path, args: list[str] | None = None) -> Iterator[SimApi]:
    """A simulator of its own on ``seed`` (written to ``directory``), as a SimApi; stopped (its exit checked) after."""
    path = directory / "seed.yml"
    path.write_text(yaml.safe_dump(seed, sort_keys=False), encoding="utf-8")
    proc = SimProcess(str(path), directory / "sim", args)
    try:
        with http_client(proc.info) as http:
            yield SimApi(proc.info, http, seed)
    finally:
        exit_code = proc.terminate()
    assert exit_code == 0, proc.stderr()


class SimApi:
    """Graph, identity and admin calls against one running simulator, over one httpx client."""

    def __init__(self, info: dict, client: httpx.Client, seed: dict) -> None:
        self.info = info
        self.client = client
        self.seed = seed
        self.base = info["graph_url"]
        self.admin_url = info["admin_url"]
        self._default_token: str | None = None
        self.clock_offset = 0.0

    # -------- admin
    def admin(self, method: str, route: str, **kwargs) -> httpx.Response:
        return self.client.request(method, f"{self.admin_url}/{route.lstrip('/')}", **kwargs)

    def admin_state(self) -> dict:
        response = self.admin("GET", "state")
        assert response.status_code == 200, response.text
        return response.json()

    def token_state(self, token_id: str) -> dict:
        return next(t for t in self.admin_state()["tokens"] if t["id"] == token_id)

    def requests_log(self, **filters) -> list[dict]:
        response = self.admin("GET", "requests", params={k: str(v) for k, v in filters.items()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["requests"])
        return body["requests"]

    def faults(self, spec: dict) -> dict:
        response = self.admin("POST", "faults", json=spec)
        assert response.status_code == 200, response.text
        return response.json()

    def set_clock(self, offset_seconds: float) -> float:
        response = self.admin("POST", "clock", json={"offset_seconds": offset_seconds})
        assert response.status_code == 200, response.text
        self.clock_offset = offset_seconds
        return response.json()["now"]

    def now(self) -> float:
        """The simulator's idea of now."""
        return time.time() + self.clock_offset

    def reset(self) -> None:
        response = self.admin("POST", "reset")
        assert response.status_code == 204, response.text
        self.clock_offset = 0.0
        self._default_token = None

    # -------- tokens
    def mint(self, **data) -> str:
        response = self.admin("POST", "tokens", json=data)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def token_request(self, form: dict, tenant: str | None = None, **kwargs) -> httpx.Response:
        tenant = tenant or self.info["tenant_id"]
        return self.client.post(f"{self.base}/{tenant}/oauth2/v2.0/token", data=form, **kwargs)

    def token(
        self,
        client_id: str = AUTOMATION,
        *,
        secret: str | None = None,
        user: str | None = None,
        password: str | None = None,
        scope: str = GRAPH_DEFAULT,
        **mint,
    ) -> str:
        """An access token: signed in through the real token endpoint when ``secret`` or ``password`` is given,
        else minted through ``POST /_admin/tokens`` (``roles``, ``scopes``, ``user``, ``lifetime``, ...)."""
        if password is not None:
            form = {
                "grant_type": "password",
                "client_id": client_id,
                "username": user,
                "password": password,
                "scope": scope,
            }
            if secret:
                form["client_secret"] = secret
            response = self.token_request(form)
            assert response.status_code == 200, response.text
            return response.json()["access_token"]
        if secret is not None:
            response = self.token_request(
                {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
            )
            assert response.status_code == 200, response.text
            return response.json()["access_token"]
        if user is not None:
            mint["user"] = user
        if client_id is not None and "managed_identity" not in mint:
            mint["client_id"] = client_id
        return self.mint(**mint)

    def default_token(self) -> str:
        if self._default_token is None:
            self._default_token = self.token(AUTOMATION)
        return self._default_token

    # -------- graph
    def url(self, path: str) -> str:
        """A Graph path (``/users``, ``/beta/...``, ``/v1.0/...``) under the simulator's Graph URL, or an absolute URL
        (a next link), which must be https on the simulator's own origin."""
        parts = urlsplit(path)
        if parts.scheme or parts.netloc:
            self.check_own_origin(path)
            return path
        if path.startswith(("/v1.0/", "/beta/")) or path in ("/beta", "/v1.0"):
            return self.base + path
        return self.base + "/beta" + path

    def check_own_origin(self, url: str) -> None:
        """The rule the modules follow: credentials go over https to the configured host and port only. Raises
        AssertionError (nothing is sent) for an absolute URL that is not https on the simulator's own origin."""
        link, own = urlsplit(url), urlsplit(self.base)
        try:
            port = link.port
        except ValueError:
            port = None
        if (
            link.scheme != "https"
            or link.hostname != own.hostname
            or port != own.port
            or link.username is not None
            or link.password is not None
        ):
            raise AssertionError(
                f"refusing to send a Graph request (with the bearer token) to {url!r}: only https "
                f"URLs on the simulator's own origin {self.base} are followed"
            )

    def graph(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict | None = None,
        client: httpx.Client | None = None,
        **kwargs,
    ) -> httpx.Response:
        """A Graph call; ``token=None`` uses the automation app, ``token=""`` sends no Authorization header. An
        absolute URL (a next link) that is not https on the simulator's origin is refused before anything is sent."""
        url = self.url(path)
        headers = dict(headers or {})
        if token is None:
            token = self.default_token()
        if token:
            headers.setdefault("Authorization", "Bearer " + token)
        return (client or self.client).request(method, url, headers=headers, **kwargs)

    def device(self, token_id: str) -> dict:
        response = self.graph("GET", f"{DEVICES}/{token_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def create_device(self, serial: str | None = None, **fields) -> dict:
        body = {
            "serialNumber": serial or "SN-" + secrets.token_hex(4).upper(),
            "manufacturer": "Contoso",
            "model": "Test Key",
            "secretKey": pyotp.random_base32(32),
            "timeIntervalInSeconds": 30,
            **fields,
        }
        response = self.graph("POST", DEVICES, json=body)
        assert response.status_code == 201, response.text
        return {**response.json(), "_secret": body["secretKey"]}


def assert_graph_error(
    response: httpx.Response, status: int, code: str, message: str | None = None, client_request_id: str | None = None
) -> dict:
    """Graph's error envelope: error.code, error.message, innerError.request-id/date/client-request-id."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    if message is not None:
        assert message in error["message"], error["message"]
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    datetime.datetime.strptime(inner["date"], "%Y-%m-%dT%H:%M:%S")
    if client_request_id is not None:
        assert inner["client-request-id"] == client_request_id
        assert response.headers["client-request-id"] == client_request_id
    return error


def assert_identity_error(response: httpx.Response, status: int, error: str, aadsts: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [aadsts], body
    assert body["error_description"].startswith(f"AADSTS{aadsts}: "), body
    for key in ("timestamp", "trace_id", "correlation_id", "error_uri"):
        assert body[key]
    return body
