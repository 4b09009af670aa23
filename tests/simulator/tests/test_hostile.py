"""The hostile server of the test kit (tests/simulator/hostile.py): two loopback listeners (HTTPS with its own CA,
plain HTTP) that answer everything 200 and record each request without any header value or body."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import simlib

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJob3N0aWxlLXRlc3QifQ.c2lnbmF0dXJlLW9mLXRoZS1ob3N0aWxlLXRlc3Q"
SECRET = "hostile-test-client-secret-value"
RECORD_KEYS = {"time", "scheme", "method", "path", "query", "header_names", "authorization", "credential_in_body"}
READY_KEYS = {"https_url", "http_url", "https_port", "http_port", "ca_bundle", "log_file", "pid"}


class HostileProcess:
    """hostile.py in a subprocess, up once its ready file exists."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.ready_file = workdir / "ready" / "hostile.json"
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [
                sys.executable,
                str(simlib.HOSTILE),
                "--state-dir",
                str(workdir / "state"),
                "--ready-file",
                str(self.ready_file),
            ]
            + list(extra_args or []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read() if self.proc.stderr else b""
                raise RuntimeError(f"hostile.py exited with {self.proc.returncode}: {stderr!r}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.communicate()
                raise RuntimeError("hostile.py did not become ready")
            time.sleep(0.02)
        self.info = json.loads(self.ready_file.read_text(encoding="utf-8"))

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode


def read_log(info: dict) -> list[dict]:
    with open(info["log_file"], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def trusting(info: dict, **kwargs) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=info["ca_bundle"]), timeout=15, **kwargs)


# ------------------------------------------------------------------ as a script
def test_script_ready_file_requests_and_sigterm(tmp_path):
    proc = HostileProcess(tmp_path)
    try:
        info = proc.info
        assert set(info) == READY_KEYS and info["pid"] == proc.proc.pid
        assert info["https_url"] == f"https://127.0.0.1:{info['https_port']}"
        assert info["http_url"] == f"http://127.0.0.1:{info['http_port']}"
        assert info["https_port"] != info["http_port"]
        assert info["ca_bundle"] == str(tmp_path / "state" / "hostile-ca.pem")
        assert info["log_file"] == str(tmp_path / "state" / "hostile-requests.jsonl")
        assert read_log(info) == []
        with trusting(info) as http:
            response = http.get(
                f"{info['https_url']}/beta/users", params={"$top": "1"}, headers={"Authorization": "Bearer " + TOKEN}
            )
            assert response.status_code == 200 and response.json() == {"value": []}
            assert response.headers["content-type"] == "application/json"
            response = http.post(
                f"{info['http_url']}/tenant/oauth2/v2.0/token",
                data={"grant_type": "client_credentials", "client_secret": SECRET},
            )
            assert response.status_code == 200 and response.json() == {"value": []}
        https_entry, http_entry = read_log(info)
        assert set(https_entry) == RECORD_KEYS
        assert (https_entry["scheme"], https_entry["method"], https_entry["path"]) == ("https", "GET", "/beta/users")
        assert https_entry["query"] == {"$top": "1"}
        assert https_entry["authorization"] == "Bearer" and https_entry["credential_in_body"] is False
        assert "authorization" in https_entry["header_names"] and "host" in https_entry["header_names"]
        http_request = (http_entry["scheme"], http_entry["method"], http_entry["path"])
        assert http_request == ("http", "POST", "/tenant/oauth2/v2.0/token")
        assert http_entry["authorization"] is None and http_entry["credential_in_body"] is True
        text = Path(info["log_file"]).read_text(encoding="utf-8")
        assert TOKEN not in text and SECRET not in text and TOKEN[:20] not in text
    finally:
        returncode = proc.terminate()
    assert returncode == 0
    assert not proc.ready_file.exists()


def test_script_stops_on_sigint(tmp_path):
    proc = HostileProcess(tmp_path)
    assert proc.terminate(signal.SIGINT) == 0
    assert not proc.ready_file.exists()


def test_script_refuses_a_non_loopback_address(tmp_path):
    with pytest.raises(RuntimeError, match="exited with 2"):
        HostileProcess(tmp_path, ["--host", "0.0.0.0"])


# ------------------------------------------------------------------ in-process
def test_in_process_answers_any_method_and_path(hostile):
    info = hostile.info()
    assert set(info) == READY_KEYS
    with trusting(info) as http:
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND"):
            response = http.request(method, f"{info['https_url']}/any/{method.lower()}?x=1")
            assert response.status_code == 200 and response.json() == {"value": []}, method
        head = http.head(f"{info['http_url']}/")
        assert head.status_code == 200 and head.content == b""
    entries = hostile.requests()
    assert [(e["method"], e["path"], e["scheme"]) for e in entries] == (
        [(m, f"/any/{m.lower()}", "https") for m in ("GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND")]
        + [("HEAD", "/", "http")]
    )
    assert all(e["query"] == {"x": "1"} for e in entries[:-1])


def test_in_process_keep_alive(hostile):
    info = hostile.info()
    with trusting(info, limits=httpx.Limits(max_connections=1)) as http:
        peers = {
            http.get(f"{info['https_url']}/beta/users?$skiptoken={i}")
            .extensions["network_stream"]
            .get_extra_info("client_addr")
            for i in range(5)
        }
    assert len(peers) == 1 and len(hostile.requests()) == 5


@pytest.mark.parametrize(
    "value,expected",
    [
        ("Bearer " + TOKEN, "Bearer"),
        ("basic dXNlcjpwYXNz", "basic"),
        ("Negotiate abc", "Negotiate"),
        (TOKEN, "unknown"),
        (SECRET, "unknown"),
        ("", "unknown"),
    ],
)
def test_authorization_scheme_only(hostile, value, expected):
    info = hostile.info()
    with httpx.Client(timeout=15) as http:
        assert http.get(f"{info['http_url']}/x", headers={"Authorization": value}).status_code == 200
    entry = hostile.requests()[-1]
    assert entry["authorization"] == expected
    if value:
        assert value not in Path(info["log_file"]).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"data": {"client_id": "x", "client_secret": SECRET}}, True),
        ({"data": {"client_assertion_type": "jwt-bearer", "client_assertion": TOKEN}}, True),
        ({"data": {"username": "amy", "password": SECRET}}, True),
        ({"json": {"passwordCredentials": [{"password": SECRET}]}}, True),
        ({"json": {"client_secret": SECRET}}, True),
        (
            {
                "content": b'{"value": ' + json.dumps(SECRET).encode() + b"}",
                "headers": {"Content-Type": "application/json"},
            },
            False,
        ),
        ({"data": {"grant_type": "client_credentials", "client_id": "x"}}, False),
        ({"content": b"\xff\xfe not json, not a form"}, False),
    ],
)
def test_credential_in_body(hostile, kwargs, expected):
    info = hostile.info()
    with trusting(info) as http:
        assert http.post(f"{info['https_url']}/token", **kwargs).status_code == 200
    entry = hostile.requests()[-1]
    assert entry["credential_in_body"] is expected
    assert SECRET not in Path(info["log_file"]).read_text(encoding="utf-8")


def test_chunked_body_is_read(hostile):
    info = hostile.info()
    body = f"client_id=x&client_secret={SECRET}".encode()

    def chunks():
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    with trusting(info) as http:
        response = http.post(
            f"{info['https_url']}/token",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert http.get(f"{info['https_url']}/after").status_code == 200  # the connection is still in step
    first, second = hostile.requests()
    assert first["credential_in_body"] is True and "transfer-encoding" in first["header_names"]
    assert second["path"] == "/after"


def test_query_credentials_are_redacted(hostile):
    info = hostile.info()
    with httpx.Client(timeout=15) as http:
        http.get(f"{info['http_url']}/cb", params={"client_secret": SECRET, "access_token": TOKEN, "$top": "2"})
    assert hostile.requests()[-1]["query"] == {"client_secret": "<redacted>", "access_token": "<redacted>", "$top": "2"}
    text = Path(info["log_file"]).read_text(encoding="utf-8")
    assert SECRET not in text and TOKEN not in text


def test_header_names_are_lower_cased_and_values_never_recorded(hostile):
    info = hostile.info()
    with trusting(info) as http:
        http.get(f"{info['https_url']}/h", headers={"X-Identity-Header": SECRET, "Cookie": "session=" + SECRET})
    entry = hostile.requests()[-1]
    assert {"x-identity-header", "cookie", "host", "user-agent"} <= set(entry["header_names"])
    assert all(name == name.lower() for name in entry["header_names"])
    assert SECRET not in Path(info["log_file"]).read_text(encoding="utf-8")


def test_tls_needs_the_hostile_ca(hostile, sim):
    info = hostile.info()
    with httpx.Client(timeout=15) as plain, pytest.raises(httpx.ConnectError):
        plain.get(f"{info['https_url']}/")
    with simlib.http_client(sim) as sim_only, pytest.raises(httpx.ConnectError):
        sim_only.get(f"{info['https_url']}/")
    with trusting(info) as http:
        assert http.get(f"https://localhost:{info['https_port']}/").status_code == 200
    assert [e["path"] for e in hostile.requests()] == ["/"]  # failed handshakes record nothing


def test_log_truncated_from_outside(hostile):
    """hostile_clear.yml truncates the log while the server runs: later lines start the file again."""
    info = hostile.info()
    with httpx.Client(timeout=15) as http:
        for path in ("/one", "/two"):
            http.get(info["http_url"] + path)
        Path(info["log_file"]).write_text("", encoding="utf-8")
        assert hostile.requests() == []
        http.get(info["http_url"] + "/three")
    raw = Path(info["log_file"]).read_bytes()
    assert b"\0" not in raw
    assert [e["path"] for e in hostile.requests()] == ["/three"]


def test_in_process_start_and_stop(tmp_path):
    module = simlib.hostile_module()
    with module.HostileServer(str(tmp_path / "state")) as server:
        info = server.info()
        with httpx.Client(timeout=15) as http:
            assert http.get(info["http_url"] + "/ping").status_code == 200
    with httpx.Client(timeout=2) as http, pytest.raises(httpx.ConnectError):
        http.get(info["http_url"] + "/ping")
    assert [e["path"] for e in read_log(info)] == ["/ping"]
    with pytest.raises(ValueError, match="loopback"):
        module.HostileServer(str(tmp_path / "other"), host="0.0.0.0")
