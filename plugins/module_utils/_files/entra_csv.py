# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The Entra admin center's hardware token CSV (the upload format), pure: its rows as the ``tokens`` entries of
``hardware_oath_inventory``. Every refusal names the line and the column, and never quotes a cell: when a row is
short of a cell its values shift into the wrong columns, so any cell (a serial number's, a header's) may hold a
seed."""

from __future__ import annotations

import csv
import io
import re
import typing as t

from .._common.validation import text_problem
from .._domain.codes import MIN_SECRET_BITS, check_secret_for_codes, normalize_secret
from .._domain.token_options import TEXT_LIMITS, TIME_INTERVALS

# The header Entra's upload page gives, in its order; the keys of the entries each column fills.
COLUMNS = {
    "upn": "user",
    "serial number": "serial_number",
    "secret key": "secret_key",
    "time interval": "time_interval",
    "manufacturer": "manufacturer",
    "model": "model",
}
REQUIRED = ("upn", "serial number", "secret key")
HEADER = ",".join(COLUMNS)
# Spreadsheets run a cell starting with one of these as a formula (CSV injection), or already did and left a result.
FORMULA_STARTS = ("=", "+", "-", "@")
# How Excel shows a long number in a General column, e.g. 1.23457E+11: digits are lost.
_SCIENTIFIC_RE = re.compile(r"[0-9]+(?:[.,][0-9]+)?E[+-][0-9]+", re.IGNORECASE)
_SPACES_RE = re.compile(r"\s+")
_INTEGER_RE = re.compile(r"[0-9]{1,4}")


class SeedFileError(ValueError):
    """A seed file that can't be turned into token entries. The message names where, and never holds a secret."""


def _column_name(cell: str) -> str:
    return _SPACES_RE.sub(" ", cell.strip()).casefold()


def _header(line: int, cells: list[str]) -> dict[int, str]:
    """Column index -> Entra column name, from the header row; refuses a header that isn't Entra's."""
    names = [_column_name(c) for c in cells]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        # The first line may well be a token's row: its cells (a secret among them) are not repeated.
        hint = " (the file is separated by semicolons, Entra's format by commas)" if ";" in "".join(cells) else ""
        raise SeedFileError(
            f"line {line} is not the header of Entra's hardware token CSV{hint}: it lacks the column(s) "
            f"{', '.join(repr(n) for n in missing)}. Expected: {HEADER}"
        )
    header: dict[int, str] = {}
    unknown: list[str] = []
    for index, name in enumerate(names):
        if not name:
            continue  # an empty header cell: spreadsheets add trailing columns; their cells must stay empty
        if name in header.values():  # one of COLUMNS: the format's name, not the cell's text
            raise SeedFileError(f"line {line}: the column {name!r} appears twice")
        if name in COLUMNS:
            header[index] = name
        else:
            unknown.append(str(index + 1))  # by its number: the cell itself may be a token's value
    if unknown:
        raise SeedFileError(
            f"line {line}: column(s) {', '.join(unknown)} (counted from 1) have a name Entra's hardware token CSV does "
            f"not have; its columns are {HEADER}"
        )
    return header


def _where(line: int, column: str) -> str:
    """Where a cell is: its line and column, never its value nor another cell's (the serial number's included)."""
    return f"line {line}, column {column!r}"


def _cell_problem(column: str, value: str) -> str | None:
    """What is wrong with a cell's text, whatever the column; no cell's text is ever repeated (only which of
    FORMULA_STARTS it starts with)."""
    start = next((s for s in FORMULA_STARTS if value.startswith(s)), None)
    if start:
        return (
            f"the cell starts with {start!r} like a spreadsheet formula; a formula, or what a spreadsheet made of "
            "the value, is not taken (format the column as text and export again)"
        )
    if column in ("secret key", "time interval"):
        return None
    return text_problem(value, TEXT_LIMITS.get(COLUMNS[column]))


def usable_secret(value: str, where: str) -> str:
    """A seed file's secret (base32) as Entra ID takes it, long enough to compute activation codes; a SeedFileError
    naming ``where`` (never the secret) otherwise."""
    try:
        secret = normalize_secret(value, "base32")
    except ValueError as exc:  # its messages never repeat the secret
        raise SeedFileError(f"{where}: the secret key is not usable: {exc}") from None
    try:
        check_secret_for_codes(secret)
    except ValueError:
        raise SeedFileError(
            f"{where}: the secret key is shorter than the {MIN_SECRET_BITS} bits "
            f"({(MIN_SECRET_BITS + 4) // 5} base32 characters) needed to compute the token's activation codes"
        ) from None
    return secret


def _entry(line: int, values: dict[str, str]) -> dict[str, t.Any]:
    serial = values.get("serial number", "")
    for column, value in values.items():
        if value:
            problem = _cell_problem(column, value)
            if problem:
                raise SeedFileError(f"{_where(line, column)}: {problem}")
    for column in REQUIRED:
        if not values.get(column):
            raise SeedFileError(f"{_where(line, column)}: a value is required")
    if _SCIENTIFIC_RE.fullmatch(serial):
        raise SeedFileError(
            f"{_where(line, 'serial number')}: the serial number is a number Excel converted to scientific notation "
            "(digits, E and a power of ten), losing digits; format the column as text (and check for lost leading "
            "zeros), then export the file again"
        )
    entry: dict[str, t.Any] = {
        "user": values["upn"],
        "serial_number": serial,
        "secret_key": usable_secret(values["secret key"], _where(line, "secret key")),
        "secret_format": "base32",
    }
    interval = values.get("time interval")
    if interval:
        if not _INTEGER_RE.fullmatch(interval) or int(interval) not in TIME_INTERVALS:
            raise SeedFileError(
                f"{_where(line, 'time interval')}: the time interval is not one of "
                f"{', '.join(str(i) for i in TIME_INTERVALS)} (seconds)"
            )
        entry["time_interval"] = int(interval)
    for column in ("manufacturer", "model"):
        if values.get(column):
            entry[column] = values[column]
    return entry


def _text(data: str | bytes) -> str:
    if isinstance(data, (bytes, bytearray)):
        try:
            return bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SeedFileError(f"the file is not UTF-8 text (byte {exc.start + 1} is not UTF-8)") from None
    return data[1:] if data.startswith("\ufeff") else data


def parse_entra_csv(data: str | bytes) -> list[dict[str, t.Any]]:
    """The token entries of an Entra hardware token CSV, in file order. Line numbers in messages are 1-based rows,
    as a spreadsheet shows them (a quoted cell holding a line break stays in its row).

    Raises SeedFileError naming the line and column of the first problem; no message holds a secret."""
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    header: dict[int, str] | None = None
    entries: list[dict[str, t.Any]] = []
    lines: dict[str, tuple[int, str]] = {}  # casefolded serial number -> (line, serial number)
    line = 0
    try:
        for line, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue  # a blank line, or a row of empty cells
            if header is None:  # the first row that isn't blank
                header = _header(line, row)
                continue
            extra = [i + 1 for i, cell in enumerate(row) if cell.strip() and i not in header]
            if extra:
                raise SeedFileError(f"line {line}: column {extra[0]} holds a value but has no name in the header")
            values = {name: row[index].strip() if index < len(row) else "" for index, name in header.items()}
            entry = _entry(line, values)
            key = entry["serial_number"].casefold()
            if key in lines:
                first, serial = lines[key]
                raise SeedFileError(
                    f"lines {first} and {line}, column 'serial number': the same serial number appears twice"
                    + (
                        ""
                        if serial == entry["serial_number"]
                        else " (once in other letter case, which tells no token apart)"
                    )
                )
            lines[key] = (line, entry["serial_number"])
            entries.append(entry)
    except csv.Error as exc:  # malformed quoting: its message names the problem, not the text
        raise SeedFileError(f"line {line + 1}: not valid CSV ({exc})") from None
    if header is None:
        raise SeedFileError(f"the file is empty; its first line must be the header {HEADER}")
    return entries
