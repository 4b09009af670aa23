"""Graph and identity-platform error types and their wire shapes."""

from __future__ import annotations

import datetime
import uuid


class ErrorAnswer(Exception):
    """An error answered in Microsoft Graph's envelope: what the simulated service sends, not the collection's
    client-side ``GraphError`` (plugins/module_utils/_common/errors.py).

    ``code`` and ``message`` go to the client; ``reason`` is a simulator-only note kept in the request log
    (for example which permission was missing), never sent over the wire.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict | None = None,
        details: list | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details
        self.reason = reason


def bad_request(message: str, code: str = "badRequest", **kwargs) -> ErrorAnswer:
    return ErrorAnswer(400, code, message, **kwargs)


def odata_bad_request(message: str, **kwargs) -> ErrorAnswer:
    """Errors raised by the OData layer (JSON, property names, query syntax) use Pascal case."""
    return ErrorAnswer(400, "BadRequest", message, **kwargs)


def not_found(message: str, code: str = "itemNotFound") -> ErrorAnswer:
    return ErrorAnswer(404, code, message)


def user_not_found(user_ref: str) -> ErrorAnswer:
    return ErrorAnswer(
        404,
        "Request_ResourceNotFound",
        f"Resource '{user_ref}' does not exist or one of its queried reference-property objects are not present.",
    )


def conflict(message: str) -> ErrorAnswer:
    return ErrorAnswer(409, "conflict", message)


def access_denied(reason: str, *, directory: bool = False) -> ErrorAnswer:
    if directory:
        return ErrorAnswer(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", reason=reason
        )
    return ErrorAnswer(403, "accessDenied", "Request Authorization failed", reason=reason)


_WWW_AUTHENTICATE = 'Bearer realm="", authorization_uri="", client_id="00000003-0000-0000-c000-000000000000"'


def unauthenticated(message: str, reason: str | None = None) -> ErrorAnswer:
    return ErrorAnswer(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
        reason=reason,
    )


def graph_date(now: datetime.datetime | None = None) -> str:
    """Graph's ``innerError.date`` format: ISO 8601 without fraction or zone."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S")


# Every 4xx message under error_wording "opaque": a client must then decide from the status and the codes alone.
OPAQUE_MESSAGE = "The request could not be processed."


def envelope(error: ErrorAnswer, request_id: str, client_request_id: str | None, *, opaque: bool = False) -> dict:
    """Graph's error body. ``opaque`` (error_wording): a 4xx keeps its status, codes and targets, not its words."""
    inner = {"date": graph_date(), "request-id": request_id, "client-request-id": client_request_id or request_id}
    reword = opaque and 400 <= error.status < 500
    body: dict = {"code": error.code, "message": OPAQUE_MESSAGE if reword else error.message}
    if error.details:
        body["details"] = [{**d, "message": OPAQUE_MESSAGE} for d in error.details] if reword else error.details
    body["innerError"] = inner
    return {"error": body}


class IdentityError(Exception):
    """An OAuth 2.0 error from the token endpoint, in Entra's ``AADSTS`` shape."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self, trace_id: str | None = None, correlation_id: str | None = None) -> dict:
        trace_id = trace_id or str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        now = datetime.datetime.now(datetime.timezone.utc)
        description = (
            f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
        )
        return {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.aadsts],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }
