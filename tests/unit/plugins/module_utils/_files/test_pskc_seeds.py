# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PSKC seed files (pskc_seeds): their TOTP keys as token entries, plain, encrypted with a pre-shared key or with a
password (PBKDF2), and every refusal naming the line or the key package and serial number without the secret, the key
or the password. Hostile files (entities, other encodings, deep nesting, oversize, values changed without their MAC)
are refused before python-pskc reads anything, whether it reads XML with lxml or with ElementTree. The files are
written by python-pskc in the tests."""

from __future__ import annotations

import base64
import importlib
import io
import re
import sys

import pskc
import pskc.encryption
import pskc.xml
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files import pskc_seeds, safe_xml
from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import SeedFileError
from ansible_collections.tokenops.entra.plugins.module_utils._files.pskc_seeds import (
    INSTALL_HINT,
    MissingLibraryError,
    parse_pskc,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.pskc_data import (
    PASSWORD,
    PSK,
    SEED,
    SEED_B32,
    T2_0001,
    TEST_ITERATIONS,
)

TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
HOTP = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
OTHER_SEED = bytes(range(100, 132))
OTHER_SEED_B32 = base64.b32encode(OTHER_SEED).decode().rstrip("=")
PSK_HEX = PSK.hex()

# A vendor's plain file, as RFC 6030 section 4 shapes it (the secret as a base64 PlainValue).
PLAIN = f"""<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" Id="batch-17" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo>
      <Manufacturer>Token2</Manufacturer>
      <SerialNo>T2-0001</SerialNo>
      <Model>C202</Model>
    </DeviceInfo>
    <Key Id="T2-0001" Algorithm="{TOTP}">
      <Issuer>Token2</Issuer>
      <AlgorithmParameters>
        <Suite>HMAC-SHA1</Suite>
        <ResponseFormat Length="6" Encoding="DECIMAL"/>
      </AlgorithmParameters>
      <Data>
        <Secret><PlainValue>{base64.b64encode(SEED).decode()}</PlainValue></Secret>
        <Time><PlainValue>0</PlainValue></Time>
        <TimeInterval><PlainValue>30</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
  <KeyPackage>
    <DeviceInfo>
      <Manufacturer>Token2</Manufacturer>
      <SerialNo>T2-0002</SerialNo>
      <Model>C302</Model>
    </DeviceInfo>
    <Key Id="T2-0002" Algorithm="{TOTP}">
      <AlgorithmParameters>
        <Suite>HMAC-SHA256</Suite>
        <ResponseFormat Length="6" Encoding="DECIMAL"/>
      </AlgorithmParameters>
      <Data>
        <Secret><PlainValue>{base64.b64encode(OTHER_SEED).decode()}</PlainValue></Secret>
        <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>
"""

PLAIN_ENTRIES = [
    T2_0001,
    {
        "serial_number": "T2-0002",
        "secret_key": OTHER_SEED_B32,
        "secret_format": "base32",
        "time_interval": 60,
        "hash_function": "hmacsha256",
        "manufacturer": "Token2",
        "model": "C302",
    },
]


def key_fields(serial="T2-0001", **more):
    fields = {
        "serial": serial,
        "secret": SEED,
        "algorithm": TOTP,
        "manufacturer": "Token2",
        "model": "C202",
        "time_interval": 30,
        "response_length": 6,
        "response_encoding": "DECIMAL",
        "algorithm_suite": "HMAC-SHA1",
    }
    fields.update(more)
    return {name: value for name, value in fields.items() if value is not None}


def written(*keys, encrypt=None):
    """A PSKC file python-pskc writes, with a key package per dict of ``keys``; ``encrypt(container)`` sets up its
    encryption."""
    container = pskc.PSKC()
    for fields in keys or (key_fields(),):
        container.add_key(**fields)
    if encrypt:
        encrypt(container)
    out = io.BytesIO()
    container.write(out)
    return out.getvalue().decode("utf-8")


def preshared(key=PSK, **options):
    return lambda container: container.encryption.setup_preshared_key(key=key, key_name="Pre-shared-key", **options)


def pbkdf2(password=PASSWORD, **options):
    options.setdefault("iterations", TEST_ITERATIONS)
    return lambda container: container.encryption.setup_pbkdf2(password, **options)


def standard_prf(data):
    """python-pskc 1.4 writes PBKDF2's PRF as the element's text, and reads it (as RFC 6030 and PKCS #5 write it) from
    its Algorithm attribute: the file as a vendor writes it."""
    return re.sub(r"<PRF>([^<]*)</PRF>", r'<PRF Algorithm="\1"/>', data)


def refused(data, preshared_key=None, *, password=None, secrets=(SEED,)):
    """The message of the refusal of ``data``, checked to hold no form of a secret, of the pre-shared key or of the
    password."""
    with pytest.raises(SeedFileError) as info:
        parse_pskc(data, preshared_key, password)
    message = str(info.value)
    for secret in secrets:
        for form in (base64.b32encode(secret).decode().rstrip("="), base64.b64encode(secret).decode(), secret.hex()):
            assert form not in message
            assert form.lower() not in message
    for key in (PSK_HEX, preshared_key or "", PASSWORD, password or ""):
        if key:
            assert key not in message
    return message


# ---------------------------------------------------------------------------------------------------- accepted
def test_a_plain_vendor_file_gives_its_tokens_in_file_order():
    assert parse_pskc(PLAIN) == PLAIN_ENTRIES


def test_bytes_and_a_byte_order_mark_are_taken():
    assert parse_pskc(PLAIN.encode("utf-8")) == PLAIN_ENTRIES
    assert parse_pskc("\ufeff" + PLAIN) == PLAIN_ENTRIES
    assert parse_pskc(b"\xef\xbb\xbf" + PLAIN.encode("utf-8")) == PLAIN_ENTRIES


def test_what_the_file_leaves_out_takes_the_defaults_or_is_left_out():
    fields = key_fields(
        manufacturer=None, model=None, time_interval=None, algorithm_suite=None, response_length=None,
        response_encoding=None,
    )  # fmt: skip
    assert parse_pskc(written(fields)) == [
        {
            "serial_number": "T2-0001",
            "secret_key": SEED_B32,
            "secret_format": "base32",
            "time_interval": 30,
            "hash_function": "hmacsha1",
        }
    ]


@pytest.mark.parametrize(
    "suite, hash_function",
    [
        ("HMAC-SHA1", "hmacsha1"),
        ("hmac-sha1", "hmacsha1"),
        ("HMAC_SHA1", "hmacsha1"),
        ("SHA1", "hmacsha1"),
        ("HMAC-SHA256", "hmacsha256"),
        ("HMAC-SHA-256", "hmacsha256"),
        ("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256", "hmacsha256"),
    ],
)
def test_algorithm_suites(suite, hash_function):
    assert parse_pskc(written(key_fields(algorithm_suite=suite)))[0]["hash_function"] == hash_function


def test_a_file_encrypted_with_a_preshared_key():
    """AES-128-CBC with an HMAC-SHA1 MAC (its key encrypted too), as RFC 6030 section 6.1."""
    data = written(key_fields(), key_fields("T2-0002", secret=OTHER_SEED, time_interval=60), encrypt=preshared())
    assert "PlainValue>" + base64.b64encode(SEED).decode() not in data
    assert "aes128-cbc" in data
    assert "hmac-sha1" in data
    entries = parse_pskc(data, PSK_HEX)
    assert [(e["serial_number"], e["secret_key"], e["time_interval"]) for e in entries] == [
        ("T2-0001", SEED_B32, 30),
        ("T2-0002", OTHER_SEED_B32, 60),
    ]


@pytest.mark.parametrize("written_key", [PSK_HEX.upper(), " ".join(PSK_HEX[i : i + 2] for i in range(0, 32, 2))])
def test_the_preshared_key_may_be_upper_case_or_spaced(written_key):
    assert parse_pskc(written(encrypt=preshared()), written_key)[0]["secret_key"] == SEED_B32


def test_encrypted_time_intervals_are_decrypted_too():
    data = written(key_fields(time_interval=60), encrypt=preshared(fields=["secret", "time_interval"]))
    assert parse_pskc(data, PSK_HEX)[0]["time_interval"] == 60


def test_a_preshared_key_for_a_plain_file_does_no_harm():
    assert parse_pskc(PLAIN, PSK_HEX) == PLAIN_ENTRIES


# ---------------------------------------------------------------------------------------------------- refused
def test_an_encrypted_file_without_the_key_is_refused():
    message = refused(written(encrypt=preshared()))
    assert message == (
        "key package 1 (serial number 'T2-0001'): the file's secrets are encrypted: give the pre-shared key (hex) "
        "the vendor sent as preshared_key"
    )


def test_a_wrong_preshared_key_is_refused():
    wrong = "00112233445566778899aabbccddeeff"
    message = refused(written(encrypt=preshared()), wrong)
    assert message.startswith("key package 1 (serial number 'T2-0001'): the pre-shared key does not decrypt it (")
    assert message.endswith("); check preshared_key")


def test_a_wrong_key_for_a_key_wrapped_file_is_refused():
    data = written(encrypt=preshared(algorithm="kw-aes128"))
    assert parse_pskc(data, PSK_HEX)[0]["secret_key"] == SEED_B32
    message = refused(data, "00112233445566778899aabbccddeeff")
    assert "the pre-shared key does not decrypt it" in message


def test_a_preshared_key_of_the_wrong_length_is_refused():
    message = refused(written(encrypt=preshared()), PSK_HEX[:30])
    assert message == (
        "key package 1 (serial number 'T2-0001'): preshared_key is 15 bytes long; the file's encryption "
        "(http://www.w3.org/2001/04/xmlenc#aes128-cbc) takes a key of 16 bytes"
    )


@pytest.mark.parametrize("written_key", ["zz-key", PSK_HEX[:31], PSK_HEX + "g"])
def test_a_preshared_key_that_is_not_hex_is_refused_without_repeating_it(written_key):
    assert (
        refused(written(encrypt=preshared()), written_key) == "preshared_key is not hex (pairs of 0-9, a-f characters)"
    )


def test_a_password_encrypted_file_without_the_password_is_refused_naming_why():
    message = refused(written(encrypt=pbkdf2()))
    assert message == (
        "key package 1 (serial number 'T2-0001'): the file's secrets are encrypted with a key derived from a password "
        "(PBKDF2): give the password as password (or the derived key, in hex, as preshared_key)"
    )


def test_hotp_keys_are_refused_naming_the_serial_number():
    data = written(key_fields(), key_fields("T2-0002", algorithm=HOTP, time_interval=None, counter=0))
    assert refused(data) == (
        "key package 2 (serial number 'T2-0002') is an HOTP (counter-based) key; Entra ID takes TOTP hardware "
        "tokens only"
    )


def test_hotp_keys_are_refused_before_anything_is_decrypted():
    data = written(key_fields(algorithm=HOTP), encrypt=preshared())
    assert "is an HOTP (counter-based) key" in refused(data)


@pytest.mark.parametrize(
    "algorithm, named",
    [
        (None, "none"),
        ("urn:ietf:params:xml:ns:keyprov:pskc:pin", "'urn:ietf:params:xml:ns:keyprov:pskc:pin', not TOTP"),
    ],
)
def test_keys_of_other_algorithms_are_refused(algorithm, named):
    message = refused(written(key_fields(algorithm=algorithm)))
    assert message == (
        f"key package 1 (serial number 'T2-0001'): its algorithm is {named}; Entra ID takes TOTP hardware tokens only"
    )


def test_eight_digit_tokens_are_refused():
    assert refused(written(key_fields(response_length=8))) == (
        "key package 1 (serial number 'T2-0001') shows 8-digit codes; Entra ID takes 6-digit tokens"
    )


def test_tokens_showing_other_than_decimal_digits_are_refused():
    assert refused(written(key_fields(response_encoding="HEXADECIMAL"))) == (
        "key package 1 (serial number 'T2-0001') shows 'HEXADECIMAL' codes; Entra ID takes tokens showing decimal "
        "digits"
    )


def test_time_intervals_other_than_30_or_60_are_refused():
    assert refused(written(key_fields(time_interval=45))) == (
        "key package 1 (serial number 'T2-0001'): its time interval is 45 seconds; Entra ID takes 30 or 60"
    )


@pytest.mark.parametrize("suite", ["HMAC-SHA512", "HMAC-MD5", "OCRA-1:HOTP-SHA1-6:QN08"])
def test_other_algorithm_suites_are_refused(suite):
    assert refused(written(key_fields(algorithm_suite=suite))) == (
        f"key package 1 (serial number 'T2-0001'): its algorithm suite {suite!r} is not HMAC-SHA1 or HMAC-SHA256"
    )


def test_a_secret_too_short_to_compute_codes_is_refused_without_repeating_it():
    short = b"0123456789"  # 80 bits
    assert refused(written(key_fields(secret=short)), secrets=(short,)) == (
        "key package 1 (serial number 'T2-0001'): the secret key is shorter than the 112 bits (23 base32 characters) "
        "needed to compute the token's activation codes"
    )


def test_a_secret_longer_than_entra_takes_is_refused():
    too_long = bytes(range(81))  # 130 base32 characters
    message = refused(written(key_fields(secret=too_long)), secrets=(too_long,))
    assert "longer than the 128 base32 characters Entra ID accepts" in message


def test_a_key_without_a_secret_is_refused():
    assert refused(written(key_fields(secret=None))) == "key package 1 (serial number 'T2-0001') has no secret"


def test_a_key_package_without_a_serial_number_is_refused():
    assert refused(written(key_fields(), key_fields(serial=None))) == (
        "key package 2 has no serial number (DeviceInfo/SerialNo)"
    )


def test_duplicate_serial_numbers_name_both_key_packages():
    data = written(key_fields("T2-0001"), key_fields("T2-0002"), key_fields("t2-0001"))
    assert refused(data) == "key package 1 and key package 3: the serial number 'T2-0001' appears twice"


def test_several_keys_of_one_device_are_told_apart():
    container = pskc.PSKC()
    device = container.add_device(serial="T2-0001")
    device.add_key(secret=SEED, algorithm=TOTP)
    device.add_key(secret=SEED, algorithm=HOTP)
    out = io.BytesIO()
    container.write(out)
    assert refused(out.getvalue()).startswith("key package 1, key 2 (serial number 'T2-0001') is an HOTP")


def test_text_fields_are_checked_like_the_module_checks_them():
    message = refused(written(key_fields(model="M" * 129)))
    assert message == (
        "key package 1 (serial number 'T2-0001'): its model " + repr("M" * 60 + "...") + " is 129 characters long; "
        "at most 128 are allowed"
    )


@pytest.mark.parametrize("data", ["", "not xml", "<a><b></a>", "<KeyContainer Version='2.0'/>", "<Other/>"])
def test_what_is_not_a_pskc_file_is_refused(data):
    assert refused(data).startswith("not a PSKC file that can be read: ")


@pytest.mark.parametrize(
    "old, new",
    [
        (base64.b64encode(SEED).decode(), "@@not base64 " + SEED_B32),
        ("<Model>C202</Model>", "<Model>C202</Model><StartDate>99999999999999999999</StartDate>"),
    ],
    ids=["base64", "date out of range"],
)
def test_a_malformed_value_is_refused_without_repeating_it(old, new):
    data = PLAIN.replace(old, new, 1)
    message = refused(data)
    assert message == (
        "not a PSKC file that can be read: a value in it is malformed (not base64, a number or a date as PSKC "
        "writes them)"
    )


def test_a_file_without_key_packages_is_refused():
    assert refused('<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>') == (
        "the file holds no key packages"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_document_type_declaration_is_refused(encoding):
    data = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n' + PLAIN.split("?>", 1)[1]
    message = refused(data.encode(encoding))
    assert message == "line 2: the file declares a document type or entities, which a PSKC file never needs; not read"


def test_without_python_pskc_the_install_hint(monkeypatch):
    monkeypatch.setattr(pskc_seeds, "pskc", None)
    with pytest.raises(MissingLibraryError) as info:
        parse_pskc(PLAIN)
    assert str(info.value) == INSTALL_HINT
    assert "install python-pskc on the controller" in INSTALL_HINT


# ------------------------------------------------------------------------------------ password-based encryption
def test_a_file_encrypted_with_a_password():
    """PBKDF2 (RFC 6030 section 6.2), AES-128-CBC and an HMAC-SHA1 MAC, as python-pskc writes it by default."""
    data = written(key_fields(), key_fields("T2-0002", secret=OTHER_SEED, time_interval=60), encrypt=pbkdf2())
    assert "pbkdf2" in data and "PlainValue>" + base64.b64encode(SEED).decode() not in data
    assert [(e["serial_number"], e["secret_key"]) for e in parse_pskc(data, password=PASSWORD)] == [
        ("T2-0001", SEED_B32),
        ("T2-0002", OTHER_SEED_B32),
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"algorithm": "aes256-cbc", "prf": "hmac-sha256"},
        {"algorithm": "kw-aes128"},
        {"fields": ["secret", "time_interval"]},
    ],
)
def test_other_password_encryptions(options):
    data = standard_prf(written(encrypt=pbkdf2(**options)))
    assert parse_pskc(data, password=PASSWORD)[0]["secret_key"] == SEED_B32
    if "prf" in options:  # the PRF is taken from the file: another one derives another key
        assert "the password does not decrypt it" in refused(data.replace("sha256", "sha512"), password=PASSWORD)


def test_the_derived_key_works_as_the_preshared_key():
    derived = {}

    def encrypt(container):
        pbkdf2()(container)
        derived["key"] = container.encryption.key.hex()

    data = written(encrypt=encrypt)
    assert parse_pskc(data, derived["key"])[0]["secret_key"] == SEED_B32


def test_a_wrong_password_is_refused_without_repeating_it():
    wrong = "not the vendor's password"
    message = refused(written(encrypt=pbkdf2()), password=wrong)
    assert message.startswith("key package 1 (serial number 'T2-0001'): the password does not decrypt it (")
    assert message.endswith("); check password")


def test_a_password_for_a_file_encrypted_with_a_preshared_key_is_refused():
    assert refused(written(encrypt=preshared()), password=PASSWORD) == (
        "key package 1 (serial number 'T2-0001'): the file's secrets are encrypted with a pre-shared key, not a "
        "password: give the key (hex) the vendor sent as preshared_key"
    )


def test_a_password_for_a_plain_file_does_no_harm():
    assert parse_pskc(PLAIN, password=PASSWORD) == PLAIN_ENTRIES


def test_a_preshared_key_and_a_password_together_are_refused():
    assert refused(written(encrypt=pbkdf2()), PSK_HEX, password=PASSWORD) == (
        "give preshared_key or password, not both: a file's key is either shared or derived"
    )


def iteration_count(data, count):
    return re.sub(r"<IterationCount>\d+</IterationCount>", f"<IterationCount>{count}</IterationCount>", data)


@pytest.mark.parametrize("count", [10**12, 0])
def test_an_iteration_count_out_of_range_is_refused_before_deriving(count, monkeypatch):
    data = iteration_count(written(encrypt=pbkdf2()), count)

    def derive(*_args):
        raise AssertionError("a key was derived")  # 10**12 iterations would hold the controller up for days

    monkeypatch.setattr(pskc.encryption.KeyDerivation, "derive_pbkdf2", derive)
    assert refused(data, password=PASSWORD) == (
        f"the file's key derivation asks for {count} PBKDF2 iterations; from 1 to 10,000,000 are taken"
    )


def test_an_iteration_count_at_the_limit_is_derived(monkeypatch):
    monkeypatch.setattr(pskc_seeds, "MAX_PBKDF2_ITERATIONS", TEST_ITERATIONS)
    assert parse_pskc(written(encrypt=pbkdf2()), password=PASSWORD)[0]["secret_key"] == SEED_B32
    data = iteration_count(written(encrypt=pbkdf2()), TEST_ITERATIONS + 1)
    assert "asks for 1001 PBKDF2 iterations" in refused(data, password=PASSWORD)


def test_a_derived_key_length_the_encryption_does_not_take_is_refused():
    data = written(encrypt=pbkdf2()).replace("<KeyLength>16</KeyLength>", "<KeyLength>4096</KeyLength>")
    assert refused(data, password=PASSWORD) == (
        "the file's key derivation gives a key of 4096 bytes; its encryption "
        "(http://www.w3.org/2001/04/xmlenc#aes128-cbc) takes a key of 16 bytes"
    )


def test_a_key_derivation_python_pskc_does_not_know_is_refused():
    data = standard_prf(written(encrypt=pbkdf2(prf="hmac-md5"))).replace("hmac-md5", "hmac-whirl")
    assert refused(data, password=PASSWORD) == (
        "the file's key derivation can't be used (Pseudorandom function unsupported: "
        "'http://www.w3.org/2001/04/xmldsig-more#hmac-whirl')"
    )


# ---------------------------------------------------------------------------- encrypted values and their MACs
def without_value_macs(data):
    return re.sub(r"\s*<pskc:ValueMAC>[^<]*</pskc:ValueMAC>", "", data)


def flipped(data, field="Secret"):
    """``data`` with the lowest bit of the first byte (of the IV, in CBC) of ``field``'s cipher value flipped."""
    start = data.index(f"<pskc:{field}>")
    match = re.compile(r"<xenc:CipherValue>([^<]*)</xenc:CipherValue>").search(data, start)
    cipher = bytearray(base64.b64decode(match.group(1)))
    cipher[0] ^= 1
    return data[: match.start(1)] + base64.b64encode(bytes(cipher)).decode() + data[match.end(1) :]


def line_of(data, text):
    return data[: data.index(text)].count("\n") + 1


@pytest.mark.parametrize(
    "encrypt, key",
    [(preshared(), {"preshared_key": PSK_HEX}), (pbkdf2(), {"password": PASSWORD})],
    ids=["psk", "pbkdf2"],
)
def test_a_flipped_bit_with_its_mac_removed_is_refused_not_loaded(encrypt, key):
    """Without its MAC, a bit flipped in a CBC value's IV flips the same bit of the secret, and python-pskc loads it."""
    data = without_value_macs(flipped(written(encrypt=encrypt)))
    message = refused(data, key.get("preshared_key"), password=key.get("password"))
    assert message == (
        f"key package 1 (serial number 'T2-0001'): its Secret (line {line_of(data, '<pskc:Secret>')}) is encrypted "
        "without a ValueMAC, so a change to it would go unnoticed (only key wrap algorithms check what they "
        "decrypt); not read"
    )


def test_an_encrypted_value_without_its_mac_is_refused_whichever_field():
    data = written(key_fields(time_interval=60), encrypt=preshared(fields=["secret", "time_interval"]))
    interval = data.index("<pskc:TimeInterval>")
    data = data[:interval] + without_value_macs(data[interval:])
    assert f"its TimeInterval (line {line_of(data, '<pskc:TimeInterval>')}) is encrypted without a ValueMAC" in refused(
        data, PSK_HEX
    )


def test_an_encrypted_value_without_its_mac_is_refused_before_any_key_is_asked_for():
    assert "is encrypted without a ValueMAC" in refused(without_value_macs(written(encrypt=preshared())))


def test_a_flipped_bit_with_its_mac_is_refused_by_the_mac():
    message = refused(flipped(written(encrypt=preshared())), PSK_HEX)
    assert message == (
        "key package 1 (serial number 'T2-0001'): the pre-shared key does not decrypt it (MAC value does not match); "
        "check preshared_key"
    )


def test_a_mac_without_its_method_is_refused():
    data = re.sub(r"<pskc:MACMethod .*?</pskc:MACMethod>", "", written(encrypt=preshared()), flags=re.DOTALL)
    assert "the pre-shared key does not decrypt it (Unsupported MAC algorithm: None)" in refused(data, PSK_HEX)


def test_a_plain_value_beside_an_encrypted_one_is_refused():
    """python-pskc would take the plain one, and the MAC of the encrypted one would check nothing."""
    planted = base64.b64encode(OTHER_SEED).decode()
    data = written(encrypt=preshared()).replace(
        "<pskc:EncryptedValue>", f"<pskc:PlainValue>{planted}</pskc:PlainValue><pskc:EncryptedValue>"
    )
    assert refused(data, PSK_HEX, secrets=(SEED, OTHER_SEED)) == (
        f"key package 1 (serial number 'T2-0001'): its Secret (line {line_of(data, '<pskc:Secret>')}) holds both a "
        "plain and an encrypted value; not read"
    )


def test_a_plain_secret_in_a_file_whose_values_are_encrypted_is_refused():
    planted = base64.b64encode(OTHER_SEED).decode()
    data = written(key_fields(), key_fields("T2-0002", secret=OTHER_SEED), encrypt=preshared())
    second = data.index("<pskc:SerialNo>T2-0002")
    value = re.compile(r"<pskc:EncryptedValue>.*?</pskc:ValueMAC>", re.DOTALL).search(data, second)
    data = data[: value.start()] + f"<pskc:PlainValue>{planted}</pskc:PlainValue>" + data[value.end() :]
    line = data[: data.index("<pskc:Secret>", second)].count("\n") + 1
    assert refused(data, PSK_HEX, secrets=(SEED, OTHER_SEED)) == (
        f"key package 2 (serial number 'T2-0002'): its Secret (line {line}) is in the clear in a file whose values "
        "are encrypted; not read"
    )


def test_key_wrap_needs_no_mac_but_a_changed_value_is_still_refused():
    data = written(encrypt=preshared(algorithm="kw-aes128"))
    assert "ValueMAC" not in data
    assert "the pre-shared key does not decrypt it" in refused(flipped(data), PSK_HEX)


def test_key_wrap_named_nowhere_in_the_value_is_not_taken_for_key_wrap():
    """Only the value's own EncryptionMethod counts: python-pskc would decrypt it with the file's first algorithm."""
    data = written(encrypt=preshared(algorithm="kw-aes128"))
    secret = data.index("<pskc:Secret>")
    data = data[:secret] + re.sub(r"<xenc:EncryptionMethod [^>]*/>", "", data[secret:], count=1)
    assert "is encrypted without a ValueMAC" in refused(data, PSK_HEX)


# ------------------------------------------------------------------------- hostile files, whichever XML library
@pytest.fixture(params=["lxml", "ElementTree"])
def xml_library(request):
    """python-pskc's XML library: lxml, which python-pskc takes when it is importable, or ElementTree, with lxml made
    unimportable (a controller without it). Yields the list of the documents python-pskc is given to parse."""
    if request.param == "lxml":
        pytest.importorskip("lxml.etree")
    given: list[bytes] = []
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "ElementTree":
            patch.setitem(sys.modules, "lxml", None)
            patch.setitem(sys.modules, "lxml.etree", None)
        importlib.reload(pskc.xml)  # python-pskc picks its library when pskc.xml is imported
        library = pskc.xml.xml_parse.__module__
        assert library.startswith("lxml") if request.param == "lxml" else not library.startswith("lxml")
        parse = pskc.xml.xml_parse

        def recorded(source):
            document = source.read()
            given.append(document)
            return parse(io.BytesIO(document))

        patch.setattr(pskc.xml, "xml_parse", recorded)
        yield given
    importlib.reload(pskc.xml)


ATTACKER_SEED = b"attacker-chosen-seed"
LOCAL_FILE_TEXT = "contents-of-a-local-file-KJH2G3"


def pskc_document(secret_text, prolog=""):
    """A PSKC file whose secret is ``secret_text`` (an entity reference, in the hostile cases)."""
    return (
        f'{prolog}<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo>'
        f'<SerialNo>X-0001</SerialNo></DeviceInfo><Key Algorithm="{TOTP}"><Data><Secret><PlainValue>{secret_text}'
        "</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>\n"
    )


def utf7(text):
    """``text`` in UTF-7, its ``<!`` (which Python's encoder leaves as they are) encoded too."""
    return text.encode("utf-7").replace(b"<!", b"+ADwAIQ-")


def hostile_files(local_file):
    """id -> (bytes, what the refusal says)."""
    attacker = base64.b64encode(ATTACKER_SEED).decode()
    internal = pskc_document("&s;", f'<!DOCTYPE KeyContainer [<!ENTITY s "{attacker}">]>\n')
    external = pskc_document("&s;", f'<!DOCTYPE KeyContainer [<!ENTITY s SYSTEM "file://{local_file}">]>\n')
    parameter = pskc_document("x", f'<!DOCTYPE KeyContainer [<!ENTITY % p SYSTEM "file://{local_file}"> %p;]>\n')
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    billion = pskc_document("&l9;", f'<!DOCTYPE KeyContainer [<!ENTITY l0 "lol">{laughs}]>\n')
    declared = '<?xml version="1.0" encoding="{}"?>\n'
    dtd = "the file declares a document type or entities, which a PSKC file never needs; not read"
    return {
        "utf-7, internal entity": (declared.format("UTF-7").encode() + utf7(internal), "encoding 'UTF-7'; only"),
        "utf-7, external entity": (declared.format("UTF-7").encode() + utf7(external), "encoding 'UTF-7'; only"),
        "utf-7 in utf-16": ((declared.format("UTF-7") + internal).encode("utf-16"), "encoding 'UTF-7'; only"),
        "internal entity": ((declared.format("UTF-8") + internal).encode(), f"line 2: {dtd}"),
        "external entity": (external.encode(), f"line 1: {dtd}"),
        "external entity, utf-16": (external.encode("utf-16"), f"line 1: {dtd}"),
        "external entity, utf-16 without bom": (external.encode("utf-16-le"), "without a byte order mark"),
        "external entity, utf-32": (external.encode("utf-32"), "the file is in UTF-32"),
        "external entity, declared utf-16": ((declared.format("UTF-16") + external).encode(), "no UTF-16 byte order"),
        "external entity, latin-1": ((declared.format("ISO-8859-1") + external).encode(), "'ISO-8859-1'; only"),
        "parameter entity": (parameter.encode(), f"line 1: {dtd}"),
        "billion laughs": (billion.encode(), f"line 1: {dtd}"),
        "undeclared entity": (pskc_document("&s;").encode(), "the XML is not well-formed (undefined entity)"),
        "deep nesting": (pskc_document("<a>" * 100_000 + "</a>" * 100_000).encode(), "nested more than 32 deep"),
        "oversize": (pskc_document(" " * safe_xml.MAX_BYTES).encode(), "bytes long; at most 16,777,216 are read"),
    }


HOSTILE = sorted(hostile_files("/x"))


@pytest.fixture
def local_file(tmp_path):
    path = tmp_path / "local.txt"
    path.write_text(LOCAL_FILE_TEXT)
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_refused_before_python_pskc_reads_them(case, xml_library, local_file):
    data, expected = hostile_files(local_file)[case]
    for given in (data, data.decode("utf-8", "surrogateescape")):  # bytes, and text as the file lookup reads it
        message = refused(given, secrets=(SEED, ATTACKER_SEED))
        assert expected in message
        assert LOCAL_FILE_TEXT not in message and str(local_file) not in message
    assert xml_library == []  # python-pskc was given nothing to parse


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_refused_with_a_password_too(case, local_file):
    data, expected = hostile_files(local_file)[case]
    assert expected in refused(data, password=PASSWORD, secrets=(SEED, ATTACKER_SEED))


def test_no_other_way_in_for_a_local_file(xml_library, local_file):
    """XInclude and a style sheet processing instruction are not processed: the file is read without the local file."""
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{local_file}"/>'
    data = pskc_document(
        base64.b64encode(SEED).decode() + include, f'<?xml-stylesheet type="text/xsl" href="file://{local_file}"?>\n'
    )
    entries = parse_pskc(data)
    assert entries[0]["secret_key"] == SEED_B32
    assert LOCAL_FILE_TEXT not in repr(entries)
    assert len(xml_library) == 1 and b"stylesheet" not in xml_library[0]


def test_python_pskc_reads_only_the_vetted_utf8_document_whichever_library(xml_library):
    files = [
        (PLAIN.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"), {}),
        (written(encrypt=preshared()), {"preshared_key": PSK_HEX}),
        (written(encrypt=pbkdf2()), {"password": PASSWORD}),
    ]
    for data, options in files:
        assert parse_pskc(data, **options)[0]["secret_key"] == SEED_B32
    assert len(xml_library) == len(files)
    for document in xml_library:
        assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<')
        assert b"<!" not in document and b"<?" not in document[5:]
