# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Entra admin center's hardware token CSV (_files/entra_csv.py): the rows as token entries, and every refusal
naming its line and column without the secret."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import (
    HEADER,
    SeedFileError,
    parse_entra_csv,
)

SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # b"12345678901234567890", 160 bits
OTHER_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def entry(serial="1000001", user="amy@contoso.com", secret=SECRET, **more):
    return {"user": user, "serial_number": serial, "secret_key": secret, "secret_format": "base32", **more}


def refused(text, *, secret=SECRET):
    """The message of the refusal of ``text``, checked to hold no form of the secret."""
    with pytest.raises(SeedFileError) as info:
        parse_entra_csv(text)
    message = str(info.value)
    for form in (secret, secret.lower(), secret.replace(" ", ""), secret[:16]):
        if form:
            assert form not in message
    return message


# ---------------------------------------------------------------------------------------------------- accepted
def test_the_upload_format_gives_entries_in_file_order():
    text = (
        f"{HEADER}\n"
        f"amy@contoso.com,1000001,{SECRET},60,Contoso,Hardware Key\n"
        f"lee@contoso.com,1000002,{OTHER_SECRET},30,Contoso,Hardware Key\n"
    )
    assert parse_entra_csv(text) == [
        entry(time_interval=60, manufacturer="Contoso", model="Hardware Key"),
        entry(
            "1000002", "lee@contoso.com", OTHER_SECRET, time_interval=30, manufacturer="Contoso", model="Hardware Key"
        ),
    ]


def test_empty_optional_cells_leave_their_keys_out():
    text = f"{HEADER}\namy@contoso.com,1000001,{SECRET},,,\n"
    assert parse_entra_csv(text) == [entry()]


def test_optional_columns_may_be_missing_and_columns_come_in_any_order():
    text = f"Secret Key,UPN,serial number\n{SECRET},amy@contoso.com,1000001\n"
    assert parse_entra_csv(text) == [entry()]


def test_header_case_and_spaces_are_ignored():
    header = " UPN , Serial  Number ,SECRET KEY,Time Interval,Manufacturer,MODEL"
    text = f"{header}\namy@contoso.com,1000001,{SECRET},30,C,M\n"
    assert parse_entra_csv(text) == [entry(time_interval=30, manufacturer="C", model="M")]


def test_a_utf8_bom_is_skipped_in_text_and_in_bytes():
    text = f"\ufeff{HEADER}\namy@contoso.com,1000001,{SECRET},,,\n"
    assert parse_entra_csv(text) == [entry()]
    assert parse_entra_csv(text.encode("utf-8")) == [entry()]


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_line_ends(newline):
    text = newline.join(
        [HEADER, f"amy@contoso.com,1000001,{SECRET},,,", "", f"lee@contoso.com,1000002,{SECRET[::-1]},,,"]
    )
    entries = parse_entra_csv(text + newline)
    assert [e["serial_number"] for e in entries] == ["1000001", "1000002"]


def test_line_numbers_count_rows_as_a_spreadsheet_shows_them():
    text = f"{HEADER}\r\n\r\namy@contoso.com,1000001,{SECRET},,,\r\nlee@contoso.com,1000002,x1,,,\r\n"
    assert refused(text, secret="x1").startswith("line 4, column 'secret key'")
    # A quoted cell holding a line break is in one row (and refused: no token field holds one).
    text = f'{HEADER}\r\n\r\namy@contoso.com,1000001,{SECRET},,"Contoso\r\nEurope",\r\n'
    assert refused(text) == (
        "line 3, column 'manufacturer': holds control or bidirectional formatting characters (U+000A, U+000D)"
    )


def test_quoted_cells():
    text = f'{HEADER}\n"amy@contoso.com","1000001","{SECRET}","60","Contoso, Ltd.","Key ""Pro"""\n'
    assert parse_entra_csv(text) == [entry(time_interval=60, manufacturer="Contoso, Ltd.", model='Key "Pro"')]


def test_blank_lines_and_trailing_empty_columns_are_skipped():
    text = f"\n{HEADER},,\n\namy@contoso.com,1000001,{SECRET},,,,,\n,,,,,,,\n\n"
    assert parse_entra_csv(text) == [entry()]


def test_surrounding_spaces_are_trimmed_and_the_secret_normalised():
    spaced = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq=="
    text = f"{HEADER}\n  amy@contoso.com , 1000001 ,{spaced}, 30 ,Contoso ,Key\n"
    assert parse_entra_csv(text) == [entry(time_interval=30, manufacturer="Contoso", model="Key")]


def test_a_header_alone_gives_no_entries():
    assert parse_entra_csv(HEADER + "\n") == []


def test_cells_may_be_short_of_the_optional_columns():
    assert parse_entra_csv(f"{HEADER}\namy@contoso.com,1000001,{SECRET}\n") == [entry()]


# ---------------------------------------------------------------------------------------------------- refused
def test_an_empty_file_is_refused():
    assert "the file is empty" in refused("")
    assert "the file is empty" in refused("\ufeff\r\n\r\n")


def test_a_file_without_the_header_is_refused_without_repeating_its_first_line():
    message = refused(f"amy@contoso.com,1000001,{SECRET},30,Contoso,Key\n")
    assert message.startswith("line 1 is not the header of Entra's hardware token CSV")
    assert "'upn', 'serial number', 'secret key'" in message
    assert "amy@contoso.com" not in message


def test_a_semicolon_separated_file_gets_a_hint():
    message = refused("upn;serial number;secret key\n")
    assert "separated by semicolons" in message


def test_unknown_columns_are_named_by_their_number_never_their_text():
    message = refused(f"{HEADER},Notes,Owner\namy@contoso.com,1000001,{SECRET},,,,x,y\n")
    assert message == (
        f"line 1: column(s) 7, 8 (counted from 1) have a name Entra's hardware token CSV does not have; its columns "
        f"are {HEADER}"
    )
    # A header cell may be a seed (pasted into the wrong row): it is not repeated.
    message = refused(f"upn,serial number,secret key,{SECRET}\n")
    assert message.startswith("line 1: column(s) 4 (counted from 1) have a name")


def test_a_column_given_twice_is_refused():
    assert refused(f"{HEADER},UPN\n") == "line 1: the column 'upn' appears twice"


def test_a_value_in_a_column_without_a_name_is_refused():
    message = refused(f"{HEADER},\namy@contoso.com,1000001,{SECRET},,,,{SECRET}\n")
    assert message == "line 2: column 7 holds a value but has no name in the header"


@pytest.mark.parametrize(
    "row, column",
    [
        (f",1000001,{SECRET},,,", "upn"),
        (f"amy@contoso.com,,{SECRET},,,", "serial number"),
        ("amy@contoso.com,1000001,  ,,,", "secret key"),
        ("amy@contoso.com,1000001", "secret key"),
    ],
)
def test_required_values(row, column):
    message = refused(f"{HEADER}\n{row}\n")
    assert message.startswith("line 2")
    assert message.endswith(f"column {column!r}: a value is required")


@pytest.mark.parametrize("interval", ["45", "0", "30s", "thirty", "3.0e1", "١٢"])
def test_time_intervals_other_than_30_or_60_are_refused(interval):
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{SECRET},{interval},,\n")
    assert message == "line 2, column 'time interval': the time interval is not one of 30, 60 (seconds)"


@pytest.mark.parametrize("serial", ["1.23457E+11", "1,23457E+11", "2E+10", "1.5e-3"])
def test_a_serial_number_in_scientific_notation_is_refused(serial):
    message = refused(f'{HEADER}\namy@contoso.com,"{serial}",{SECRET},,,\n')
    assert message.startswith(
        "line 2, column 'serial number': the serial number is a number Excel converted to scientific notation"
    )
    assert serial not in message
    assert "format the column as text" in message


@pytest.mark.parametrize("serial", ["1E5", "E+10", "T2E+10", "12345678901"])
def test_serial_numbers_that_merely_hold_an_e_are_taken(serial):
    assert parse_entra_csv(f"{HEADER}\namy@contoso.com,{serial},{SECRET},,,\n")[0]["serial_number"] == serial


@pytest.mark.parametrize(
    "secret",
    [
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",  # 1 is not base32
        "GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJ!",
        "3132333435363738393031323334353637383930",  # hex is not the upload format
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ=A",
    ],
)
def test_a_secret_that_is_not_base32_is_refused_without_repeating_it(secret):
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{secret},,,\n", secret=secret)
    assert message.startswith("line 2, column 'secret key': the secret key is not usable")
    assert "not valid base32" in message


def test_a_secret_of_an_impossible_length_is_refused():
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{SECRET}A,,,\n", secret=SECRET + "A")
    assert "impossible base32 length" in message


@pytest.mark.parametrize("secret", ["GEZDGNBVGY3TQOJQ", "GEZDGNBVGY3TQOJQGEZDG"])  # 80 and 104 bits
def test_a_secret_too_short_to_compute_codes_is_refused(secret):
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{secret},,,\n", secret=secret)
    assert message == (
        "line 2, column 'secret key': the secret key is shorter than the 112 bits "
        "(23 base32 characters) needed to compute the token's activation codes"
    )


def test_the_shortest_secret_codes_can_be_computed_from_is_taken():
    secret = "GEZDGNBVGY3TQOJQGEZDGNB"  # 23 characters, 112 bits
    assert parse_entra_csv(f"{HEADER}\namy@contoso.com,1000001,{secret},,,\n")[0]["secret_key"] == secret


def test_a_secret_longer_than_entra_takes_is_refused():
    secret = "A" * 136
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{secret},,,\n", secret=secret)
    assert "longer than the 128 base32 characters" in message


def test_duplicate_serial_numbers_name_both_lines():
    text = (
        f"{HEADER}\namy@contoso.com,T-1,{SECRET},,,\n\n"
        f"lee@contoso.com,T-2,{SECRET},,,\nben@contoso.com,t-1,{SECRET},,,\n"
    )
    assert refused(text) == (
        "lines 2 and 5, column 'serial number': the same serial number appears twice (once in other letter case, "
        "which tells no token apart)"
    )
    text = f"{HEADER}\namy@contoso.com,T-1,{SECRET},,,\nlee@contoso.com,T-1,{SECRET},,,\n"
    assert refused(text) == "lines 2 and 3, column 'serial number': the same serial number appears twice"


@pytest.mark.parametrize(
    "row, column",
    [
        (f'=HYPERLINK("x"),1000001,{SECRET},,,', "upn"),
        (f"amy@contoso.com,+1000001,{SECRET},,,", "serial number"),
        (f"amy@contoso.com,1000001,{SECRET},-30,,", "time interval"),
        (f"amy@contoso.com,1000001,{SECRET},,@SUM(A1),", "manufacturer"),
        (f'amy@contoso.com,1000001,{SECRET},,,"  =1+2"', "model"),
    ],
)
def test_cells_that_look_like_formulas_are_refused(row, column):
    message = refused(f"{HEADER}\n{row}\n")
    assert message.startswith("line 2")
    assert f"column {column!r}: the cell starts with" in message
    assert "like a spreadsheet formula" in message


def test_a_secret_cell_that_looks_like_a_formula_is_refused_without_repeating_it():
    secret = "=" + SECRET
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{secret},,,\n", secret=SECRET)
    assert message.startswith("line 2, column 'secret key': the cell starts with '='")


def test_text_fields_are_checked_like_the_module_checks_them():
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{SECRET},,{'x' * 129},\n")
    assert message == ("line 2, column 'manufacturer': is 129 characters long; at most 128 are allowed")
    message = refused(f"{HEADER}\namy@contoso.com,T\u202e1,{SECRET},,,\n")
    assert message.startswith("line 2, column 'serial number': holds control or bidirectional formatting characters")


# A row short of a cell: its values shift left (or right, with one too many), and a seed lands in another column.
# Whatever the refusal, it names the line and the column and quotes no cell (issue 18).
FULL = "upn,serial number,secret key,time interval,manufacturer,model"


@pytest.mark.parametrize(
    "text, start",
    [
        # The UPN is missing: the seed is in the serial number column, the secret key is empty.
        (f"upn,serial number,secret key\n1000001,{SECRET}\n", "line 2, column 'secret key': a value is required"),
        # The serial number is missing: the seed in its column, the interval in the secret key's.
        (f"{FULL}\namy@contoso.com,{SECRET},30,Contoso,Key\n", "line 2, column 'secret key': the secret key is not"),
        # The seed is in the serial number column, and the row is refused for another cell.
        (f"{FULL}\namy@contoso.com,{SECRET},{OTHER_SECRET},45,,\n", "line 2, column 'time interval': "),
        (f"{FULL}\namy@contoso.com,{SECRET},{OTHER_SECRET},,=1,\n", "line 2, column 'manufacturer': "),
        (f"{FULL}\namy@contoso.com,{SECRET},{OTHER_SECRET},,,{'x' * 129}\n", "line 2, column 'model': "),
        (f"{FULL}\namy@contoso.com,{SECRET},{OTHER_SECRET[:16]},,,\n", "line 2, column 'secret key': "),
        # Two shifted rows with the same seed in the serial number column.
        (
            f"{FULL}\namy@contoso.com,{SECRET},{OTHER_SECRET},,,\nlee@contoso.com,{SECRET.lower()},{OTHER_SECRET},,,\n",
            "lines 2 and 3, column 'serial number': the same serial number appears twice",
        ),
        # A cell too many: the seed in the time interval column.
        (f"{FULL}\namy@contoso.com,1000001,{OTHER_SECRET},{SECRET},,\n", "line 2, column 'time interval': "),
        # The seed in the UPN column, refused there.
        (f"{FULL}\n{SECRET}\u200f\u202e,1000001,{OTHER_SECRET},,,\n", "line 2, column 'upn': holds control"),
    ],
)
def test_a_seed_shifted_into_another_column_is_never_quoted(text, start):
    message = refused(text)
    assert message.startswith(start)
    assert SECRET not in message.upper()


def test_the_serial_number_of_a_row_is_not_quoted_in_its_errors():
    message = refused(f"{HEADER}\namy@contoso.com,1000001,{SECRET},45,,\n")
    assert message == "line 2, column 'time interval': the time interval is not one of 30, 60 (seconds)"
    assert "1000001" not in message


def test_malformed_quoting_is_refused_naming_the_line():
    message = refused(f'{HEADER}\namy@contoso.com,1000001,{SECRET},,,\nlee@contoso.com,"1000"2,{SECRET},,,\n')
    assert message.startswith("line 3: not valid CSV (")


def test_bytes_that_are_not_utf8_are_refused():
    head = f"{HEADER}\namy@contoso.com,1000001,{SECRET},,Caf"
    assert (
        refused(f"{head}\xe9,\n".encode("latin-1")) == f"the file is not UTF-8 text (byte {len(head) + 1} is not UTF-8)"
    )


def test_the_error_is_a_value_error():
    assert issubclass(SeedFileError, ValueError)
