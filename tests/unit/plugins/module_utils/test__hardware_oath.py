# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._errors import GraphError, ModuleFailure
from ansible_collections.tokenops.entra.plugins.module_utils._assignment_plan import (
    Desired, assignment_state, plan_assignment)
from ansible_collections.tokenops.entra.plugins.module_utils._codes import (
    CODE_LEAD_STEPS, CodeSource, check_secret_for_codes, normalize_code, normalize_secret, totp_code)
from ansible_collections.tokenops.entra.plugins.module_utils._errors import PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath import (
    ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, SET_DISPLAY_NAME, UNASSIGN, Action, TokenView, UserView)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE as OTHER, AMY as THIS, DEVICE_ID, SERIAL

OLD_NAME = "Amy's token"
NEW_NAME = "Amy Masters Token"

GUEST = UserView(id="99999999-9999-4999-8999-999999999999",
                 user_principal_name="grady_fabrikam.com#EXT#@contoso.onmicrosoft.com", display_name="Grady",
                 user_type="Guest")

HOLDERS = {"none": None, "this": THIS, "other": OTHER}
THIS_WHO = f"amy.masters@contoso.com ({THIS.id})"
OTHER_WHO = f"Adele Vance ({OTHER.id})"


def make_token(status: str, holder: str, display_name: str | None = OLD_NAME, **kwargs) -> TokenView:
    user = HOLDERS[holder]
    return TokenView(id=DEVICE_ID, serial_number=SERIAL, status=status, assigned_to_id=user.id if user else None,
                     assigned_to_name=user.display_name if user else None, display_name=display_name, **kwargs)


def holder_dict(user: UserView | None) -> dict | None:
    return {"id": user.id, "display_name": user.display_name} if user else None


def state_dict(status: str, holder: UserView | None, name: str | None) -> dict:
    return {"serial_number": SERIAL, "device_id": DEVICE_ID, "status": status, "display_name": name,
            "assigned_to": holder_dict(holder)}


# ---------------------------------------------------------------------------------------------------- the plan table
# The consistent current states: an available token has no holder; an assigned one has one.
CURRENT = [("available", "none"),
           ("assigned", "this"), ("activated", "this"), ("failedActivation", "this"),
           ("assigned", "other"), ("activated", "other"), ("failedActivation", "other")]
NAMES = {"none": None, "same": OLD_NAME, "new": NEW_NAME}

# From an unassigned token (available, or just unassigned from another user with reassign=true):
# (activate, name) -> (kinds, status after, display name after)
FROM_UNASSIGNED = {
    (True, "none"): ([ASSIGN_AND_ACTIVATE], "activated", OLD_NAME),
    (True, "same"): ([ASSIGN_AND_ACTIVATE], "activated", OLD_NAME),
    (True, "new"): ([ASSIGN_AND_ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([ASSIGN], "assigned", OLD_NAME),
    (False, "same"): ([ASSIGN], "assigned", OLD_NAME),
    (False, "new"): ([SET_DISPLAY_NAME, ASSIGN], "assigned", NEW_NAME),
}
# Held by this user, assigned or failedActivation (not activated)
FROM_THIS_NOT_ACTIVATED = {
    (True, "none"): ([ACTIVATE], "activated", OLD_NAME),
    (True, "same"): ([ACTIVATE], "activated", OLD_NAME),
    (True, "new"): ([ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([], None, OLD_NAME),  # None: status unchanged
    (False, "same"): ([], None, OLD_NAME),
    (False, "new"): "rename-not-activated",
}
# Held by this user, activated: a rename re-activates, whatever activate says
FROM_THIS_ACTIVATED = {
    (True, "none"): ([], "activated", OLD_NAME),
    (True, "same"): ([], "activated", OLD_NAME),
    (True, "new"): ([ACTIVATE], "activated", NEW_NAME),
    (False, "none"): ([], "activated", OLD_NAME),
    (False, "same"): ([], "activated", OLD_NAME),
    (False, "new"): ([ACTIVATE], "activated", NEW_NAME),
}


def _present_rows():
    for status, holder in CURRENT:
        for activate in (True, False):
            for name in ("none", "same", "new"):
                for reassign in (False, True):
                    key = (activate, name)
                    if holder == "none":
                        kinds, after_status, after_name = FROM_UNASSIGNED[key]
                    elif holder == "other":
                        if not reassign:
                            yield status, holder, activate, name, reassign, "other-holder"
                            continue
                        kinds, after_status, after_name = FROM_UNASSIGNED[key]
                        kinds = [UNASSIGN] + kinds
                    elif status == "activated":
                        kinds, after_status, after_name = FROM_THIS_ACTIVATED[key]
                    else:
                        expected = FROM_THIS_NOT_ACTIVATED[key]
                        if isinstance(expected, str):
                            yield status, holder, activate, name, reassign, expected
                            continue
                        kinds, after_status, after_name = expected
                    yield status, holder, activate, name, reassign, (kinds, after_status or status, "this", after_name)


PRESENT_ROWS = list(_present_rows())


def _row_id(row):
    status, holder, activate, name, reassign, _expected = row
    return f"{status}-held_by_{holder}-activate_{activate}-name_{name}-reassign_{reassign}"


def test_the_table_covers_every_combination():
    assert len(PRESENT_ROWS) == len(CURRENT) * 2 * 3 * 2 == 84
    assert sum(1 for r in PRESENT_ROWS if r[-1] == "other-holder") == 3 * 6
    assert sum(1 for r in PRESENT_ROWS if r[-1] == "rename-not-activated") == 2 * 2


@pytest.mark.parametrize("row", PRESENT_ROWS, ids=[_row_id(r) for r in PRESENT_ROWS])
def test_plan_present(row):
    status, holder, activate, name, reassign, expected = row
    token = make_token(status, holder)
    desired = Desired(state="present", activate=activate, display_name=NAMES[name], reassign=reassign)
    if expected == "other-holder":
        with pytest.raises(PlanError) as info:
            plan_assignment(token, THIS, desired)
        assert info.value.message == (
            f"token {SERIAL} is assigned to {OTHER_WHO}, not to {THIS_WHO}. Set reassign=true to take it from "
            f"{OTHER_WHO} and give it to amy.masters@contoso.com.")
        return
    if expected == "rename-not-activated":
        with pytest.raises(PlanError) as info:
            plan_assignment(token, THIS, desired)
        assert info.value.message == (
            f"token {SERIAL} is assigned to {THIS_WHO} but not activated; its display name can only be set while "
            "activating it (activate=true) or while it is unassigned.")
        return
    kinds, after_status, after_holder, after_name = expected
    plan = plan_assignment(token, THIS, desired)
    assert [a.kind for a in plan.actions] == kinds
    assert plan.changed is bool(kinds)
    assert plan.needs_code is any(k in (ACTIVATE, ASSIGN_AND_ACTIVATE) for k in kinds)
    assert plan.before == state_dict(status, HOLDERS[holder], OLD_NAME)
    assert plan.after == state_dict(after_status, HOLDERS[after_holder], after_name)
    # every action touches this user's methods, except taking the token from the other user
    assert [a.user_id for a in plan.actions] == [OTHER.id if k == UNASSIGN else THIS.id for k in kinds]


ABSENT_ROWS = [
    # status, holder, expected kinds, after
    ("available", "none", [], ("available", None)),
    ("assigned", "this", [UNASSIGN], ("available", None)),
    ("activated", "this", [UNASSIGN], ("available", None)),
    ("failedActivation", "this", [UNASSIGN], ("available", None)),
    # someone else's token is left alone, and the predicted state is the current one: still theirs
    ("assigned", "other", [], ("assigned", OTHER)),
    ("activated", "other", [], ("activated", OTHER)),
    ("failedActivation", "other", [], ("failedActivation", OTHER)),
]


# Every desired variation of state=absent: display_name, activate and reassign play no part in it.
ABSENT_VARIATIONS = [Desired(state="absent", activate=activate, display_name=NAMES[name], reassign=reassign)
                     for name in NAMES for activate in (True, False) for reassign in (False, True)]


@pytest.mark.parametrize("status, holder, kinds, after", ABSENT_ROWS, ids=[f"{r[0]}-held_by_{r[1]}" for r in ABSENT_ROWS])
def test_plan_absent(status, holder, kinds, after):
    assert len(ABSENT_VARIATIONS) == 12
    token = make_token(status, holder)
    for desired in ABSENT_VARIATIONS:
        plan = plan_assignment(token, THIS, desired)
        assert [a.kind for a in plan.actions] == kinds, desired
        assert [a.user_id for a in plan.actions] == [THIS.id] * len(kinds), desired
        assert plan.changed is bool(kinds), desired
        assert plan.needs_code is False, desired
        assert plan.before == state_dict(status, HOLDERS[holder], OLD_NAME), desired
        assert plan.after == state_dict(after[0], after[1], OLD_NAME), desired  # absent never renames


NO_CHANGE_CANDIDATES = [Desired(), Desired(activate=False), Desired(display_name=OLD_NAME),
                        Desired(activate=False, display_name=OLD_NAME)] + ABSENT_VARIATIONS


@pytest.mark.parametrize("status, holder", CURRENT)
def test_a_plan_without_actions_predicts_the_current_state(status, holder):
    token = make_token(status, holder)
    unchanged = 0
    for desired in NO_CHANGE_CANDIDATES:
        try:
            plan = plan_assignment(token, THIS, desired)
        except PlanError:
            continue
        if not plan.changed:
            unchanged += 1
            assert plan.after == plan.before, desired
    assert unchanged > 0


def test_plan_absent_with_a_token_held_by_someone_else_names_the_holder_after():
    plan = plan_assignment(make_token("activated", "other"), THIS, Desired(state="absent"))
    assert plan.actions == ()
    assert plan.after["assigned_to"] == {"id": OTHER.id, "display_name": "Adele Vance"}


def test_plan_reasons_and_results():
    plan = plan_assignment(make_token("activated", "other"), THIS, Desired(reassign=True, display_name=NEW_NAME))
    assert [a.to_result() for a in plan.actions] == [
        {"action": "unassign", "user_id": OTHER.id, "reason": f"token {SERIAL} is assigned to {OTHER_WHO}; reassign=true"},
        {"action": "assign_and_activate", "user_id": THIS.id, "reason": f"token {SERIAL} is available"},
    ]
    plan = plan_assignment(make_token("available", "none"), THIS, Desired(activate=False, display_name=NEW_NAME))
    assert [a.to_result() for a in plan.actions] == [
        {"action": "set_display_name", "user_id": THIS.id, "reason": "the display name differs"},
        {"action": "assign", "user_id": THIS.id, "reason": f"token {SERIAL} is available; activate=false"},
    ]
    plan = plan_assignment(make_token("failedActivation", "this"), THIS, Desired())
    assert plan.actions == (Action(ACTIVATE, THIS.id, f"token {SERIAL} is failedActivation, not activated"),)
    plan = plan_assignment(make_token("activated", "this"), THIS, Desired(display_name=NEW_NAME))
    assert plan.actions == (Action(ACTIVATE, THIS.id, "the display name differs; it is set by re-activating"),)
    plan = plan_assignment(make_token("assigned", "this"), THIS, Desired(state="absent"))
    assert plan.actions == (Action(UNASSIGN, THIS.id, f"token {SERIAL} is assigned to {THIS_WHO}"),)


def test_plan_other_holder_without_a_name():
    token = TokenView(id=DEVICE_ID, serial_number=SERIAL, status="activated", assigned_to_id=OTHER.id,
                      assigned_to_name=None, display_name=None)
    with pytest.raises(PlanError) as info:
        plan_assignment(token, THIS, Desired())
    message = info.value.message
    assert message == (f"token {SERIAL} is assigned to another user ({OTHER.id}), not to {THIS_WHO}. Set reassign=true "
                       f"to take it from another user ({OTHER.id}) and give it to amy.masters@contoso.com.")
    assert isinstance(info.value, ModuleFailure)
    assert info.value.to_result() == {}


@pytest.mark.parametrize("status, holder", CURRENT)
def test_plan_refuses_guest_users(status, holder):
    for desired in (Desired(), Desired(activate=False), Desired(reassign=True, display_name=NEW_NAME)):
        with pytest.raises(PlanError) as info:
            plan_assignment(make_token(status, holder), GUEST, desired)
        assert info.value.message == (
            f"token {SERIAL}: grady_fabrikam.com#EXT#@contoso.onmicrosoft.com ({GUEST.id}) is a guest user; Entra ID "
            "does not allow hardware OATH tokens for guest users.")


def test_plan_absent_for_a_guest_who_holds_the_token_unassigns():
    token = TokenView(id=DEVICE_ID, serial_number=SERIAL, status="activated", assigned_to_id=GUEST.id,
                      assigned_to_name="Grady", display_name=None)
    plan = plan_assignment(token, GUEST, Desired(state="absent"))
    assert [a.kind for a in plan.actions] == [UNASSIGN]


def test_plan_name_set_on_a_token_without_a_name():
    token = make_token("available", "none", display_name=None)
    plan = plan_assignment(token, THIS, Desired(display_name=NEW_NAME))
    assert [a.kind for a in plan.actions] == [ASSIGN_AND_ACTIVATE]
    assert plan.before["display_name"] is None
    assert plan.after["display_name"] == NEW_NAME


def test_plan_is_pure():
    token = make_token("activated", "other")
    first = plan_assignment(token, THIS, Desired(reassign=True))
    second = plan_assignment(token, THIS, Desired(reassign=True))
    assert first == second
    assert token == make_token("activated", "other")


# ---------------------------------------------------------------------------------------------------- views
def test_token_view_from_graph():
    token = TokenView.from_graph({
        "id": DEVICE_ID, "serialNumber": SERIAL, "status": "activated", "displayName": NEW_NAME,
        "hashFunction": "hmacsha256", "timeIntervalInSeconds": 60,
        "assignedTo": {"id": THIS.id.upper(), "displayName": "Amy Masters"},
    })
    assert token == TokenView(id=DEVICE_ID, serial_number=SERIAL, status="activated", assigned_to_id=THIS.id,
                              assigned_to_name="Amy Masters", display_name=NEW_NAME, hash_function="hmacsha256",
                              time_interval=60)
    assert token.label == f"token {SERIAL}"


def test_token_view_from_method_is_held_by_the_user_whose_method_it_is():
    method = {"id": DEVICE_ID, "createdDateTime": "2026-01-01T00:00:00Z",
              "device": {"id": "ignored", "serialNumber": SERIAL, "status": "assigned", "assignedTo": None}}
    token = TokenView.from_method(method, THIS)
    assert (token.id, token.serial_number, token.status) == (DEVICE_ID, SERIAL, "assigned")
    assert (token.assigned_to_id, token.assigned_to_name) == (THIS.id, THIS.display_name)
    assert TokenView.from_method(method, None).assigned_to_id is None
    assert method["device"]["assignedTo"] is None  # the answer is not changed


def test_token_view_from_method_keeps_the_holder_graph_names():
    method = {"id": DEVICE_ID, "device": {"serialNumber": SERIAL, "assignedTo": {"id": OTHER.id, "displayName": "Adele"}}}
    token = TokenView.from_method(method, THIS)
    assert (token.assigned_to_id, token.assigned_to_name) == (OTHER.id, "Adele")


def test_token_view_from_graph_defaults():
    token = TokenView.from_graph({"id": DEVICE_ID, "assignedTo": None, "hashFunction": None,
                                  "timeIntervalInSeconds": None})
    assert token == TokenView(id=DEVICE_ID, serial_number="", status="", assigned_to_id=None, assigned_to_name=None,
                              display_name=None, hash_function="hmacsha1", time_interval=30)
    assert token.label == f"token {DEVICE_ID}"
    assert assignment_state(token) == {"serial_number": "", "device_id": DEVICE_ID, "assigned_to": None, "status": "",
                                       "display_name": None}


def test_user_view_from_graph():
    user = UserView.from_graph({"id": THIS.id.upper(), "userPrincipalName": "amy.masters@contoso.com",
                                "displayName": "Amy Masters", "userType": "Member"})
    assert user == THIS
    assert UserView.from_graph({"id": "ABC"}) == UserView(id="abc", user_principal_name="ABC")


# ---------------------------------------------------------------------------------------------------- TOTP codes
RFC_SHA1_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # b"12345678901234567890"
RFC_SHA256_SECRET = base64.b32encode(b"12345678901234567890123456789012").decode("ascii").rstrip("=")

# RFC 6238 appendix B: time, 8-digit TOTP for SHA-1, for SHA-256
RFC_6238 = [
    (59, "94287082", "46119246"),
    (1111111109, "07081804", "68084774"),
    (1111111111, "14050471", "67062674"),
    (1234567890, "89005924", "91819424"),
    (2000000000, "69279037", "90698825"),
    (20000000000, "65353130", "77737706"),
]


def reference_totp(key: bytes, step: int, digest) -> str:
    mac = hmac.new(key, struct.pack(">Q", step), digest).digest()
    offset = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def test_rfc_secrets():
    assert base64.b32decode(RFC_SHA1_SECRET) == b"12345678901234567890"
    assert RFC_SHA256_SECRET == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"


@pytest.mark.parametrize("when, sha1, sha256", RFC_6238)
def test_totp_code_rfc_6238(when, sha1, sha256):
    assert totp_code(RFC_SHA1_SECRET, when // 30) == sha1[-6:]
    assert totp_code(RFC_SHA1_SECRET, when // 30, "hmacsha1") == sha1[-6:]
    assert totp_code(RFC_SHA256_SECRET, when // 30, "hmacsha256") == sha256[-6:]


def test_totp_code_keeps_leading_zeros():
    assert totp_code(RFC_SHA1_SECRET, 1111111109 // 30) == "081804"
    assert totp_code(RFC_SHA1_SECRET, 1234567890 // 30) == "005924"
    assert totp_code(RFC_SHA256_SECRET, 1111111109 // 30, "hmacsha256") == "084774"


@pytest.mark.parametrize("step", [0, 1, 2, 47, 37037036, 10 ** 9])
def test_totp_code_matches_a_reference_implementation(step):
    assert totp_code(RFC_SHA1_SECRET, step) == reference_totp(b"12345678901234567890", step, hashlib.sha1)
    assert totp_code(RFC_SHA256_SECRET, step, "hmacsha256") == reference_totp(
        b"12345678901234567890123456789012", step, hashlib.sha256)


def test_totp_code_unknown_hash():
    with pytest.raises(KeyError):
        totp_code(RFC_SHA1_SECRET, 1, "hmacsha512")


# ---------------------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("given, expected", [
    (RFC_SHA1_SECRET, RFC_SHA1_SECRET),
    (RFC_SHA1_SECRET.lower(), RFC_SHA1_SECRET),
    ("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", RFC_SHA1_SECRET),
    ("GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ", RFC_SHA1_SECRET),
    ("  GezD\tgnbv\nGY3T-qojq GEZD-gnbv GY3T qojq  ", RFC_SHA1_SECRET),
    ("AAAQEAYEAUDAOCAJBIFQYDI=", "AAAQEAYEAUDAOCAJBIFQYDI"),
    ("aaaq eayE-AUDAOCAJBIFQYDI====", "AAAQEAYEAUDAOCAJBIFQYDI"),
    (RFC_SHA256_SECRET + "====", RFC_SHA256_SECRET),
    ("A" * 128, "A" * 128),
])
def test_normalize_secret_base32(given, expected):
    assert normalize_secret(given) == expected
    assert normalize_secret(given, "base32") == expected


@pytest.mark.parametrize("given", [
    "3132333435363738393031323334353637383930",
    "0x3132333435363738393031323334353637383930",
    "0X3132333435363738393031323334353637383930",
    "31:32:33:34:35:36:37:38:39:30:31:32:33:34:35:36:37:38:39:30",
    "3132 3334 3536 3738 3930 3132 3334 3536 3738 3930",
    "31-32-33-34-35-36-37-38-39-30-31-32-33-34-35-36-37-38-39-30",
    " 0x31323334353637383930\n31323334353637383930 ",
])
def test_normalize_secret_hex(given):
    assert normalize_secret(given, "hex") == RFC_SHA1_SECRET


def test_normalize_secret_hex_upper_and_lower_case():
    assert normalize_secret("DEADBEEF" * 4, "hex") == normalize_secret("deadbeef" * 4, "hex") == \
        base64.b32encode(bytes.fromhex("deadbeef" * 4)).decode().rstrip("=")


NOT_BASE32 = "secret_key is not valid base32 (only A-Z and 2-7)"


@pytest.mark.parametrize("secret, message", [
    ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
    ("GEZDGNBVGY3TQOJ0GEZDGNBVGY3TQOJ8", NOT_BASE32 + "; it contains 2 other character(s)"),
    ("C2dE3fH4iJ5kL6mN7oP1qR2sT3uV4w", NOT_BASE32 + "; it contains 1 other character(s)"),  # Microsoft's example key
    ("GEZDGNBV=GY3TQOJQGEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
    ("GEZDGNBVGY3TQOJQ_GEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
    ("GEZDGNBVGY3TQOJQ.GEZD+GNBV/GY3TQ\u00c4JQ", NOT_BASE32 + "; it contains 4 other character(s)"),
    ("", NOT_BASE32),
    ("   ", NOT_BASE32),
    ("- -- ", NOT_BASE32),
    ("====", NOT_BASE32),
    ("A" * 129, "secret_key is longer than the 128 base32 characters Entra ID accepts"),
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" * 4 + "GEZD", "secret_key is longer than the 128 base32 characters Entra ID accepts"),
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", "secret_key has an impossible base32 length"),  # 33 = 1 mod 8
    ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZ", "secret_key has an impossible base32 length"),  # 3 mod 8
    ("GEZDGNBVGY3TQOJQGEZDGN", "secret_key has an impossible base32 length"),  # 6 mod 8
    ("A", "secret_key has an impossible base32 length"),
])
def test_normalize_secret_base32_errors(secret, message):
    with pytest.raises(ValueError) as info:
        normalize_secret(secret)
    assert str(info.value) == message
    if secret.strip("- ="):
        assert secret not in str(info.value)
        assert secret.upper() not in str(info.value)


NOT_HEX = "secret_key is not valid hex (an even number of 0-9, a-f characters)"


@pytest.mark.parametrize("secret", [
    "",
    "0x",
    "  ",
    "313",  # odd
    "0x31323334353637383930313233343536373839303",  # odd
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",  # base32 given as hex
    "31323334353637383930313233343536373839zz",
    "0x0x3132",
    "31_32_33_34_35_36_37_38_39_30_31_32_33_34",
])
def test_normalize_secret_hex_errors(secret):
    with pytest.raises(ValueError) as info:
        normalize_secret(secret, "hex")
    assert str(info.value) == NOT_HEX
    if secret.strip():
        assert secret not in str(info.value)


def test_normalize_secret_hex_at_the_128_character_limit():
    assert normalize_secret("ab" * 80, "hex") == base64.b32encode(b"\xab" * 80).decode()  # 80 bytes = 128 characters


def test_normalize_secret_hex_longer_than_entra_accepts():
    # 81 bytes are 130 base32 characters: more than Entra ID accepts, whichever way the secret was written
    assert len(base64.b32encode(b"\xab" * 81).decode().rstrip("=")) == 130
    with pytest.raises(ValueError) as info:
        normalize_secret("ab" * 81, "hex")
    assert str(info.value) == "secret_key is longer than the 128 base32 characters Entra ID accepts"


@pytest.mark.parametrize("length, bits", [(16, 80), (20, 96), (22, 104), (7, 32)])
def test_check_secret_for_codes_too_short(length, bits):
    with pytest.raises(ValueError) as info:
        check_secret_for_codes("A" * length)
    assert str(info.value) == (f"secret_key decodes to {bits} bits; computing codes needs at least 112 (pyotp's "
                               "minimum). Give verification_code, read from the token, instead.")


@pytest.mark.parametrize("length", [23, 24, 26, 32, 52, 128])
def test_check_secret_for_codes_long_enough(length):
    secret = "A" * length
    assert check_secret_for_codes(secret) is None
    assert len(totp_code(secret, 1)) == 6


def test_check_secret_for_codes_agrees_with_pyotp():
    for length in [n for n in range(2, 41) if n % 8 not in (1, 3, 6)]:
        secret = "B" * length
        try:
            check_secret_for_codes(secret)
        except ValueError:
            with pytest.raises(ValueError):
                totp_code(secret, 1)
        else:
            assert len(totp_code(secret, 1)) == 6, length


# ---------------------------------------------------------------------------------------------------- verification codes
@pytest.mark.parametrize("given, expected", [
    (123456, "123456"),
    (12345, "012345"),
    (5349, "005349"),
    (0, "000000"),
    (999999, "999999"),
    ("123456", "123456"),
    ("012345", "012345"),
    ("000000", "000000"),
    ("12345", "012345"),
    ("1", "000001"),
    (" 123456 ", "123456"),
    ("\t654321\n", "654321"),
])
def test_normalize_code(given, expected):
    assert normalize_code(given) == expected


@pytest.mark.parametrize("given, message", [
    (True, "verification_code must be 6 digits"),
    (False, "verification_code must be 6 digits"),
    (-1, "verification_code must be 6 digits"),
    (1_000_000, "verification_code must be 6 digits"),
    ("1234567", "verification_code must be a string of 6 digits"),
    ("0123456", "verification_code must be a string of 6 digits"),
    ("", "verification_code must be a string of 6 digits"),
    ("   ", "verification_code must be a string of 6 digits"),
    ("12 345", "verification_code must be a string of 6 digits"),
    ("123-456", "verification_code must be a string of 6 digits"),
    ("abcdef", "verification_code must be a string of 6 digits"),
    ("12345a", "verification_code must be a string of 6 digits"),
    ("-12345", "verification_code must be a string of 6 digits"),
    ("+12345", "verification_code must be a string of 6 digits"),
    ("1234.5", "verification_code must be a string of 6 digits"),
    ("\uff11\uff12\uff13\uff14\uff15\uff16", "verification_code must be a string of 6 digits"),  # full-width digits
    (12.0, "verification_code must be a string of 6 digits"),
    (None, "verification_code must be a string of 6 digits"),
])
def test_normalize_code_errors(given, message):
    with pytest.raises(ValueError) as info:
        normalize_code(given)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------------- CodeSource
def test_code_source_given_code_is_handed_out_once():
    redacted = []
    codes = CodeSource(verification_code="012345", redact=redacted.append)
    token = make_token("available", "none")
    assert codes.available is True
    assert codes.next_code(token) == "012345"
    assert codes.available is False
    assert codes.used == ["given"]
    with pytest.raises(PlanError) as info:
        codes.next_code(token)
    assert info.value.message == (
        f"token {SERIAL}: the given verification_code was already used once and is never sent twice; run again with a "
        "fresh code from the token, or give secret_key to compute codes.")
    assert codes.used == ["given"]


def test_code_source_without_code_or_secret():
    codes = CodeSource()
    assert codes.available is False
    with pytest.raises(PlanError):
        codes.next_code(make_token("available", "none"))
    assert codes.used == []


def test_code_source_computes_the_code_of_the_next_step():
    """The code the token shows now may have just been accepted (its holder, another run): never send it."""
    assert CODE_LEAD_STEPS == 1
    token = make_token("available", "none")
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 59.0).next_code(token) == totp_code(RFC_SHA1_SECRET, 2)
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 59.0).next_code(token) != totp_code(RFC_SHA1_SECRET, 1)
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 29.0).next_code(token) == "287082"  # RFC 6238, T=59


def test_code_source_computed_codes_use_strictly_later_steps_when_the_clock_stands_still():
    redacted = []
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 29.0, redact=redacted.append)
    token = make_token("available", "none")
    got = [codes.next_code(token) for _i in range(4)]
    assert got == [totp_code(RFC_SHA1_SECRET, step) for step in (1, 2, 3, 4)]
    assert got[0] == "287082"  # RFC 6238, T=59
    assert len(set(got)) == 4
    assert redacted == got
    assert codes.used == ["computed"] * 4
    assert codes.available is True
    assert codes.computes is True


def test_code_source_follows_the_clock_and_never_goes_back():
    # RFC 6238's times, one step earlier: each code is for the step after the clock's
    times = iter([1111111079.0, 1111111081.0, 1111111110.0, 29.0, 1234567860.0])
    redacted = []
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: next(times), redact=redacted.append)
    token = make_token("available", "none")
    got = [codes.next_code(token) for _i in range(5)]
    steps = [37037036, 37037037, 37037038, 37037039, 41152263]
    assert got == [totp_code(RFC_SHA1_SECRET, s) for s in steps]
    assert got[0] == "081804" and got[1] == "050471" and got[4] == "005924"  # RFC 6238, 6 digits
    assert redacted == got


def test_code_source_uses_the_tokens_hash_and_interval():
    token = make_token("available", "none", hash_function="hmacsha256", time_interval=60)
    codes = CodeSource(secret_b32=RFC_SHA256_SECRET, clock=lambda: 1234567890.0)
    assert codes.next_code(token) == totp_code(RFC_SHA256_SECRET, 1234567890 // 60 + 1, "hmacsha256")
    token = make_token("available", "none", hash_function="hmacsha256")
    codes = CodeSource(secret_b32=RFC_SHA256_SECRET, clock=lambda: 29.0)
    assert codes.next_code(token) == "119246"  # RFC 6238, SHA-256, T=59


def test_code_source_given_code_is_not_computed():
    assert CodeSource(verification_code="012345").computes is False
    assert CodeSource().computes is False


def test_code_source_redacts_the_given_code_nowhere_else():
    # the module registers the given code itself; CodeSource's redact is for computed ones
    redacted = []
    codes = CodeSource(verification_code="654321", redact=redacted.append)
    codes.next_code(make_token("available", "none"))
    assert "654321" not in codes.used


def test_a_token_with_a_holder_is_assigned_whatever_its_status_says():
    """Entra's documentation shows a token created with assignTo as available, with assignedTo filled in."""
    device = {"id": DEVICE_ID, "serialNumber": SERIAL, "status": "available",
              "assignedTo": {"id": THIS.id.upper(), "displayName": THIS.display_name}}
    view = TokenView.from_graph(device)
    assert (view.status, view.assigned_to_id) == ("assigned", THIS.id)
    assert TokenView.from_graph({**device, "assignedTo": None}).status == "available"
    assert TokenView.from_graph({**device, "status": "activated"}).status == "activated"
