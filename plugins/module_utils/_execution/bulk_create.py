# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The creations of an inventory, in bulk, whatever Graph answers: the tokens created, each found once, and each
token sent at most once more only when Graph says it created none of them.

Graph's page documents the request (an OData delta payload) but neither how many tokens one takes nor what a refusal
looks like; its answer may list the tokens (as devices, or as methods wrapping them) or not at all:
- a token an answer does not list was created: it is found by a listing of its serial number, never sent again;
- a refusal that names tokens refuses them alone (HardwareOathApi.create_tokens sends the others again);
- a refusal that names none created nothing: when it may be about the request's size (more tokens than Graph has
  taken in one request so far), each half is sent on its own (and when both are taken whole, the refusal was about
  size: later requests are no larger than a half); otherwise each token is created with the documented single POST,
  and succeeds or fails on its own;
- a lost answer is judged from a listing: only the tokens it does not show are sent again, one by one;
- a token refused as in use (a conflict: another run created it after this one read the inventory) is looked up:
  once a listing shows it, it is that run's (MadeElsewhere), never created twice."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .._common.errors import ModuleFailure, WriteOutcomeUnknown
from .._domain.tokens import TokenView
from .execute import verified_write
from .hardware_oath_api import BulkRefused, HardwareOathApi, TokenExists
from .token_query import TokenQuery, chunks

Log = t.Callable[[str], None]
Creation = t.Tuple[str, t.Dict[str, t.Any]]  # a serial number and the body that creates it (it holds the secret)


@dataclass(frozen=True)
class MadeElsewhere:
    """A token of these creations that another run created meanwhile: Graph refused it as in use (a conflict), and a
    listing shows it. Never created twice."""

    token: TokenView


Created = t.Dict[str, t.Union[TokenView, MadeElsewhere, ModuleFailure]]  # by case-folded serial number


class BulkCreation:
    """The bulk creations of one task, and what they had to fall back on (for its warnings)."""

    def __init__(self, api: HardwareOathApi, log: Log) -> None:
        self.api = api
        self.log = log
        self.largest_taken = 0  # the most tokens Graph has taken in one request
        self.size_limit = 0  # when Graph refused a request for its size: the most tokens sent in one since (0: none)
        self.refused_whole = 0  # requests Graph refused without naming a token
        self.one_by_one = 0  # tokens then created with a request of their own
        self.found_by_listing = 0  # tokens an answer did not list, found by a listing

    def create(self, creations: t.Sequence[Creation]) -> Created:
        """Create these tokens; by case-folded serial number, the token Graph created or why it did not."""
        if len(creations) > self.size_limit > 0:
            result: Created = {}
            for part in chunks(list(creations), self.size_limit):
                result.update(self.create(part))
            return result
        try:
            made, refused = self.api.create_tokens([body for _serial, body in creations])
        except WriteOutcomeUnknown as exc:
            self.log(f"{exc}; listing those serial numbers before anything else")
            return self._judge_lost(creations)
        except BulkRefused:
            return self._after_whole_refusal(creations)
        except ModuleFailure as exc:
            return {serial.casefold(): exc for serial, _body in creations}
        self.largest_taken = max(self.largest_taken, len(creations) - len(refused))
        result = {token.serial_number.casefold(): token for token in made}
        in_use = [creations[number][0] for number, error in refused.items() if isinstance(error, TokenExists)]
        for number, error in refused.items():
            result[creations[number][0].casefold()] = error
        if in_use:
            result.update(self._made_elsewhere(in_use))
        unlisted = [serial for serial, _body in creations if serial.casefold() not in result]
        if unlisted:
            result.update(self._find_unlisted(unlisted))
        return result

    def warnings(self) -> list[tuple[str, str]]:
        """What the creations fell back on, once each, with counts: (kind, message)."""
        found = []
        if self.refused_whole:
            found.append(
                (
                    "bulk-refused-whole",
                    f"Graph refused {self.refused_whole} bulk creation(s) as a whole without naming a token; "
                    f"{self.one_by_one} token(s) were then created with a request each"
                    + (
                        f", and bulk requests were kept to at most {self.size_limit} token(s)."
                        if self.size_limit
                        else "."
                    ),
                )
            )
        if self.found_by_listing:
            found.append(
                (
                    "bulk-unlisted",
                    f"Graph's answers to the bulk creations did not list {self.found_by_listing} of the tokens "
                    "created; they were found by listing their serial numbers.",
                )
            )
        return found

    def _find_unlisted(self, serials: list[str]) -> Created:
        """Tokens a successful answer did not list: created, so found by a listing (never sent again)."""
        try:
            listed = {token.serial_number.casefold(): token for token in self._listed_after_all(serials)}
        except ModuleFailure as exc:
            return {serial.casefold(): exc for serial in serials}
        self.found_by_listing += len(listed)
        return {
            serial.casefold(): listed.get(serial.casefold())
            or ModuleFailure(
                f"token {serial}: Graph answered the bulk creation without listing it, and the inventory does not "
                f"show it after {self.api.wait:g} s: run the task again (it is read before anything is sent)."
            )
            for serial in serials
        }

    def _made_elsewhere(self, serials: list[str]) -> Created:
        """Tokens Graph refused as in use: another run created them after this one read the inventory. Those a
        listing shows (once Graph's reads show them) are MadeElsewhere; the others keep their refusal."""
        try:
            listed = self._listed_after_all(serials)
        except ModuleFailure:
            return {}
        return {token.serial_number.casefold(): MadeElsewhere(token) for token in listed}

    def _after_whole_refusal(self, creations: t.Sequence[Creation]) -> Created:
        self.refused_whole += 1
        if len(creations) > 1 and len(creations) > self.largest_taken:  # may be about its size
            half = (len(creations) + 1) // 2
            refused_before = self.refused_whole
            result = {**self.create(creations[:half]), **self.create(creations[half:])}
            if self.refused_whole == refused_before:  # both halves taken whole: it was about size
                self.size_limit = min(self.size_limit or half, half)
            return result
        result = self._one_by_one(creations)
        self.one_by_one += sum(isinstance(made, TokenView) for made in result.values())
        return result

    def _judge_lost(self, creations: t.Sequence[Creation]) -> Created:
        """A bulk creation whose answer was lost: the tokens the inventory now shows were created; each missing one is
        created on its own (each failing alone)."""
        try:
            listed = {
                token.serial_number.casefold(): token
                for token in self._listed_after_all([serial for serial, _body in creations])
            }
        except ModuleFailure as exc:
            return {serial.casefold(): exc for serial, _body in creations}
        result: Created = dict(listed)
        result.update(self._one_by_one([(s, b) for s, b in creations if s.casefold() not in listed]))
        return result

    def _one_by_one(self, creations: t.Sequence[Creation]) -> Created:
        """Each token with the documented single POST: each created, or refused on its own."""
        result: Created = {}
        for serial, body in creations:
            try:
                result[serial.casefold()] = self._create_one(serial, body)
            except TokenExists as exc:
                result[serial.casefold()] = exc
                result.update(self._made_elsewhere([serial]))
            except ModuleFailure as exc:
                result[serial.casefold()] = exc
        return result

    def _create_one(self, serial: str, body: dict[str, t.Any]) -> TokenView:
        """One token with the documented single POST; an unknown outcome is judged from a listing (verified_write)."""
        written = verified_write(
            lambda: self.api.create_token(body),
            reread=lambda: self._listed_after_all([serial]),
            took_effect=bool,
            subject=f"token {serial}",
            log=self.log,
        )
        return written.answer if written.answer is not None else t.cast(t.List[TokenView], written.seen)[0]

    def _listed_after_all(self, serials: list[str]) -> list[TokenView]:
        """The tokens of these serial numbers in the inventory, waiting (see HardwareOathApi.poll) until all show."""
        query = TokenQuery(serial_numbers=tuple(serials))
        return self.api.poll(lambda: self.api.list_tokens(query), lambda tokens: len(tokens) == len(serials))
