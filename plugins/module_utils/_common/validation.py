# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Checks of user input that run before any request, pure: ids, domain names and the text of token fields."""

from __future__ import annotations

import re
import unicodedata

_GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_DOMAIN_RE = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]", re.IGNORECASE
)
# Characters that change how a value is shown rather than what it is: line and paragraph separators, and the
# bidirectional embeddings, overrides and isolates (a serial number must read as what it is).
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_guid(value: str) -> bool:
    return bool(_GUID_RE.fullmatch(value))


def is_domain_name(value: str) -> bool:
    return bool(_DOMAIN_RE.fullmatch(value))


def shown(value: str, limit: int = 60) -> str:
    """A value quoted for a message: control characters escaped, long values cut."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def text_problem(value: str, max_length: int | None = None) -> str | None:
    """Why ``value`` can't be a token's serial number, name, manufacturer or model; None when it can."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) == "Cc" or c in _INVISIBLE})
    if bad:
        return f"holds control or bidirectional formatting characters ({', '.join(bad[:5])})"
    if max_length is not None and len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} are allowed"
    return None
