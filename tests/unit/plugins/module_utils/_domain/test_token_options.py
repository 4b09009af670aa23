# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options that describe a hardware OATH token (_domain/token_options.py): their argument spec and the limits of
their text."""

from __future__ import annotations

from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import text_problem
from ansible_collections.tokenops.entra.plugins.module_utils._domain.token_options import (
    HASH_FUNCTIONS,
    SECRET_FORMATS,
    TEXT_LIMITS,
    TIME_INTERVALS,
    token_argument_spec,
)


def test_text_limits():
    assert TEXT_LIMITS == {"serial_number": 128, "manufacturer": 128, "model": 128, "display_name": 256}
    assert text_problem("S" * 128, 128) is None
    assert text_problem("S" * 129, 128) == "is 129 characters long; at most 128 are allowed"
    assert text_problem("S" * 5000) is None


def test_token_argument_spec_is_fresh_each_call():
    first = token_argument_spec()
    first["serial_number"]["required"] = False
    assert token_argument_spec()["serial_number"] == {"type": "str", "required": True}


def test_token_argument_spec_keeps_the_secret_out_of_logs_and_has_no_defaults_an_existing_token_would_take():
    spec = token_argument_spec()
    assert list(spec) == [
        "serial_number",
        "secret_key",
        "secret_format",
        "manufacturer",
        "model",
        "time_interval",
        "hash_function",
        "display_name",
    ]
    assert spec["secret_key"] == {"type": "str", "no_log": True}
    # an option with a default would change an existing token that the task did not mean to change
    assert [name for name, option in spec.items() if "default" in option] == ["secret_format"]
    assert spec["secret_format"]["default"] == "base32"


def test_token_argument_spec_choices():
    spec = token_argument_spec()
    assert spec["time_interval"]["choices"] == list(TIME_INTERVALS) == [30, 60]
    assert spec["hash_function"]["choices"] == list(HASH_FUNCTIONS) == ["hmacsha1", "hmacsha256"]
    assert spec["secret_format"]["choices"] == list(SECRET_FORMATS) == ["base32", "hex"]
