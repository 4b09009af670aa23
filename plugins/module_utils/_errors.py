# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The exceptions of the Graph layer. Modules turn them into ``fail_json`` in one place (``GraphModule``)."""

from __future__ import annotations

import typing as t


class GraphError(Exception):
    """Anything that stops a Graph operation; ``to_result()`` gives the extra keys of the failure result.
    ``changed``: writes took effect before the failure; ``result``: more keys of the failure result (what was done)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 graph_message: str | None = None, request_id: str | None = None,
                 client_request_id: str | None = None, date: str | None = None,
                 details: list | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.graph_message = graph_message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.date = date
        self.details = details
        self.changed = False
        self.result: dict[str, t.Any] = {}

    @property
    def message(self) -> str:
        """The whole message (what ``str()`` gives too); it grows as callers add what they know."""
        return t.cast(str, self.args[0])

    @message.setter
    def message(self, value: str) -> None:
        self.args = (value,)

    def with_context(self, context: str) -> "GraphError":
        """Prefix the message with what was being done (the token and user involved)."""
        self.message = f"{context}: {self.message}"
        return self

    def to_result(self) -> dict[str, t.Any]:
        error = {"status": self.status, "code": self.code, "message": self.graph_message,
                 "request_id": self.request_id, "client_request_id": self.client_request_id, "date": self.date}
        if self.details:
            error["details"] = self.details
        result = {"graph_error": {k: v for k, v in error.items() if v is not None}} if self.status else {}
        result.update(self.result)
        if self.changed:
            result["changed"] = True
        return result


class GraphAuthError(GraphError):
    """Sign-in failed (token endpoint or managed identity), or the credentials are incomplete."""


class GraphTransportError(GraphError):
    """No usable HTTP answer: connection refused, TLS failure, time-out, retries exhausted."""


class WriteOutcomeUnknown(GraphTransportError):
    """A write was sent but its answer was lost: it may or may not have taken effect. Re-read before acting."""
