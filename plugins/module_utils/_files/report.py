# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The report of a ``hardware_oath_inventory`` run, pure: the JSON document (what the role writes next to the job's
artifacts) and its Markdown (a merge-request comment, an AWX job's summary). No I/O, no clock: the caller gives the
time. Pure Python: the standard library and the words of _domain.actions."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping, Sequence

from .._domain.actions import ACTION_TEXTS, OUTCOMES

DEFAULT_TITLE = "Hardware OATH token inventory"
# The Markdown heading's words for a check-mode run: its counts and outcomes are what would change.
CHECK_MODE_HEADING = "check mode: nothing was changed; this is what would change"
# Keys that must never reach a report, compared without case, "_" or "-" (secret_key, secretKey, client-secret...).
SECRET_KEYS = frozenset(
    {"secretkey", "verificationcode", "clientsecret", "accesstoken", "refreshtoken", "password", "clientassertion"}
)
# A merge-request comment holds at most 65,536 characters on GitHub; the rest is left to the role's own lines.
MAX_MARKDOWN = 60_000
# One table cell at most (an error message of Graph can be long; the JSON report has it whole).
MAX_CELL = 1_000


class ReportError(ValueError):
    """The input is not what the report is made of."""


# ---------------------------------------------------------------------- the document
def report_document(
    result: Mapping[str, t.Any], *, check_mode: bool, generated_at: str, title: str | None = None
) -> dict[str, t.Any]:
    """The JSON report of a registered ``hardware_oath_inventory`` result (also of a failed one, which holds the same
    keys): the rows sorted by serial number, for stable diffs, and never a key named like a secret."""
    if not isinstance(result, Mapping):
        raise ReportError(f"expected the registered result of hardware_oath_inventory (a dict), not {_kind(result)}")
    missing = [key for key in ("counts", "tokens") if key not in result]
    if missing:
        why = f": {result['msg']}" if isinstance(result.get("msg"), str) else ""
        raise ReportError(
            f"the result has no {' and no '.join(missing)}; is it the registered result of "
            f"tokenops.entra.hardware_oath_inventory (a task that failed before planning has none){why}"
        )
    if not isinstance(check_mode, bool):
        raise ReportError(f"check_mode must be a boolean, not {_kind(check_mode)}")
    if not isinstance(generated_at, str):
        raise ReportError(f"generated_at must be a string, not {_kind(generated_at)}")
    if title is not None and not isinstance(title, str):
        raise ReportError(f"title must be a string, not {_kind(title)}")
    rows = _rows(result["tokens"])
    failed = result.get("failed_tokens") or []
    if not isinstance(failed, Sequence) or isinstance(failed, (str, bytes)):
        raise ReportError(f"failed_tokens must be a list, not {_kind(failed)}")
    return {
        "title": title or DEFAULT_TITLE,
        "generated_at": generated_at,
        "check_mode": check_mode,
        "changed": bool(result.get("changed", False)),
        "counts": _counts(result["counts"]),
        **({"estimate": scrub(result["estimate"])} if isinstance(result.get("estimate"), Mapping) else {}),
        "failed_tokens": sorted((str(serial) for serial in failed), key=_serial_key),
        "tokens": sorted((t.cast("dict[str, t.Any]", scrub(row)) for row in rows), key=_row_key),
    }


def scrub(value: t.Any) -> t.Any:
    """A copy of ``value`` (mappings, lists and tuples as dicts and lists) without any key named like a secret."""
    if isinstance(value, Mapping):
        return {key: scrub(item) for key, item in value.items() if not _is_secret(key)}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


def _is_secret(key: t.Any) -> bool:
    return isinstance(key, str) and key.casefold().replace("_", "").replace("-", "") in SECRET_KEYS


def _rows(tokens: t.Any) -> list[Mapping[str, t.Any]]:
    if not isinstance(tokens, Sequence) or isinstance(tokens, (str, bytes)):
        raise ReportError(f"tokens must be a list of rows, not {_kind(tokens)}")
    for index, row in enumerate(tokens):
        if not isinstance(row, Mapping) or not isinstance(row.get("serial_number"), str):
            raise ReportError(f"tokens[{index}] is not a token's row (a dict with a serial_number)")
    return list(tokens)


def _counts(counts: t.Any) -> dict[str, int]:
    """The counts in the summary's order (then any other outcome, by name), every one a number."""
    if not isinstance(counts, Mapping):
        raise ReportError(f"counts must be a dict, not {_kind(counts)}")
    result: dict[str, int] = {}
    for name in [*OUTCOMES, *sorted(str(key) for key in counts if key not in OUTCOMES)]:
        value = counts.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ReportError(f"counts.{name} must be a number of tokens, not {value!r}")
        result[name] = value
    return result


def _serial_key(serial: str) -> tuple[str, str]:
    return (serial.casefold(), serial)


def _row_key(row: Mapping[str, t.Any]) -> tuple[str, str]:
    return _serial_key(row["serial_number"])


def _kind(value: t.Any) -> str:
    return "null" if value is None else type(value).__name__


# ---------------------------------------------------------------------- the Markdown
def report_markdown(document: Mapping[str, t.Any], *, limit: int = MAX_MARKDOWN) -> str:
    """GitHub/GitLab-flavoured Markdown of a report document: the heading, a one-line summary, the failed tokens,
    then the changes (the unchanged tokens by their number only). In check mode the heading says that nothing was
    changed, and the summary and the changes say what would be. At most ``limit`` characters: the tables are cut,
    saying how many rows the JSON report has more."""
    if not isinstance(document, Mapping) or not all(key in document for key in ("counts", "tokens", "check_mode")):
        raise ReportError(
            "expected a report document (of tokenops.entra.hardware_oath_report), with counts, tokens and check_mode"
        )
    counts = _counts(document["counts"])
    rows = sorted(_rows(document["tokens"]), key=_row_key)
    check_mode = bool(document["check_mode"])
    title = document.get("title") or DEFAULT_TITLE
    mode = CHECK_MODE_HEADING if check_mode else "applied"
    head = [f"## {_text(str(title))} ({mode})", "", summary(counts, check_mode=check_mode)]
    if document.get("generated_at"):
        head += ["", f"Generated at {_text(str(document['generated_at']))}."]
    if check_mode and isinstance(document.get("estimate"), Mapping) and document["estimate"].get("text"):
        head += ["", f"Estimated duration of the apply: {_text(str(document['estimate']['text']))}."]
    failed = [row for row in rows if row.get("outcome") == "failed"]
    changes = [row for row in rows if row.get("actions")]
    tail = []
    if counts.get("unchanged"):
        tail += ["", f"{_tokens(counts['unchanged'])} unchanged."]
    failed_table = _table(
        f"### Failed ({len(failed)})",
        ("Serial number", "User", "Error", "Request id"),
        [(row["serial_number"], row.get("user"), row.get("error"), row.get("request_id")) for row in failed],
        "failed tokens",
    )
    changes_table = _table(
        f"### Changes ({len(changes)})",
        ("Serial number", "User", "Outcome", "What would be done" if check_mode else "What was done"),
        [(row["serial_number"], row.get("user"), _outcome(row, check_mode), describe(row)) for row in changes],
        "changes",
    )
    room = limit - _length(head) - _length(tail) - 1  # the final newline
    # The failed tokens come first; the changes keep at least half of the room when there are both.
    failed_room = room - min(changes_table.size() if changes else 0, room // 2) if failed else 0
    failed_lines = failed_table.lines(failed_room) if failed else []
    changes_lines = changes_table.lines(room - _length(failed_lines)) if changes else []
    if not changes and not failed and not counts.get("unchanged"):
        tail += ["", "No token was declared or pruned."]
    elif not changes and not failed:
        tail += ["", "Nothing to change." if check_mode else "Nothing was changed."]
    return "\n".join(head + failed_lines + changes_lines + tail) + "\n"


def summary(counts: Mapping[str, int], *, check_mode: bool = False) -> str:
    """``N tokens: x created, y activated, ..., z unchanged``: the outcomes that happened, in a fixed order; in check
    mode what would happen (``x would be created``)."""
    total = sum(counts.values())
    parts = [f"{counts[name]} {outcome_text(name, check_mode)}" for name in _counts(counts) if counts.get(name)]
    return f"{_tokens(total)}: {', '.join(parts)}" if parts else f"{_tokens(total)}."


def _outcome(row: Mapping[str, t.Any], check_mode: bool) -> str:
    return outcome_text(str(row.get("outcome") or ""), check_mode)


def outcome_text(outcome: str, check_mode: bool) -> str:
    """A token's outcome as the report shows it: in check mode a change is what would happen (``would be created``);
    ``failed`` and ``unchanged`` read the same in both modes."""
    if check_mode and outcome and outcome not in ("failed", "unchanged"):
        return f"would be {outcome}"
    return outcome


def describe(row: Mapping[str, t.Any]) -> str:
    """The writes of a token's row as short text: ``unassign from Adele Vance (id); assign and activate for amy@...``.
    Users are named by what the row knows of them (its holders before and after, and the declared user)."""
    names = _holder_names(row)
    texts = []
    for action in row.get("actions") or []:
        if not isinstance(action, Mapping):
            continue
        kind = str(action.get("action") or "")
        text = ACTION_TEXTS.get(kind) or kind.replace("_", " ")
        fields = [str(name) for name in action.get("changes") or []]
        if fields and kind in ("update", "set_display_name"):
            text = "update " + ", ".join(fields)
        user_id = action.get("user_id")
        if user_id:
            joint = "" if text.endswith((" from", " to", " for")) else " for"
            text += f"{joint} {names.get(str(user_id).casefold()) or user_id}"
        texts.append(text)
    return "; ".join(texts)


def _holder_names(row: Mapping[str, t.Any]) -> dict[str, str]:
    """Who the row names, by id (case-folded): a user principal name when known, else ``display name (id)``."""
    names: dict[str, str] = {}
    for side in ("before", "after"):
        view = row.get(side)
        holder = view.get("assigned_to") if isinstance(view, Mapping) else None
        if not isinstance(holder, Mapping) or not holder.get("id"):
            continue
        user_id = str(holder["id"])
        upn, name = holder.get("user_principal_name"), holder.get("display_name")
        known = names.get(user_id.casefold())
        if upn:
            names[user_id.casefold()] = str(upn)
        elif name and not known:
            names[user_id.casefold()] = f"{name} ({user_id})"
    return names


class _Table:
    """A Markdown table under its heading, cut to a number of characters."""

    def __init__(self, heading: str, columns: Sequence[str], rows: list[str], what: str) -> None:
        self.head = ["", heading, "", _row(columns), "|" + " --- |" * len(columns)]
        self.rows = rows
        self.what = what

    def size(self) -> int:
        return _length(self.head + self.rows)

    def lines(self, room: int) -> list[str]:
        """The table, or as many of its first rows as fit in ``room`` followed by how many more there are."""
        if self.size() <= room:
            return self.head + self.rows
        shown: list[str] = []
        used = _length(self.head)
        for row in self.rows:
            more = self._more(len(self.rows) - len(shown) - 1)
            if used + len(row) + 1 + _length(["", more]) > room:
                break
            shown.append(row)
            used += len(row) + 1
        return self.head + shown + ["", self._more(len(self.rows) - len(shown))]

    def _more(self, count: int) -> str:
        return f"… and {count} more {self.what} (see the JSON report)"


def _table(heading: str, columns: Sequence[str], rows: list[tuple[t.Any, ...]], what: str) -> _Table:
    return _Table(heading, columns, [_row(cells) for cells in rows], what)


def _row(cells: Sequence[t.Any]) -> str:
    return "| " + " | ".join(cell(value) for value in cells) + " |"


def cell(value: t.Any) -> str:
    """A table cell: one line, at most MAX_CELL characters of the value, Markdown and HTML taken literally."""
    if value is None or value == "":
        return "—"
    text = " ".join(str(value).split())  # newlines, tabs and runs of spaces: one space
    text = "".join(char for char in text if char.isprintable())
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return _text(text)


def _text(text: str) -> str:
    """Text shown as it is: Markdown's marks escaped, and ``<``, ``>`` and ``&`` as entities (no HTML in a comment)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in "\\`*_[]|~":  # the backslash first
        text = text.replace(mark, "\\" + mark)
    return text


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


def _length(lines: Sequence[str]) -> int:
    """The characters of ``lines`` joined by newlines, with the newline that joins them to what comes before."""
    return sum(len(line) + 1 for line in lines)
