# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The declared tokens joined with a seed file (_files/seeded_tokens.py); its filter is tested in
tests/unit/plugins/filter."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._files.seeded_tokens import (
    SeededTokensError,
    seeded_tokens,
)

SEED_A = {
    "serial_number": "A-1",
    "secret_key": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "secret_format": "base32",
    "time_interval": 60,
    "hash_function": "hmacsha256",
    "manufacturer": "Vendor",
    "model": "K1",
}
SEED_B = {**SEED_A, "serial_number": "B-2", "time_interval": 30, "hash_function": "hmacsha1"}


def test_an_entry_takes_the_seed_fields_it_does_not_give():
    [entry, spare] = seeded_tokens(
        [{"serial_number": "a-1", "user": "amy@contoso.com", "model": "K1-mini"}], [SEED_A, SEED_B]
    )
    assert entry == {**SEED_A, "serial_number": "a-1", "user": "amy@contoso.com", "model": "K1-mini"}
    assert spare == {**SEED_B, "state": "available"}  # named by no entry: imported, held by nobody


def test_an_entry_without_a_secret_takes_the_seeds_secret_with_its_format():
    [entry] = seeded_tokens([{"serial_number": "A-1", "secret_format": "hex", "user": "amy@contoso.com"}], [SEED_A])
    assert (entry["secret_key"], entry["secret_format"]) == (SEED_A["secret_key"], "base32")


def test_an_entry_with_its_own_secret_keeps_it():
    [entry] = seeded_tokens([{"serial_number": "A-1", "secret_key": "3132", "secret_format": "hex"}], [SEED_A])
    assert (entry["secret_key"], entry["secret_format"], entry["model"]) == ("3132", "hex", "K1")


def test_values_not_given_are_none_and_take_the_seed():
    [entry] = seeded_tokens(
        [{"serial_number": "A-1", "manufacturer": None, "state": "assigned", "user": "u"}], [SEED_A]
    )
    assert entry["manufacturer"] == "Vendor" and entry["state"] == "assigned"


def test_without_seeds_the_entries_are_unchanged_and_unnamed_seeds_may_be_absent():
    entries = [{"serial_number": "X", "user": "u", "secret_key": "S" * 32}]
    assert seeded_tokens(entries, []) == entries
    assert seeded_tokens([], [SEED_A], "absent") == [{**SEED_A, "state": "absent"}]


@pytest.mark.parametrize(
    "tokens, seeds, unnamed, message",
    [
        ([], [SEED_A, {**SEED_B, "serial_number": "a-1"}], "available", "the seed file holds serial number a-1 twice"),
        ([], [{"secret_key": "JBSWY3DPEHPK3PXP"}], "available", "seed 1 has no serial number"),
        ([{"user": "u"}], [], "available", "tokens[0] has no serial_number"),
        ([], [], "deleted", "unnamed_state must be one of available, absent, not 'deleted'"),
    ],
)
def test_what_can_not_be_joined_is_refused_without_a_secret(tokens, seeds, unnamed, message):
    with pytest.raises(SeededTokensError) as info:
        seeded_tokens(tokens, seeds, unnamed)
    assert str(info.value) == message
    assert "JBSWY3DPEHPK3PXP" not in str(info.value)
