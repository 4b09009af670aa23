# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""How user values enter Graph URLs, pure: OData string literals, path segments and batch item URLs."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def odata_string(value: str) -> str:
    """An OData string literal: quoted, with ``'`` doubled, so a value can never change the expression."""
    return "'" + value.replace("'", "''") + "'"


def segment(value: str) -> str:
    """One URL path segment, percent-encoded entirely (``/``, ``?``, ``#`` included): a user value can never
    reach another path."""
    if value in (".", ".."):  # left alone by quote(), then removed as dot segments by the URL parser
        return value.replace(".", "%2E")
    return quote(value, safe="")


def relative_url(path: str, params: dict | None) -> str:
    """A batch item's URL: relative to the version, query percent-encoded."""
    return path + ("?" + urlencode(params, quote_via=quote, safe="$,'()") if params else "")
