# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The decisions of hardware_oath_assignment's run(): the code inputs and text refused before any request, the plan
carried out (or, in check mode, only shown) on a fakes.FakeApi, and the result."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import totp_code
from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_assignment as module_under_test
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import Failed, FakeApi, FakeModule, task_options
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, DEVICE_ID, SECRET, SERIAL, token

# The module as a task giving these options (and the required ones: user, serial_number) would run it.
task = functools.partial(
    FakeModule, task_options(module_under_test, user=AMY.user_principal_name, serial_number=SERIAL)
)


@pytest.fixture
def api(patch_api):
    """``api(current)``: the module's HardwareOathApi is a FakeApi whose token is ``current``."""
    return lambda current: patch_api(module_under_test, FakeApi(current))


# ---------------------------------------------------------------------------------------------------- code_source
def test_code_source_secret_registers_every_computed_code():
    module = task(secret_key="gezd gnbv-gy3t qojq gezd gnbv gy3t qojq")
    codes = module_under_test.code_source(module)
    assert codes.secret_b32 == SECRET
    code = codes.next_code(token())
    assert code in module.no_log_values


def test_code_source_hex_secret():
    module = task(secret_key="31:32:33:34:35:36:37:38:39:30:31:32:33:34:35:36:37:38:39:30", secret_format="hex")
    assert module_under_test.code_source(module).secret_b32 == SECRET


@pytest.mark.parametrize(
    "secret, message",
    [
        ("GEZDGNBVGY3TQOJ1", "secret_key is not valid base32 (only A-Z and 2-7); it contains 1 other character(s)"),
        (
            "JBSWY3DPEHPK3PXP",
            "secret_key decodes to 80 bits; computing codes needs at least 112 (pyotp's minimum). Give "
            "verification_code, read from the token, instead.",
        ),
    ],
)
def test_code_source_bad_secret_fails_before_any_request(secret, message):
    with pytest.raises(Failed) as info:
        task(secret_key=secret).run(module_under_test.code_source)
    assert info.value.args[0] == {"msg": f"token {SERIAL}: {message.rstrip('.')}. Nothing was changed."}


def test_code_source_given_code():
    module = task(verification_code="12345")
    codes = module_under_test.code_source(module)
    assert codes.verification_code == "012345"
    assert module.no_log_values == {"012345"}


def test_code_source_bad_code():
    with pytest.raises(Failed) as info:
        task(verification_code="12a456").run(module_under_test.code_source)
    assert info.value.args[0] == {
        "msg": f"token {SERIAL}: verification_code must be a string of 6 digits. Nothing was changed."
    }


def test_code_source_none():
    assert module_under_test.code_source(task()).available is False


# ---------------------------------------------------------------------------------------------------- run
def test_run_assigns_and_activates(api, monkeypatch):
    fake = api(token())
    real_code_source = module_under_test.CodeSource
    monkeypatch.setattr(module_under_test, "CodeSource", lambda **kw: real_code_source(clock=lambda: 59.0, **kw))
    module = task(secret_key=SECRET, display_name="Amy Masters Token", diff=True)
    result = module_under_test.run(module)
    # T=59 is step 1; the code is for the step after it
    assert fake.sent == [("assign_and_activate", AMY.id, totp_code(SECRET, 2), "Amy Masters Token", True, False)]
    assert fake.legacy_checks == [(AMY.id, DEVICE_ID)]  # a token given to a user: their legacy twins warned of
    assert totp_code(SECRET, 2) in module.no_log_values
    assert result["changed"] is True
    assert result["actions"] == [
        {"action": "assign_and_activate", "user_id": AMY.id, "reason": f"token {SERIAL} is available"}
    ]
    assert result["assignment"] == {
        "device_id": DEVICE_ID,
        "serial_number": SERIAL,
        "status": "activated",
        "display_name": "Amy Masters Token",
        "assigned_to": {"id": AMY.id, "display_name": "Amy Masters", "user_principal_name": AMY.user_principal_name},
    }
    assert result["diff"]["before"]["assigned_to"] is None
    assert result["diff"]["after"]["assigned_to"] == {"id": AMY.id, "display_name": "Amy Masters"}


def test_run_check_mode_writes_nothing(api):
    fake = api(token("activated", ADELE))
    result = module_under_test.run(task(check_mode=True, verification_code="012345", reassign=True))
    assert fake.sent == []
    assert result["changed"] is True
    assert [a["action"] for a in result["actions"]] == ["unassign", "assign_and_activate"]
    assert "diff" not in result


def test_run_unchanged(api):
    fake = api(token("activated", AMY))
    result = module_under_test.run(task(device_id=DEVICE_ID, serial_number=None))
    assert fake.sent == []
    assert result == {
        "changed": False,
        "actions": [],
        "assignment": {
            "device_id": DEVICE_ID,
            "serial_number": SERIAL,
            "status": "activated",
            "display_name": None,
            "assigned_to": {
                "id": AMY.id,
                "display_name": "Amy Masters",
                "user_principal_name": AMY.user_principal_name,
            },
        },
    }


# ---------------------------------------------------------------------------------------------------- directory roles
AUTH_ADMIN = {"id": "role-1", "display_name": "Authentication Administrator", "role_template_id": "c4e39bd9"}
HIDDEN_ROLE = {"id": "role-2", "display_name": None, "role_template_id": None}  # an app that may not read roles


@pytest.mark.parametrize("check_mode", [False, True])
def test_run_refuses_a_directory_role_holder_before_any_write(patch_api, check_mode):
    fake = patch_api(module_under_test, FakeApi(token(), roles={AMY.id: [AUTH_ADMIN, HIDDEN_ROLE]}))
    with pytest.raises(PlanError) as refused:
        module_under_test.run(task(secret_key=SECRET, refuse_directory_role_holders=True, check_mode=check_mode))
    assert fake.calls == [("roles", AMY.id, False)]  # read, then nothing written
    assert refused.value.message == (
        f"Refused: {AMY.user_principal_name} holds the directory role(s) Authentication Administrator, a role whose "
        "name the app may not read (id role-2), and refuse_directory_role_holders is set. The hardware OATH tokens of "
        "a user with a directory role are managed by a Privileged Authentication Administrator. Nothing was changed "
        f"(token {SERIAL})."
    )


def test_run_refuses_a_reassignment_from_a_directory_role_holder(patch_api):
    fake = patch_api(module_under_test, FakeApi(token("activated", ADELE), roles={ADELE.id: [AUTH_ADMIN]}))
    with pytest.raises(PlanError, match=f"Refused: Adele Vance [(]{ADELE.id}[)] holds the directory role"):
        module_under_test.run(task(secret_key=SECRET, reassign=True, refuse_directory_role_holders=True))
    assert fake.calls == [("roles", ADELE.id, False)]  # the holder first: unassigning her is the first write


def test_run_assigns_to_a_user_without_a_role_after_reading_their_roles(patch_api):
    fake = patch_api(module_under_test, FakeApi(token("activated", ADELE)))
    result = module_under_test.run(task(secret_key=SECRET, reassign=True, refuse_directory_role_holders=True))
    assert [c[:2] for c in fake.calls] == [
        ("roles", ADELE.id),
        ("roles", AMY.id),
        ("write", "unassign"),
        ("write", "assign_and_activate"),
    ]
    assert result["changed"] is True


def test_run_fails_closed_when_the_roles_can_t_be_read(patch_api):
    refused = GraphError("Reading the directory roles of x: 403 Authorization_RequestDenied", status=403)
    fake = patch_api(module_under_test, FakeApi(token(), roles={AMY.id: refused}))
    with pytest.raises(GraphError):
        module_under_test.run(task(secret_key=SECRET, refuse_directory_role_holders=True))
    assert fake.writes == []


def test_run_reads_no_roles_when_nothing_changes_or_when_not_asked(patch_api):
    fake = patch_api(module_under_test, FakeApi(token("activated", AMY), roles={AMY.id: [AUTH_ADMIN]}))
    assert module_under_test.run(task(refuse_directory_role_holders=True))["changed"] is False
    assert fake.calls == []
    fake = patch_api(module_under_test, FakeApi(token(), roles={AMY.id: [AUTH_ADMIN]}))
    assert module_under_test.run(task(secret_key=SECRET))["changed"] is True  # the option's default: false
    assert [c[0] for c in fake.calls] == ["write"]


def test_run_needs_a_code(api):
    fake = api(token("assigned", AMY))
    with pytest.raises(PlanError) as info:
        module_under_test.run(task())
    assert fake.sent == []
    assert info.value.message == (
        f"token {SERIAL} must be activated for amy.masters@contoso.com (token {SERIAL} is "
        "assigned, not activated): give verification_code (the code the token shows) or "
        "secret_key (to compute it)."
    )


def test_run_absent_leaves_another_users_token_and_reports_its_holder(api):
    fake = api(token("activated", ADELE))
    result = module_under_test.run(task(state="absent"))
    assert fake.sent == []
    assert result["changed"] is False
    # the token is still Adele's: user_principal_name is documented as null when the holder is not O(user)
    assert result["assignment"] == {
        "device_id": DEVICE_ID,
        "serial_number": SERIAL,
        "status": "activated",
        "display_name": None,
        "assigned_to": {"id": ADELE.id, "display_name": ADELE.display_name, "user_principal_name": None},
    }


def test_run_absent_unassigns(api):
    fake = api(token("activated", AMY))
    result = module_under_test.run(task(state="absent"))
    assert fake.sent == [("unassign", AMY.id, None, None, True, False)]
    assert fake.legacy_checks == []  # nothing given: no read of the user's methods
    assert result["assignment"]["assigned_to"] is None
    assert result["assignment"]["status"] == "available"


# ---------------------------------------------------------------------------------------------------- text options
@pytest.mark.parametrize(
    "option, value, problem",
    [
        ("serial_number", "TOTP\n123456", "holds control or bidirectional formatting characters (U+000A)"),
        ("serial_number", "TOTP\x07", "holds control or bidirectional formatting characters (U+0007)"),
        ("serial_number", "\x1b[2JTOTP", "holds control or bidirectional formatting characters (U+001B)"),
        ("serial_number", "S" * 129, "is 129 characters long; at most 128 are allowed"),
        ("display_name", "Amy\r\nX-Header: y", "holds control or bidirectional formatting characters (U+000A, U+000D)"),
        ("display_name", "N" * 257, "is 257 characters long; at most 256 are allowed"),
        ("user", "amy@contoso.com\n", "holds control or bidirectional formatting characters (U+000A)"),
        ("device_id", "6f3e\x00", "holds control or bidirectional formatting characters (U+0000)"),
    ],
)
def test_run_refuses_bad_text_before_any_request(patch_api, option, value, problem):
    patch_api(module_under_test)  # building the API fails the test
    with pytest.raises(Failed) as info:
        task(secret_key=SECRET, **{option: value}).run(module_under_test.run)
    assert info.value.args[0] == {"msg": f"{option} {shown(value)} {problem}. Nothing was changed."}


def test_run_accepts_the_longest_text(patch_api):
    class Api(FakeApi):
        def token_by_serial(self, serial):
            return token()

    fake = patch_api(module_under_test, Api(token()))
    module_under_test.run(task(secret_key=SECRET, serial_number="S" * 128, display_name="N" * 256))
    assert len(fake.writes) == 1


def test_run_results_hold_no_secret_or_code(api):
    fake = api(token())
    module = task(secret_key=SECRET.lower(), diff=True)
    result = module_under_test.run(module)
    code = fake.sent[0][2]
    assert code in module.no_log_values
    assert SECRET not in repr(result) and code not in repr(result)
    assert SECRET not in repr(module.logs) and code not in repr(module.logs)
