"""Fixtures of the simulator suite: one real simulator (serve.py over HTTPS) for the whole session, reset before
every test, and clients that verify its certificate."""

from __future__ import annotations

import sys

import httpx
import pytest

import simlib

# The in-process tests (test_indexes.py) import the simulator's package, entrasim, from beside serve.py.
if str(simlib.SIM_DIR) not in sys.path:
    sys.path.insert(0, str(simlib.SIM_DIR))


@pytest.fixture(scope="session")
def suite_material(tmp_path_factory):
    """The session seed (demo.yml + generated extras) and the private material tests need (certificate key...)."""
    return simlib.build_suite_seed(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="session")
def sim_process(suite_material, tmp_path_factory):
    proc = simlib.SimProcess(suite_material["seed_path"], tmp_path_factory.mktemp("sim"))
    yield proc
    ready_file = proc.ready_file
    returncode = proc.terminate()
    assert returncode == 0, proc.stderr()
    assert not ready_file.exists(), "the simulator did not remove its ready file"


@pytest.fixture(scope="session")
def sim(sim_process):
    """The ready-file info of the session simulator (authority, graph_url, admin_url, ca_bundle, ...)."""
    return sim_process.info


@pytest.fixture(scope="session")
def ssl_ctx(sim):
    return simlib.ssl_context(sim)


@pytest.fixture(scope="session")
def admin_client(ssl_ctx):
    with httpx.Client(verify=ssl_ctx, timeout=15) as client:
        yield client


@pytest.fixture(autouse=True)
def reset_sim(sim, admin_client):
    """Every test starts from the seed: state, clock, faults, quotas and request log."""
    response = admin_client.post(f"{sim['admin_url']}/reset")
    assert response.status_code == 204, response.text
    yield


@pytest.fixture
def client(ssl_ctx):
    """An httpx client trusting only the simulator CA (certificate verification on)."""
    with httpx.Client(verify=ssl_ctx, timeout=15) as http:
        yield http


@pytest.fixture
def api(sim, client, suite_material):
    return simlib.SimApi(sim, client, suite_material["seed"])


@pytest.fixture
def requests_log(api):
    return api.requests_log


@pytest.fixture
def totp(suite_material):
    """``totp(serial)``: a simlib.Totp for a seeded token, with its hash function and interval."""
    return lambda serial: simlib.totp_of(suite_material["seed"], serial)


@pytest.fixture
def msal_http(client, sim):
    return simlib.MsalHttpClient(client, sim["graph_url"])


@pytest.fixture
def hostile(tmp_path):
    """An in-process hostile server (tests/simulator/hostile.py): HTTPS with its own CA and plain HTTP on loopback,
    answering everything 200 and recording what it got (``.requests()``, ``.info()``)."""
    server = simlib.hostile_module().HostileServer(str(tmp_path / "hostile"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_identity_env(monkeypatch):
    """No managed-identity environment from the machine leaks into a test."""
    for name in (
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
