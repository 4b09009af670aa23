# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import (
    is_domain_name,
    is_guid,
    shown,
    text_problem,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("9ecb43ff-60ba-4598-9c12-6fc71a8f79ee", True),
        ("9ECB43FF-60BA-4598-9C12-6FC71A8F79EE", True),
        ("9ecb43ff-60ba-4598-9c12-6fc71a8f79ee\n", False),
        ("9ecb43ff60ba45989c126fc71a8f79ee", False),
        ("{9ecb43ff-60ba-4598-9c12-6fc71a8f79ee}", False),
        ("", False),
    ],
)
def test_is_guid(value, expected):
    assert is_guid(value) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("contoso.com", True),
        ("contoso.onmicrosoft.com", True),
        ("a-b.c-d.example", True),
        ("xn--bcher-kva.example", True),
        ("contoso", False),
        ("contoso.com\n", False),
        ("contoso.com/x", False),
        ("-contoso.com", False),
        ("contoso-.com", False),
        ("contoso..com", False),
        ("contoso.c", False),
        ("10.0.0.1", False),
        ("a" * 64 + ".com", False),
    ],
)
def test_is_domain_name(value, expected):
    assert is_domain_name(value) is expected


def test_shown_escapes_and_cuts():
    assert shown("TOTP\n1\x1b") == "'TOTP\\n1\\x1b'"
    assert shown("x" * 100) == repr("x" * 60 + "...")


@pytest.mark.parametrize(
    "value, problem",
    [
        ("TOTP123456", None),
        ("GALT 1142 0104", None),
        ("Amy's token \u2013 caf\u00e9 \U0001f511", None),
        ("TOTP\n123456", "holds control or bidirectional formatting characters (U+000A)"),
        ("TOTP\x07", "holds control or bidirectional formatting characters (U+0007)"),
        ("\x1b[31mTOTP", "holds control or bidirectional formatting characters (U+001B)"),
        ("TOTP\t1\r", "holds control or bidirectional formatting characters (U+0009, U+000D)"),
        ("TOTP\x7f", "holds control or bidirectional formatting characters (U+007F)"),
        ("TOTP\x85", "holds control or bidirectional formatting characters (U+0085)"),
        ("TOTP\u202e654321", "holds control or bidirectional formatting characters (U+202E)"),
        ("TOTP\u2028", "holds control or bidirectional formatting characters (U+2028)"),
    ],
)
def test_text_problem(value, problem):
    assert text_problem(value, 128) == problem
