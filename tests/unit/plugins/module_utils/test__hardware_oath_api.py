# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import json

import httpx
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._errors import GraphError, WriteOutcomeUnknown
from ansible_collections.tokenops.entra.plugins.module_utils._assignment_plan import Desired, plan_assignment
from ansible_collections.tokenops.entra.plugins.module_utils._codes import CodeSource, totp_code
from ansible_collections.tokenops.entra.plugins.module_utils._errors import PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath import (
    ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, SET_DISPLAY_NAME, UNASSIGN, Action, TokenView, UserView)
from ansible_collections.tokenops.entra.plugins.module_utils._endpoints import Destinations
from ansible_collections.tokenops.entra.plugins.module_utils._graph_client import USER_AGENT, GraphClient, Transport
from ansible_collections.tokenops.entra.plugins.module_utils._execute import (
    apply_token, execute_assignment_plan, execute_policy_plan, execute_token_plan, took_effect)
from ansible_collections.tokenops.entra.plugins.module_utils._policy_api import PolicyApi
from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath_api import (
    DEVICES, READ_AFTER_WRITE_WAIT, HardwareOathApi, TokenExists, refuses_the_code)
from ansible_collections.tokenops.entra.plugins.module_utils._token_plan import TokenSpec, plan_token
from ansible_collections.tokenops.entra.plugins.module_utils._token_query import TokenQuery
from ansible_collections.tokenops.entra.plugins.module_utils._policy_plan import POLICY_PATH, PolicySpec, plan_policy
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, DEVICE_ID, SECRET, SERIAL

NAME = "Amy Masters Token"


def token(status="available", holder: UserView | None = None, display_name: str | None = None) -> TokenView:
    return TokenView(id=DEVICE_ID, serial_number=SERIAL, status=status, assigned_to_id=holder.id if holder else None,
                     assigned_to_name=holder.display_name if holder else None, display_name=display_name)


# ---------------------------------------------------------------------------------------------------- execute
class FakeApi:
    """Records writes and re-reads. ``lost``: numbers (0-based) of the writes whose answer is lost; ``failures``:
    write number -> the GraphError it fails with."""

    poll = HardwareOathApi.poll  # the real one, waiting through _sleep
    wait = READ_AFTER_WRITE_WAIT

    def __init__(self, lost=(), rereads=(), failures=None):
        self.lost = set(lost)
        self.rereads = list(rereads)  # the last one is answered to every further re-read
        self.failures = dict(failures or {})
        self.calls: list[tuple] = []
        self.sleeps: list[float] = []

    def _sleep(self, seconds):
        self.sleeps.append(seconds)

    @property
    def writes(self):
        return [c for c in self.calls if c[0] == "write"]

    def write(self, action, token_view, user, code, display_name, *, by_serial, me):
        number = len(self.writes)
        self.calls.append(("write", action.kind, action.user_id, token_view, user, code, display_name, by_serial, me))
        if number in self.lost:
            raise WriteOutcomeUnknown(f"POST /x: the connection failed after the request was sent (write {number})")
        if number in self.failures:
            raise self.failures[number]

    def reread(self, token_view, me=False):
        self.calls.append(("reread", token_view.id, me))
        return self.rereads.pop(0) if len(self.rereads) > 1 else self.rereads[0]


def secret_codes(redacted=None):
    """Codes computed at T=29 (step 0): the first is for step 1 (CODE_LEAD_STEPS), RFC 6238's T=59 code."""
    return CodeSource(secret_b32=SECRET, clock=lambda: 29.0, redact=(redacted if redacted is not None else []).append)


def run(api, current, desired, codes, *, by_serial=True, me=False, user=AMY):
    logs: list[str] = []
    plan = plan_assignment(current, user, desired)
    result = execute_assignment_plan(api, plan, current, user, codes, desired.display_name, by_serial=by_serial, me=me, log=logs.append)
    return result, logs


def kinds(api):
    """The calls, consecutive re-reads (a poll while a write may not show yet) as one."""
    out: list[tuple] = []
    for call in api.calls:
        kind = (call[0], call[1]) if call[0] == "write" else ("reread",)
        if not (kind == ("reread",) and out and out[-1] == kind):
            out.append(kind)
    return out


def test_execute_normal_path_runs_the_actions_in_order():
    api = FakeApi()
    current = token("activated", ADELE, "Adele's")
    redacted: list[str] = []
    result, logs = run(api, current, Desired(reassign=True, display_name=NAME), secret_codes(redacted))
    assert result is None
    assert logs == []
    assert api.calls == [
        ("write", UNASSIGN, ADELE.id, current, AMY, None, NAME, True, False),
        ("write", ASSIGN_AND_ACTIVATE, AMY.id, current, AMY, "287082", NAME, True, False),  # RFC 6238 T=59
    ]
    assert redacted == ["287082"]


def test_execute_passes_by_serial_and_me():
    api = FakeApi()
    run(api, token(), Desired(), secret_codes(), by_serial=False, me=True)
    assert api.calls == [("write", ASSIGN_AND_ACTIVATE, AMY.id, token(), AMY, "287082", None, False, True)]


def test_execute_activate_false_with_a_name():
    api = FakeApi()
    codes = CodeSource()
    run(api, token(), Desired(activate=False, display_name=NAME), codes)
    assert kinds(api) == [("write", SET_DISPLAY_NAME), ("write", ASSIGN)]
    assert [c[5] for c in api.calls] == [None, None]
    assert codes.used == []


def test_execute_lost_answer_but_done_is_not_written_again():
    done = token("activated", AMY, NAME)
    api = FakeApi(lost={0}, rereads=[done])
    codes = secret_codes()
    result, logs = run(api, token(), Desired(display_name=NAME), codes)
    assert result == done
    assert kinds(api) == [("write", ASSIGN_AND_ACTIVATE), ("reread",)]
    assert api.calls[1] == ("reread", DEVICE_ID, False)
    assert codes.used == ["computed"]
    assert logs == [f"POST /x: the connection failed after the request was sent (write 0); reading token {SERIAL} "
                    "again before anything else"]


def test_execute_rereads_through_me_for_a_self_service_user():
    api = FakeApi(lost={0}, rereads=[token("activated", AMY)])
    run(api, token(), Desired(), secret_codes(), me=True)
    assert api.calls[1] == ("reread", DEVICE_ID, True)


def test_execute_lost_answer_not_done_resends_with_a_code_of_a_later_step():
    not_done = token("available", None, None)
    api = FakeApi(lost={0}, rereads=[not_done])
    redacted: list[str] = []
    codes = secret_codes(redacted)
    result, _logs = run(api, token(), Desired(display_name=NAME), codes)
    assert result == not_done
    assert kinds(api) == [("write", ASSIGN_AND_ACTIVATE), ("reread",), ("write", ASSIGN_AND_ACTIVATE)]
    # it read again while the write may not have shown yet (10 s in all), then sent it again
    assert api.sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]
    first, second = api.writes[0][5], api.writes[1][5]
    assert first == totp_code(SECRET, 1) == "287082"
    assert second == totp_code(SECRET, 2)
    assert second != first
    assert api.writes[1][3] == not_done  # the fresh read is what the second write works from
    assert api.writes[1][6] == NAME
    assert redacted == [first, second]
    assert codes.used == ["computed", "computed"]


def test_execute_lost_answer_shown_after_a_moment_is_not_written_again():
    """Graph's directory is eventually consistent: the fresh read may show the write only a moment later."""
    api = FakeApi(lost={0}, rereads=[token("available"), token("available"), token("activated", AMY)])
    result, _logs = run(api, token(), Desired(), secret_codes())
    assert result == token("activated", AMY)
    assert len(api.writes) == 1
    assert api.sleeps == [0.5, 1.0]


def test_execute_lost_answer_with_a_given_code_never_sends_it_twice():
    api = FakeApi(lost={0}, rereads=[token("available")])
    codes = CodeSource(verification_code="012345")
    with pytest.raises(PlanError) as info:
        run(api, token(), Desired(), codes)
    assert kinds(api) == [("write", ASSIGN_AND_ACTIVATE), ("reread",)]
    assert len(api.writes) == 1
    assert api.writes[0][5] == "012345"
    assert info.value.message == (
        f"assign and activate token {SERIAL} for amy.masters@contoso.com: the answer was lost and the token is now "
        "available, so the code was not accepted; the given verification_code is never sent twice. Run again with a "
        "fresh code.")


def test_execute_lost_answer_with_a_given_code_that_worked():
    api = FakeApi(lost={0}, rereads=[token("activated", AMY)])
    result, _logs = run(api, token(), Desired(), CodeSource(verification_code="012345"))
    assert result == token("activated", AMY)
    assert len(api.writes) == 1


@pytest.mark.parametrize("status", ["assigned", "failedActivation"])
def test_execute_assign_and_activate_half_done_is_followed_by_activate(status):
    half = token(status, AMY, None)
    api = FakeApi(lost={0}, rereads=[half])
    codes = secret_codes()
    run(api, token(), Desired(display_name=NAME), codes, by_serial=True)
    assert kinds(api) == [("write", ASSIGN_AND_ACTIVATE), ("reread",), ("write", ACTIVATE)]
    write = api.writes[1]
    assert write[2] == AMY.id
    assert write[3] == half
    assert write[5] == totp_code(SECRET, 2)
    assert write[6] == NAME


def test_execute_half_done_activate_reason():
    recorded = []

    class Api(FakeApi):
        def write(self, action, token_view, user, code, display_name, *, by_serial, me):
            recorded.append(action)
            super().write(action, token_view, user, code, display_name, by_serial=by_serial, me=me)

    run(Api(lost={0}, rereads=[token("assigned", AMY)]), token(), Desired(), secret_codes())
    assert recorded[1] == Action(ACTIVATE, AMY.id, "assigned, but the activation's answer was lost")


def test_execute_lost_unassign_not_done_is_resent_then_the_plan_goes_on():
    still = token("activated", ADELE)
    api = FakeApi(lost={0}, rereads=[still])
    run(api, token("activated", ADELE), Desired(reassign=True), secret_codes())
    assert kinds(api) == [("write", UNASSIGN), ("reread",), ("write", UNASSIGN), ("write", ASSIGN_AND_ACTIVATE)]
    assert api.writes[1][2] == ADELE.id and api.writes[1][5] is None
    assert api.writes[2][5] == "287082"  # the first code used, for the first code action


def refused(status=400, code="invalidVerificationCode", message="Invalid verification code."):
    return GraphError(f"assign and activate token {SERIAL} for {AMY.user_principal_name}: Graph answered {status} {code}",
                      status=status, code=code, graph_message=message)


def test_execute_a_refused_computed_code_is_followed_by_the_code_of_a_later_step():
    """The step was used a moment ago (the previous holder, another run): the next step's code is accepted."""
    api = FakeApi(failures={1: refused()})
    redacted: list[str] = []
    _result, logs = run(api, token("activated", ADELE), Desired(reassign=True), secret_codes(redacted))
    assert kinds(api) == [("write", UNASSIGN), ("write", ASSIGN_AND_ACTIVATE), ("write", ASSIGN_AND_ACTIVATE)]
    assert [api.calls[1][5], api.calls[2][5]] == [totp_code(SECRET, 1), totp_code(SECRET, 2)]
    assert redacted == [totp_code(SECRET, 1), totp_code(SECRET, 2)]
    assert logs == [f"assign and activate token {SERIAL} for {AMY.user_principal_name}: Graph answered 400 "
                    "invalidVerificationCode; the code's time step may have been used already: trying the code of a "
                    "later step (2/3)"]


def test_execute_refused_computed_codes_give_up_after_three_and_say_who_lost_the_token():
    api = FakeApi(failures={1: refused(), 2: refused(), 3: refused()})
    with pytest.raises(GraphError) as info:
        run(api, token("activated", ADELE), Desired(reassign=True), secret_codes())
    assert len(api.writes) == 4
    assert len({c[5] for c in api.writes[1:]}) == 3  # three different codes, never one twice
    assert info.value.message == (
        f"assign and activate token {SERIAL} for {AMY.user_principal_name}: Graph answered 400 invalidVerificationCode. "
        f"Already done for token {SERIAL}: unassigned it from {ADELE.display_name} ({ADELE.id}). Not done: assign and "
        f"activate for {AMY.user_principal_name} ({AMY.id}). {ADELE.display_name} ({ADELE.id}) no longer holds token "
        f"{SERIAL}: to give it back, run tokenops.entra.hardware_oath_assignment with user={ADELE.id} and "
        f"serial_number={SERIAL} (it must be activated again). Run the task again to finish for "
        f"{AMY.user_principal_name}.")
    assert info.value.changed is True
    assert info.value.result == {
        "actions": [{"action": UNASSIGN, "user_id": ADELE.id,
                     "reason": f"token {SERIAL} is assigned to {ADELE.display_name} ({ADELE.id}); reassign=true"}],
        "pending_actions": [{"action": ASSIGN_AND_ACTIVATE, "user_id": AMY.id, "reason": f"token {SERIAL} is available"}]}


@pytest.mark.parametrize("error", [refused(403, "accessDenied", "Request Authorization failed"),
                                   refused(429, "TooManyRequests", "Please retry again later."),
                                   refused(409, "conflict", "already assigned to another user"),
                                   refused(400, "badRequest", "The user already has the maximum of 5 hardware OATH "
                                                              "tokens.")])
def test_execute_other_refusals_are_not_retried_and_a_throttled_handover_says_who_lost_the_token(error):
    api = FakeApi(failures={1: error})
    with pytest.raises(GraphError) as info:
        run(api, token("activated", ADELE), Desired(reassign=True), secret_codes())
    assert len(api.writes) == 2
    assert info.value.status == error.status
    assert info.value.changed is True
    assert f"{ADELE.display_name} ({ADELE.id}) no longer holds token {SERIAL}" in info.value.message
    assert info.value.to_result()["changed"] is True


@pytest.mark.parametrize("code, message, expected", [
    ("invalidVerificationCode", "Invalid verification code.", True),
    ("badRequest", "The verification code was already used.", True),
    ("badRequest", "Invalid OTP.", True),
    ("InvalidCode", None, True),
    ("badRequest", "The user already has the maximum of 5 hardware OATH tokens.", False),
    ("badRequest", "Hardware OATH tokens can't be assigned to guest users.", False),
    (None, None, False),
])
def test_refuses_the_code(code, message, expected):
    assert refuses_the_code(GraphError("x", status=400, code=code, graph_message=message)) is expected
    assert refuses_the_code(GraphError("x", status=403, code=code, graph_message=message)) is False


def test_execute_a_refused_given_code_is_not_retried():
    api = FakeApi(failures={0: refused()})
    with pytest.raises(GraphError) as info:
        run(api, token(), Desired(), CodeSource(verification_code="012345"))
    assert len(api.writes) == 1
    assert info.value.changed is False  # nothing took effect
    assert info.value.result == {}
    assert "Already done" not in info.value.message


def test_execute_a_failed_first_action_changed_nothing():
    api = FakeApi(failures={0: refused(429, "TooManyRequests", "Please retry again later.")})
    with pytest.raises(GraphError) as info:
        run(api, token("activated", ADELE), Desired(reassign=True), secret_codes())
    assert len(api.writes) == 1
    assert info.value.changed is False
    assert info.value.to_result() == {"graph_error": {"status": 429, "code": "TooManyRequests",
                                                      "message": "Please retry again later."}}


def test_execute_lost_unassign_done_goes_on():
    api = FakeApi(lost={0}, rereads=[token("available")])
    run(api, token("activated", ADELE), Desired(reassign=True), secret_codes())
    assert kinds(api) == [("write", UNASSIGN), ("reread",), ("write", ASSIGN_AND_ACTIVATE)]


@pytest.mark.parametrize("reread, resent", [(token("available"), True), (token("assigned", AMY), False)])
def test_execute_lost_assign(reread, resent):
    api = FakeApi(lost={0}, rereads=[reread])
    run(api, token(), Desired(activate=False), CodeSource())
    assert kinds(api) == [("write", ASSIGN), ("reread",)] + ([("write", ASSIGN)] if resent else [])


@pytest.mark.parametrize("reread, resent", [(token("available", None, "old"), True), (token("available", None, NAME), False)])
def test_execute_lost_set_display_name(reread, resent):
    api = FakeApi(lost={0}, rereads=[reread])
    run(api, token("available", None, "old"), Desired(activate=False, display_name=NAME), CodeSource())
    assert kinds(api) == ([("write", SET_DISPLAY_NAME), ("reread",)] + ([("write", SET_DISPLAY_NAME)] if resent else [])
                          + [("write", ASSIGN)])


def test_execute_lost_reactivation_for_a_rename():
    current = token("activated", AMY, "old")
    api = FakeApi(lost={0}, rereads=[token("activated", AMY, "old")])
    run(api, current, Desired(display_name=NAME), secret_codes())
    assert kinds(api) == [("write", ACTIVATE), ("reread",), ("write", ACTIVATE)]
    assert api.writes[0][5] != api.writes[1][5]


def test_execute_second_lost_answer_is_not_swallowed():
    api = FakeApi(lost={0, 1}, rereads=[token("available")])
    with pytest.raises(WriteOutcomeUnknown):
        run(api, token(), Desired(), secret_codes())
    assert len(api.writes) == 2


# ---------------------------------------------------------------------------------------------------- took_effect
@pytest.mark.parametrize("action, seen, display_name, expected", [
    (Action(UNASSIGN, ADELE.id, ""), token("available"), None, True),
    (Action(UNASSIGN, ADELE.id, ""), token("activated", AMY), None, True),
    (Action(UNASSIGN, ADELE.id, ""), token("activated", ADELE), None, False),
    (Action(UNASSIGN, ADELE.id, ""), token("assigned", ADELE), None, False),
    (Action(SET_DISPLAY_NAME, AMY.id, ""), token("available", None, NAME), NAME, True),
    (Action(SET_DISPLAY_NAME, AMY.id, ""), token("available", None, "old"), NAME, False),
    (Action(SET_DISPLAY_NAME, AMY.id, ""), token("available", None, None), NAME, False),
    (Action(ASSIGN, AMY.id, ""), token("assigned", AMY), None, True),
    (Action(ASSIGN, AMY.id, ""), token("activated", AMY), None, True),
    (Action(ASSIGN, AMY.id, ""), token("available"), None, False),
    (Action(ASSIGN, AMY.id, ""), token("assigned", ADELE), None, False),
    (Action(ACTIVATE, AMY.id, ""), token("activated", AMY), None, True),
    (Action(ACTIVATE, AMY.id, ""), token("activated", AMY, NAME), NAME, True),
    (Action(ACTIVATE, AMY.id, ""), token("activated", AMY, "old"), NAME, False),
    (Action(ACTIVATE, AMY.id, ""), token("assigned", AMY), None, False),
    (Action(ACTIVATE, AMY.id, ""), token("failedActivation", AMY), None, False),
    (Action(ACTIVATE, AMY.id, ""), token("activated", ADELE), None, False),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("activated", AMY), None, True),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("activated", AMY, NAME), NAME, True),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("activated", AMY, None), NAME, False),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("assigned", AMY), None, False),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("available"), None, False),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token("activated", ADELE), None, False),
])
def test_took_effect(action, seen, display_name, expected):
    assert took_effect(action, seen, display_name) is expected


# ---------------------------------------------------------------------------------------------------- HardwareOathApi
class FakeClient:
    """GraphClient.request stand-in: records calls and gives the next answer (a body, or a GraphError to raise)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[tuple] = []

    def request(self, method, path, *, action, **kwargs):
        self.calls.append((method, path, action, kwargs))
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


METHODS = f"/users/{AMY.id}/authentication/hardwareOathMethods"
CONTEXT = f"token {SERIAL} for amy.masters@contoso.com"


@pytest.mark.parametrize("action, code, display_name, by_serial, expected", [
    (Action(UNASSIGN, AMY.id, ""), None, None, True,
     ("DELETE", f"{METHODS}/{DEVICE_ID}", f"unassign {CONTEXT}", {"expected": (204,)})),
    (Action(SET_DISPLAY_NAME, AMY.id, ""), None, NAME, True,
     ("PATCH", f"{DEVICES}/{DEVICE_ID}", f"set display name {CONTEXT}",
      {"json": {"displayName": NAME}, "expected": (204, 200)})),
    (Action(ASSIGN, AMY.id, ""), None, NAME, True,
     ("POST", METHODS, f"assign {CONTEXT}", {"json": {"device": {"id": DEVICE_ID}}, "expected": (201, 200)})),
    (Action(ACTIVATE, AMY.id, ""), "012345", None, True,
     ("POST", f"{METHODS}/{DEVICE_ID}/activate", f"activate {CONTEXT}",
      {"json": {"verificationCode": "012345"}, "expected": (204, 200)})),
    (Action(ACTIVATE, AMY.id, ""), "012345", NAME, False,
     ("POST", f"{METHODS}/{DEVICE_ID}/activate", f"activate {CONTEXT}",
      {"json": {"verificationCode": "012345", "displayName": NAME}, "expected": (204, 200)})),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), "012345", NAME, True,
     ("POST", f"{METHODS}/assignAndActivateBySerialNumber", f"assign and activate {CONTEXT}",
      {"json": {"serialNumber": SERIAL, "verificationCode": "012345", "displayName": NAME}, "expected": (204, 200)})),
    (Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), "012345", None, False,
     ("POST", f"{METHODS}/assignAndActivate", f"assign and activate {CONTEXT}",
      {"json": {"device": {"id": DEVICE_ID}, "verificationCode": "012345"}, "expected": (204, 200)})),
])
def test_write_requests(action, code, display_name, by_serial, expected):
    client = FakeClient()
    HardwareOathApi(client).write(action, token(), AMY, code, display_name, by_serial=by_serial, me=False)
    assert client.calls == [expected]


def test_write_for_me_and_for_the_other_holder():
    client = FakeClient()
    api = HardwareOathApi(client)
    api.write(Action(UNASSIGN, ADELE.id, ""), token("activated", ADELE), AMY, None, None, by_serial=True, me=True)
    api.write(Action(ASSIGN_AND_ACTIVATE, AMY.id, ""), token(), AMY, "123456", None, by_serial=True, me=True)
    assert [c[:3] for c in client.calls] == [
        ("DELETE", f"/users/{ADELE.id}/authentication/hardwareOathMethods/{DEVICE_ID}",
         f"unassign token {SERIAL} for {ADELE.id}"),
        ("POST", "/me/authentication/hardwareOathMethods/assignAndActivateBySerialNumber",
         f"assign and activate {CONTEXT}"),
    ]


def test_write_encodes_path_segments():
    client = FakeClient()
    user = UserView(id="a/b?c#d", user_principal_name="x")
    odd = TokenView(id="../x", serial_number="S", status="assigned", assigned_to_id=user.id, assigned_to_name=None,
                    display_name=None)
    HardwareOathApi(client).write(Action(UNASSIGN, user.id, ""), odd, user, None, None, by_serial=True, me=False)
    assert client.calls[0][1] == "/users/a%2Fb%3Fc%23d/authentication/hardwareOathMethods/..%2Fx"


def test_write_403_names_the_permission_and_role():
    client = FakeClient(GraphError("assign token: Graph answered 403 accessDenied", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(Action(ASSIGN, AMY.id, ""), token(), AMY, None, None, by_serial=True, me=False)
    assert info.value.message == (
        "assign token: Graph answered 403 accessDenied. The caller needs the Microsoft Graph permission "
        "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All) and, when signed in as "
        "a user, the Authentication Administrator role (Privileged Authentication Administrator for admin users)")


def test_write_403_on_the_inventory():
    client = FakeClient(GraphError("x", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(Action(SET_DISPLAY_NAME, AMY.id, ""), token(), AMY, None, NAME, by_serial=True,
                                      me=False)
    assert info.value.message == ("x. The caller needs the Microsoft Graph permission Policy.ReadWrite.AuthenticationMethod "
                                  "and, when signed in as a user, the Authentication Policy Administrator role")


def test_write_other_errors_unchanged():
    client = FakeClient(GraphError("x", status=400))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).write(Action(ASSIGN, AMY.id, ""), token(), AMY, None, None, by_serial=True, me=False)
    assert info.value.message == "x"


def test_user_lookup():
    body = {"id": AMY.id.upper(), "userPrincipalName": "amy.masters@contoso.com", "displayName": "Amy Masters",
            "userType": "Member"}
    client = FakeClient(body, body)
    api = HardwareOathApi(client)
    assert api.user("amy.masters@contoso.com") == AMY
    assert api.user("me") == AMY
    assert client.calls == [
        ("GET", "/users/amy.masters%40contoso.com", "Looking up user amy.masters@contoso.com",
         {"params": {"$select": "id,userPrincipalName,displayName,userType"}}),
        ("GET", "/me", "Looking up user me", {"params": {"$select": "id,userPrincipalName,displayName,userType"}}),
    ]


def test_user_not_found():
    client = FakeClient(GraphError("Looking up user x: Graph answered 404 Request_ResourceNotFound", status=404))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).user("nobody@contoso.com")
    assert info.value.message == ("User nobody@contoso.com was not found in the tenant (Looking up user x: Graph "
                                  "answered 404 Request_ResourceNotFound)")


def test_user_forbidden_names_the_permission():
    client = FakeClient(GraphError("m", status=403))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).user("amy.masters@contoso.com")
    assert info.value.message == "m. The caller needs the Microsoft Graph permission User.Read.All (or User.ReadBasic.All)"


def test_token_by_id_and_reread():
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "activated",
              "assignedTo": {"id": AMY.id, "displayName": "Amy Masters"}}
    client = FakeClient(device, device)
    api = HardwareOathApi(client)
    assert api.token_by_id(DEVICE_ID) == token("activated", AMY)
    assert api.reread(token()) == token("activated", AMY)
    assert client.calls == [("GET", f"{DEVICES}/{DEVICE_ID}", f"Looking up token {DEVICE_ID}", {})] * 2


def test_token_by_id_not_found():
    client = FakeClient(GraphError("Graph answered 404", status=404))
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).token_by_id("a/b")
    assert client.calls[0][1] == f"{DEVICES}/a%2Fb"
    assert info.value.message == "No hardware OATH token with id a/b is in the tenant's inventory (Graph answered 404)"


# ---------------------------------------------------------------------------------------------------- self-service (/me)
MY_METHODS = {"value": [
    {"id": "aaaa0000-0000-4000-8000-000000000001",
     "device": {"id": "aaaa0000-0000-4000-8000-000000000001", "serialNumber": "OTHER1", "status": "activated"}},
    {"id": DEVICE_ID.upper(),
     "device": {"id": DEVICE_ID, "serialNumber": SERIAL.lower(), "status": "activated", "displayName": NAME,
                "assignedTo": {"id": AMY.id, "displayName": "Amy Masters"}}},
]}
MINE = TokenView(id=DEVICE_ID.upper(), serial_number=SERIAL.lower(), status="activated", assigned_to_id=AMY.id,
                 assigned_to_name="Amy Masters", display_name=NAME)


@pytest.mark.parametrize("serial, device_id", [(SERIAL, None), (None, DEVICE_ID), (None, DEVICE_ID.upper())])
def test_my_token_found(serial, device_id):
    client = FakeClient(MY_METHODS)
    assert HardwareOathApi(client).my_token(serial, device_id) == MINE
    assert client.calls == [("GET", "/me/authentication/hardwareOathMethods", "Listing your hardware OATH tokens", {})]


def test_my_token_without_assigned_to_is_held_by_the_signed_in_user():
    # A method in the signed-in user's own list is theirs, even if Graph leaves device.assignedTo out.
    me = {"id": AMY.id, "userPrincipalName": AMY.user_principal_name, "displayName": "Amy Masters"}
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "activated"}
    client = FakeClient(me, {"value": [{"id": DEVICE_ID, "device": device}]})
    api = HardwareOathApi(client)
    assert api.user("me").id == AMY.id
    found = api.my_token(SERIAL, None)
    assert (found.assigned_to_id, found.assigned_to_name, found.status) == (AMY.id, "Amy Masters", "activated")


def test_my_token_not_among_my_methods():
    assert HardwareOathApi(FakeClient(MY_METHODS)).my_token("NOPE", None) is None
    assert HardwareOathApi(FakeClient({"value": []})).my_token(SERIAL, None) is None


def test_my_token_forbidden_names_the_permission():
    with pytest.raises(GraphError) as info:
        HardwareOathApi(FakeClient(GraphError("m", status=403))).my_token(SERIAL, None)
    # Reading one's own methods needs the scope, not a directory role.
    assert info.value.message == ("m. The caller needs the Microsoft Graph permission UserAuthenticationMethod.Read "
                                  "(delegated, with a signed-in user)")


def test_reread_for_me_reads_my_methods():
    client = FakeClient(MY_METHODS)
    assert HardwareOathApi(client).reread(token(), True) == MINE
    assert [c[1] for c in client.calls] == ["/me/authentication/hardwareOathMethods"]


def test_reread_for_me_when_the_token_is_not_mine():
    client = FakeClient({"value": []})
    assert HardwareOathApi(client).reread(token("assigned", AMY, NAME), True) == token()


# ---------------------------------------------------------------------------------------------------- inventory writes
def test_create_update_delete_requests():
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "available", "manufacturer": "Contoso", "model": "M"}
    client = FakeClient(device, None, None)
    api = HardwareOathApi(client)
    body = {"serialNumber": SERIAL, "manufacturer": "Contoso", "model": "M", "secretKey": SECRET}
    assert api.create_token(body) == TokenView.from_graph(device)
    api.update_token(token(), {"displayName": NAME})
    api.delete_token(token())
    assert client.calls == [
        ("POST", DEVICES, f"Creating token {SERIAL}", {"json": body, "expected": (201, 200)}),
        ("PATCH", f"{DEVICES}/{DEVICE_ID}", f"Updating token {SERIAL}", {"json": {"displayName": NAME}, "expected": (204, 200)}),
        ("DELETE", f"{DEVICES}/{DEVICE_ID}", f"Deleting token {SERIAL}", {"expected": (204,)}),
    ]


@pytest.mark.parametrize("assign_to, hint", [
    (None, "Policy.ReadWrite.AuthenticationMethod and, when signed in as a user, the Authentication Policy "
           "Administrator role"),
    ({"id": AMY.id}, "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All) and, when "
                     "signed in as a user, the Authentication Administrator role (Privileged Authentication Administrator "
                     "for admin users)"),
])
def test_create_token_403_names_the_permission(assign_to, hint):
    body = {"serialNumber": SERIAL, "secretKey": SECRET, **({"assignTo": assign_to} if assign_to else {})}
    with pytest.raises(GraphError) as info:
        HardwareOathApi(FakeClient(GraphError("m", status=403))).create_token(body)
    assert info.value.message == f"m. The caller needs the Microsoft Graph permission {hint}"
    assert SECRET not in info.value.message


def test_policy_read_and_update():
    client = FakeClient({"id": "HardwareOath", "state": "enabled"}, None, GraphError("p", status=403))
    api = PolicyApi(client)
    assert api.read() == {"id": "HardwareOath", "state": "enabled"}
    api.update({"state": "disabled"})
    with pytest.raises(GraphError) as info:
        api.update({"state": "enabled"})
    assert client.calls[:2] == [
        ("GET", POLICY_PATH, "Reading the hardwareOath authentication method policy", {}),
        ("PATCH", POLICY_PATH, "Updating the hardwareOath authentication method policy",
         {"json": {"state": "disabled"}, "expected": (204, 200)}),
    ]
    assert info.value.message == ("p. The caller needs the Microsoft Graph permission Policy.ReadWrite.AuthenticationMethod "
                                  "and, when signed in as a user, the Authentication Policy Administrator role")


# ---------------------------------------------------------------------------------------------------- execute_token_plan

POLICY_ON = {"id": "HardwareOath", "state": "enabled", "includeTargets": [{"id": "all_users"}], "excludeTargets": []}
POLICY_OFF = {**POLICY_ON, "state": "disabled"}


def test_execute_policy_plan_sends_the_patch_once():
    client = FakeClient(None)
    plan = plan_policy(POLICY_ON, PolicySpec(state="disabled"))
    execute_policy_plan(PolicyApi(client), plan, [].append)
    assert [(c[0], c[3].get("json")) for c in client.calls] == [("PATCH", plan.patch)]


@pytest.mark.parametrize("after_loss, expected", [
    (POLICY_OFF, ["PATCH", "GET"]),  # it took effect: not sent again
    (POLICY_ON, ["PATCH", "GET", "PATCH"]),  # it did not: sent once more
])
def test_execute_policy_plan_lost_answer_is_judged_from_a_fresh_read(after_loss, expected):
    client = FakeClient(WriteOutcomeUnknown("PATCH policy: the connection failed"), after_loss, None)
    logs: list[str] = []
    execute_policy_plan(PolicyApi(client), plan_policy(POLICY_ON, PolicySpec(state="disabled")), logs.append)
    assert [c[0] for c in client.calls] == expected
    assert logs == ["PATCH policy: the connection failed; reading the policy again before anything else"]


def inv(status="available", holder: UserView | None = None, **fields) -> TokenView:
    base = {"display_name": "Front desk", "manufacturer": "Contoso", "model": "OATH-TOTP"}
    return TokenView(id=DEVICE_ID, serial_number=SERIAL, status=status, assigned_to_id=holder.id if holder else None,
                     assigned_to_name=holder.display_name if holder else None, **{**base, **fields})


NEW_ID = "7a7a7a7a-0000-4000-8000-000000000001"


def created(holder: UserView | None = None, **fields) -> TokenView:
    return TokenView(**{**inv("assigned" if holder else "available", holder, **fields).__dict__, "id": NEW_ID})


class FakeInventoryApi:
    """Records the inventory writes and reads of execute_token_plan. ``lost``: numbers (0-based) of the writes whose
    answer is lost; ``reads``: the answers of find_token / token_exists / token_by_id, in order."""

    poll = HardwareOathApi.poll  # the real one, waiting through _sleep
    wait = READ_AFTER_WRITE_WAIT

    def __init__(self, lost=(), reads=(), creates=(), failures=None):
        self.lost = set(lost)
        self.reads = list(reads)
        self.creates = list(creates)
        self.failures = dict(failures or {})
        self.calls: list[tuple] = []
        self.writes = 0
        self.sleeps: list[float] = []

    def _sleep(self, seconds):
        self.sleeps.append(seconds)

    def _read(self):
        """The next read answer; the last one is answered to every further read."""
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]

    def _written(self, call):
        self.calls.append(call)
        self.writes += 1
        if self.writes - 1 in self.lost:
            raise WriteOutcomeUnknown(f"{call[0]}: the connection failed after the request was sent")
        if self.writes - 1 in self.failures:
            raise self.failures[self.writes - 1]

    def create_token(self, body, *, while_deleted=False):
        self._written(("create", body))
        answer = self.creates.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def update_token(self, token_view, body):
        self._written(("update", token_view.id, body))

    def delete_token(self, token_view):
        self._written(("delete", token_view.id))

    def write(self, action, token_view, user, code, display_name, *, by_serial, me):
        self._written((action.kind, action.user_id, token_view.id, user, code, display_name, by_serial, me))

    def find_token(self, serial):
        self.calls.append(("find_token", serial))
        return self._read()

    def token_exists(self, device_id):
        self.calls.append(("token_exists", device_id))
        return self._read()

    def token_by_id(self, device_id):
        self.calls.append(("token_by_id", device_id))
        return self._read()


def body(holder: UserView | None = None, **fields) -> dict:
    result = {"serialNumber": SERIAL, "manufacturer": "Contoso", "model": "OATH-TOTP", "secretKey": SECRET,
              "timeIntervalInSeconds": 30, "hashFunction": "hmacsha1", "displayName": "Front desk", **fields}
    if holder is not None:
        result["assignTo"] = {"id": holder.id}
    return result


def run_plan(api, current, spec):
    logs: list[str] = []
    plan = plan_token(current, spec)
    result = execute_token_plan(api, plan, current, spec, SECRET if spec.has_secret else None, logs.append)
    return result, logs


NEW = TokenSpec(serial_number=SERIAL, has_secret=True, manufacturer="Contoso", model="OATH-TOTP", display_name="Front desk")


def test_execute_token_plan_create():
    api = FakeInventoryApi(creates=[created()])
    result, logs = run_plan(api, None, NEW)
    assert result == created()
    assert api.calls == [("create", body())]
    assert logs == []


def test_execute_token_plan_create_assigned():
    api = FakeInventoryApi(creates=[created(AMY)])
    result, _logs = run_plan(api, None, TokenSpec(**{**NEW.__dict__, "assigned_to": AMY, "display_name": None}))
    assert result == created(AMY)
    expected = body(AMY)
    del expected["displayName"]
    assert api.calls == [("create", expected)]


def test_execute_token_plan_create_that_graph_did_not_assign():
    api = FakeInventoryApi(creates=[created()])
    with pytest.raises(GraphError) as info:
        run_plan(api, None, TokenSpec(**{**NEW.__dict__, "assigned_to": AMY}))
    assert info.value.message == (
        f"token {SERIAL} was created but Graph did not assign it to user {AMY.id}: it ignores assignTo when the caller "
        "lacks UserAuthenticationMethod.ReadWrite.All. The token is in the inventory, available; grant the permission "
        f"and run again, or assign it with tokenops.entra.hardware_oath_assignment. Already done for token {SERIAL}: "
        "created it. Fix the cause and run the task again to finish.")
    assert info.value.changed is True
    assert info.value.to_result() == {"changed": True, "pending_actions": [], "actions": [
        {"action": "create", "user_id": AMY.id, "reason": f"token {SERIAL} is not in the inventory",
         "changes": ["secret_key", "manufacturer", "model", "time_interval", "hash_function", "display_name",
                     "assigned_to"]}]}
    assert len(api.calls) == 1


def test_execute_token_plan_writes_in_plan_order():
    api = FakeInventoryApi()
    spec = TokenSpec(serial_number=SERIAL, display_name=NAME, time_interval=60, force_unassign=True)
    result, logs = run_plan(api, inv("activated", ADELE), spec)
    assert result is None
    assert logs == []
    assert api.calls == [
        (UNASSIGN, ADELE.id, DEVICE_ID, None, None, None, False, False),
        ("update", DEVICE_ID, {"timeIntervalInSeconds": 60, "displayName": NAME}),
        (ASSIGN, ADELE.id, DEVICE_ID, None, None, None, False, False),
    ]


def test_execute_token_plan_reassign_with_force():
    api = FakeInventoryApi()
    run_plan(api, inv("activated", ADELE), TokenSpec(serial_number=SERIAL, assigned_to=AMY, force_unassign=True))
    assert [c[:2] for c in api.calls] == [(UNASSIGN, ADELE.id), (ASSIGN, AMY.id)]


def test_execute_token_plan_failure_after_the_unassign_says_who_lost_the_token():
    api = FakeInventoryApi(failures={1: GraphError(f"Updating token {SERIAL}: Graph answered 503", status=503)})
    spec = TokenSpec(serial_number=SERIAL, time_interval=60, force_unassign=True)
    with pytest.raises(GraphError) as info:
        run_plan(api, inv("activated", ADELE), spec)
    assert [c[0] for c in api.calls] == [UNASSIGN, "update"]
    assert info.value.message == (
        f"Updating token {SERIAL}: Graph answered 503. Already done for token {SERIAL}: unassigned it from "
        f"{ADELE.display_name} ({ADELE.id}). Not done: update; assign for {ADELE.display_name} ({ADELE.id}). "
        f"{ADELE.display_name} ({ADELE.id}) no longer holds token {SERIAL}: to give it back, run "
        f"tokenops.entra.hardware_oath_assignment with user={ADELE.id} and serial_number={SERIAL} (it must be activated "
        "again). Fix the cause and run the task again to finish.")
    assert info.value.changed is True
    assert [a["action"] for a in info.value.result["actions"]] == [UNASSIGN]
    assert [a["action"] for a in info.value.result["pending_actions"]] == ["update", ASSIGN]


def test_execute_token_plan_failed_give_back_names_the_updated_fields():
    api = FakeInventoryApi(failures={2: GraphError("Assigning: Graph answered 429", status=429)})
    with pytest.raises(GraphError) as info:
        run_plan(api, inv("activated", ADELE), TokenSpec(serial_number=SERIAL, model="X2", force_unassign=True))
    assert f"Already done for token {SERIAL}: unassigned it from {ADELE.display_name} ({ADELE.id}); updated model. " \
           f"Not done: assign for {ADELE.display_name} ({ADELE.id})" in info.value.message
    assert "no longer holds" in info.value.message


def test_execute_token_plan_delete():
    api = FakeInventoryApi()
    assert run_plan(api, inv("assigned", AMY), TokenSpec(serial_number=SERIAL, state="absent", force_unassign=True)) == (None, [])
    assert api.calls == [(UNASSIGN, AMY.id, DEVICE_ID, None, None, None, False, False), ("delete", DEVICE_ID)]


def test_execute_token_plan_rotate_recreates_with_the_kept_fields_for_the_holder():
    current = inv("activated", ADELE, time_interval=60, hash_function="hmacsha256")
    api = FakeInventoryApi(creates=[created(ADELE, time_interval=60, hash_function="hmacsha256")])
    spec = TokenSpec(serial_number=SERIAL, has_secret=True, rotate=True, force_unassign=True, model="X2")
    result, _logs = run_plan(api, current, spec)
    assert result == created(ADELE, time_interval=60, hash_function="hmacsha256")
    assert api.calls == [
        (UNASSIGN, ADELE.id, DEVICE_ID, None, None, None, False, False),
        ("delete", DEVICE_ID),
        ("create", body(ADELE, model="X2", timeIntervalInSeconds=60, hashFunction="hmacsha256")),
    ]


def test_execute_token_plan_rotate_whose_recreation_fails_says_how_to_create_it_again():
    current = inv("available", None, time_interval=60, hash_function="hmacsha256")
    api = FakeInventoryApi(creates=[GraphError("Creating token: Graph answered 503", status=503)])
    with pytest.raises(GraphError) as info:
        run_plan(api, current, TokenSpec(serial_number=SERIAL, has_secret=True, rotate=True))
    assert info.value.message == (
        f"Creating token: Graph answered 503. token {SERIAL} was deleted to rotate its secret and is not in the "
        "inventory now: run the task again without rotate, with manufacturer='Contoso', model='OATH-TOTP', "
        f"time_interval=60, hash_function='hmacsha256', display_name='Front desk', to create it. Already done for token "
        f"{SERIAL}: deleted it. Not done: create. Fix the cause and run the task again to finish.")
    assert info.value.changed is True
    assert [a["action"] for a in info.value.result["actions"]] == ["delete"]
    assert [a["action"] for a in info.value.result["pending_actions"]] == ["create"]
    assert [c[0] for c in api.calls] == ["delete", "create"]


def test_execute_token_plan_failed_creation_of_a_new_token_is_graphs_error_alone():
    api = FakeInventoryApi(creates=[GraphError("Creating token: Graph answered 409", status=409)])
    with pytest.raises(GraphError) as info:
        run_plan(api, None, NEW)
    assert info.value.message == "Creating token: Graph answered 409"


def test_execute_token_plan_nothing_to_do():
    api = FakeInventoryApi()
    assert run_plan(api, inv(), TokenSpec(serial_number=SERIAL)) == (None, [])
    assert api.calls == []


# A lost answer: the plan, the write that is lost, the re-read it leads to and its answers (took effect / did not).
UPDATE_SPEC = TokenSpec(serial_number=SERIAL, display_name=NAME, model="X2")
LOST = {
    "create": (None, NEW, 0, ("find_token", SERIAL), created(), None),
    "update": (inv(), UPDATE_SPEC, 0, ("token_by_id", DEVICE_ID), inv(display_name=NAME, model="X2"),
               inv(display_name=NAME, model="OATH-TOTP")),
    "delete": (inv(), TokenSpec(serial_number=SERIAL, state="absent"), 0, ("token_exists", DEVICE_ID), False, True),
    "unassign": (inv("activated", ADELE), TokenSpec(serial_number=SERIAL, state="absent", force_unassign=True), 0,
                 ("token_by_id", DEVICE_ID), inv(), inv("activated", ADELE)),
    "assign": (inv(), TokenSpec(serial_number=SERIAL, assigned_to=AMY), 0, ("token_by_id", DEVICE_ID), inv("assigned", AMY),
               inv()),
}


def collapsed(calls):
    """The calls, consecutive identical reads (a poll while a write may not show yet) as one."""
    return [call for n, call in enumerate(calls) if n == 0 or call != calls[n - 1] or call[0] not in
            ("find_token", "token_exists", "token_by_id")]


@pytest.mark.parametrize("kind", list(LOST))
def test_execute_token_plan_lost_answer_that_took_effect_is_not_written_again(kind):
    current, spec, lost, read, done, _not_done = LOST[kind]
    api = FakeInventoryApi(lost={lost}, reads=[done], creates=[created()])
    result, logs = run_plan(api, current, spec)
    writes = [c for c in api.calls if c[0] not in ("find_token", "token_exists", "token_by_id")]
    plan = plan_token(current, spec)
    assert len(writes) == len(plan.actions)
    assert writes[0][0] == kind
    assert api.calls[1] == read
    assert logs == [f"{kind}: the connection failed after the request was sent; reading token {SERIAL} again before "
                    "anything else"]
    assert result == (done if kind == "create" else None)


@pytest.mark.parametrize("kind", list(LOST))
def test_execute_token_plan_lost_answer_that_did_not_take_effect_is_written_once_more(kind):
    current, spec, lost, read, _done, not_done = LOST[kind]
    api = FakeInventoryApi(lost={lost}, reads=[not_done], creates=[created()])
    result, _logs = run_plan(api, current, spec)
    plan = plan_token(current, spec)
    calls = collapsed(api.calls)
    assert calls[1] == read  # read again and again while the write might not show yet (10 s in all)
    assert api.sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]
    assert calls[2] == calls[0]  # the same write, once more
    assert len(calls) == len(plan.actions) + 2
    assert result == (created() if kind == "create" else None)


def test_execute_token_plan_lost_update_partly_done_is_written_again():
    api = FakeInventoryApi(lost={0}, reads=[inv(display_name=NAME)])
    run_plan(api, inv(), UPDATE_SPEC)
    assert collapsed(api.calls) == [("update", DEVICE_ID, {"model": "X2", "displayName": NAME}),
                                    ("token_by_id", DEVICE_ID), ("update", DEVICE_ID, {"model": "X2", "displayName": NAME})]


def test_execute_token_plan_lost_unassign_then_the_rest_of_the_plan():
    api = FakeInventoryApi(lost={0}, reads=[inv()])
    run_plan(api, inv("activated", ADELE), TokenSpec(serial_number=SERIAL, display_name=NAME, force_unassign=True))
    assert [c[0] for c in api.calls] == [UNASSIGN, "token_by_id", "update", ASSIGN]


def test_execute_token_plan_lost_create_that_took_effect_unassigned_still_fails_on_assign_to():
    api = FakeInventoryApi(lost={0}, reads=[created()])
    with pytest.raises(GraphError) as info:
        run_plan(api, None, TokenSpec(**{**NEW.__dict__, "assigned_to": AMY}))
    assert "UserAuthenticationMethod.ReadWrite.All" in info.value.message
    assert [c[0] for c in api.calls] == ["create", "find_token"]


def test_execute_token_plan_lost_create_of_a_rotation():
    api = FakeInventoryApi(lost={1}, reads=[created()])
    result, _logs = run_plan(api, inv(), TokenSpec(serial_number=SERIAL, has_secret=True, rotate=True))
    assert result == created()
    assert [c[0] for c in api.calls] == ["delete", "create", "find_token"]


def test_execute_token_plan_second_lost_answer_is_not_swallowed():
    api = FakeInventoryApi(lost={0, 1}, reads=[inv()])
    with pytest.raises(WriteOutcomeUnknown):
        run_plan(api, inv(), UPDATE_SPEC)
    assert [c[0] for c in collapsed(api.calls)] == ["update", "token_by_id", "update"]


# ---------------------------------------------------------------------------------------------------- reads on a mock Graph
GRAPH = "https://graph.microsoft.com"


class Graph:
    """A mock Graph behind httpx.MockTransport: ``routes`` maps a path (under /beta) to a function of the request
    giving (status, body), or to a list of such answers given in turn."""

    def __init__(self, routes):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        path = request.url.path[len("/beta"):]
        route = self.routes[path]
        answer = route.pop(0) if isinstance(route, list) else route(request)
        status, answer_body = answer
        headers = {"request-id": "rid", "date": "Sat, 21 Nov 2026 22:42:25 GMT"} if status >= 400 else {}
        return httpx.Response(status, json=answer_body, headers=headers)

    @property
    def params(self):
        return [dict(r.url.params) for r in self.requests]


def graph_api(graph: Graph, warnings: list | None = None, sleeps: list | None = None) -> HardwareOathApi:
    transport = Transport(destinations=Destinations(GRAPH, "https://login.microsoftonline.com"), verify=True,
                          timeout=5.0, max_retries=2, max_retry_wait=1.0, sleep=lambda seconds: None)
    transport.client.close()
    transport.client = httpx.Client(transport=httpx.MockTransport(graph), headers={"User-Agent": USER_AGENT})
    return HardwareOathApi(GraphClient(transport, GRAPH, lambda force: "t"),
                           warn=(warnings if warnings is not None else []).append,
                           sleep=(sleeps if sleeps is not None else []).append)


def device(device_id, serial, holder: UserView | None = None) -> dict:
    answer = {"id": device_id, "serialNumber": serial, "status": "assigned" if holder else "available",
              "manufacturer": "Contoso", "model": "OATH-TOTP", "timeIntervalInSeconds": 30, "hashFunction": "hmacsha1"}
    if holder:
        answer["assignedTo"] = {"id": holder.id, "displayName": holder.display_name}
    return answer


DENIED = (403, {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the "
                          "operation.", "innerError": {"request-id": "rid-403", "date": "2026-11-21T22:42:25"}}})
DENIED_TEXT = ("Graph answered 403 Authorization_RequestDenied: Insufficient privileges to complete the operation. "
               "(request-id rid-403, date 2026-11-21T22:42:25)")


def test_list_tokens_everything_in_pages_of_999():
    link = GRAPH + "/beta" + DEVICES + "?$top=999&$skiptoken=abc"
    graph = Graph({DEVICES: [(200, {"value": [device("d1", "S1"), device("d2", "S2", AMY)], "@odata.nextLink": link}),
                             (200, {"value": [device("d3", "S3")]})]})
    tokens = graph_api(graph).list_tokens()
    assert [(t.id, t.serial_number, t.assigned_to_id) for t in tokens] == [
        ("d1", "S1", None), ("d2", "S2", AMY.id), ("d3", "S3", None)]
    assert len(graph.requests) == 2
    assert graph.params[0] == {"$top": "999"}
    assert str(graph.requests[1].url) == link
    assert all(r.method == "GET" and r.headers["Authorization"] == "Bearer t" for r in graph.requests)


def test_list_tokens_without_top_when_graph_refuses_it():
    refused = (400, {"error": {"code": "BadRequest", "message": "$top may not be above 100."}})
    graph = Graph({DEVICES: [refused, (200, {"value": [device("d1", "S1")]}), (200, {"value": [device("d2", "S2")]})]})
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert [t.id for t in api.list_tokens()] == ["d1"]
    assert [t.id for t in api.list_tokens(TokenQuery(statuses=("available",)))] == ["d2"]
    assert graph.params == [{"$top": "999"}, {}, {"$filter": "status eq 'available'"}]  # refused once, then never sent
    assert len(warnings) == 1 and warnings[0].startswith("Graph refused $top=999 (")


def batch_of(*bodies):
    return (200, {"responses": [{"id": str(n), "status": 200, "body": body} for n, body in enumerate(bodies)]})


def test_list_tokens_several_values_one_eq_listing_each_in_one_batch():
    graph = Graph({"/$batch": [batch_of({"value": [device("d1", "S00")]}, {"value": []},
                                        {"value": [device("d3", "s02", AMY)]})]})
    tokens = graph_api(graph).list_tokens(TokenQuery(serial_numbers=("S00", "S01", "s00", "S02"), statuses=("available",)))
    assert [t.id for t in tokens] == ["d1"]  # d3 is assigned: checked locally
    assert len(graph.requests) == 1
    sent = json.loads(graph.requests[0].content)["requests"]
    assert [item["url"] for item in sent] == [f"{DEVICES}?$filter=serialNumber%20eq%20'S00'",
                                              f"{DEVICES}?$filter=serialNumber%20eq%20'S01'",
                                              f"{DEVICES}?$filter=serialNumber%20eq%20'S02'"]


def test_list_tokens_statuses_one_eq_listing_each_with_top_and_checked_locally():
    graph = Graph({"/$batch": [batch_of({"value": [device("d1", "S1", AMY) | {"status": "activated"}]},
                                        {"value": [device("d2", "S2", AMY)]})]})
    tokens = graph_api(graph).list_tokens(TokenQuery(statuses=("activated", "assigned"), model="OATH-TOTP",
                                                     manufacturer="Other"))
    assert tokens == []  # the manufacturer differs: checked locally
    sent = json.loads(graph.requests[0].content)["requests"]
    assert [item["url"] for item in sent] == [f"{DEVICES}?$filter=status%20eq%20'activated'&$top=999",
                                              f"{DEVICES}?$filter=status%20eq%20'assigned'&$top=999"]


def test_list_tokens_a_filter_graph_ignored_never_widens_the_result():
    everything = [device("d1", "S1"), device("d2", "S2", AMY), device(DEVICE_ID, SERIAL)]
    link = GRAPH + "/beta" + DEVICES + "?$skiptoken=p2"
    graph = Graph({DEVICES: [(200, {"value": everything[:2], "@odata.nextLink": link}),
                             (200, {"value": everything[2:]})]})
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert api.find_token(SERIAL).id == DEVICE_ID  # on the second page of the unfiltered answer
    assert len(graph.requests) == 2
    assert warnings == [f"Graph ignored the inventory filter \"serialNumber eq '{SERIAL}'\" (its answer holds other "
                        "tokens); reading the whole inventory and filtering it locally."]


def test_list_tokens_an_ignored_filter_in_a_batch_reads_that_answer_only():
    everything = [device("d1", "S1"), device("d2", "S2", AMY), device("d3", "S3")]
    graph = Graph({"/$batch": [batch_of({"value": everything}, {"value": everything})]})
    warnings: list[str] = []
    tokens = graph_api(graph, warnings).list_tokens(TokenQuery(serial_numbers=("S1", "S3")))
    assert [t.id for t in tokens] == ["d1", "d3"]
    assert len(graph.requests) == 1 and len(warnings) == 1


def test_list_tokens_a_refused_filter_falls_back_to_listing_everything_once():
    refused = (400, {"error": {"code": "BadRequest", "message": "Unsupported query."}})
    listing = (200, {"value": [device("d1", "S1", AMY), device("d2", "S2")]})
    graph = Graph({DEVICES: [refused, refused, listing, refused, refused, listing]})
    warnings: list[str] = []
    api = graph_api(graph, warnings)
    assert [t.id for t in api.list_tokens(TokenQuery(assigned_to_id=AMY.id))] == ["d1"]
    assert [t.id for t in api.list_tokens(TokenQuery(assigned_to_id=AMY.id))] == ["d1"]
    # refused with $top, refused without it too: the filter was refused, not $top, which the listing keeps
    assert graph.params == [{"$filter": f"assignedTo/id eq '{AMY.id}'", "$top": "999"},
                            {"$filter": f"assignedTo/id eq '{AMY.id}'"}, {"$top": "999"}] * 2
    assert len(warnings) == 1 and warnings[0].startswith(f"Graph refused the inventory filter \"assignedTo/id eq '{AMY.id}'\"")


def test_list_tokens_a_refused_filter_in_a_batch_falls_back_too():
    refused = {"id": "1", "status": 400, "body": {"error": {"code": "BadRequest", "message": "Unsupported query."}}}
    graph = Graph({"/$batch": [(200, {"responses": [{"id": "0", "status": 200, "body": {"value": []}}, refused]})],
                   DEVICES: [(200, {"value": [device("d1", "S1"), device("d2", "S2")]})]})
    tokens = graph_api(graph).list_tokens(TokenQuery(serial_numbers=("S1", "S2")))
    assert [t.id for t in tokens] == ["d1", "d2"]
    assert graph.params[-1] == {"$top": "999"}


@pytest.mark.parametrize("inventory, pages, lookups", [
    (30, 1, 0),     # the inventory fits one page: it answers everything in one round trip
    (3000, 2, 1),   # two pages (the eq listings would take two round trips), then the 5 serials not seen yet
])
def test_list_tokens_many_serial_numbers_cost_at_most_twice_the_cheaper_way(inventory, pages, lookups):
    serials = [f"S{i:04d}" for i in range(25)] + [f"T{i}" for i in range(5)]  # 30 values: 2 batch round trips
    tokens = [device(f"d{i}", f"S{i:04d}") for i in range(inventory)] + [device(f"t{i}", f"T{i}") for i in range(5)]
    by_page = [tokens[i:i + 999] for i in range(0, len(tokens), 999)]
    answers = [(200, {"value": page, **({"@odata.nextLink": f"{GRAPH}/beta{DEVICES}?$skiptoken={n + 1}"}
                                        if n + 1 < len(by_page) else {})}) for n, page in enumerate(by_page)]
    graph = Graph({DEVICES: answers, "/$batch": [batch_of(*[{"value": [device(f"t{i}", f"T{i}")]} for i in range(5)])]})
    found = graph_api(graph).list_tokens(TokenQuery(serial_numbers=tuple(serials)))
    assert sorted(t.serial_number for t in found) == sorted(serials)
    assert [r.url.path for r in graph.requests] == [f"/beta{DEVICES}"] * pages + ["/beta/$batch"] * lookups
    if lookups:
        sent = json.loads(graph.requests[-1].content)["requests"]
        assert [item["url"].rsplit("'", 2)[1] for item in sent] == [f"T{i}" for i in range(5)]


def test_list_tokens_forbidden_names_the_permission():
    graph = Graph({DEVICES: [DENIED]})
    with pytest.raises(GraphError) as info:
        graph_api(graph).list_tokens()
    assert info.value.status == 403
    assert info.value.message == (
        f"Listing the hardware OATH token inventory: {DENIED_TEXT}. The caller needs the Microsoft Graph permission "
        "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod) and, when signed in as a user, the Global Reader or "
        "Authentication Policy Administrator role")
    assert len(graph.requests) == 1


def test_find_token_on_graph():
    graph = Graph({DEVICES: [(200, {"value": [device(DEVICE_ID, SERIAL.lower(), AMY)]}), (200, {"value": []})]})
    api = graph_api(graph)
    found = api.find_token(SERIAL)
    assert (found.id, found.serial_number, found.status, found.assigned_to_id) == (DEVICE_ID, SERIAL.lower(), "assigned", AMY.id)
    assert api.find_token("O'Brien' or 1 eq 1") is None
    assert graph.params == [{"$filter": f"serialNumber eq '{SERIAL}'"}, {"$filter": "serialNumber eq 'O''Brien'' or 1 eq 1'"}]


def test_token_by_serial_waits_for_a_token_imported_a_moment_ago():
    graph = Graph({DEVICES: [(200, {"value": []}), (200, {"value": []}), (200, {"value": [device(DEVICE_ID, SERIAL)]})]})
    sleeps: list[float] = []
    assert graph_api(graph, sleeps=sleeps).token_by_serial(SERIAL).id == DEVICE_ID
    assert sleeps == [0.5, 1.0]


def test_token_by_serial_not_found_after_waiting():
    graph = Graph({DEVICES: lambda request: (200, {"value": []})})
    sleeps: list[float] = []
    with pytest.raises(GraphError) as info:
        graph_api(graph, sleeps=sleeps).token_by_serial("NOPE1")
    assert (info.value.status, info.value.code) == (404, "notFound")
    assert info.value.message == ("No hardware OATH token with serial number NOPE1 is in the tenant's inventory (looked "
                                  f"up again for {READ_AFTER_WRITE_WAIT:.0f} s, in case it was imported a moment ago); "
                                  "import it first (tokenops.entra.hardware_oath_token).")
    assert sum(sleeps) == READ_AFTER_WRITE_WAIT == 10.0
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]


def test_token_exists_on_graph():
    missing = (404, {"error": {"code": "Request_ResourceNotFound", "message": "Not found"}})
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": [(200, device(DEVICE_ID, SERIAL)), missing, DENIED]})
    api = graph_api(graph)
    assert api.token_exists(DEVICE_ID) is True
    assert api.token_exists(DEVICE_ID) is False
    with pytest.raises(GraphError) as info:
        api.token_exists(DEVICE_ID)
    assert info.value.message == (
        f"Looking up token {DEVICE_ID}: {DENIED_TEXT}. The caller needs the Microsoft Graph permission Policy.Read.All (or "
        "Policy.ReadWrite.AuthenticationMethod) and, when signed in as a user, the Global Reader or Authentication Policy "
        "Administrator role")
    assert len(graph.requests) == 3


def batch_items(answer):
    """A $batch route: ``answer(url)`` gives each item's (status, body)."""
    def route(request):
        responses = []
        for item in json.loads(request.content)["requests"]:
            status, item_body = answer(item["url"])
            responses.append({"id": item["id"], "status": status, "headers": {"Content-Type": "application/json"},
                              "body": item_body})
        return 200, {"responses": responses}
    return route


def user_body(user: UserView) -> dict:
    return {"id": user.id.upper(), "userPrincipalName": user.user_principal_name, "displayName": user.display_name,
            "userType": user.user_type}


def test_users_by_ids_in_batched_chunks_of_fifteen():
    others = [f"00000000-0000-4000-8000-{n:012d}" for n in range(14)]
    ids = [AMY.id, ADELE.id.upper(), *others, ADELE.id, AMY.id.upper()]  # 16 distinct ids
    graph = Graph({"/$batch": batch_items(lambda url: (200, {"value": [user_body(AMY)]} if "%20in%20" in url
                                                       else {"value": [user_body(ADELE)]}))})
    users = graph_api(graph).users_by_ids(ids)
    assert users == {AMY.id: AMY, ADELE.id: ADELE}
    assert len(graph.requests) == 1
    sent = json.loads(graph.requests[0].content)["requests"]
    select = "&$select=id,userPrincipalName,displayName,userType"
    first = ",%20".join(f"'{i}'" for i in [AMY.id, ADELE.id.upper(), *others[:13]])
    assert sent == [{"id": "0", "method": "GET", "url": f"/users?$filter=id%20in%20({first}){select}"},
                    {"id": "1", "method": "GET", "url": f"/users?$filter=id%20eq%20'{others[13]}'{select}"}]


def test_users_by_ids_of_nobody_sends_nothing():
    graph = Graph({})
    assert graph_api(graph).users_by_ids([]) == {}
    assert graph.requests == []


def test_users_by_ids_forbidden_names_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_by_ids([AMY.id])
    assert info.value.message == (f"Looking up the users holding tokens (/users): {DENIED_TEXT}. The caller needs the "
                                  "Microsoft Graph permission User.Read.All (or User.ReadBasic.All)")


AMY_METHODS = [{"id": DEVICE_ID, "device": device(DEVICE_ID, SERIAL, AMY)}]


def test_users_with_methods_in_one_batch():
    answers = {"/me?$select=id,userPrincipalName,displayName,userType": (200, user_body(ADELE)),
               "/me/authentication/hardwareOathMethods": (200, {"value": []}),
               "/users/amy.masters%40contoso.com?$select=id,userPrincipalName,displayName,userType": (200, user_body(AMY)),
               "/users/amy.masters%40contoso.com/authentication/hardwareOathMethods": (200, {"value": AMY_METHODS})}
    graph = Graph({"/$batch": batch_items(answers.__getitem__)})
    result = graph_api(graph).users_with_methods(["me", "amy.masters@contoso.com"])
    assert result == [(ADELE, []), (AMY, AMY_METHODS)]
    assert len(graph.requests) == 1
    assert [item["url"] for item in json.loads(graph.requests[0].content)["requests"]] == list(answers)


def test_users_with_methods_user_not_found():
    missing = (404, {"error": {"code": "Request_ResourceNotFound", "message": "Resource does not exist."}})
    graph = Graph({"/$batch": batch_items(lambda url: missing if url.startswith("/users/nobody") else (200, {"value": []}))})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods(["nobody@contoso.com"])
    assert info.value.status == 404
    assert info.value.message == (
        "User nobody@contoso.com was not found in the tenant (Reading the hardware OATH methods of users "
        "(/users/nobody%40contoso.com): Graph answered 404 Request_ResourceNotFound: Resource does not exist.)")


def test_users_with_methods_forbidden_methods_name_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED if url.endswith("hardwareOathMethods") else (200, user_body(AMY)))})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods([AMY.id])
    assert info.value.message == (
        f"Reading the hardware OATH methods of users (/users/{AMY.id}/authentication/hardwareOathMethods): {DENIED_TEXT}. "
        "The caller needs the Microsoft Graph permission UserAuthenticationMethod.Read (for yourself) or "
        "UserAuthenticationMethod.Read.All and, when signed in as a user, the Global Reader or Authentication "
        "Administrator role")


def test_users_with_methods_forbidden_user_names_the_permission():
    graph = Graph({"/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError) as info:
        graph_api(graph).users_with_methods(["me"])
    assert info.value.message == (f"Reading the hardware OATH methods of users (/me): {DENIED_TEXT}. The caller needs the "
                                  "Microsoft Graph permission User.Read.All (or User.ReadBasic.All)")


# ---------------------------------------------------------------------------------------------------- eventual consistency
def conflict():
    return TokenExists(GraphError(f"Creating token {SERIAL}: Graph answered 409 conflict", status=409, code="conflict"))


def test_apply_token_creation_of_a_serial_number_in_use_is_planned_again_once_it_shows():
    """Imported by the task before, a moment ago: not visible to the first read, refused as a duplicate."""
    api = FakeInventoryApi(reads=[None, None, created()], creates=[conflict()])
    logs: list[str] = []
    plan, made = apply_token(api, NEW, SECRET, check_mode=False, log=logs.append)
    assert made is None and plan.changed is False
    assert [c[0] for c in collapsed(api.calls)] == ["find_token", "create", "find_token"]
    assert api.sleeps == [0.5]
    assert logs == [f"token {SERIAL} is in use although the inventory did not show it: reading it again"]


def test_apply_token_replanned_against_the_token_that_shows():
    api = FakeInventoryApi(reads=[None, created(model="Old")], creates=[conflict()])
    plan, _made = apply_token(api, NEW, SECRET, check_mode=False, log=lambda message: None)
    assert [a.kind for a in plan.actions] == ["update"]
    assert api.calls[-1] == ("update", NEW_ID, {"model": "OATH-TOTP"})


def test_apply_token_a_conflict_that_never_shows_fails():
    api = FakeInventoryApi(reads=[None], creates=[conflict()])
    with pytest.raises(TokenExists):
        apply_token(api, NEW, SECRET, check_mode=False, log=lambda message: None)
    assert sum(api.sleeps) == READ_AFTER_WRITE_WAIT


def test_apply_token_check_mode_writes_nothing():
    api = FakeInventoryApi(reads=[None])
    plan, made = apply_token(api, NEW, SECRET, check_mode=True, log=lambda message: None)
    assert [a.kind for a in plan.actions] == ["create"] and made is None
    assert api.calls == [("find_token", SERIAL)]


def test_create_while_the_delete_of_its_serial_number_propagates():
    duplicate = (409, {"error": {"code": "conflict", "message": "already exists"}})
    graph = Graph({DEVICES: [duplicate, duplicate, (201, device(NEW_ID, SERIAL))]})
    sleeps: list[float] = []
    api = graph_api(graph, sleeps=sleeps)
    assert api.create_token({"serialNumber": SERIAL}, while_deleted=True).id == NEW_ID
    assert sleeps == [0.5, 1.0]
    graph = Graph({DEVICES: [duplicate]})
    with pytest.raises(TokenExists):
        graph_api(graph).create_token({"serialNumber": SERIAL})
    assert len(graph.requests) == 1


def test_users_with_methods_read_a_device_graph_left_out():
    bare = [{"id": DEVICE_ID, "createdDateTime": "2026-01-01T00:00:00Z"}, {"id": "d2", "device": device("d2", "S2", AMY)}]
    answers = {f"/users/{AMY.id}?$select=id,userPrincipalName,displayName,userType": (200, user_body(AMY)),
               f"/users/{AMY.id}/authentication/hardwareOathMethods": (200, {"value": bare}),
               f"/users/{AMY.id}/authentication/hardwareOathMethods/{DEVICE_ID}/device": (200, device(DEVICE_ID, SERIAL, AMY))}
    graph = Graph({"/$batch": batch_items(answers.__getitem__)})
    [(user, methods)] = graph_api(graph).users_with_methods([AMY.id])
    assert user == AMY
    assert [TokenView.from_method(m, AMY).serial_number for m in methods] == [SERIAL, "S2"]
    assert len(graph.requests) == 2  # the users and their methods, then the one device left out
    assert [item["url"] for item in json.loads(graph.requests[1].content)["requests"]] == [
        f"/users/{AMY.id}/authentication/hardwareOathMethods/{DEVICE_ID}/device"]


def test_my_token_reads_a_device_graph_left_out():
    graph = Graph({"/me/authentication/hardwareOathMethods": [(200, {"value": [{"id": DEVICE_ID}]})],
                   "/$batch": batch_items(lambda url: (200, device(DEVICE_ID, SERIAL, AMY)))})
    found = graph_api(graph).my_token(SERIAL, None)
    assert (found.id, found.serial_number, found.assigned_to_id) == (DEVICE_ID, SERIAL, AMY.id)
    assert len(graph.requests) == 2


def test_a_device_read_refused_names_the_permission():
    graph = Graph({"/me/authentication/hardwareOathMethods": [(200, {"value": [{"id": DEVICE_ID}]})],
                   "/$batch": batch_items(lambda url: DENIED)})
    with pytest.raises(GraphError, match="UserAuthenticationMethod.Read"):
        graph_api(graph).my_token(SERIAL, None)


# ---------------------------------------------------------------------------------------------------- refusals
FIVE = GraphError(f"assign and activate token {SERIAL} for amy: Graph answered 400 badRequest: The user already has "
                  "the maximum of 5 OATH methods.", status=400, code="badRequest",
                  graph_message="The user amy.masters@contoso.com already has the maximum of 5 OATH methods (hardware "
                                "tokens and authenticator apps).")
ACTIVATED = GraphError("activate: Graph answered 400 badRequest", status=400, code="badRequest",
                       graph_message="The hardware OATH token is already activated.")


@pytest.mark.parametrize("kind", [ASSIGN, ASSIGN_AND_ACTIVATE])
def test_the_five_method_limit_says_what_to_do(kind):
    api = HardwareOathApi(FakeClient(copy.copy(FIVE)))
    with pytest.raises(GraphError) as info:
        api.write(Action(kind, AMY.id, ""), token(), AMY, "123456", None, by_serial=True, me=False)
    assert info.value.message.endswith(
        ". A user holds at most five OATH methods, hardware tokens and authenticator apps together: remove one of theirs "
        "first (a hardware token with tokenops.entra.hardware_oath_assignment state=absent, an authenticator app in the "
        "Entra admin center), or give this token to someone else")


def test_the_five_method_limit_on_a_creation_with_assign_to():
    api = HardwareOathApi(FakeClient(copy.copy(FIVE)))
    with pytest.raises(GraphError, match="at most five OATH methods"):
        api.create_token({"serialNumber": SERIAL, "assignTo": {"id": AMY.id}})


def test_a_refused_reactivation_says_what_to_do():
    api = HardwareOathApi(FakeClient(copy.copy(ACTIVATED)))
    with pytest.raises(GraphError) as info:
        api.write(Action(ACTIVATE, AMY.id, ""), token("activated", AMY), AMY, "123456", NAME, by_serial=True, me=False)
    assert "Graph does not activate an activated token again, so its display name can't be changed this way: leave " \
           "display_name unset, or unassign the token and assign it again with display_name" in info.value.message


@pytest.mark.parametrize("error, kind, status", [
    (ACTIVATED, ACTIVATE, "assigned"),  # not a re-activation
    (refused(), ACTIVATE, "activated"),  # a refused code is said as Graph says it
    (GraphError("x", status=403, graph_message="maximum"), ASSIGN, "available"),
])
def test_other_refusals_are_left_as_they_are(error, kind, status):
    api = HardwareOathApi(FakeClient(copy.copy(error)))
    with pytest.raises(GraphError) as info:
        api.write(Action(kind, AMY.id, ""), token(status, AMY if status != "available" else None), AMY, "123456", None,
                  by_serial=True, me=False)
    assert info.value.message == error.message or info.value.message.endswith(". The caller needs the Microsoft Graph "
                                                                              "permission UserAuthenticationMethod."
                                                                              "ReadWrite.All (or UserAuthMethod-"
                                                                              "HardwareOATH.ReadWrite.All) and, when "
                                                                              "signed in as a user, the Authentication "
                                                                              "Administrator role (Privileged "
                                                                              "Authentication Administrator for admin "
                                                                              "users)")
    assert "at most five" not in info.value.message and "activate an activated" not in info.value.message


def test_token_by_id_waits_for_a_token_imported_a_moment_ago():
    missing = (404, {"error": {"code": "itemNotFound", "message": "Not found"}})
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": [missing, (200, device(DEVICE_ID, SERIAL))]})
    sleeps: list[float] = []
    assert graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID, wait=True).id == DEVICE_ID
    assert sleeps == [0.5]
    graph = Graph({f"{DEVICES}/{DEVICE_ID}": lambda request: missing})
    sleeps = []
    with pytest.raises(GraphError) as info:
        graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID, wait=True)
    assert info.value.status == 404 and sum(sleeps) == READ_AFTER_WRITE_WAIT
    assert info.value.message.endswith("; looked up again for 10 s, in case it was imported a moment ago")
    with pytest.raises(GraphError):  # without wait: one lookup
        graph_api(graph, sleeps=sleeps).token_by_id(DEVICE_ID)


def test_the_wait_for_an_earlier_write_is_an_option():
    graph = Graph({DEVICES: lambda request: (200, {"value": []})})
    sleeps: list[float] = []
    transport_api = graph_api(graph, sleeps=sleeps)
    transport_api.wait = 2.0
    with pytest.raises(GraphError, match=r"looked up again for 2 s, in case it was imported a moment ago"):
        transport_api.token_by_serial("NOPE1")
    assert sleeps == [0.5, 1.0, 0.5]
    assert len(graph.requests) == 4
