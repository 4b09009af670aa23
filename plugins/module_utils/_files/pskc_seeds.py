# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""PSKC (RFC 6030) seed files, as token vendors ship them: their TOTP keys as the ``tokens`` entries of
``hardware_oath_inventory``. The file is vetted first (:mod:`.safe_xml`: no DTD, no entity, UTF-8 or UTF-16, within
limits; every encrypted value authenticated), then python-pskc (:func:`require_pskc`) reads the vetted document and
decrypts its secrets with a pre-shared key or a key derived from a password (PBKDF2). Every refusal names the line or
the key package and its serial number, and never holds a secret, the pre-shared key or the password."""

from __future__ import annotations

import base64
import importlib
import io
import re
import typing as t

from .._common.validation import shown, text_problem
from .._domain.token_options import TEXT_LIMITS, TIME_INTERVALS
from .entra_csv import SeedFileError, usable_secret
from .safe_xml import vetted_xml

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
# Key wrap (RFC 3394 and its kin) checks the integrity of what it unwraps; CBC does not, so a value encrypted with it
# must come with a ValueMAC. As python-pskc matches the algorithm of a value (case-sensitive, at the end).
_KEY_WRAP_RE = re.compile(r"#kw-(?:aes(?:128|192|256)|tripledes|camellia(?:128|192|256))\Z")
# The most PBKDF2 iterations a file may ask for (a few seconds of work): more would hold the controller up.
MAX_PBKDF2_ITERATIONS = 10_000_000


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


def _local(tag: str) -> str:
    """An element's name without its prefix, as python-pskc matches names (whatever the namespace)."""
    return tag.rpartition(":")[2]


def _children(element: t.Any) -> dict[str, t.Any]:
    """The first child of each name, as python-pskc finds them."""
    children: dict[str, t.Any] = {}
    for child in element:
        children.setdefault(_local(child.tag), child)
    return children


def _value_algorithm(encrypted_value: t.Any) -> str:
    """The algorithm python-pskc decrypts an EncryptedValue with, when the value names it."""
    method = _children(encrypted_value).get("EncryptionMethod")
    if method is None:
        return ""
    scheme = _children(method).get("EncryptionScheme")
    return (scheme.get("Algorithm") if scheme is not None else None) or method.get("Algorithm") or ""


def _package_labels(root: t.Any) -> dict[t.Any, str]:
    """Each element inside a key package -> "key package N (serial number ...)", numbered as python-pskc does."""
    packages = [c for c in root if _local(c.tag) == "KeyPackage"] + [c for c in root if _local(c.tag) == "Device"]
    labels: dict[t.Any, str] = {}
    for number, package in enumerate(packages, start=1):
        label = f"key package {number}"
        info = next((c for c in package if _local(c.tag) in ("DeviceInfo", "DeviceId")), None)
        serial = _children(info).get("SerialNo") if info is not None else None
        if serial is not None and (serial.text or "").strip():
            label += f" (serial number {shown(serial.text.strip())})"
        for element in package.iter():
            labels[element] = label
    return labels


def _check_values(root: t.Any, lines: dict[t.Any, int]) -> bool:
    """Refuses values that could be changed unnoticed: an encrypted value without its ValueMAC (unless key wrap
    checks it), a value both plain and encrypted (python-pskc would take the plain one), and a plain secret in a file
    whose values are encrypted. True when the file holds encrypted values."""
    if not any(_local(element.tag) == "EncryptedValue" for element in root.iter()):
        return False
    labels = _package_labels(root)

    def refuse(element: t.Any, problem: str) -> t.NoReturn:
        name = _local(element.tag)
        field = name if name != "Data" else f"Data {shown(element.get('Name') or '')}"
        where = f"{labels.get(element, 'the file')}: its {field} (line {lines.get(element, 0)})"
        raise SeedFileError(f"{where} {problem}; not read")

    for element in root.iter():
        children = _children(element)
        name = _local(element.tag)
        mac = "ValueMAC" in children or "ValueDigest" in children
        if "EncryptedValue" in children:
            if "PlainValue" in children or "Value" in children:
                refuse(element, "holds both a plain and an encrypted value")
            if not mac and not _KEY_WRAP_RE.search(_value_algorithm(children["EncryptedValue"])):
                refuse(
                    element,
                    "is encrypted without a ValueMAC, so a change to it would go unnoticed (only key wrap algorithms "
                    "check what they decrypt)",
                )
        elif (name == "Secret" or (name == "Data" and (element.get("Name") or "").lower() == "secret")) and (
            "PlainValue" in children or ("Value" in children and not mac)
        ):
            refuse(element, "is in the clear in a file whose values are encrypted")
    return True


def _derive_key(container: t.Any, password: str) -> None:
    """The file's encryption key, derived from ``password`` as the file says (PBKDF2, RFC 6030 section 6.2)."""
    encryption = container.encryption
    derivation = encryption.derivation
    try:
        lengths = encryption.algorithm_key_lengths
    except pskc.exceptions.DecryptionError as exc:  # no or an unsupported algorithm: its name, never a value
        raise SeedFileError(f"the file's encryption can't be used ({exc})") from None
    iterations = derivation.pbkdf2_iterations
    if iterations is not None and not 0 < iterations <= MAX_PBKDF2_ITERATIONS:
        raise SeedFileError(
            f"the file's key derivation asks for {iterations} PBKDF2 iterations; from 1 to {MAX_PBKDF2_ITERATIONS:,} "
            "are taken"
        )
    key_length = derivation.pbkdf2_key_length
    if key_length is not None and key_length not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise SeedFileError(
            f"the file's key derivation gives a key of {key_length} bytes; its encryption ({encryption.algorithm}) "
            f"takes a key of {expected} bytes"
        )
    try:
        encryption.derive_key(password)
    except pskc.exceptions.KeyDerivationError as exc:  # what the file lacks or names, never the password
        raise SeedFileError(f"the file's key derivation can't be used ({exc})") from None


def _decryption_problem(container: t.Any, key: bytes | None, password: str | None) -> str | None:
    """Why the file's encrypted values can't be read with ``key`` or ``password``, when that can be told before
    decrypting."""
    encryption = container.encryption
    derived = bool(encryption.derivation.algorithm)
    if key is None and password is None:
        if derived:
            return (
                "the file's secrets are encrypted with a key derived from a password (PBKDF2): give the password as "
                "password (or the derived key, in hex, as preshared_key)"
            )
        return "the file's secrets are encrypted: give the pre-shared key (hex) the vendor sent as preshared_key"
    if key is None:
        if not derived:
            return (
                "the file's secrets are encrypted with a pre-shared key, not a password: give the key (hex) the vendor "
                "sent as preshared_key"
            )
        return None
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


def parse_pskc(
    data: str | bytes, preshared_key: str | None = None, password: str | None = None
) -> list[dict[str, t.Any]]:
    """The token entries of a PSKC file, in file order. ``preshared_key``: the hex key that decrypts its secrets;
    ``password``: the password its key is derived from (PBKDF2). At most one of them.

    Raises SeedFileError naming the line or the key package (and serial number) of the first problem,
    MissingLibraryError without python-pskc; no message holds a secret, the key or the password."""
    require_pskc()
    if preshared_key and password:
        raise SeedFileError("give preshared_key or password, not both: a file's key is either shared or derived")
    key = _key_bytes(preshared_key) if preshared_key else None
    password = password or None
    vetted = vetted_xml(data)
    encrypted = _check_values(vetted.root, vetted.lines)
    try:
        # python-pskc reads only the vetted document: UTF-8, no DTD, no entity.
        container = pskc.PSKC(io.BytesIO(vetted.xml))
    except pskc.exceptions.PSKCError as exc:  # python-pskc's own messages: what is missing, never a value
        raise SeedFileError(f"not a PSKC file that can be read: {exc}") from None
    except (ValueError, TypeError, SyntaxError, OverflowError):  # a malformed value; its message may quote it
        raise SeedFileError(
            "not a PSKC file that can be read: a value in it is malformed (not base64, a number or a date as PSKC "
            "writes them)"
        ) from None
    if key is not None:
        container.encryption.key = key
    elif password is not None and encrypted and container.encryption.derivation.algorithm:
        _derive_key(container, password)
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
                reason = _decryption_problem(container, key, password)
                if reason is None and key is None:  # a key derived from the password, yet it does not decrypt
                    reason = f"the password does not decrypt it ({exc}); check password"
                elif reason is None:  # the key has the right length, yet does not decrypt (or authenticate) the value
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
