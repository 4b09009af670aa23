# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What an inventory read asks for (_execution/token_query.py), pure: the documented eq listings of a query, the
local check of what comes back, and the users' filters."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import (
    Lookup,
    TokenQuery,
    chunks,
    unique,
    users_filter,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, SERIAL, inv


# ---------------------------------------------------------------------------------------------------- queries
def test_a_query_without_conditions_lists_everything():
    assert TokenQuery().lookups() == []
    assert TokenQuery(serial_numbers=(), statuses=()).lookups() == []


@pytest.mark.parametrize(
    "query, expected",
    [
        (TokenQuery(statuses=("available",)), [("status", "available", "status eq 'available'")]),
        (
            TokenQuery(statuses=("available", "assigned", "Available")),
            [("status", "available", "status eq 'available'"), ("status", "assigned", "status eq 'assigned'")],
        ),
        (TokenQuery(manufacturer="Contoso"), [("manufacturer", "Contoso", "manufacturer eq 'Contoso'")]),
        (TokenQuery(model="OATH-TOTP"), [("model", "OATH-TOTP", "model eq 'OATH-TOTP'")]),
        (TokenQuery(assigned_to_id=AMY.id), [("assigned_to_id", AMY.id, f"assignedTo/id eq '{AMY.id}'")]),
        # the most selective condition only: serial numbers, then the holder, statuses, model, manufacturer
        (
            TokenQuery(statuses=("assigned",), manufacturer="Contoso", model="OATH-TOTP", assigned_to_id=AMY.id),
            [("assigned_to_id", AMY.id, f"assignedTo/id eq '{AMY.id}'")],
        ),
        (
            # a token created with assignTo may be "available" in Graph with a holder: ours is "assigned"
            TokenQuery(statuses=("assigned",), manufacturer="Contoso", model="X2"),
            [("status", "assigned", "status eq 'assigned'"), ("status", "available", "status eq 'available'")],
        ),
        (TokenQuery(manufacturer="Contoso", model="X2"), [("model", "X2", "model eq 'X2'")]),
        (
            TokenQuery(serial_numbers=("A1", "B2"), statuses=("available",), model="X2"),
            [("serial_number", "A1", "serialNumber eq 'A1'"), ("serial_number", "B2", "serialNumber eq 'B2'")],
        ),
        (
            TokenQuery(serial_numbers=("abc", "ABC", "def", "Def", "abc")),
            [("serial_number", "abc", "serialNumber eq 'abc'"), ("serial_number", "def", "serialNumber eq 'def'")],
        ),
        (TokenQuery(serial_numbers=("O'Brien",)), [("serial_number", "O'Brien", "serialNumber eq 'O''Brien'")]),
        (
            TokenQuery(serial_numbers=("x' or 1 eq 1 or serialNumber eq 'y",)),
            [
                (
                    "serial_number",
                    "x' or 1 eq 1 or serialNumber eq 'y",
                    "serialNumber eq 'x'' or 1 eq 1 or serialNumber eq ''y'",
                )
            ],
        ),
        (TokenQuery(manufacturer="O'Neil"), [("manufacturer", "O'Neil", "manufacturer eq 'O''Neil'")]),
    ],
)
def test_a_query_becomes_documented_eq_lookups(query, expected):
    lookups = query.lookups()
    assert [tuple(lookup) for lookup in lookups] == expected
    assert all(isinstance(lookup, Lookup) for lookup in lookups)
    assert all(" and " not in lookup.filter and " in (" not in lookup.filter for lookup in lookups)


@pytest.mark.parametrize(
    "query, matches",
    [
        (TokenQuery(), True),
        (TokenQuery(serial_numbers=(SERIAL.lower(), "OTHER")), True),
        (TokenQuery(serial_numbers=("OTHER",)), False),
        (TokenQuery(statuses=("activated", "assigned")), True),
        (TokenQuery(statuses=("available",)), False),
        (TokenQuery(manufacturer="contoso", model="oath-totp"), True),
        (TokenQuery(manufacturer="Fabrikam"), False),
        (TokenQuery(model="X2"), False),
        (TokenQuery(assigned_to_id=AMY.id), True),
        (TokenQuery(assigned_to_id=ADELE.id), False),
        (
            TokenQuery(
                serial_numbers=(SERIAL,), statuses=("activated",), manufacturer="Contoso", assigned_to_id=AMY.id
            ),
            True,
        ),
        (TokenQuery(serial_numbers=(SERIAL,), statuses=("available",)), False),
    ],
)
def test_a_query_is_checked_locally(query, matches):
    assert query.matches(inv("activated", AMY)) is matches


def test_a_lookup_answers_only_its_value():
    lookup = TokenQuery(statuses=("activated",)).lookups()[0]
    assert lookup.answers(inv("activated", AMY))
    assert not lookup.answers(inv("available"))
    holder = TokenQuery(assigned_to_id=AMY.id.upper()).lookups()[0]
    assert holder.answers(inv("activated", AMY)) and not holder.answers(inv("available"))


def test_unique():
    assert unique([]) == []
    assert unique(["b", "A", "a", "B", "c", "b"]) == ["b", "A", "c"]
    assert unique(iter(["x", "X"])) == ["x"]


def test_chunks():
    assert chunks([], 15) == []
    assert chunks(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert chunks(("a", "b"), 2) == [["a", "b"]]
    assert chunks([str(i) for i in range(31)], 15) == [
        [str(i) for i in range(15)],
        [str(i) for i in range(15, 30)],
        ["30"],
    ]


def test_users_filter():
    assert users_filter([AMY.id]) == f"id eq '{AMY.id}'"
    assert users_filter([AMY.id, ADELE.id]) == f"id in ('{AMY.id}', '{ADELE.id}')"
    assert users_filter(["o'x"]) == "id eq 'o''x'"
