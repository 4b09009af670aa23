# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying a whole inventory's plans (apply_inventory) on a fakes.FakeInventoryApi: creations in bulk, a lost bulk
answer judged from a listing, activations with computed codes, one token's failure never stopping the others, and
the same outcomes whatever the concurrency."""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import ISSUES, GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import (
    ACTIVATE,
    ASSIGN_AND_ACTIVATE,
    CREATE,
    DELETE,
    UNASSIGN,
    UPDATE,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import CodeSource, totp_code
from ansible_collections.tokenops.entra.plugins.module_utils._execution import inventory_apply
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    MAX_BULK_CREATE,
    CodeRefused,
    TokenExists,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.inventory_apply import Secrets, apply_inventory
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery
from ansible_collections.tokenops.entra.plugins.module_utils._planning.inventory import (
    Entry,
    PruneScope,
    plan_inventory,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import FakeInventoryApi
from ansible_collections.tokenops.entra.tests.unit.plugins.module_utils._planning import tenant_model as model
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, SECRET, inv, refused

MODEL_NOW = 1_800_000_000.0  # the clock of the tenant model and of its codes

OTHER_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_800_000_000.0  # the clock of every CodeSource here
STEP = int(NOW // 30) + 1  # the time step of the first code computed (one step ahead of the current one)
USERS = {AMY.user_principal_name: AMY, ADELE.user_principal_name: ADELE}
FIELDS = {"manufacturer": "Contoso", "model": "OATH-TOTP"}  # as inv() lists them


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Every code source computes its codes at NOW."""
    monkeypatch.setattr(inventory_apply, "CodeSource", functools.partial(CodeSource, clock=lambda: NOW))


def entry(index, serial, state="activated", user=AMY.user_principal_name, **fields) -> Entry:
    return Entry(index, serial, state, user, **{"has_secret": True, **FIELDS, **fields})


def listed(serial, status="available", holder=None, **fields):
    """A token of the inventory (id ``id-{serial}``)."""
    return replace(inv(status, holder, **fields), id=f"id-{serial}", serial_number=serial)


def secrets(*serials, secret=SECRET, codes=None):
    return Secrets({serial.casefold(): secret for serial in serials}, dict(codes or {}))


def apply(api, entries, tokens=(), *, secret_of=None, concurrency=1, logs=None, stop_requested=None, **options):
    """Plan ``entries`` against ``tokens`` and apply the plans on ``api``; returns the outcomes."""
    plans = plan_inventory(entries, tokens, USERS, **options)
    given = secret_of or secrets(*(e.serial_number for e in entries))
    log = (logs if logs is not None else []).append
    stop = {"stop_requested": stop_requested} if stop_requested else {}
    return apply_inventory(api, plans, given, concurrency=concurrency, log=log, **stop)


def kinds(actions):
    return [action.kind for action in actions]


def summary(outcomes):
    return [(o.plan.serial_number, o.outcome, kinds(o.done), o.error) for o in outcomes]


def sent(api, kind):
    """The calls of ``kind`` that ``api`` received."""
    return [call for call in api.calls if call[0] == kind]


# ---------------------------------------------------------------------------------------------------- a stopped run
def test_once_the_run_is_told_to_stop_no_tokens_work_starts_and_each_says_so():
    """ansible-playbook was killed: the module must not go on writing beside the next run. The tokens already under
    way (here the first one) end as they would; the others fail as not started, with nothing written."""
    asked: list[int] = []

    def stop_requested() -> bool:
        asked.append(1)
        return len(asked) > 1

    tokens = [listed(f"T-{n}") for n in range(3)]
    api = FakeInventoryApi(tokens=tokens)
    outcomes = apply(api, [entry(n, f"T-{n}") for n in range(3)], tokens, stop_requested=stop_requested)
    started = [o for o in outcomes if o.outcome == "activated"]  # whichever token's work asked first
    assert len(started) == 1
    assert [call[2] for call in sent(api, ASSIGN_AND_ACTIVATE)] == [f"id-{started[0].plan.serial_number}"]
    for o in outcomes:
        if o is not started[0]:
            assert o.error == inventory_apply.STOPPED.format(serial=o.plan.serial_number, which="any write for it")
            assert o.error.startswith(f"token {o.plan.serial_number}: not done: this run stopped before it made any")
            assert o.done == []


def test_a_stopped_run_sends_no_more_bulk_creations_and_leaves_what_it_created_to_the_next_run():
    """Told to stop once the first bulk creation is answered: its tokens are created (held by their users, the next
    run activates them), the other part is not sent."""
    calls = iter([False])  # the first part is sent, then the run is told to stop

    api = FakeInventoryApi()
    entries = [entry(n, f"T-{n:03d}") for n in range(150)]
    outcomes = apply(api, entries, concurrency=4, stop_requested=lambda: next(calls, True))
    [(_name, bodies)] = sent(api, "create_tokens")
    assert len(bodies) == 100
    assert sent(api, ACTIVATE) == []
    for o in outcomes[:100]:
        assert kinds(o.done) == [CREATE]
        assert o.error == inventory_apply.STOPPED.format(
            serial=o.plan.serial_number, which="its writes after its creation (in bulk)"
        )
    for o in outcomes[100:]:
        assert o.done == []
        assert o.error == inventory_apply.STOPPED.format(serial=o.plan.serial_number, which="any write for it")


# ---------------------------------------------------------------------------------------------------- creations
def test_creations_go_in_bulk_one_request_per_hundred_tokens():
    api = FakeInventoryApi()
    entries = [entry(n, f"T-{n:03d}", "available", None) for n in range(250)]
    outcomes = apply(api, entries)
    bulks = sent(api, "create_tokens")
    assert MAX_BULK_CREATE == 100
    assert [len(call[1]) for call in bulks] == [100, 100, 50]
    assert [body["serialNumber"] for call in bulks for body in call[1]] == [e.serial_number for e in entries]
    assert all(body["secretKey"] == SECRET and "assignTo" not in body for call in bulks for body in call[1])
    assert sent(api, "create") == []  # never one by one
    assert {o.outcome for o in outcomes} == {"created"}
    assert all(kinds(o.done) == [CREATE] and o.error is None for o in outcomes)


def test_a_token_held_when_created_is_created_for_its_user():
    api = FakeInventoryApi()
    outcomes = apply(api, [entry(0, "T-1", "assigned")])
    [(_name, bodies)] = sent(api, "create_tokens")
    assert bodies[0]["assignTo"] == {"id": AMY.id}
    assert summary(outcomes) == [("T-1", "created", [CREATE], None)]
    assert api.writes == 1  # assigned in the creation: nothing more


def test_refused_items_fail_only_themselves():
    refusal = GraphError("Creating token T-1: Graph refused it in a bulk creation: badRequest: bad model", status=400)
    api = FakeInventoryApi(refuse={("create_tokens", "T-1"): refusal})
    entries = [entry(n, f"T-{n}", "available", None) for n in range(3)]
    outcomes = apply(api, entries)
    assert len(sent(api, "create_tokens")) == 1
    assert summary(outcomes) == [
        ("T-0", "created", [CREATE], None),
        ("T-1", "failed", [], refusal.message),
        ("T-2", "created", [CREATE], None),
    ]


def test_a_refused_bulk_request_fails_its_tokens_only():
    denied = GraphError("Creating 100 tokens: Graph answered 403", status=403, request_id="rid-403")
    api = FakeInventoryApi(failures={0: denied})  # the first write: the first bulk creation
    entries = [entry(n, f"T-{n:03d}", "available", None) for n in range(150)]
    outcomes = apply(api, entries)
    assert [len(call[1]) for call in sent(api, "create_tokens")] == [100, 50]
    assert {(o.outcome, o.error, o.request_id) for o in outcomes[:100]} == {("failed", denied.message, "rid-403")}
    assert {o.outcome for o in outcomes[100:150]} == {"created"}


def test_a_token_refused_as_in_use_in_bulk_is_the_one_another_run_created():
    """Another controller created T-1 after this run read the inventory: Graph refuses it as a conflict. A listing
    shows it, held by its declared user: its creation is that run's, never sent again; its activation follows (or,
    where the other token is held by someone else, it fails asking for a new run, with nothing written)."""
    conflict = TokenExists(GraphError("Creating token T-1: Graph refused it in a bulk creation: conflict", status=400))
    taken = TokenExists(GraphError("Creating token T-2: Graph refused it in a bulk creation: conflict", status=400))
    api = FakeInventoryApi(
        refuse={("create_tokens", "T-1"): conflict, ("create_tokens", "T-2"): taken},
        tokens=[listed("T-1", "assigned", AMY), listed("T-2", "assigned", ADELE)],
    )
    outcomes = apply(api, [entry(n, f"T-{n}", user=AMY.user_principal_name) for n in range(3)])
    assert len(sent(api, "create_tokens")) == 1 and sent(api, "create") == []
    assert summary(outcomes)[0] == ("T-0", "created", [CREATE, ACTIVATE], None)
    assert summary(outcomes)[1][:3] == ("T-1", "created", [CREATE, ACTIVATE])
    assert (
        outcomes[1]
        .done[0]
        .reason.endswith("; done by another run at the same time (the token, read again, showed it done)")
    )
    assert [call[2] for call in sent(api, ACTIVATE)].count("id-T-1") == 1  # the token the other run created
    assert summary(outcomes)[2][1] == "failed"
    assert "was created by another run after this one read the inventory" in outcomes[2].error
    assert "held by Adele Vance" in outcomes[2].error


def test_a_lost_bulk_answer_is_judged_from_a_listing_and_only_the_missing_are_created():
    # Graph's answer is lost; the listing of those serial numbers shows T-1 only (the others never show).
    api = FakeInventoryApi(lost={0}, tokens=[listed("T-1")])
    logs: list[str] = []
    entries = [entry(n, f"T-{n}", "available", None) for n in range(3)]
    outcomes = apply(api, entries, logs=logs)
    listings = sent(api, "list_tokens")
    assert {call[1] for call in listings} == {TokenQuery(serial_numbers=("T-0", "T-1", "T-2"))}
    assert api.sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]  # waited for the others to show, for at most 10 s
    assert [call[1]["serialNumber"] for call in sent(api, "create")] == ["T-0", "T-2"]
    assert all(call[1]["secretKey"] == SECRET for call in sent(api, "create"))
    assert summary(outcomes) == [(f"T-{n}", "created", [CREATE], None) for n in range(3)]
    assert "listing those serial numbers before anything else" in logs[0]


def test_a_lost_bulk_answer_whose_tokens_all_show_sends_nothing_again():
    api = FakeInventoryApi(lost={0}, tokens=[listed("T-0"), listed("T-1")])
    outcomes = apply(api, [entry(n, f"T-{n}", "available", None) for n in range(2)])
    assert len(sent(api, "list_tokens")) == 1 and api.sleeps == []
    assert sent(api, "create") == []
    assert [o.outcome for o in outcomes] == ["created", "created"]


def test_a_lost_answer_of_a_creation_one_by_one_is_judged_from_a_listing_too():
    # The bulk answer is lost (nothing created but T-1), then the answer of T-0's own creation: T-0 is looked up
    # before it is sent again (the soak's finding: that second lost answer failed the token).
    api = FakeInventoryApi(lost={0, 1}, tokens=[listed("T-1")])
    logs: list[str] = []
    outcomes = apply(api, [entry(n, f"T-{n}", "available", None) for n in range(3)], logs=logs)
    assert [call[1]["serialNumber"] for call in sent(api, "create")] == ["T-0", "T-0", "T-2"]
    assert sent(api, "list_tokens")[-1][1] == TokenQuery(serial_numbers=("T-0",))
    assert summary(outcomes) == [(f"T-{n}", "created", [CREATE], None) for n in range(3)]
    assert any(line.endswith("reading token T-0 again before anything else") for line in logs)


def test_a_missing_token_refused_after_a_lost_bulk_answer_fails_alone():
    refusal = GraphError("Creating token T-0: Graph answered 400", status=400)
    api = FakeInventoryApi(lost={0}, tokens=[listed("T-1")], refuse={("create", "T-0"): refusal})
    outcomes = apply(api, [entry(n, f"T-{n}", "available", None) for n in range(3)])
    assert summary(outcomes) == [
        ("T-0", "failed", [], refusal.message),
        ("T-1", "created", [CREATE], None),
        ("T-2", "created", [CREATE], None),
    ]


@pytest.mark.parametrize("listed_first", [0, 1])  # a 204 lists none; an answer may list some
def test_tokens_a_bulk_answer_does_not_list_are_found_by_a_listing_never_sent_again(listed_first):
    api = FakeInventoryApi(bulk_listed=listed_first)
    outcomes = apply(api, [entry(n, f"T-{n}") for n in range(3)])  # created for Amy, then activated
    assert len(sent(api, "create_tokens")) == 1 and sent(api, "create") == []
    unlisted = tuple(f"T-{n}" for n in range(listed_first, 3))
    assert [call[1] for call in sent(api, "list_tokens")] == [TokenQuery(serial_numbers=unlisted)]
    assert summary(outcomes) == [(f"T-{n}", "created", [CREATE, ACTIVATE], None) for n in range(3)]
    assert sorted(call[2] for call in sent(api, ACTIVATE)) == [f"id-T-{n}" for n in range(3)]  # the ids found
    assert api.warnings == [
        f"Graph's answers to the bulk creations did not list {3 - listed_first} of the tokens created; they were "
        "found by listing their serial numbers."
    ]


def test_an_unlisted_token_the_inventory_never_shows_fails_alone():
    api = FakeInventoryApi(bulk_listed=1)
    real = api.list_tokens
    api.list_tokens = lambda query=None: [t for t in real(query) if t.serial_number != "T-2"]
    outcomes = apply(api, [entry(n, f"T-{n}", "available", None) for n in range(3)])
    assert [o.outcome for o in outcomes] == ["created", "created", "failed"]
    assert outcomes[2].error.startswith(
        "token T-2: Graph answered the bulk creation without listing it, and the inventory does not show it after 10 s"
    )
    assert sent(api, "create") == []


def test_a_bulk_request_refused_whole_for_its_size_is_halved_and_later_ones_kept_small():
    api = FakeInventoryApi(bulk_max_items=20)
    entries = [entry(n, f"T-{n:03d}", "available", None) for n in range(145)]
    outcomes = apply(api, entries)
    sizes = [len(call[1]) for call in sent(api, "create_tokens")]
    # 100, 50 and 25 refused; 13 and 12 taken; from then on at most 13 at a time: the other 25 and 50, then the
    # second part (45)
    assert sizes == [100, 50, 25, 13, 12, 13, 12, 13, 13, 13, 11, 13, 13, 13, 6]
    assert sent(api, "create") == []
    assert {o.outcome for o in outcomes} == {"created"}
    created = [b["serialNumber"] for call in sent(api, "create_tokens") if len(call[1]) <= 20 for b in call[1]]
    assert sorted(created) == [e.serial_number for e in entries]  # each sent in one taken request
    assert api.warnings == [
        "Graph refused 3 bulk creation(s) as a whole without naming a token; 0 token(s) were then created with a "
        "request each, and bulk requests were kept to at most 13 token(s)."
    ]


def test_a_bulk_request_refused_whole_for_its_content_falls_back_to_one_request_per_token():
    api = FakeInventoryApi(refuse_whole={"T-1"})
    outcomes = apply(api, [entry(n, f"T-{n}", "available", None) for n in range(4)])
    # Halved until the refused token is alone (it may have been about size), which then goes with a POST of its own
    assert [[b["serialNumber"] for b in call[1]] for call in sent(api, "create_tokens")] == [
        ["T-0", "T-1", "T-2", "T-3"],
        ["T-0", "T-1"],
        ["T-0"],
        ["T-1"],
        ["T-2", "T-3"],
    ]
    assert [call[1]["serialNumber"] for call in sent(api, "create")] == ["T-1"]
    assert [o.outcome for o in outcomes] == ["created", "failed", "created", "created"]
    assert outcomes[1].error == "Creating token T-1: Graph answered 400 badRequest"
    assert api.warnings == [
        "Graph refused 3 bulk creation(s) as a whole without naming a token; 0 token(s) were then created with a "
        "request each."
    ]


def test_a_request_no_larger_than_one_taken_refused_whole_goes_one_token_per_request():
    api = FakeInventoryApi(refuse_whole={"T-101"})
    outcomes = apply(api, [entry(n, f"T-{n:03d}", "available", None) for n in range(102)])
    assert [len(call[1]) for call in sent(api, "create_tokens")] == [100, 2]  # 2 <= 100 taken: not about size
    assert [call[1]["serialNumber"] for call in sent(api, "create")] == ["T-100", "T-101"]
    assert [o.outcome for o in outcomes[100:]] == ["created", "failed"]
    assert api.warnings == [
        "Graph refused 1 bulk creation(s) as a whole without naming a token; 1 token(s) were then created with a "
        "request each."
    ]


def test_a_single_token_refused_whole_is_sent_once_on_its_own():
    api = FakeInventoryApi(refuse_whole={"T-0"})
    [outcome] = apply(api, [entry(0, "T-0", "available", None)])
    assert len(sent(api, "create_tokens")) == 1 and len(sent(api, "create")) == 1
    assert outcome.outcome == "failed"


# ---------------------------------------------------------------------------------------------------- codes
def test_created_tokens_are_activated_with_codes_computed_from_their_secret():
    given = Secrets({"t-1": SECRET, "t-2": OTHER_SECRET}, {})
    api = FakeInventoryApi(failures={1: refused()})  # T-1's first code is refused as already used
    outcomes = apply(api, [entry(0, "T-1"), entry(1, "T-2")], secret_of=given)
    [(_name, bodies)] = sent(api, "create_tokens")
    assert [b["secretKey"] for b in bodies] == [SECRET, OTHER_SECRET]
    assert [b["assignTo"] for b in bodies] == [{"id": AMY.id}, {"id": AMY.id}]
    activations = sent(api, ACTIVATE)
    assert [(call[1], call[2], call[4]) for call in activations] == [
        (AMY.id, "id-T-1", totp_code(SECRET, STEP)),
        (AMY.id, "id-T-1", totp_code(SECRET, STEP + 1)),  # a later step's code, never the same one again
        (AMY.id, "id-T-2", totp_code(OTHER_SECRET, STEP)),
    ]
    assert len({call[4] for call in activations[:2]}) == 2
    assert summary(outcomes) == [
        ("T-1", "created", [CREATE, ACTIVATE], None),
        ("T-2", "created", [CREATE, ACTIVATE], None),
    ]


def test_a_failure_message_never_shows_the_codes_computed_for_its_token():
    outcome = inventory_apply.TokenOutcome(plan_inventory([entry(0, "T-1")], [], USERS)[0])
    outcome.fail(GraphError("Graph answered 400: code 123456 (then 654321) is invalid"), hide=["123456", "654321"])
    assert outcome.error == "Graph answered 400: code ******** (then ********) is invalid"


def test_the_log_lines_of_a_token_never_show_its_computed_codes():
    # Graph's words about a refused code may quote it: the retry's log line (AnsibleModule.log masks only the no-log
    # values, and computed codes are not among them) is masked with the token's codes, like its failure message.
    first, second = totp_code(SECRET, STEP), totp_code(SECRET, STEP + 1)
    echoed = CodeRefused(f"assign and activate token T-1: Graph answered 400: code {first} is invalid", status=400)
    api = FakeInventoryApi(failures={0: echoed})
    logs: list[str] = []
    [outcome] = apply(api, [entry(0, "T-1")], [listed("T-1")], logs=logs)
    assert outcome.outcome == "activated"
    assert [call[4] for call in sent(api, ASSIGN_AND_ACTIVATE)] == [first, second]
    assert logs and all(first not in line and second not in line for line in logs)
    assert "code ******** is invalid" in logs[0]


def test_a_given_verification_code_is_sent_once():
    given = secrets(codes={"t-1": "123456"})
    api = FakeInventoryApi(tokens=[listed("T-1")])
    outcomes = apply(api, [entry(0, "T-1", has_secret=False, has_code=True)], [listed("T-1")], secret_of=given)
    assert [(call[0], call[4]) for call in api.calls if call[0] != "list_tokens"] == [(ASSIGN_AND_ACTIVATE, "123456")]
    assert summary(outcomes) == [("T-1", "activated", [ASSIGN_AND_ACTIVATE], None)]


# ---------------------------------------------------------------------------------------------------- failures
def test_a_token_whose_write_fails_fails_alone_with_graphs_message_and_request_id():
    failure = GraphError(
        "assign and activate token T-1 for amy.masters@contoso.com: Graph answered 500 internalServerError",
        status=500,
        code="internalServerError",
        request_id="rid-500",
    )
    tokens = [listed(f"T-{n}") for n in range(3)]
    api = FakeInventoryApi(refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): failure})
    entries = [entry(0, "T-0"), entry(1, "T-1"), entry(2, "T-2", user=ADELE.user_principal_name)]
    outcomes = apply(api, entries, tokens)
    assert summary(outcomes) == [
        ("T-0", "activated", [ASSIGN_AND_ACTIVATE], None),
        ("T-1", "failed", [], failure.message),
        ("T-2", "activated", [ASSIGN_AND_ACTIVATE], None),
    ]
    assert [o.request_id for o in outcomes] == [None, "rid-500", None]
    assert [call[2] for call in sent(api, ASSIGN_AND_ACTIVATE)] == ["id-T-0", "id-T-1", "id-T-2"]


def test_a_failure_after_the_unassign_reports_what_was_done():
    failure = GraphError("Updating token T-1: Graph answered 503", status=503, request_id="rid-503")
    api = FakeInventoryApi(refuse={("update", "id-T-1"): failure})
    tokens = [listed("T-1", "activated", ADELE), listed("T-2")]
    entries = [entry(0, "T-1", model="X2"), entry(1, "T-2")]
    [first, second] = apply(api, entries, tokens, force_unassign=True)
    assert kinds(first.plan.actions) == [UNASSIGN, UPDATE, ASSIGN_AND_ACTIVATE]
    assert first.outcome == "failed" and first.request_id == "rid-503"
    assert [(a.kind, a.user_id) for a in first.done] == [(UNASSIGN, ADELE.id)]
    assert first.error.startswith(
        "Updating token T-1: Graph answered 503. Already done for token T-1: "
        f"unassigned it from Adele Vance ({ADELE.id}). Not done: update; "
        f"assign and activate for {AMY.user_principal_name} ({AMY.id})."  # the declared user's activation too
    )
    assert f"Adele Vance ({ADELE.id}) no longer holds token T-1" in first.error
    assert [call[2] for call in sent(api, ASSIGN_AND_ACTIVATE)] == ["id-T-2"]  # T-1 stopped at its update
    assert second.outcome == "activated"


def test_the_writes_done_are_the_plan_s_own_actions_not_rebuilt_from_a_result():
    failure = GraphError("Updating token T-1: Graph answered 503", status=503, request_id="rid-503")
    api = FakeInventoryApi(refuse={("update", "id-T-1"): failure})
    [outcome] = apply(api, [entry(0, "T-1", model="X2")], [listed("T-1", "activated", ADELE)], force_unassign=True)
    assert kinds(outcome.done) == [UNASSIGN] and outcome.outcome == "failed"
    assert outcome.done[0] is outcome.plan.inventory.actions[0]


def test_a_failure_of_the_reassignment_after_the_unassign_reports_the_unassign():
    failure = GraphError("assign and activate token T-1: Graph answered 400 tooMany", status=400, code="tooMany")
    api = FakeInventoryApi(refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): failure})
    [outcome] = apply(api, [entry(0, "T-1")], [listed("T-1", "activated", ADELE)])
    assert kinds(outcome.plan.assignment.actions) == [UNASSIGN, ASSIGN_AND_ACTIVATE]
    assert outcome.outcome == "failed"
    assert [(a.kind, a.user_id) for a in outcome.done] == [(UNASSIGN, ADELE.id)]
    assert "Already done for token T-1: unassigned it from" in outcome.error


def test_assign_to_ignored_by_graph_fails_naming_the_permission():
    api = FakeInventoryApi(assign=False)  # Graph creates the tokens, available
    outcomes = apply(api, [entry(0, "T-1"), entry(1, "T-2", "available", None)])
    assert [o.outcome for o in outcomes] == ["failed", "created"]
    assert outcomes[0].error == (
        f"token T-1 was created but Graph did not assign it to user {AMY.id}: it ignores assignTo when the caller "
        "lacks UserAuthenticationMethod.ReadWrite.All. The token is in the inventory, available; grant the "
        "permission and run again, or assign it with tokenops.entra.hardware_oath_assignment."
    )
    assert sent(api, ACTIVATE) == [] and sent(api, ASSIGN_AND_ACTIVATE) == []


def test_assign_to_ignored_by_graph_still_reports_the_creation():
    [outcome] = apply(FakeInventoryApi(assign=False), [entry(0, "T-1")])
    assert kinds(outcome.done) == [CREATE]


def test_tokens_failed_in_planning_or_unchanged_send_nothing():
    api = FakeInventoryApi()
    tokens = [listed("T-1", "activated", AMY)]
    outcomes = apply(api, [entry(0, "T-1"), entry(1, "T-2", has_secret=False)], tokens)
    assert [o.outcome for o in outcomes] == ["unchanged", "failed"]
    assert "creating it needs secret_key" in outcomes[1].error
    assert api.calls == []


def test_a_pruned_token_is_unassigned_then_deleted():
    api = FakeInventoryApi()
    tokens = [listed("OLD", "activated", ADELE)]
    [outcome] = apply(api, [], tokens, prune=PruneScope("delete", "old"))
    assert [call[:2] for call in api.calls] == [(UNASSIGN, ADELE.id), ("delete", "id-OLD")]
    assert outcome.outcome == "deleted" and kinds(outcome.done) == [UNASSIGN, DELETE]


# ---------------------------------------------------------------------------------------------------- unexpected errors
# An exception the collection does not expect (a bug: a KeyError, a RuntimeError) in one token's work fails that token
# alone: every other token converges and has its outcome, and the writes already done stay listed (issue 18).
LEAKY = f"body {{'secretKey': '{SECRET}'}}"  # what a bug's exception could say: never repeated


CREATION_WORDS = {
    inventory_apply.CREATED: "it was created (the inventory shows it), its other writes were not made",
    inventory_apply.NOT_SHOWN: "the inventory does not show it, so it was most likely not created",
    inventory_apply.UNKNOWN: "it may have been created (the inventory could not be read)",
}


def check_unexpected(error, serial, kind, *, creation=None):
    """``error`` is the message of a token failed by an unexpected ``kind`` of exception, without its text;
    ``creation``: what it says of a token of a broken bulk creation."""
    assert error.startswith(f"token {serial}: unexpected error ({kind} in ")
    assert "a fault of this collection, not of Graph or of the input" in error
    assert f"Please report it at {ISSUES}" in error
    for said, words in CREATION_WORDS.items():
        assert (words in error) is (said == creation)
    assert SECRET not in error and "secretKey" not in error and "Traceback" not in error


def test_an_unexpected_error_in_one_token_s_work_fails_that_token_alone():
    tokens = [listed(f"T-{n}") for n in range(3)]
    api = FakeInventoryApi(refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): RuntimeError(LEAKY)})
    outcomes = apply(api, [entry(n, f"T-{n}") for n in range(3)], tokens, concurrency=4)
    assert [(o.plan.serial_number, o.outcome, kinds(o.done)) for o in outcomes] == [
        ("T-0", "activated", [ASSIGN_AND_ACTIVATE]),
        ("T-1", "failed", []),
        ("T-2", "activated", [ASSIGN_AND_ACTIVATE]),
    ]
    check_unexpected(outcomes[1].error, "T-1", "RuntimeError")
    assert "fakes.py, line " in outcomes[1].error  # where it was raised, to report
    assert outcomes[1].request_id is None
    assert [call[2] for call in sent(api, ASSIGN_AND_ACTIVATE)] == ["id-T-0", "id-T-1", "id-T-2"]


def test_an_unexpected_error_after_a_write_keeps_the_write_in_the_outcome():
    # T-1 is Adele's: unassigned from her, then its assign-and-activate for Amy fails unexpectedly.
    api = FakeInventoryApi(refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): KeyError("id")})
    tokens = [listed("T-1", "activated", ADELE), listed("T-2")]
    first, second = apply(api, [entry(0, "T-1"), entry(1, "T-2")], tokens)
    assert first.outcome == "failed" and [(a.kind, a.user_id) for a in first.done] == [(UNASSIGN, ADELE.id)]
    check_unexpected(first.error, "T-1", "KeyError")
    assert "the writes listed in its actions took effect, the others were not made" in first.error
    assert second.outcome == "activated"


def test_an_unexpected_error_on_a_created_token_keeps_its_creation(monkeypatch):
    def broken(made, creation, label):
        if made.serial_number == "T-1":
            raise AttributeError("'NoneType' object has no attribute 'id'")

    monkeypatch.setattr(inventory_apply, "check_assigned", broken)
    outcomes = apply(FakeInventoryApi(), [entry(n, f"T-{n}", "assigned") for n in range(3)])
    assert [(o.outcome, kinds(o.done)) for o in outcomes] == [
        ("created", [CREATE]),
        ("failed", [CREATE]),
        ("created", [CREATE]),
    ]
    check_unexpected(outcomes[1].error, "T-1", "AttributeError")


def test_a_bulk_answer_missing_a_token_fails_that_token_alone(monkeypatch):
    class Forgetful(inventory_apply.BulkCreation):
        def create(self, creations):
            answered = super().create(creations)
            answered.pop("t-1")  # a bug: BulkCreation answers for every token it was given
            return answered

    monkeypatch.setattr(inventory_apply, "BulkCreation", Forgetful)
    outcomes = apply(FakeInventoryApi(), [entry(n, f"T-{n}", "available", None) for n in range(3)])
    assert [o.outcome for o in outcomes] == ["created", "failed", "created"]
    check_unexpected(outcomes[1].error, "T-1", "KeyError")


def test_an_unexpected_error_in_a_bulk_creation_fails_its_part_only(monkeypatch):
    class Broken(inventory_apply.BulkCreation):
        def create(self, creations):
            if creations[0][0] == "N-000":
                raise TypeError(LEAKY)
            return super().create(creations)

    monkeypatch.setattr(inventory_apply, "BulkCreation", Broken)
    tokens = [listed("T-1")]
    entries = [entry(0, "T-1")] + [entry(1 + n, f"N-{n:03d}", "available", None) for n in range(150)]
    outcomes = apply(FakeInventoryApi(), entries, tokens)
    assert outcomes[0].outcome == "activated"  # a token of the inventory goes on
    assert {o.outcome for o in outcomes[1:101]} == {"failed"}  # the first part of 100
    for o in outcomes[1:101]:
        check_unexpected(o.error, o.plan.serial_number, "TypeError", creation=inventory_apply.NOT_SHOWN)
        assert o.done == []
    assert {o.outcome for o in outcomes[101:]} == {"created"}  # the next part is sent


def test_a_bulk_creation_broken_after_graph_created_tokens_lists_them_as_created(monkeypatch):
    # The bug strikes after Graph created the first half of the part: a listing shows those, so their creation is
    # done (changed is true), and the others are said not to be there.
    class Broken(inventory_apply.BulkCreation):
        def create(self, creations):
            super().create(creations[:2])
            raise TypeError(LEAKY)

    monkeypatch.setattr(inventory_apply, "BulkCreation", Broken)
    api = FakeInventoryApi()
    outcomes = apply(api, [entry(n, f"N-{n}", "available", None) for n in range(4)])
    assert [(o.outcome, kinds(o.done)) for o in outcomes] == [("failed", [CREATE])] * 2 + [("failed", [])] * 2
    for o, creation in zip(outcomes, [inventory_apply.CREATED] * 2 + [inventory_apply.NOT_SHOWN] * 2):
        check_unexpected(o.error, o.plan.serial_number, "TypeError", creation=creation)
    assert [call[0] for call in api.calls] == ["create_tokens", "list_tokens"]  # judged by a listing, nothing resent


def test_a_broken_bulk_creation_whose_listing_fails_says_the_tokens_may_exist(monkeypatch):
    class Broken(inventory_apply.BulkCreation):
        def create(self, creations):
            raise TypeError(LEAKY)

    class Unreadable(FakeInventoryApi):
        def list_tokens(self, query=None):
            raise GraphError("Listing the hardware OATH token inventory: Graph answered 503", status=503)

    monkeypatch.setattr(inventory_apply, "BulkCreation", Broken)
    [outcome] = apply(Unreadable(), [entry(0, "N-0", "available", None)])
    check_unexpected(outcome.error, "N-0", "TypeError", creation=inventory_apply.UNKNOWN)


def test_a_value_error_other_than_a_short_secret_is_an_unexpected_error():
    api = FakeInventoryApi(refuse={(ASSIGN_AND_ACTIVATE, "id-T-1"): ValueError(LEAKY)})
    [outcome] = apply(api, [entry(0, "T-1")], [listed("T-1")])
    check_unexpected(outcome.error, "T-1", "ValueError")


def test_a_secret_too_short_to_compute_codes_fails_its_token_saying_so():
    short = "JBSWY3DPEHPK3PXP"  # 80 bits: pyotp refuses it (the module refuses it before any request)
    api = FakeInventoryApi()
    [outcome] = apply(api, [entry(0, "T-1")], [listed("T-1")], secret_of=secrets("T-1", secret=short))
    assert outcome.error == (
        "token T-1: secret_key decodes to 80 bits; computing codes needs at least 112 (pyotp's minimum). Give "
        "verification_code, read from the token, instead."
    )
    assert sent(api, ASSIGN_AND_ACTIVATE) == []


# ---------------------------------------------------------------------------------------------------- concurrency
def scenario(concurrency):
    """A mixed inventory, one token failing, applied at ``concurrency``; the outcomes, the calls, the threads."""
    failure = GraphError("Graph answered 500", status=500, request_id="rid-1")
    tokens = [listed(f"A-{n}") for n in range(6)] + [listed(f"H-{n}", "activated", ADELE) for n in range(4)]
    api = FakeInventoryApi(tokens=tokens, refuse={(ASSIGN_AND_ACTIVATE, "id-A-3"): failure}, delay=0.002)
    users = [AMY.user_principal_name, ADELE.user_principal_name]
    entries = [entry(n, f"A-{n}", user=users[n % 2]) for n in range(6)]
    entries += [entry(6 + n, f"H-{n}", user=AMY.user_principal_name) for n in range(4)]
    entries += [entry(10 + n, f"N-{n}", "assigned", user=users[n % 2]) for n in range(4)]
    entries.append(entry(14, "A-9", "available", None))
    outcomes = apply(api, entries, tokens, concurrency=concurrency)
    details = [(o.plan.serial_number, o.outcome, kinds(o.done), o.error, o.request_id) for o in outcomes]
    return details, sorted(map(repr, api.calls)), api.threads


def test_concurrency_gives_the_same_outcomes_as_one_at_a_time(monkeypatch):
    pools: list[int] = []

    def pool(max_workers):
        pools.append(max_workers)
        return ThreadPoolExecutor(max_workers=max_workers)

    monkeypatch.setattr(inventory_apply, "ThreadPoolExecutor", pool)
    one, one_calls, one_threads = scenario(1)
    many, many_calls, many_threads = scenario(8)
    assert many == one
    assert many_calls == one_calls
    assert len(one_threads) >= 2 and len(many_threads) >= 2  # the bulk creations' thread, then workers
    # TOKENS_PER_PLACE tokens per place on the wire (the transport's pacer keeps to the places), at most MAX_WORKERS.
    assert pools == [inventory_apply.TOKENS_PER_PLACE, min(8 * inventory_apply.TOKENS_PER_PLACE, 128)]
    assert inventory_apply.MAX_WORKERS == 128
    assert [row[1] for row in one] == [
        *["activated"] * 3,
        "failed",
        *["activated"] * 2,
        *["reassigned"] * 4,
        *["created"] * 4,
        "created",
    ]


# ---------------------------------------------------------------------------------------------------- five places
def swap_world():
    """Amy holds five tokens (A0 to A4, activated: Entra's limit); the list keeps three, declares A3 and A4
    available, and gives her the spare S and a new token N."""
    amy = model.User("id-amy", "amy@contoso.com", "Amy")
    held = [
        model.Token(f"id-A{n}", f"A{n}", model.secret_of(f"A{n}"), "Contoso", "Key", status="activated", holder=amy.id)
        for n in range(5)
    ]
    spare = model.Token("id-S", "S", model.secret_of("S"), "Contoso", "Key")
    tenant = model.Tenant([amy], [*held, spare], now=MODEL_NOW)
    given = {"manufacturer": "Contoso", "model": "Key", "has_secret": True}
    entries = [Entry(n, f"A{n}", "activated", amy.user_principal_name, **given) for n in range(3)]
    entries += [Entry(n, f"A{n}", "available", None, **given) for n in (3, 4)]
    entries += [Entry(5, "S", "activated", amy.user_principal_name, **given)]
    entries += [Entry(6, "N", "activated", amy.user_principal_name, **given)]
    return tenant, entries


@pytest.mark.parametrize("attempt", range(5))
def test_a_user_at_five_whose_list_swaps_tokens_converges_in_one_run(attempt, monkeypatch):
    """The tokens that take one of Amy's places (S assigned, N created for her) wait for those that free one (A3, A4
    unassigned): Entra ID would refuse a sixth OATH method."""
    monkeypatch.setattr(inventory_apply, "CodeSource", functools.partial(CodeSource, clock=lambda: MODEL_NOW))
    tenant, entries = swap_world()
    api = model.ModelApi(tenant)
    write = api.write

    def slow_unassignment(action, *args, **kwargs):
        if action.kind == UNASSIGN:
            time.sleep(0.05)  # the other tokens' writes would go first, were they not waiting for it
        return write(action, *args, **kwargs)

    monkeypatch.setattr(api, "write", slow_unassignment)
    plans = plan_inventory(entries, api.list_tokens(), api.users_by_refs(["amy@contoso.com"]))
    given = Secrets({e.serial_number.casefold(): model.secret_of(e.serial_number) for e in entries}, {})
    outcomes = apply_inventory(api, plans, given, concurrency=4, log=lambda message: None)
    assert [o.error for o in outcomes] == [None] * 7, tenant.refusals
    assert tenant.refusals == []
    assert sorted(t.serial_number for t in tenant.tokens.values() if t.holder == "id-amy") == [
        "A0",
        "A1",
        "A2",
        "N",
        "S",
    ]
    kinds_sent = [(s.serial, s.kind) for s in tenant.sent]
    for freed in ("a3", "a4"):
        for taken in (("s", ASSIGN_AND_ACTIVATE), ("n", "create")):
            assert kinds_sent.index((freed, "unassign")) < kinds_sent.index(taken), kinds_sent
