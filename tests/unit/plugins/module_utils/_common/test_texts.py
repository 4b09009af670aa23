# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.tokenops.entra.plugins.module_utils._common.texts import texts_in


class Shown:
    def __str__(self) -> str:
        return "shown"


def test_texts_in_walks_every_kind_of_value():
    value = {"k": ["a", b"b\xff", 7, 2.5, None, True, ("c", {"d"}), {"inner": ""}], "e": Shown()}
    assert sorted(texts_in(value)) == sorted(["a", "b\udcff", "7", "2.5", "c", "d", "shown"])
    assert sorted(texts_in(value, keys=True)) == sorted(
        ["a", "b\udcff", "7", "2.5", "c", "d", "shown", "k", "inner", "e"]
    )
