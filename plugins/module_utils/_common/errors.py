# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Why a task fails. Every failure a module reports is a ``ModuleFailure``; ``GraphModule.run`` turns it into
``fail_json`` in one place. Errors are not changed once raised: a caller that knows more raises a copy
(:meth:`ModuleFailure.with_message`)."""

from __future__ import annotations

import copy
import os
import traceback
import typing as t

F = t.TypeVar("F", bound="ModuleFailure")
ISSUES = "https://github.com/tokenops/entra/issues"  # where a fault of the collection is reported


class ModuleFailure(Exception):
    """A failure of the task. ``changed``: writes took effect before it; ``result``: more keys of the failure result
    (what was done); ``to_result()`` gives them."""

    def __init__(self, message: str, *, changed: bool = False, result: dict[str, t.Any] | None = None) -> None:
        super().__init__(message)
        self.changed = changed
        self.result: dict[str, t.Any] = dict(result or {})

    @property
    def message(self) -> str:
        return t.cast(str, self.args[0])

    def with_message(
        self: F, message: str, *, changed: bool | None = None, result: dict[str, t.Any] | None = None
    ) -> F:
        """A copy with another message (and, when given, ``changed`` and ``result``); this one is left as it is."""
        other = copy.copy(self)
        other.args = (message,)
        other.changed = self.changed if changed is None else changed
        other.result = dict(self.result if result is None else result)
        return other

    def as_kind(self, kind: type[F]) -> F:
        """A copy that is a ``kind`` (a subclass of this error's class that adds no state), with every detail."""
        if not issubclass(kind, type(self)):
            raise TypeError(f"{kind.__name__} is not a kind of {type(self).__name__}")
        other = copy.copy(self)
        other.__class__ = kind
        return t.cast(F, other)

    def to_result(self) -> dict[str, t.Any]:
        result = dict(self.result)
        if self.changed:
            result["changed"] = True
        return result


class InputError(ModuleFailure):
    """The task's input is refused before any request: nothing was changed."""


class PlanError(ModuleFailure):
    """The desired state can't be reached from the current one without an option the user did not give."""


class GraphError(ModuleFailure):
    """Graph refused or failed a request; the failure result holds Graph's details (``graph_error``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        graph_message: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
        date: str | None = None,
        details: list | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.graph_message = graph_message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.date = date
        self.details = details

    def to_result(self) -> dict[str, t.Any]:
        error: dict[str, t.Any] = {
            "status": self.status,
            "code": self.code,
            "message": self.graph_message,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "date": self.date,
        }
        if self.details:
            error["details"] = self.details
        result = {"graph_error": {k: v for k, v in error.items() if v is not None}} if self.status else {}
        result.update(super().to_result())
        return result


class GraphAuthError(GraphError):
    """Sign-in failed (token endpoint or managed identity), or the credentials are incomplete."""


class GraphTransportError(GraphError):
    """No usable HTTP answer: connection refused, TLS failure, time-out, retries exhausted."""


class WriteOutcomeUnknown(GraphTransportError):
    """A write was sent but its answer was lost: it may or may not have taken effect. Re-read before acting."""


def raised_where(exc: BaseException) -> str:
    """`` in FILE, line N``: where ``exc`` was raised (its innermost frame), to report a bug; empty when unknown. Never
    the exception's text: it may hold what the failing code was handling (a seed, a code, a request body)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" in {os.path.basename(frames[-1].filename)}, line {frames[-1].lineno}" if frames else ""


def frames_only(exc: BaseException) -> str:
    """``exc``'s traceback without its text (for ``-vvv``): the frames and the type's name."""
    return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__)) + type(exc).__name__
