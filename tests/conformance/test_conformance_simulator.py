# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real-tenant check (conformance_check.py) against the simulator: its default answers are the documented ones
(every operation of the fixtures answered and compared, no difference), each other shape it offers is listed as a
difference, and the check keeps secrets out of what it prints and writes, refuses to run without consent, names a
failed step, and cleans up after a failure, an interruption, or a run that left tokens behind."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import conformance_check
import conformance_shapes
import pytest

import simlib

CHECK = Path(conformance_check.__file__).resolve()
BULK = "bulk_create"
OTHER_SHAPES = {  # the simulator's settings for the shapes it offers besides the documented ones
    "bulk_answer": "flat",
    "bulk_refusal": "whole",
    "error_wording": "opaque",
    "throttle_information": "omitted",
}


class Recorded(conformance_check.Secrets):
    """Secrets that the test can see (every instance's values)."""

    seen: set[str] = set()

    def add(self, value: str | None) -> None:
        super().add(value)
        Recorded.seen |= self.values


@pytest.fixture
def run(tmp_path, monkeypatch):
    """``run(environ, *args)``: the check in this process; (exit status, output, report)."""
    monkeypatch.setattr(conformance_check, "Secrets", Recorded)
    Recorded.seen = set()

    def run_check(environ: dict[str, str], *args: str) -> tuple[int, str, dict]:
        out = io.StringIO()
        report = tmp_path / "report.json"
        code = conformance_check.main(["--report", str(report), *args], environ, out)
        return code, out.getvalue(), json.loads(report.read_text()) if report.exists() else {}

    return run_check


def lines(report: dict) -> set[str]:
    return {difference["line"] for difference in report["differences"]}


def assert_no_secret(output: str, report: dict) -> None:
    """No secret of the run in what it printed or wrote, and nothing it had to mask: none was put there."""
    written = output + json.dumps(report)
    assert len(Recorded.seen) > 4  # the client secret, an access token, the seeds and codes
    for value in Recorded.seen:
        assert value not in written
    assert "***" not in written


def test_the_simulators_default_answers_are_the_documented_ones(admin, check_env, run):
    """Test 1: each operation's default answer has its fixture's shape; the check finds no difference."""
    admin.throttle_once()  # one 429, to compare it too
    code, output, report = run(check_env)
    assert (code, report["differences"]) == (0, []), output
    answered = {name for name, op in report["operations"].items() if any(a["role"] == "answer" for a in op["answers"])}
    assert set(conformance_shapes.Fixtures.load().operations) - {"throttled"} <= answered
    assert [entry["status"] for entry in report["throttling"]] == [429]
    assert report["result"] == "no differences" and report["cleanup"] == {"tokens": 4, "left": 0}
    assert admin.throwaway_tokens() == []
    assert_no_secret(output, report)
    # Ids are hashed, user names and serial numbers left out
    written = json.dumps(report)
    for value in (simlib.TENANT_ID, simlib.AUTOMATION, simlib.AMY, simlib.AMY_UPN, simlib.DIEGO_UPN, "TOKENOPS-CONF"):
        assert value not in written


def test_every_other_shape_is_a_difference(admin, check_env, run):
    admin.settings(**OTHER_SHAPES)
    admin.throttle_once()
    code, output, report = run(check_env)
    assert code == conformance_check.EXIT_DIFFERENT, output
    assert lines(report) == {
        f"{BULK}: status: documented: 201; your tenant: 200",
        f'{BULK}: body.value[].@odata.type: documented: "#microsoft.graph.hardwareOathAuthenticationMethod"; '
        "your tenant: missing",
        f"{BULK}: body.value[].device: documented: object; your tenant: missing",
        "bulk_refusal: body.error.details: assumed: array; your tenant: missing",
        "throttled (list_users_by_ids): header x-ms-throttle-information: documented: sent; your tenant: not sent",
    }
    for line in lines(report):
        assert line in output
    assert report["observations"]["bulk_answer"] == {"status": 200, "items": ["device with @contentId"]}
    assert admin.throwaway_tokens() == []
    assert_no_secret(output, report)


def test_a_bulk_creation_answered_without_a_body(admin, check_env, run):
    """The tokens are then found by a listing of their serial numbers; the run goes on."""
    admin.settings(bulk_answer="empty")
    code, output, report = run(check_env)
    assert code == conformance_check.EXIT_DIFFERENT, output
    assert lines(report) == {
        f"{BULK}: status: documented: 201; your tenant: 204",
        f"{BULK}: body: documented: object; your tenant: no body",
    }
    assert report["observations"]["bulk_answer"] == {"status": 204, "items": ["none listed"]}
    assert admin.throwaway_tokens() == []


def test_no_consent_no_request(admin, check_env, run):
    del check_env["TOKENOPS_CONFORMANCE_WRITES"]
    code, output, report = run(check_env)
    assert code == conformance_check.EXIT_FAILED
    assert "set TOKENOPS_CONFORMANCE_WRITES=yes" in output
    assert report == {}
    assert admin.graph_requests() == []


@pytest.mark.parametrize(
    "change, said",
    [
        ({"TOKENOPS_CONFORMANCE_USERS": simlib.AMY_UPN}, "TOKENOPS_CONFORMANCE_USERS (two different test users"),
        ({"AZURE_CLIENT_SECRET": ""}, "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH"),
        ({"TOKENOPS_GRAPH_ENDPOINT": "http://127.0.0.1:1"}, "must use https://"),
    ],
)
def test_a_configuration_it_refuses(admin, check_env, run, change, said):
    code, output, _report = run({**check_env, **change})
    assert code == conformance_check.EXIT_FAILED
    assert said in output
    assert admin.graph_requests() == []


def test_a_failed_step_is_named_and_its_tokens_removed(admin, check_env, run):
    admin.faults(
        {
            "name": "refuse",
            "match": {"path": "assignAndActivate$", "method": "POST"},
            "action": {"type": "status", "status": 500},
        }
    )
    code, output, report = run(check_env)
    assert code == conformance_check.EXIT_FAILED
    assert "step assign_and_activate failed: Graph answered 500 generalException" in output
    assert "(request-id " in output and "request-id " in report["failure"]
    assert report["result"] == "failed"
    assert not any(d["operation"] == "assign_and_activate" for d in report["differences"])  # a failure, not a shape
    # The first token was activated for Amy by then: unassigned, then deleted
    assert admin.throwaway_tokens() == []
    assert_no_secret(output, report)


def test_ctrl_c_removes_the_tokens(admin, check_env, tmp_path):
    """The command line, interrupted once its tokens exist: it cleans up and fails."""
    admin.faults(
        {"name": "slow", "match": {"path": "/activate$", "method": "POST"}, "action": {"type": "latency", "ms": 3000}}
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "TOKENOPS_"))}
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, str(CHECK), "--report", str(tmp_path / "report.json")],
        env={**environ, **check_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(process.stdout.readline())
        if "inventory listed" in seen[-1] or not seen[-1]:
            break
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[0]
    output = "".join(seen) + rest
    assert process.returncode == conformance_check.EXIT_FAILED, output
    assert "FAILED: interrupted" in output
    assert admin.throwaway_tokens() == []


def test_cleanup_of_what_a_run_left(admin, check_env, run, simulator):
    with simlib.http_client(simulator) as http:
        api = simlib.SimApi(simulator, http, simlib.load_demo_seed())
        prefix = "TOKENOPS-CONF-0BADC0DE-"
        left = [api.create_device(f"{prefix}{n}")["id"] for n in (1, 2)]
        assigned = api.graph("POST", simlib.methods_path(simlib.AMY), json={"device": {"id": left[0]}})
        assert assigned.status_code == 201, assigned.text
    before = len(admin.tokens())
    del check_env["TOKENOPS_CONFORMANCE_USERS"]  # not needed to clean up
    code, output, _report = run(check_env, "--cleanup", prefix)
    assert code == conformance_check.EXIT_SAME, output
    assert f"{prefix}1 removed" in output and f"{prefix}2 removed" in output
    assert admin.throwaway_tokens() == []
    assert len(admin.tokens()) == before - 2
