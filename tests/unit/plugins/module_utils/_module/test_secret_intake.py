# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one intake of secrets and codes that the writing modules share."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._domain import codes
from ansible_collections.tokenops.entra.plugins.module_utils._module.secret_intake import take_code, take_secret
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import FakeModule
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import SECRET

SHORT = "JBSWY3DPEHPK3PXP"  # 80 bits: a valid secret, too short to compute codes from


def module() -> FakeModule:
    return FakeModule({})


def test_a_secret_is_normalised_and_hidden_in_that_form():
    given = " ".join(SECRET.lower()[i : i + 4] for i in range(0, len(SECRET), 4))
    taken = module()
    assert take_secret(taken, given, "base32", subject="token T-1") == SECRET
    assert taken.no_log_values == {SECRET}


def test_nothing_given_nothing_taken():
    taken = module()
    assert take_secret(taken, None, "base32", subject="token T-1", computes_codes=True) is None
    assert take_code(taken, None, subject="token T-1") is None
    assert taken.no_log_values == set()


def test_a_code_is_padded_and_hidden():
    taken = module()
    assert take_code(taken, 12345, subject="token T-1") == "012345"
    assert taken.no_log_values == {"012345"}


@pytest.mark.parametrize(
    "take, problem",
    [
        (
            lambda m: take_secret(m, SECRET + "1", "base32", subject="tokens[3] (T-1)"),
            "secret_key is not valid base32 (only A-Z and 2-7); it contains 1 other character(s)",
        ),
        (
            lambda m: take_secret(m, SHORT, "base32", subject="tokens[3] (T-1)", computes_codes=True),
            "secret_key decodes to 80 bits; computing codes needs at least 112 (pyotp's minimum). Give "
            "verification_code, read from the token, instead",
        ),
        (lambda m: take_code(m, "12a456", subject="tokens[3] (T-1)"), "verification_code must be a string of 6 digits"),
    ],
)
def test_bad_input_names_the_token_never_the_value(take, problem):
    with pytest.raises(InputError) as info:
        take(module())
    assert info.value.message == f"tokens[3] (T-1): {problem}. Nothing was changed."
    assert SECRET not in info.value.message and SHORT not in info.value.message and "12a456" not in info.value.message


def test_a_short_secret_is_fine_when_no_code_is_computed_from_it():
    assert take_secret(module(), SHORT, "base32", subject="token T-1") == SHORT


def test_computing_codes_needs_pyotp(monkeypatch):
    monkeypatch.setattr(codes, "pyotp", None)
    with pytest.raises(InputError) as info:
        take_secret(module(), SECRET, "base32", subject="token T-1", computes_codes=True)
    assert "pyotp" in info.value.message
    assert take_secret(module(), SECRET, "base32", subject="token T-1") == SECRET
