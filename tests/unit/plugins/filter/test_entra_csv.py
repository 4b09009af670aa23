# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter tokenops.entra.entra_csv_tokens: the wiring of _files/entra_csv.py into a filter plugin."""

from __future__ import annotations

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tokenops.entra.plugins.filter import entra_csv as plugin
from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import HEADER

SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
CSV = f"\ufeff{HEADER}\r\namy@contoso.com,1000001,{SECRET.lower()},60,Contoso,Hardware Key\r\n"
ENTRIES = [
    {
        "user": "amy@contoso.com",
        "serial_number": "1000001",
        "secret_key": SECRET,
        "secret_format": "base32",
        "time_interval": 60,
        "manufacturer": "Contoso",
        "model": "Hardware Key",
    }
]


def test_the_plugin_provides_the_filter():
    assert plugin.FilterModule().filters() == {"entra_csv_tokens": plugin.entra_csv_tokens}


def test_the_filter_gives_the_entries():
    assert plugin.entra_csv_tokens(CSV) == ENTRIES
    assert plugin.entra_csv_tokens(CSV.encode("utf-8")) == ENTRIES


def test_the_filter_in_a_template():
    environment = jinja2.Environment(autoescape=False)
    environment.filters.update(plugin.FilterModule().filters())
    template = environment.from_string("{{ (text | entra_csv_tokens)[0].serial_number }}")
    assert template.render(text=CSV) == "1000001"


def test_refusals_are_filter_errors_never_holding_the_secret():
    bad = SECRET[:-1] + "1"
    with pytest.raises(AnsibleFilterError) as info:
        plugin.entra_csv_tokens(f"{HEADER}\namy@contoso.com,1000001,{bad},,,\n")
    message = info.value.message
    assert message.startswith(
        "tokenops.entra.entra_csv_tokens: line 2, column 'secret key': "
        "the secret key is not usable: secret_key is not valid base32"
    )
    assert bad not in message
    assert bad.lower() not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_a_seed_shifted_into_the_serial_number_column_is_not_in_the_filter_error():
    # The row lacks its UPN: the serial number is read as the UPN, the seed as the serial number.
    with pytest.raises(AnsibleFilterError) as info:
        plugin.entra_csv_tokens(f"upn,serial number,secret key\r\n1000001,{SECRET}\r\n")
    message = info.value.message
    assert message == "tokenops.entra.entra_csv_tokens: line 2, column 'secret key': a value is required"
    assert SECRET not in message.upper()


@pytest.mark.parametrize("value", [None, 42, ["upn"], {"upn": "x"}])
def test_input_that_is_not_text_is_refused(value):
    with pytest.raises(
        AnsibleFilterError, match="^tokenops.entra.entra_csv_tokens: the input must be the text of a CSV file, not a "
    ):
        plugin.entra_csv_tokens(value)
