# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""What an inventory read asks for, pure: the documented ``eq`` listings that answer it, and the local check of
what comes back. No I/O here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .._domain.tokens import TokenView
from .._graph.odata import odata_string

# "When using the in operator, requests are limited to 15 expressions in a filter clause" (Graph's filter docs for
# directory objects, which document `in` for users); every value of an in list is one expression.
MAX_FILTER_EXPRESSIONS = 15
T = t.TypeVar("T")


def filter_in(prop: str, values: t.Sequence[str]) -> str:
    """``prop eq 'v'`` for one value, ``prop in ('v1', ...)`` for several (at most MAX_FILTER_EXPRESSIONS)."""
    if len(values) == 1:
        return f"{prop} eq {odata_string(values[0])}"
    return f"{prop} in ({', '.join(odata_string(v) for v in values)})"


def unique(values: t.Iterable[str]) -> list[str]:
    """Values without case-insensitive duplicates, in their first order."""
    seen: set[str] = set()
    out = []
    for value in values:
        if value.lower() not in seen:
            seen.add(value.lower())
            out.append(value)
    return out


class Lookup(t.NamedTuple):
    """One ``eq`` listing of the inventory: the TokenView field it compares, the value, the ``$filter``."""

    field: str
    value: str
    filter: str

    def answers(self, token: TokenView) -> bool:
        """Could this listing, filtered as asked, have answered ``token``? (``status eq 'available'`` answers a token
        with a holder that TokenView.from_graph took as ``assigned``.)"""
        if self.field == "status" and self.value.casefold() == "available" and token.assigned_to_id:
            return token.status == "assigned"
        return (getattr(token, self.field) or "").casefold() == self.value.casefold()


@dataclass(frozen=True)
class TokenQuery:
    """What an inventory read asks for. Graph documents ``$filter`` on the inventory with one ``eq`` comparison only,
    and may ignore an unsupported filter silently, so a query becomes ``eq`` listings of one property and every
    condition is checked again, locally, on what comes back (:meth:`matches`): a filter Graph ignored can never widen
    a result. Strings compare without regard to case, as the directory does."""

    serial_numbers: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    manufacturer: str | None = None
    model: str | None = None
    assigned_to_id: str | None = None

    def matches(self, token: TokenView) -> bool:
        def same(wanted: str | None, actual: str | None) -> bool:
            return wanted is None or (actual or "").casefold() == wanted.casefold()

        return (
            (not self.serial_numbers or token.serial_number.casefold() in {s.casefold() for s in self.serial_numbers})
            and (not self.statuses or token.status in self.statuses)
            and same(self.manufacturer, token.manufacturer)
            and same(self.model, token.model)
            and same(self.assigned_to_id, token.assigned_to_id)
        )

    def lookups(self) -> list[Lookup]:
        """One ``eq`` listing per value of the most selective condition: serial numbers (one token each), then the
        holder (five at most), then statuses, model, manufacturer. Empty: list everything."""
        for field, prop, values in (
            ("serial_number", "serialNumber", unique(self.serial_numbers)),
            ("assigned_to_id", "assignedTo/id", [self.assigned_to_id]),
            ("status", "status", graph_statuses(self.statuses)),
            ("model", "model", [self.model]),
            ("manufacturer", "manufacturer", [self.manufacturer]),
        ):
            given = [value for value in values if value]
            if given:
                return [Lookup(field, value, f"{prop} eq {odata_string(value)}") for value in given]
        return []


def graph_statuses(statuses: t.Sequence[str]) -> list[str]:
    """The statuses to ask Graph for: a token we call ``assigned`` may be ``available`` in Graph with a holder (see
    TokenView.from_graph), so ``assigned`` asks for both; the answers are re-checked locally."""
    wanted = unique(statuses)
    return wanted + ["available"] if "assigned" in wanted and "available" not in wanted else wanted


def chunks(values: t.Sequence[T], size: int) -> list[list[T]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


def users_filter(user_ids: t.Sequence[str]) -> str:
    """``$filter`` for up to MAX_FILTER_EXPRESSIONS user ids."""
    return filter_in("id", list(user_ids))
