# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Token secrets and TOTP codes (_domain/codes.py), pure: RFC 6238 codes, secret and code normalisation, and
CodeSource."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import (
    CODE_LEAD_STEPS,
    CodeSource,
    check_secret_for_codes,
    normalize_code,
    normalize_secret,
    totp_code,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import SERIAL
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import token as make_token

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
    return f"{(struct.unpack('>I', mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


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


@pytest.mark.parametrize("step", [0, 1, 2, 47, 37037036, 10**9])
def test_totp_code_matches_a_reference_implementation(step):
    assert totp_code(RFC_SHA1_SECRET, step) == reference_totp(b"12345678901234567890", step, hashlib.sha1)
    assert totp_code(RFC_SHA256_SECRET, step, "hmacsha256") == reference_totp(
        b"12345678901234567890123456789012", step, hashlib.sha256
    )


def test_totp_code_unknown_hash():
    with pytest.raises(KeyError):
        totp_code(RFC_SHA1_SECRET, 1, "hmacsha512")


# ---------------------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize(
    "given, expected",
    [
        (RFC_SHA1_SECRET, RFC_SHA1_SECRET),
        (RFC_SHA1_SECRET.lower(), RFC_SHA1_SECRET),
        ("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", RFC_SHA1_SECRET),
        ("GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ", RFC_SHA1_SECRET),
        ("  GezD\tgnbv\nGY3T-qojq GEZD-gnbv GY3T qojq  ", RFC_SHA1_SECRET),
        ("AAAQEAYEAUDAOCAJBIFQYDI=", "AAAQEAYEAUDAOCAJBIFQYDI"),
        ("aaaq eayE-AUDAOCAJBIFQYDI====", "AAAQEAYEAUDAOCAJBIFQYDI"),
        (RFC_SHA256_SECRET + "====", RFC_SHA256_SECRET),
        ("A" * 128, "A" * 128),
    ],
)
def test_normalize_secret_base32(given, expected):
    assert normalize_secret(given) == expected
    assert normalize_secret(given, "base32") == expected


@pytest.mark.parametrize(
    "given",
    [
        "3132333435363738393031323334353637383930",
        "0x3132333435363738393031323334353637383930",
        "0X3132333435363738393031323334353637383930",
        "31:32:33:34:35:36:37:38:39:30:31:32:33:34:35:36:37:38:39:30",
        "3132 3334 3536 3738 3930 3132 3334 3536 3738 3930",
        "31-32-33-34-35-36-37-38-39-30-31-32-33-34-35-36-37-38-39-30",
        " 0x31323334353637383930\n31323334353637383930 ",
    ],
)
def test_normalize_secret_hex(given):
    assert normalize_secret(given, "hex") == RFC_SHA1_SECRET


def test_normalize_secret_hex_upper_and_lower_case():
    assert (
        normalize_secret("DEADBEEF" * 4, "hex")
        == normalize_secret("deadbeef" * 4, "hex")
        == base64.b32encode(bytes.fromhex("deadbeef" * 4)).decode().rstrip("=")
    )


NOT_BASE32 = "secret_key is not valid base32 (only A-Z and 2-7)"


@pytest.mark.parametrize(
    "secret, message",
    [
        ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
        ("GEZDGNBVGY3TQOJ0GEZDGNBVGY3TQOJ8", NOT_BASE32 + "; it contains 2 other character(s)"),
        (
            "C2dE3fH4iJ5kL6mN7oP1qR2sT3uV4w",
            NOT_BASE32 + "; it contains 1 other character(s)",
        ),  # Microsoft's example key
        ("GEZDGNBV=GY3TQOJQGEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
        ("GEZDGNBVGY3TQOJQ_GEZDGNBVGY3TQOJQ", NOT_BASE32 + "; it contains 1 other character(s)"),
        ("GEZDGNBVGY3TQOJQ.GEZD+GNBV/GY3TQ\u00c4JQ", NOT_BASE32 + "; it contains 4 other character(s)"),
        ("", NOT_BASE32),
        ("   ", NOT_BASE32),
        ("- -- ", NOT_BASE32),
        ("====", NOT_BASE32),
        ("A" * 129, "secret_key is longer than the 128 base32 characters Entra ID accepts"),
        (
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" * 4 + "GEZD",
            "secret_key is longer than the 128 base32 characters Entra ID accepts",
        ),
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", "secret_key has an impossible base32 length"),  # 33 = 1 mod 8
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZ", "secret_key has an impossible base32 length"),  # 3 mod 8
        ("GEZDGNBVGY3TQOJQGEZDGN", "secret_key has an impossible base32 length"),  # 6 mod 8
        ("A", "secret_key has an impossible base32 length"),
    ],
)
def test_normalize_secret_base32_errors(secret, message):
    with pytest.raises(ValueError) as info:
        normalize_secret(secret)
    assert str(info.value) == message
    if secret.strip("- ="):
        assert secret not in str(info.value)
        assert secret.upper() not in str(info.value)


NOT_HEX = "secret_key is not valid hex (an even number of 0-9, a-f characters)"


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "0x",
        "  ",
        "313",  # odd
        "0x31323334353637383930313233343536373839303",  # odd
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",  # base32 given as hex
        "31323334353637383930313233343536373839zz",
        "0x0x3132",
        "31_32_33_34_35_36_37_38_39_30_31_32_33_34",
    ],
)
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
    assert str(info.value) == (
        f"secret_key decodes to {bits} bits; computing codes needs at least 112 (pyotp's "
        "minimum). Give verification_code, read from the token, instead."
    )


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


# --------------------------------------------------------------------------------------------------- verification codes
@pytest.mark.parametrize(
    "given, expected",
    [
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
    ],
)
def test_normalize_code(given, expected):
    assert normalize_code(given) == expected


@pytest.mark.parametrize(
    "given, message",
    [
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
    ],
)
def test_normalize_code_errors(given, message):
    with pytest.raises(ValueError) as info:
        normalize_code(given)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------------- CodeSource
def test_code_source_given_code_is_handed_out_once():
    redacted = []
    codes = CodeSource(verification_code="012345", redact=redacted.append)
    token = make_token()
    assert codes.available is True
    assert codes.next_code(token) == "012345"
    assert codes.available is False
    assert codes.used == ["given"]
    with pytest.raises(PlanError) as info:
        codes.next_code(token)
    assert info.value.message == (
        f"token {SERIAL}: the given verification_code was already used once and is never sent twice; run again with a "
        "fresh code from the token, or give secret_key to compute codes."
    )
    assert codes.used == ["given"]


def test_code_source_without_code_or_secret():
    codes = CodeSource()
    assert codes.available is False
    with pytest.raises(PlanError):
        codes.next_code(make_token())
    assert codes.used == []


def test_code_source_computes_the_code_of_the_next_step():
    """The code the token shows now may have just been accepted (its holder, another run): never send it."""
    assert CODE_LEAD_STEPS == 1
    token = make_token()
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 59.0).next_code(token) == totp_code(RFC_SHA1_SECRET, 2)
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 59.0).next_code(token) != totp_code(RFC_SHA1_SECRET, 1)
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 29.0).next_code(token) == "287082"  # RFC 6238, T=59


def test_code_source_computed_codes_use_strictly_later_steps_when_the_clock_stands_still():
    redacted = []
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 29.0, redact=redacted.append)
    token = make_token()
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
    token = make_token()
    got = [codes.next_code(token) for _i in range(5)]
    steps = [37037036, 37037037, 37037038, 37037039, 41152263]
    assert got == [totp_code(RFC_SHA1_SECRET, s) for s in steps]
    assert got[0] == "081804" and got[1] == "050471" and got[4] == "005924"  # RFC 6238, 6 digits
    assert redacted == got


def test_code_source_uses_the_tokens_hash_and_interval():
    token = make_token(hash_function="hmacsha256", time_interval=60)
    codes = CodeSource(secret_b32=RFC_SHA256_SECRET, clock=lambda: 1234567890.0)
    assert codes.next_code(token) == totp_code(RFC_SHA256_SECRET, 1234567890 // 60 + 1, "hmacsha256")
    token = make_token(hash_function="hmacsha256")
    codes = CodeSource(secret_b32=RFC_SHA256_SECRET, clock=lambda: 29.0)
    assert codes.next_code(token) == "119246"  # RFC 6238, SHA-256, T=59


def test_code_source_given_code_is_not_computed():
    assert CodeSource(verification_code="012345").computes is False
    assert CodeSource().computes is False


def test_code_source_redacts_the_given_code_nowhere_else():
    # the module registers the given code itself; CodeSource's redact is for computed ones
    redacted = []
    codes = CodeSource(verification_code="654321", redact=redacted.append)
    codes.next_code(make_token())
    assert "654321" not in codes.used


# ---------------------------------------------------------------------------------------------------- other runs' codes
class History:
    """A CodeLedger stand-in: the steps other runs sent, and what this run records (before each code leaves)."""

    def __init__(self, steps=None):
        self.steps = dict(steps or {})
        self.recorded: list[tuple[str, int, int]] = []

    def last_step(self, token_id):
        return self.steps.get(token_id)

    def record(self, token_id, step, interval):
        self.recorded.append((token_id, step, interval))
        self.steps[token_id] = step


class Waiting:
    """The clock and sleep of a CodeSource: sleeping moves the clock on."""

    def __init__(self, now):
        self.now = now
        self.slept: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_code_source_records_each_step_before_the_code_leaves():
    history = History()
    token = make_token()
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: 29.0, history=history)
    sent = [codes.next_code(token), codes.next_code(token)]
    assert sent == [totp_code(RFC_SHA1_SECRET, 1), totp_code(RFC_SHA1_SECRET, 2)]
    assert history.recorded == [(token.id, 1, 30), (token.id, 2, 30)]


def test_a_step_another_run_sent_within_this_step_makes_the_code_wait_for_the_next_step():
    """A killed run (or another one of this controller) sent the code of step 1 while the clock was in step 0: this
    run waits for step 1 and sends the code of step 2, never the one of step 1 again."""
    token = make_token()
    time = Waiting(20.0)
    history = History({token.id: 1})
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep, history=history)
    assert codes.next_code(token) == totp_code(RFC_SHA1_SECRET, 2)
    assert time.slept == [10.0] and codes.waited == 10.0
    assert history.recorded == [(token.id, 2, 30)]


@pytest.mark.parametrize(
    "recorded, now, expected",
    [
        (None, 95.0, False),  # no other run sent one
        (4, 95.0, True),  # sent in step 3 (the code of step 4): its write may not show yet
        (3, 95.0, True),  # sent in step 2, up to 35 s ago
        (2, 95.0, False),  # sent in step 1: long enough ago to show
    ],
)
def test_a_code_another_run_sent_lately_is_known(recorded, now, expected):
    token = make_token()
    history = History({} if recorded is None else {token.id: recorded})
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: now, history=history)
    assert codes.sent_lately_elsewhere(token) is expected
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: now).sent_lately_elsewhere(token) is False


def test_a_code_this_run_sent_is_not_another_runs():
    token = make_token()
    time = Waiting(95.0)
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep, history=History())
    codes.next_code(token)
    assert codes.sent_lately_elsewhere(token) is False


def test_a_step_another_run_sent_earlier_costs_no_wait():
    token = make_token()
    time = Waiting(95.0)  # step 3
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep, history=History({token.id: 3}))
    assert codes.next_code(token) == totp_code(RFC_SHA1_SECRET, 4)
    assert time.slept == []


def test_a_token_used_within_this_step_by_anyone_makes_the_code_wait_for_the_next_step():
    """Graph's lastUsedDateTime says the token was used in this step (its holder signing in, another machine's run
    activating it): whatever step was used, the code waits for the next step."""
    now = 1_800_000_010.0  # step 60,000,000, 10 s in
    token = make_token(last_used="2027-01-15T08:00:05.1234567Z")
    time = Waiting(now)
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep)
    assert codes.next_code(token) == totp_code(RFC_SHA1_SECRET, 60_000_002)
    assert time.slept == [20.0]
    old = make_token(last_used="2027-01-15T07:59:05Z")  # two steps ago: no wait
    assert CodeSource(secret_b32=RFC_SHA1_SECRET, clock=lambda: now, sleep=time.sleep).next_code(old) == totp_code(
        RFC_SHA1_SECRET, 60_000_001
    )
    assert time.slept == [20.0]


def test_a_step_recorded_far_ahead_is_not_waited_for_but_never_sent_again():
    token = make_token()
    time = Waiting(20.0)
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep, history=History({token.id: 9}))
    assert codes.next_code(token) == totp_code(RFC_SHA1_SECRET, 10)
    assert time.slept == []


def test_after_a_refused_code_the_next_step_is_sent_at_once():
    token = make_token()
    time = Waiting(20.0)
    codes = CodeSource(secret_b32=RFC_SHA1_SECRET, clock=time.clock, sleep=time.sleep, history=History())
    assert [codes.next_code(token), codes.next_code(token)] == [totp_code(RFC_SHA1_SECRET, s) for s in (1, 2)]
    assert time.slept == []  # this run's own step: refused, so the next one at once (no other run is waited for)
