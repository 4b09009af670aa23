# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PSKC seed files (pskc_seeds): their TOTP keys as token entries, plain and encrypted with a pre-shared key, and
every refusal naming the key package and serial number without the secret or the key. The files are written by
python-pskc in the tests."""

from __future__ import annotations

import base64
import io

import pskc
import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files import pskc_seeds
from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import SeedFileError
from ansible_collections.tokenops.entra.plugins.module_utils._files.pskc_seeds import (
    INSTALL_HINT,
    MissingLibraryError,
    parse_pskc,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.pskc_data import PSK, SEED, SEED_B32, T2_0001

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


def refused(data, preshared_key=None, *, secrets=(SEED,)):
    """The message of the refusal of ``data``, checked to hold no form of a secret or of the pre-shared key."""
    with pytest.raises(SeedFileError) as info:
        parse_pskc(data, preshared_key)
    message = str(info.value)
    for secret in secrets:
        for form in (base64.b32encode(secret).decode().rstrip("="), base64.b64encode(secret).decode(), secret.hex()):
            assert form not in message
            assert form.lower() not in message
    for key in (PSK_HEX, preshared_key or ""):
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


def test_a_password_encrypted_file_is_refused_naming_why():
    data = written(encrypt=lambda container: container.encryption.setup_pbkdf2("qwerty", iterations=1000))
    message = refused(data)
    assert "encrypted with a key derived from a password (PBKDF2)" in message


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


def test_a_malformed_value_is_refused_without_repeating_it():
    data = PLAIN.replace(base64.b64encode(SEED).decode(), "@@not base64 " + SEED_B32)
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
    assert message == "the file declares a document type or entities, which a PSKC file never needs; not read"


def test_without_python_pskc_the_install_hint(monkeypatch):
    monkeypatch.setattr(pskc_seeds, "pskc", None)
    with pytest.raises(MissingLibraryError) as info:
        parse_pskc(PLAIN)
    assert str(info.value) == INSTALL_HINT
    assert "install python-pskc on the controller" in INSTALL_HINT
