# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the conformance tests: the simulator of tests/simulator (started once for the session on the demo
tenant, through the simulator suite's simlib), its admin API, and the environment the real-tenant check runs with
against it."""

from __future__ import annotations

import sys
from pathlib import Path

# This checkout as ansible_collections.tokenops.entra.
import collection_path  # noqa: F401  pylint: disable=unused-import
import httpx
import pytest

SIMULATOR_TESTS = Path(__file__).resolve().parents[1] / "simulator" / "tests"
if str(SIMULATOR_TESTS) not in sys.path:
    sys.path.insert(0, str(SIMULATOR_TESTS))

import simlib  # noqa: E402

USERS = (simlib.AMY_UPN, simlib.DIEGO_UPN)  # two demo users with room for more tokens


@pytest.fixture(scope="session")
def simulator(tmp_path_factory):
    """The ready-file info of a simulator on the demo tenant, for the session."""
    process = simlib.SimProcess(str(simlib.DEMO_SEED), tmp_path_factory.mktemp("sim"))
    yield process.info
    assert process.terminate() == 0, process.stderr()


@pytest.fixture(scope="session")
def admin_http(simulator):
    with simlib.http_client(simulator) as client:
        yield client


class Admin:
    """The simulator's admin API (docs/simulator.md, "Admin API")."""

    def __init__(self, info: dict, http: httpx.Client) -> None:
        self.info = info
        self.http = http

    def call(self, method: str, route: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, f"{self.info['admin_url']}/{route}", **kwargs)
        assert response.status_code in (200, 204), response.text
        return response

    def settings(self, **values) -> None:
        self.call("POST", "settings", json=values)

    def throttle_once(self, path: str = "^/beta/users$") -> None:
        """The next GET of ``path`` (a regular expression) is answered as a 429 of the read quota, Retry-After 0."""
        rule = {"match": {"path": path, "method": "GET"}, "count": 1}
        action = {"type": "status", "status": 429, "retry_after": 0, "quota": "read_rate"}
        self.call("POST", "faults", json={"rules": [{"name": "conformance-429", **rule, "action": action}]})

    def faults(self, *rules: dict) -> None:
        self.call("POST", "faults", json={"rules": list(rules)})

    def tokens(self) -> list[dict]:
        return self.call("GET", "state").json()["tokens"]

    def throwaway_tokens(self) -> list[dict]:
        return [token for token in self.tokens() if token["serial_number"].upper().startswith("TOKENOPS-CONF-")]

    def graph_requests(self) -> list[dict]:
        return [entry for entry in self.call("GET", "requests").json()["requests"] if entry["kind"] == "graph"]


@pytest.fixture
def admin(simulator, admin_http):
    """The admin API, the simulator reset to its seed (state, settings, faults, log) first."""
    sim_admin = Admin(simulator, admin_http)
    sim_admin.call("POST", "reset")
    return sim_admin


@pytest.fixture
def check_env(simulator) -> dict[str, str]:
    """What make conformance takes from the environment, pointing at the simulator."""
    return {
        "AZURE_TENANT_ID": simulator["tenant_id"],
        "AZURE_CLIENT_ID": simlib.AUTOMATION,
        "AZURE_CLIENT_SECRET": simlib.AUTOMATION_SECRET,
        "AZURE_AUTHORITY_HOST": simulator["authority_host"],
        "TOKENOPS_GRAPH_ENDPOINT": simulator["graph_url"],
        "TOKENOPS_CA_PATH": simulator["ca_bundle"],
        "TOKENOPS_CONFORMANCE_USERS": ",".join(USERS),
        "TOKENOPS_CONFORMANCE_WRITES": "yes",
    }
