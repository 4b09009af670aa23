# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""PSKC (RFC 6030) seed files, as token vendors ship them: their TOTP keys as the ``tokens`` entries of
``hardware_oath_inventory``. python-pskc reads the file (:func:`require_pskc`); every refusal names the key package
and its serial number, and never holds a secret or the pre-shared key."""

from __future__ import annotations

import base64
import importlib
import io
import re
import typing as t

from .._common.validation import shown, text_problem
from .._domain.token_options import TEXT_LIMITS, TIME_INTERVALS
from .entra_csv import SeedFileError, usable_secret

# python-pskc is optional (only the pskc_tokens filter needs it). Imported by name, as Any: the package has type
# information, but not every environment that checks this file has the package.
try:
    pskc: t.Any = importlib.import_module("pskc")
    importlib.import_module("pskc.exceptions")
except ImportError:  # reported by require_pskc when a file is read
    pskc = None

INSTALL_HINT = (
    "python-pskc is needed to read PSKC files: install python-pskc on the controller (pip install python-pskc)"
)
DEFAULT_TIME_INTERVAL = 30
DEFAULT_HASH_FUNCTION = "hmacsha1"
DIGITS = 6
# Algorithm suites (<AlgorithmParameters><Suite>) as Entra's hash functions, after _suite_name.
SUITES = {"hmacsha1": "hmacsha1", "sha1": "hmacsha1", "hmacsha256": "hmacsha256", "sha256": "hmacsha256"}
_TOTP_RE = re.compile(r"[:#]totp\Z", re.IGNORECASE)
_HOTP_RE = re.compile(r"[:#]hotp\Z", re.IGNORECASE)
# A document type declaration: PSKC needs none, and entities could pull other files into the parsed values.
_DTD_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class MissingLibraryError(SeedFileError):
    """python-pskc is not installed where the file is read."""


def require_pskc() -> None:
    if pskc is None:
        raise MissingLibraryError(INSTALL_HINT)


def _key_bytes(preshared_key: str) -> bytes:
    cleaned = re.sub(r"[\s:-]", "", preshared_key)
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise SeedFileError("preshared_key is not hex (pairs of 0-9, a-f characters)") from None


def _raw(data: str | bytes) -> bytes:
    """The file's bytes, refused when it declares a document type (PSKC has none)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    # Without NUL bytes the markup of a UTF-16 or UTF-32 file reads as ASCII too.
    if _DTD_RE.search(raw.replace(b"\x00", b"").decode("latin-1")):
        raise SeedFileError("the file declares a document type or entities, which a PSKC file never needs; not read")
    return raw


def _suite_name(suite: str) -> str:
    return re.sub(r"[\s_-]", "", suite.rsplit("#", 1)[-1]).lower()


def _secret(label: str, secret: bytes | None) -> str:
    if not secret:
        raise SeedFileError(f"{label} has no secret")
    return usable_secret(base64.b32encode(secret).decode("ascii"), label)


def _entry(label: str, key: t.Any) -> dict[str, t.Any]:
    """One key's entry; DecryptionError escapes to the caller, which knows whether a key was given."""
    algorithm = key.algorithm or ""
    if _HOTP_RE.search(algorithm):
        raise SeedFileError(f"{label} is an HOTP (counter-based) key; Entra ID takes TOTP hardware tokens only")
    if not _TOTP_RE.search(algorithm):
        named = f"{shown(algorithm)}, not TOTP" if algorithm else "none"
        raise SeedFileError(f"{label}: its algorithm is {named}; Entra ID takes TOTP hardware tokens only")
    if key.response_length is not None and key.response_length != DIGITS:
        raise SeedFileError(f"{label} shows {key.response_length}-digit codes; Entra ID takes {DIGITS}-digit tokens")
    if key.response_encoding is not None and key.response_encoding.upper() != "DECIMAL":
        raise SeedFileError(
            f"{label} shows {shown(key.response_encoding)} codes; Entra ID takes tokens showing decimal digits"
        )
    suite = key.algorithm_suite
    hash_function = SUITES.get(_suite_name(suite)) if suite else DEFAULT_HASH_FUNCTION
    if hash_function is None:
        raise SeedFileError(f"{label}: its algorithm suite {shown(suite)} is not HMAC-SHA1 or HMAC-SHA256")
    secret = _secret(label, key.secret)
    interval = key.time_interval
    if interval is None:
        interval = DEFAULT_TIME_INTERVAL
    elif interval not in TIME_INTERVALS:
        raise SeedFileError(
            f"{label}: its time interval is {interval} seconds; Entra ID takes "
            f"{' or '.join(str(i) for i in TIME_INTERVALS)}"
        )
    entry: dict[str, t.Any] = {
        "serial_number": key.serial,
        "secret_key": secret,
        "secret_format": "base32",
        "time_interval": interval,
        "hash_function": hash_function,
    }
    for name in ("manufacturer", "model"):
        value = getattr(key, name)
        if value:
            problem = text_problem(value, TEXT_LIMITS[name])
            if problem:
                raise SeedFileError(f"{label}: its {name} {shown(value)} {problem}")
            entry[name] = value
    return entry


def _decryption_problem(container: t.Any, key: bytes | None) -> str | None:
    """Why the file's encrypted values can't be read with ``key``, when that can be told before decrypting."""
    encryption = container.encryption
    if key is None:
        if encryption.derivation.algorithm:
            return (
                "the file's secrets are encrypted with a key derived from a password (PBKDF2), which is not taken "
                "here; decrypt the file first (for example with pskc2pskc of python-pskc) or give the derived key "
                "as preshared_key"
            )
        return "the file's secrets are encrypted: give the pre-shared key (hex) the vendor sent as preshared_key"
    try:
        lengths = encryption.algorithm_key_lengths
    except pskc.exceptions.DecryptionError as exc:  # no or an unsupported algorithm: its name, never a value
        return f"the file's encryption can't be used ({exc})"
    if len(key) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        return (
            f"preshared_key is {len(key)} bytes long; the file's encryption ({encryption.algorithm}) takes a key of "
            f"{expected} bytes"
        )
    return None


def parse_pskc(data: str | bytes, preshared_key: str | None = None) -> list[dict[str, t.Any]]:
    """The token entries of a PSKC file, in file order. ``preshared_key``: the hex key that decrypts its secrets.

    Raises SeedFileError naming the key package (and serial number) of the first problem, MissingLibraryError without
    python-pskc; no message holds a secret or the key."""
    require_pskc()
    key = _key_bytes(preshared_key) if preshared_key else None
    raw = _raw(data)
    try:
        container = pskc.PSKC(io.BytesIO(raw))
    except pskc.exceptions.PSKCError as exc:  # python-pskc's own messages: what is missing, never a value
        raise SeedFileError(f"not a PSKC file that can be read: {exc}") from None
    except (ValueError, TypeError, SyntaxError):  # a malformed value; the message may quote it, so it is not shown
        raise SeedFileError(
            "not a PSKC file that can be read: a value in it is malformed (not base64, a number or a date as PSKC "
            "writes them)"
        ) from None
    if key is not None:
        container.encryption.key = key
    entries: list[dict[str, t.Any]] = []
    seen: dict[str, tuple[str, str]] = {}  # casefolded serial number -> (label, serial number)
    for number, device in enumerate(container.devices, start=1):
        for index, item in enumerate(device.keys, start=1):
            place = f"key package {number}" + (f", key {index}" if len(device.keys) > 1 else "")
            if not device.serial:
                raise SeedFileError(f"{place} has no serial number (DeviceInfo/SerialNo)")
            label = f"{place} (serial number {shown(device.serial)})"
            problem = text_problem(device.serial, TEXT_LIMITS["serial_number"])
            if problem:
                raise SeedFileError(f"{place}: its serial number {shown(device.serial)} {problem}")
            try:
                entry = _entry(label, item)
            except pskc.exceptions.DecryptionError as exc:
                reason = _decryption_problem(container, key)
                if reason is None:  # the key has the right length, yet does not decrypt (or authenticate) the value
                    reason = f"the pre-shared key does not decrypt it ({exc}); check preshared_key"
                raise SeedFileError(f"{label}: {reason}") from None
            folded = device.serial.casefold()
            if folded in seen:
                first, serial = seen[folded]
                raise SeedFileError(f"{first} and {place}: the serial number {shown(serial)} appears twice")
            seen[folded] = (place, device.serial)
            entries.append(entry)
    if not entries:
        raise SeedFileError("the file holds no key packages")
    return entries
