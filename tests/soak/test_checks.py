"""The soak's judgement (checks.py) and its world (world.py) on logs and states written by hand: each check finds what
it must, and nothing where there is nothing to find."""

from __future__ import annotations

import checks
import pytest
import world

WORLD = world.build(20)
TOKENS = {token.kind: token for token in WORLD.tokens}  # one token of each kind
USERS = {**WORLD.user_ids(), **{uid: uid for uid in WORLD.user_ids().values()}}
DEVICES = "/beta/directory/authenticationMethodDevices/hardwareOathDevices"


def user_id(token: world.Token) -> str:
    return USERS[token.user.lower()]


def methods(user: str) -> str:
    return f"/beta/users/{user.replace('@', '%40')}/authentication/hardwareOathMethods"


def state(status: str | None, holder: str | None) -> dict | None:
    return None if status is None else {"status": status, "holder": holder, "model": world.MODEL}


class Log:
    """Graph write entries as the simulator logs them, numbered in the order they are added."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def write(self, session: str, method: str, path: str, token: world.Token, **fields) -> dict:
        number = len(self.entries) + 1
        entry = {
            "seq": number,
            "handled": number,
            "kind": "graph",
            "method": method,
            "path": path,
            "write": True,
            "status": fields.pop("status", 204),
            "session": session,
            "targets": [{"token": f"id-{token.serial_number}", "serial_number": token.serial_number}],
            **fields,
        }
        self.entries.append(entry)
        return entry

    def effect(self, token: world.Token, before: tuple, after: tuple) -> list[dict]:
        return [
            {
                "token": f"id-{token.serial_number}",
                "serial_number": token.serial_number,
                "before": state(*before),
                "after": state(*after),
            }
        ]

    def ledger(self) -> checks.Ledger:
        return checks.Ledger(WORLD, USERS).walk(self.entries)


def activation(log: Log, session: str, token: world.Token, verification: str, before=("assigned", None)) -> dict:
    uid = user_id(token)
    effects = log.effect(token, before, ("activated", uid)) if verification == "accepted" else []
    return log.write(
        session,
        "POST",
        f"{methods(token.user)}/assignAndActivate",
        token,
        status=204 if verification == "accepted" else 400,
        verification=verification,
        effects=effects,
    )


def test_a_clean_run_finds_nothing():
    log = Log()
    token = TOKENS["assign and activate"]
    activation(log, "one", token, "accepted", before=("available", None))
    ledger = log.ledger()
    assert (ledger.replays, ledger.twice, ledger.twice_same_session, ledger.harmful) == ([], [], [], [])
    assert ledger.side_by_side() == []


def test_a_code_used_again_by_another_run_is_a_replay_and_a_write_sent_twice():
    log = Log()
    token = TOKENS["assign and activate"]
    activation(log, "killed", token, "accepted", before=("available", None))
    activation(log, "next", token, "replayed")
    ledger = log.ledger()
    assert len(ledger.replays) == 1
    assert [(t["op"], t["session"], t["done_by"]) for t in ledger.twice] == [("activate", "next", "killed")]


def test_a_write_repeated_by_its_own_run_is_counted_apart():
    log = Log()
    token = TOKENS["delete"]
    log.write("one", "DELETE", f"{DEVICES}/id-x", token, effects=log.effect(token, ("available", None), (None, None)))
    log.write("one", "DELETE", f"{DEVICES}/id-x", token, status=404)
    ledger = log.ledger()
    assert ledger.twice == []
    assert [(t["op"], t["status"]) for t in ledger.twice_same_session] == [("delete", 404)]


def test_the_same_write_after_a_change_in_between_is_not_sent_twice():
    log = Log()
    token = TOKENS["reassign"]
    activation(log, "one", token, "accepted", before=("available", None))
    log.write(
        "one",
        "DELETE",
        f"{methods(token.user)}/id-x",
        token,
        effects=log.effect(token, ("activated", user_id(token)), ("available", None)),
    )
    activation(log, "two", token, "accepted", before=("available", None))
    ledger = log.ledger()
    assert ledger.twice == []
    assert [h["problem"] for h in ledger.harmful] == ["taken from its declared holder"]


def test_a_user_named_by_id_or_by_user_principal_name_is_the_same_user():
    log = Log()
    token = TOKENS["activate"]
    activation(log, "one", token, "accepted")
    log.write("two", "POST", f"{methods(user_id(token))}/id-x/activate", token, status=400, verification="replayed")
    assert [t["op"] for t in log.ledger().twice] == ["activate"]


def test_harmful_changes_whenever_they_happen():
    log = Log()
    kept, available = TOKENS["already right"], TOKENS["unassign"]
    log.write("one", "DELETE", f"{DEVICES}/id-x", kept, effects=log.effect(kept, ("available", None), (None, None)))
    log.write(
        "one", "POST", methods("bench.user00000@contoso.com"), available,
        effects=log.effect(available, ("available", None), ("assigned", "someone")),
    )  # fmt: skip
    problems = sorted(h["problem"] for h in log.ledger().harmful)
    assert problems == ["lost: deleted, declared to stay", "wrong holder: given to a user it is not declared for"]


def test_writes_side_by_side():
    log = Log()
    token = TOKENS["delete"]
    for session in ("a", "b", "a", "c"):
        log.write(session, "DELETE", f"{DEVICES}/id-x", token, status=404)
    pairs = log.ledger().side_by_side()
    assert [(p["sessions"], p["writes_of_second_within_first"]) for p in pairs] == [(["a", "b"], 1)]


def test_operations_of_each_write():
    def op(method, path):
        return checks.operation({"method": method, "path": path})

    upn = methods("amy@contoso.com")
    assert op("POST", upn) == ("assign", "amy%40contoso.com")
    assert op("POST", f"{upn}/assignAndActivateBySerialNumber")[0] == "activate"
    assert op("POST", f"{upn}/abc/activate")[0] == "activate"
    assert op("POST", f"{upn}/abc/deactivate")[0] == "deactivate"
    assert op("DELETE", f"{upn}/abc")[0] == "unassign"
    assert op("PATCH", DEVICES) == ("create", None)
    assert op("PATCH", f"{DEVICES}/abc") == ("update", None)
    assert op("DELETE", f"{DEVICES}/abc") == ("delete", None)
    assert op("GET", f"{upn}/abc") is None


def tenant_as_declared() -> dict[str, dict]:
    tokens = {}
    for token in WORLD.tokens:
        if token.declared == "absent":
            continue
        holder = {"id": user_id(token)} if token.user else None
        tokens[token.serial_number.lower()] = {
            "status": token.declared,
            "assigned_to": holder,
            "manufacturer": world.MANUFACTURER,
            "model": world.MODEL,
        }
    return tokens


def test_end_state_as_declared():
    end = checks.end_state(WORLD, tenant_as_declared(), USERS)
    assert (end["as_declared"], end["problems"]) == (len(WORLD.tokens), {})


@pytest.mark.parametrize(
    ("kind", "change", "problem"),
    [
        ("already right", None, "missing (declared to stay, not in the tenant)"),
        ("delete", {"status": "available"}, "not deleted (declared absent)"),
        ("reassign", {"assigned_to": {"id": "someone"}}, "wrong holder"),
        ("activate", {"assigned_to": None, "status": "available"}, "unassigned, declared held"),
        ("unassign", {"assigned_to": {"id": "someone"}}, "held, declared available"),
        ("assign", {"status": "activated"}, "wrong status"),
        ("update, assign and activate", {"model": world.OLD_MODEL}, "wrong fields"),
    ],
)
def test_end_state_finds_each_difference(kind, change, problem):
    tokens = tenant_as_declared()
    serial = TOKENS[kind].serial_number
    if change is None:
        del tokens[serial.lower()]
    else:
        tokens.setdefault(
            serial.lower(), {"assigned_to": None, "manufacturer": world.MANUFACTURER, "model": world.MODEL}
        )
        tokens[serial.lower()].update(change)
    end = checks.end_state(WORLD, tokens, USERS)
    assert end["problems"] == {problem: [serial]}


def test_outcomes_need_a_row_for_every_token():
    rows = [{"serial_number": t.serial_number, "outcome": "unchanged"} for t in WORLD.tokens]
    assert checks.outcomes(WORLD, {"tokens": rows})["missing"] == 0
    rows[3] = {
        "serial_number": rows[3]["serial_number"],
        "outcome": "failed",
        "error": "activate token X: Graph answered 503 serviceNotAvailable: later",
    }
    found = checks.outcomes(WORLD, {"tokens": rows[1:]})
    assert (found["missing"], found["failed"], found["failed_reasons"]) == (1, 1, {"503 serviceNotAvailable": 1})
    rows[4] = {
        "serial_number": rows[4]["serial_number"],
        "outcome": "failed",
        "error": "POST https://127.0.0.1:1/x: the connection failed after the request was sent (ReadError)",
    }
    reasons = checks.outcomes(WORLD, {"tokens": rows})["failed_reasons"]
    assert reasons == {
        "503 serviceNotAvailable": 1,
        "answer lost (the connection failed after the request was sent)": 1,
    }


def test_every_kind_of_work_is_in_the_mix():
    numbers = world.counts(200)
    assert sum(n for _kind, n in numbers) == 200 and all(n > 0 for _kind, n in numbers)
    assert WORLD.kinds() == {kind.name: n for kind, n in world.counts(20)}


def test_fault_shares_are_shares_of_all_requests():
    """The first rule that fires wins: each rule's probability is taken of what the rules before it let through."""
    faults = world.Faults()
    rules = world.fault_spec(faults)["rules"]

    def shares(method: str) -> dict[str, float]:
        left, out = 1.0, {}
        for rule in rules:
            if rule["match"].get("method") not in (None, method):
                continue
            out[rule["name"]] = left * rule["probability"]
            left -= out[rule["name"]]
        return out

    write = shares("POST")
    assert sum(v for k, v in write.items() if k.startswith("429")) == pytest.approx(faults.throttled, abs=1e-4)
    assert sum(v for k, v in write.items() if k.startswith("503")) == pytest.approx(faults.unavailable, abs=1e-4)
    assert write["reset"] == pytest.approx(faults.resets, abs=1e-4)
    assert write["commit-then-drop-post"] == pytest.approx(faults.commit_then_drop, abs=1e-4)
    forms = [r["action"] for r in rules if r["name"].startswith("429")]
    assert {f.get("retry_after_format", "seconds") for f in forms} == {"seconds", "http-date"}
    assert None in {f["retry_after"] for f in forms} and 0.5 in {f["retry_after"] for f in forms}
