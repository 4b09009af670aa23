# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The texts a value holds, at any depth: what masking and scrubbing look through."""

from __future__ import annotations

import typing as t


def texts_in(value: t.Any, *, keys: bool = False) -> t.Iterator[str]:
    """Every non-empty text ``value`` holds, as AnsibleModule's masking sees it: strings (bytes decoded), numbers as
    text, the values of mappings (and, with ``keys``, their keys), the items of lists, tuples and sets; None and
    booleans hold none; any other object, its text form."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                yield item
        elif isinstance(item, bytes):
            if item:
                yield item.decode("utf-8", "surrogateescape")
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, (int, float)):
            yield str(item)
        elif isinstance(item, t.Mapping):
            if keys:
                stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            yield str(item)
