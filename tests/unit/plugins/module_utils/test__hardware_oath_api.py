# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._errors import GraphError, WriteOutcomeUnknown
from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath import (
    ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, SET_DISPLAY_NAME, UNASSIGN, Action, CodeSource, Desired, PlanError, TokenView,
    UserView, plan_assignment, totp_code)
from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath_api import (
    DEVICES, HardwareOathApi, execute, took_effect)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, DEVICE_ID, SECRET, SERIAL

NAME = "Amy Masters Token"


def token(status="available", holder: UserView | None = None, display_name: str | None = None) -> TokenView:
    return TokenView(id=DEVICE_ID, serial_number=SERIAL, status=status, assigned_to_id=holder.id if holder else None,
                     assigned_to_name=holder.display_name if holder else None, display_name=display_name)


# ---------------------------------------------------------------------------------------------------- execute
class FakeApi:
    """Records writes and re-reads. ``lost``: numbers (0-based) of the writes whose answer is lost."""

    def __init__(self, lost=(), rereads=()):
        self.lost = set(lost)
        self.rereads = list(rereads)
        self.calls: list[tuple] = []

    @property
    def writes(self):
        return [c for c in self.calls if c[0] == "write"]

    def write(self, action, token_view, user, code, display_name, *, by_serial, me):
        number = len(self.writes)
        self.calls.append(("write", action.kind, action.user_id, token_view, user, code, display_name, by_serial, me))
        if number in self.lost:
            raise WriteOutcomeUnknown(f"POST /x: the connection failed after the request was sent (write {number})")

    def reread(self, token_view, me=False):
        self.calls.append(("reread", token_view.id, me))
        return self.rereads.pop(0)


def secret_codes(redacted=None):
    return CodeSource(secret_b32=SECRET, clock=lambda: 59.0, redact=(redacted if redacted is not None else []).append)


def run(api, current, desired, codes, *, by_serial=True, me=False, user=AMY):
    logs: list[str] = []
    plan = plan_assignment(current, user, desired)
    result = execute(api, plan, current, user, codes, desired.display_name, by_serial=by_serial, me=me, log=logs.append)
    return result, logs


def kinds(api):
    return [(c[0], c[1]) if c[0] == "write" else ("reread",) for c in api.calls]


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
    first, second = api.calls[0][5], api.calls[2][5]
    assert first == totp_code(SECRET, 1) == "287082"
    assert second == totp_code(SECRET, 2)
    assert second != first
    assert api.calls[2][3] == not_done  # the fresh read is what the second write works from
    assert api.calls[2][6] == NAME
    assert redacted == [first, second]
    assert codes.used == ["computed", "computed"]


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
    write = api.calls[2]
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
    assert api.calls[2][2] == ADELE.id and api.calls[2][5] is None
    assert api.calls[3][5] == "287082"  # the first code used, for the first code action


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
    assert api.calls[0][5] != api.calls[2][5]


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
    assert info.value.message == "x. The caller needs the Microsoft Graph permission Policy.ReadWrite.AuthenticationMethod"


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


def test_token_by_serial_filters_and_matches_case_insensitively():
    device = {"id": DEVICE_ID, "serialNumber": "totp123456", "status": "available"}
    client = FakeClient({"value": [{"id": "other", "serialNumber": "TOTP1234567"}, device]})
    found = HardwareOathApi(client).token_by_serial("TOTP123456")
    assert found.id == DEVICE_ID
    assert client.calls == [("GET", DEVICES, "Looking up token TOTP123456",
                             {"params": {"$filter": "serialNumber eq 'TOTP123456'"}})]


def test_token_by_serial_quotes_the_value():
    client = FakeClient({"value": []})
    with pytest.raises(GraphError):
        HardwareOathApi(client).token_by_serial("O'Brien' or 1 eq 1")
    assert client.calls[0][3] == {"params": {"$filter": "serialNumber eq 'O''Brien'' or 1 eq 1'"}}


def test_token_by_serial_not_found():
    client = FakeClient({"value": []})
    with pytest.raises(GraphError) as info:
        HardwareOathApi(client).token_by_serial("NOPE1")
    assert (info.value.status, info.value.code) == (404, "notFound")
    assert info.value.message == ("No hardware OATH token with serial number NOPE1 is in the tenant's inventory; import "
                                  "it first (tokenops.entra.hardware_oath_token).")


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
    assert info.value.message == ("m. The caller needs the Microsoft Graph permission UserAuthenticationMethod.Read "
                                  "(for yourself) or UserAuthenticationMethod.Read.All")


def test_reread_for_me_reads_my_methods():
    client = FakeClient(MY_METHODS)
    assert HardwareOathApi(client).reread(token(), True) == MINE
    assert [c[1] for c in client.calls] == ["/me/authentication/hardwareOathMethods"]


def test_reread_for_me_when_the_token_is_not_mine():
    client = FakeClient({"value": []})
    assert HardwareOathApi(client).reread(token("assigned", AMY, NAME), True) == token()
