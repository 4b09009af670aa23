# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Why a task fails (_common/errors.py): ModuleFailure and its result, GraphError's details, and copies with another
message that leave the original as it is."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import (
    GraphAuthError,
    GraphError,
    GraphTransportError,
    InputError,
    ModuleFailure,
    PlanError,
    WriteOutcomeUnknown,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import DONE, PENDING


# ---------------------------------------------------------------------------------------------------- ModuleFailure
def test_a_failure_is_its_message_and_changed_nothing():
    failure = ModuleFailure("Nothing was changed.")
    assert failure.message == str(failure) == "Nothing was changed."
    assert failure.changed is False
    assert failure.result == {}
    assert failure.to_result() == {}


def test_to_result_holds_the_result_keys_and_changed_only_when_writes_took_effect():
    failure = ModuleFailure("m", changed=True, result={"actions": DONE, "pending_actions": PENDING})
    assert failure.to_result() == {"actions": DONE, "pending_actions": PENDING, "changed": True}
    assert ModuleFailure("m", result={"actions": []}).to_result() == {"actions": []}  # no changed key when false


def test_the_result_is_the_failures_own():
    given = {"actions": DONE}
    failure = ModuleFailure("m", result=given)
    given["pending_actions"] = PENDING
    assert failure.result == {"actions": DONE}
    failure.to_result()["changed"] = True
    assert failure.result == {"actions": DONE}
    assert failure.changed is False


@pytest.mark.parametrize("kind", [InputError, PlanError, GraphError, GraphAuthError, GraphTransportError])
def test_every_failure_is_a_module_failure(kind):
    assert issubclass(kind, ModuleFailure)


def test_a_lost_answer_is_a_transport_error():
    assert issubclass(WriteOutcomeUnknown, GraphTransportError)
    assert issubclass(GraphTransportError, GraphError)
    assert issubclass(GraphAuthError, GraphError)


# ---------------------------------------------------------------------------------------------------- with_message
def test_with_message_returns_a_copy_and_leaves_the_original_unchanged():
    original = PlanError("first", changed=True, result={"actions": DONE})
    other = original.with_message("second")
    assert other is not original
    assert isinstance(other, PlanError)
    assert (other.message, str(other), other.changed, other.result) == ("second", "second", True, {"actions": DONE})
    assert (original.message, str(original), original.changed) == ("first", "first", True)
    assert original.result == {"actions": DONE}
    other.result["pending_actions"] = PENDING  # the copy's result is its own
    assert original.result == {"actions": DONE}


def test_as_kind_is_a_copy_of_a_subclass_with_every_detail():
    class Refused(GraphError):
        pass

    original = GraphError("409", status=409, code="conflict", request_id="rid").with_message(
        "409", changed=True, result={"actions": DONE}
    )
    other = original.as_kind(Refused)
    assert isinstance(other, Refused) and not isinstance(original, Refused)
    assert (other.message, other.status, other.code, other.request_id, other.changed) == (
        "409",
        409,
        "conflict",
        "rid",
        True,
    )
    assert other.to_result() == original.to_result()
    with pytest.raises(TypeError):
        InputError("x").as_kind(Refused)


def test_with_message_may_set_changed_and_result():
    original = InputError("first")
    other = original.with_message("second", changed=True, result={"actions": DONE, "pending_actions": PENDING})
    assert other.to_result() == {"actions": DONE, "pending_actions": PENDING, "changed": True}
    assert (original.changed, original.result, original.to_result()) == (False, {}, {})
    assert other.with_message("third").to_result() == other.to_result()  # not given: kept
    assert other.with_message("fourth", changed=False).to_result() == {"actions": DONE, "pending_actions": PENDING}


def test_a_graph_error_is_copied_with_another_message_never_changed():
    error = GraphError("Graph answered 400", status=400, code="badRequest")
    other = error.with_message("activate token T: Graph answered 400")
    assert other is not error
    assert error.message == str(error) == "Graph answered 400"
    assert other.message == str(other) == "activate token T: Graph answered 400"
    assert isinstance(other, GraphError) and (other.status, other.code) == (400, "badRequest")
    assert GraphError("no status").to_result() == {}


# ---------------------------------------------------------------------------------------------------- GraphError
def test_graph_error_result_holds_graphs_details():
    error = GraphError(
        "Listing the inventory: Graph answered 403",
        status=403,
        code="Authorization_RequestDenied",
        graph_message="Insufficient privileges to complete the operation.",
        request_id="rid",
        client_request_id="cid",
        date="2026-11-21T22:42:25",
    )
    assert error.to_result() == {
        "graph_error": {
            "status": 403,
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "request_id": "rid",
            "client_request_id": "cid",
            "date": "2026-11-21T22:42:25",
        }
    }
    assert error.message == "Listing the inventory: Graph answered 403"  # the task's message, not Graph's


def test_graph_error_result_leaves_out_what_graph_did_not_say():
    details = [{"code": "invalidValue", "message": "serialNumber"}]
    assert GraphError("m", status=500).to_result() == {"graph_error": {"status": 500}}
    assert GraphError("m", status=400, code="badRequest", details=details).to_result() == {
        "graph_error": {"status": 400, "code": "badRequest", "details": details}
    }
    assert GraphError("m", status=400, details=[]).to_result() == {"graph_error": {"status": 400}}
    assert GraphError("m", code="badRequest").to_result() == {}  # no answer: no graph_error


def test_a_graph_error_after_writes_took_effect_holds_both():
    error = GraphError("m", status=503, code="serviceUnavailable").with_message(
        "m. Already done: ...", changed=True, result={"actions": DONE, "pending_actions": PENDING}
    )
    assert isinstance(error, GraphError) and error.status == 503
    assert error.to_result() == {
        "graph_error": {"status": 503, "code": "serviceUnavailable"},
        "actions": DONE,
        "pending_actions": PENDING,
        "changed": True,
    }
