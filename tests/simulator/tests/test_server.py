"""The HTTPS server: concurrency, keep-alive, TLS, process lifecycle (SIGTERM) and start-up validation."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml

import simlib
from simlib import (
    ADELE,
    AMY,
    DEVICES,
    DIEGO,
    GINA,
    LEE,
    PAT,
    POLICY,
    SEED_TOKEN_COUNT,
    SPARE,
    TOTP123456,
    methods_path,
    policy_body,
)

THREADS = 8
PER_THREAD = 25


def test_concurrent_mixed_requests(api, sim, suite_material):
    token = api.default_token()
    results: list[tuple] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(index):
        try:
            with simlib.http_client(sim) as http:
                mine = simlib.SimApi(sim, http, suite_material["seed"])
                headers = {"Authorization": "Bearer " + token}
                start.wait()
                device_id = None
                for j in range(PER_THREAD):
                    serial = f"CC-{index}-{j // 5}"
                    kind = j % 5
                    if kind == 0:
                        response = mine.graph(
                            "POST",
                            DEVICES,
                            token="",
                            headers=headers,
                            json={
                                "serialNumber": serial,
                                "manufacturer": "Concurrent",
                                "model": "T",
                                "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                                "timeIntervalInSeconds": 30,
                            },
                        )
                        device_id = response.json().get("id")
                        results.append(("create", 201, response.status_code))
                    elif kind == 1:
                        response = mine.graph("GET", f"{DEVICES}/{device_id}", token="", headers=headers)
                        results.append(
                            ("get", (200, serial), (response.status_code, response.json().get("serialNumber")))
                        )
                    elif kind == 2:
                        response = mine.graph(
                            "PATCH",
                            f"{DEVICES}/{device_id}",
                            token="",
                            headers=headers,
                            json={"displayName": f"by thread {index}"},
                        )
                        results.append(("patch", 204, response.status_code))
                    elif kind == 3:
                        response = mine.graph(
                            "GET", DEVICES, token="", headers=headers, params={"$filter": f"serialNumber eq '{serial}'"}
                        )
                        found = [d["displayName"] for d in response.json()["value"]]
                        results.append(("filter", (200, [f"by thread {index}"]), (response.status_code, found)))
                    else:
                        response = mine.graph("GET", f"/users/{AMY}", token="", headers=headers)
                        results.append(("user", 200, response.status_code))
        except BaseException as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == THREADS * PER_THREAD
    assert [r for r in results if r[1] != r[2]] == []
    tokens = api.admin_state()["tokens"]
    concurrent = [t for t in tokens if t["manufacturer"] == "Concurrent"]
    assert len(tokens) == SEED_TOKEN_COUNT + THREADS * PER_THREAD // 5
    assert len({t["serial_number"] for t in concurrent}) == len(concurrent) == THREADS * PER_THREAD // 5
    assert all(t["display_name"] == f"by thread {t['serial_number'].split('-')[1]}" for t in concurrent)
    assert len(api.requests_log(kind="graph")) == THREADS * PER_THREAD


def test_concurrent_assign_and_activate_of_one_token(api, sim, totp, suite_material):
    users = [AMY, DIEGO, LEE, ADELE, PAT, GINA]
    code = totp("TOTP123456").at(api.now())
    token = api.default_token()
    barrier = threading.Barrier(len(users))
    statuses: dict[str, int] = {}

    def attempt(user):
        with simlib.http_client(sim) as http:
            mine = simlib.SimApi(sim, http, suite_material["seed"])
            barrier.wait()
            response = mine.graph(
                "POST",
                f"{methods_path(user)}/assignAndActivate",
                token=token,
                json={"device": {"id": TOTP123456}, "verificationCode": code},
            )
            statuses[user] = response.status_code

    threads = [threading.Thread(target=attempt, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [u for u, s in statuses.items() if s == 204]
    assert len(statuses) == len(users)
    assert len(winners) == 1, statuses
    assert sorted(s for u, s in statuses.items() if u not in winners) == [409] * (len(users) - 1)
    device = api.device(TOTP123456)
    assert device["status"] == "activated" and device["assignedTo"]["id"] == winners[0]
    assert api.token_state(TOTP123456)["activations"]["accepted"] == 1
    holders = [u["id"] for u in api.admin_state()["users"] if TOTP123456 in u["hardware_oath_methods"]]
    assert holders == winners


def test_keep_alive_one_connection(sim, api):
    token = api.default_token()
    with httpx.Client(verify=simlib.ssl_context(sim), limits=httpx.Limits(max_connections=1)) as http:
        peers = set()
        for i in range(20):
            method, path, body = (
                ("PATCH", POLICY, policy_body(state="enabled")) if i % 4 else ("GET", f"{DEVICES}/{SPARE}", None)
            )
            response = http.request(method, api.url(path), headers={"Authorization": "Bearer " + token}, json=body)
            assert response.status_code == (204 if method == "PATCH" else 200)
            assert response.headers.get("connection", "").lower() != "close"
            assert response.http_version == "HTTP/1.1"
            peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
        assert len(peers) == 1


def test_keep_alive_response_is_not_delayed(sim, api):
    """A response with a body on a persistent connection must arrive promptly (no Nagle/delayed-ACK stall)."""
    token = api.default_token()
    with httpx.Client(verify=simlib.ssl_context(sim)) as http:
        headers = {"Authorization": "Bearer " + token}
        http.get(api.url(f"{DEVICES}/{SPARE}"), headers=headers)
        durations = []
        for _attempt in range(7):
            started = time.monotonic()
            assert http.get(api.url(f"{DEVICES}/{SPARE}"), headers=headers).status_code == 200
            durations.append(time.monotonic() - started)
    assert statistics.median(durations) < 0.02, durations


def test_chunked_request_body(api):
    body = json.dumps(
        {
            "serialNumber": "CHUNKED-1",
            "manufacturer": "C",
            "model": "M",
            "timeIntervalInSeconds": 30,
            "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        }
    ).encode()

    def chunks():
        for i in range(0, len(body), 16):
            yield body[i : i + 16]

    response = api.graph("POST", DEVICES, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["serialNumber"] == "CHUNKED-1"


# ------------------------------------------------------------------ TLS
def test_default_trust_fails_verification(sim):
    with httpx.Client() as plain, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        plain.get(f"{sim['authority']}/v2.0/.well-known/openid-configuration")


def test_system_ca_bundle_fails_verification(sim):
    context = ssl.create_default_context()
    with httpx.Client(verify=context) as plain, pytest.raises(httpx.ConnectError):
        plain.get(f"{sim['graph_url']}/beta/users")


def test_certificate_names(sim, ssl_ctx):
    with httpx.Client(verify=ssl_ctx) as http:
        response = http.get(f"https://localhost:{sim['port']}/{simlib.TENANT_ID}/discovery/v2.0/keys")
        assert response.status_code == 200
    address = ("127.0.0.1", sim["port"])
    with socket.create_connection(address) as raw, ssl_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cert = tls.getpeercert()
        names = {value for _kind, value in cert["subjectAltName"]}
        assert {"127.0.0.1", "localhost"} <= names
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_is_not_served(sim):
    with httpx.Client() as plain, pytest.raises(httpx.TransportError):
        plain.get(f"http://127.0.0.1:{sim['port']}/_admin/info", timeout=5)


# ------------------------------------------------------------------ process lifecycle
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path, signum):
    proc = simlib.SimProcess(str(simlib.DEMO_SEED), tmp_path)
    info = proc.info
    assert info["pid"] == proc.proc.pid
    with httpx.Client(verify=simlib.ssl_context(info)) as http:  # keeps an idle keep-alive connection open
        assert http.get(f"{info['admin_url']}/info").status_code == 200
        started = time.monotonic()
        proc.proc.send_signal(signum)
        returncode = proc.proc.wait(timeout=10)
        proc.terminate()
        assert time.monotonic() - started < 5
    assert returncode == 0, proc.stderr()
    assert not proc.ready_file.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", info["port"]), timeout=2).close()
    assert "entrasim listening on" in proc.stderr()


def test_refuses_non_loopback_host():
    result = subprocess.run(
        [sys.executable, str(simlib.SERVE), "--seed", str(simlib.DEMO_SEED), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda seed: seed["tenant"].update(id="not-a-guid"), "tenant.id must be a GUID"),
        (lambda seed: seed["tokens"][0].update(secret_key="NOT-BASE32-18"), "tokens[0]"),
        (lambda seed: seed["tokens"][1].update(serial_number="TOTP123456"), "duplicate serial number"),
        (lambda seed: seed["tokens"][0].update(assigned_to="grady_fabrikam.com#EXT#@contoso.onmicrosoft.com"), "guest"),
        (lambda seed: seed["tokens"][12].update(assigned_to="megan.bowen@contoso.com"), "already has 5"),
        (lambda seed: seed["users"][0].update(id="amy"), "users[0]: id must be a GUID"),
    ],
)
def test_invalid_seed_is_rejected(tmp_path, mutate, fragment):
    seed = simlib.load_demo_seed()
    mutate(seed)
    path = tmp_path / "bad-seed.yml"
    path.write_text(yaml.safe_dump(seed), encoding="utf-8")
    with pytest.raises(RuntimeError, match="exited with 2") as excinfo:
        simlib.SimProcess(str(path), tmp_path / "run")
    assert fragment in str(excinfo.value)
    assert not (tmp_path / "run" / "ready.json").exists()
