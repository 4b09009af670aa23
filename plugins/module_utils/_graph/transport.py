# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""One HTTP stack (httpx) for sign-in and Graph: where a request may go, TLS, retries, pacing, and Graph's errors
from its answers. Safe to share between threads."""

from __future__ import annotations

import ssl
import time
import typing as t
import uuid

from .._common.errors import GraphError, GraphTransportError, WriteOutcomeUnknown
from .._common.texts import texts_in
from .endpoints import Destinations
from .pacer import DIRECTORY, METHODS, Pacer, pacing_lane
from .retry import OUTCOME_UNKNOWN_STATUSES, RETRY_STATUSES, parse_retry_after, retry_delay, retryable

try:
    import httpx
except ImportError:  # reported by GraphModule through missing_required_lib
    httpx = None  # type: ignore[assignment]

COLLECTION_VERSION = "1.0.0"
USER_AGENT = f"tokenops.entra/{COLLECTION_VERSION}"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The Limit part of an x-ms-throttle-scope that names writes: the throttling page's example (ReadWrite) and its
# definition of the write quota's limit (Write).
WRITE_LIMITS = frozenset({"readwrite", "write"})
PAUSE_SLACK = 0.001  # seconds of a retry's wait not worth a sleep of their own (the pacer waited the rest)


def tls_context(validate_certs: bool, ca_path: str | None) -> ssl.SSLContext | bool:
    if not validate_certs:
        return False
    return ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()


def _tls_hint(exc: BaseException) -> str | None:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            text = str(cause)
            break
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"TLS certificate verification failed ({text}). Set ca_path to the CA bundle that signed the "
            "server's certificate; validate_certs=false turns verification off (not recommended)."
        )
    return None


class Transport:
    """Sends HTTP requests with retries, each only where ``destinations`` allows (checked before sending, for
    every request: sign-in, Graph, and every link an answer hands out). Only requests that are safe to repeat are
    retried after an error that may have come after the server acted; a write that may have happened (its answer
    lost, or a 503 or 504, after its Retry-After) raises WriteOutcomeUnknown.

    With a ``pacer`` (shared by the threads sending through this transport), every attempt first waits for it
    (:meth:`Pacer.acquire`: the shared pause, its lane's pace, and a write token for a write) and holds one of its
    places on the wire while it is sent. A 429 of Graph's write quota pauses everyone, a 429 of another quota paces
    the requests of its lane (:meth:`throttled`); any other Retry-After is waited by its request alone, without a
    place on the wire. A 429, or a failed connection, does not use up a retry while other requests get answered (the
    task makes progress).
    Without a pacer, requests are sent at once."""

    def __init__(
        self,
        *,
        destinations: Destinations,
        verify: ssl.SSLContext | bool,
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        log: t.Callable[[str], None] | None = None,
        sleep: t.Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
    ) -> None:
        self.destinations = destinations
        self.client = httpx.Client(
            verify=verify, timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._log = log or (lambda message: None)
        self._sleep = sleep
        self.pacer = pacer

    def close(self) -> None:
        self.client.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        safe: bool | None = None,
        writes: int | None = None,
        lane: str | None = None,
        **kwargs: t.Any,
    ) -> t.Any:
        """``safe``: may this request be repeated after its answer was lost (defaults to GET/HEAD/OPTIONS)?
        ``writes``: how many writes it carries, for the pacer's write bucket (defaults to 1, or 0 for GET/HEAD/OPTIONS;
        a $batch says how many of its requests write). ``lane``: its pacing lane (default: by its URL; a $batch says
        the lane of its requests)."""
        safe = method in SAFE_METHODS if safe is None else safe
        writes = (0 if method in SAFE_METHODS else 1) if writes is None else writes
        lane = lane or pacing_lane(url)
        headers = dict(kwargs.pop("headers", None) or {})
        self.destinations.check(url, headers)
        headers.setdefault("client-request-id", str(uuid.uuid4()))  # one id for every attempt, as the SDKs do
        attempt = spent = 0  # retries made; those that count towards max_retries
        # Others' answers since this request's previous answer (its wait included): a 429 then uses up no retry.
        progress = self.pacer.progress() if self.pacer is not None else 0
        while True:
            if self.pacer is not None:
                with self.pacer.sending(write=writes > 0, count=writes, lane=lane):
                    response, failure = self._attempt(method, url, safe, headers, kwargs)
                if response is not None:
                    self.pacer.answered(lane, throttled=response.status_code == 429)
            else:
                response, failure = self._attempt(method, url, safe, headers, kwargs)
            # A retry that does not count: a 429, or a failed connection, while other requests got answered (the
            # service is there, and the task makes progress).
            answered = self.pacer.progress() if self.pacer is not None else 0
            others_answered, progress = answered > progress, answered
            if response is not None:
                if response.status_code in RETRY_STATUSES:
                    self.throttled(response.headers, write=writes > 0 and response.status_code == 429, lane=lane)
                if not safe and response.status_code in OUTCOME_UNKNOWN_STATUSES:
                    raise self._outcome_unknown(response, f"{method} {_short(url)}", lane)
                free = response.status_code == 429 and others_answered
                if not retryable(response.status_code, safe) or (spent >= self.max_retries and not free):
                    return response
                retry_after = response.headers.get("Retry-After")
            else:
                free = others_answered
                if spent >= self.max_retries and not free:
                    raise GraphTransportError(f"{method} {_short(url)}: gave up after {attempt} retries: {failure}")
                retry_after = None
            spent += 0 if free else 1
            attempt += 1
            self.pause(attempt, retry_after, f"{method} {_short(url)} {failure}", lane=lane, spent=spent)
            headers["Retry-Attempt"] = str(attempt)

    def _outcome_unknown(self, response: t.Any, where: str, lane: str) -> WriteOutcomeUnknown:
        """A write answered 503 or 504: Graph may have acted before it answered (Graph's errors page: repeat the
        request after a delay, which Retry-After may give). The delay is waited here; the caller judges the write
        from a re-read, as when its answer is lost, and sends it again only if it did not take effect."""
        wait = retry_delay(1, response.headers.get("Retry-After"), time.time(), self.max_retry_wait)
        self._log(f"{where} answered {response.status_code}: it may have taken effect; reading again in {wait:.1f}s")
        self._wait(wait, lane)
        error = error_from_response(response, where).as_kind(WriteOutcomeUnknown)
        return error.with_message(f"{error.message}; it may or may not have taken effect")

    def pause(
        self, attempt: int, retry_after: str | None, why: str, *, lane: str | None = None, spent: int | None = None
    ) -> None:
        """Wait before retry number ``attempt``: Retry-After when given, else backoff; capped (see :meth:`_wait`).
        ``spent``: the retries counted towards max_retries (default ``attempt``)."""
        wait = retry_delay(attempt, retry_after, time.time(), self.max_retry_wait)
        spent = attempt if spent is None else spent
        if spent == attempt:
            self._log(f"{why}; retry {attempt}/{self.max_retries} in {wait:.1f}s")
        else:
            self._log(f"{why}; retry {attempt} in {wait:.1f}s ({spent}/{self.max_retries} counted: others get answers)")
        self._wait(wait, lane)

    def _wait(self, wait: float, lane: str | None) -> None:
        """Wait ``wait`` seconds. With a pacer, first the pacer's pause for ``lane`` (which a Retry-After, reported
        by :meth:`throttled`, or another thread's set), then only what is left of the wait."""
        if self.pacer is not None:
            wait -= self.pacer.acquire(write=False, lane=lane, send=False)
            if wait < PAUSE_SLACK:
                return
        self._sleep(wait)

    def throttled(self, headers: t.Mapping[str, str], *, write: bool = False, lane: str = DIRECTORY) -> None:
        """Graph answered ``Retry-After`` with these ``headers`` (429, 503 or 504; of a request or of a $batch item,
        to a request of ``lane``). A 429 of the write quota (``x-ms-throttle-information: WriteLimitExceeded``, or,
        without that header and off users' methods, a ``x-ms-throttle-scope`` of a WRITE_LIMITS limit) pauses every
        request sharing the pacer and, for a ``write``, teaches it how Graph counts the quota; one of another quota
        (another scope) paces ``lane``. The wait is capped at ``max_retry_wait``, as a retry waits. Nothing without a
        pacer, a readable Retry-After or a scope: the request waits on its own."""
        if self.pacer is None:
            return
        headers = {key.lower(): value for key, value in headers.items()}
        seconds = parse_retry_after(headers.get("retry-after"), time.time())
        scope = headers.get("x-ms-throttle-scope")
        if seconds is None or not scope:
            return
        information = headers.get("x-ms-throttle-information", "")
        limit = scope.split("/")[1] if scope.count("/") else ""
        # Without x-ms-throttle-information, a write limit is the write quota only off users' methods: the methods'
        # own limit may be scoped ReadWrite too, and must not stall the writes of every lane.
        if "WriteLimitExceeded" in information or (
            not information and limit.lower() in WRITE_LIMITS and lane != METHODS
        ):
            self.pacer.throttled(seconds, write=write, longest=self.max_retry_wait)
        else:
            self.pacer.throttled_lane(lane, min(seconds, self.max_retry_wait))

    def _attempt(self, method: str, url: str, safe: bool, headers: dict, kwargs: dict) -> tuple[t.Any, str]:
        """One try: ``(response, what happened)`` or ``(None, why it failed)`` when it may be retried. An httpx
        error becomes a GraphTransportError (or the reason of a retry) whose text holds nothing of the request (see
        :func:`_reason`), and is not chained to the httpx error: a traceback would show that error's text."""
        where = f"{method} {_short(url)}"
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.ConnectError as exc:  # nothing was sent: always safe to retry
            hint = _tls_hint(exc)
            if hint:
                raise GraphTransportError(f"{where}: {_scrubbed(hint, headers, kwargs)}") from None
            return None, f"could not connect ({_reason(exc, headers, kwargs)})"
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if not safe:
                raise WriteOutcomeUnknown(
                    f"{where}: the connection failed after the request was sent "
                    f"({type(exc).__name__}: {_reason(exc, headers, kwargs)}); it may or may not have taken effect"
                ) from None
            return None, f"failed ({type(exc).__name__}: {_reason(exc, headers, kwargs)})"
        except (httpx.LocalProtocolError, UnicodeError) as exc:
            raise GraphTransportError(
                f"{where}: not sent: a header (or the request line) holds characters HTTP does not allow "
                f"({type(exc).__name__}; its text is not shown, as it quotes the header, which may hold a credential)"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
            raise GraphTransportError(
                f"{where}: the request failed ({type(exc).__name__}; its text is not shown, as it may quote the "
                "request)"
            ) from None
        return response, f"answered {response.status_code}"


# The shortest text of a request cut out of an error's text: a verification code has 6 digits; a shorter header
# (Retry-Attempt: 1) would only garble the text ("[Errno 111]").
SCRUBBED_LENGTH = 6


def _reason(exc: BaseException, headers: t.Mapping[str, str], kwargs: t.Mapping[str, t.Any]) -> str:
    """The text of a failed connection's httpx error, for a message or a log line. These errors describe the
    connection ("connection refused", "timed out"), never the request, but the text is taken as untrusted: every
    value of the request's headers, form and JSON body is cut out of it, escaped or not."""
    return _scrubbed(str(exc) or type(exc).__name__, headers, kwargs)


def _scrubbed(text: str, headers: t.Mapping[str, str], kwargs: t.Mapping[str, t.Any]) -> str:
    """``text`` without any header value of the request (nor the token of ``Bearer ...``), nor any string of its
    form or JSON body, as given or escaped (as ``repr`` and JSON show a newline); each replaced by ``***``."""
    values: set[str] = set()
    for header in headers.values():
        values.add(str(header))
        values.update(str(header).split())
    values.update(texts_in(kwargs.get("data")))
    values.update(texts_in(kwargs.get("json")))
    values = {value for value in values if len(value) >= SCRUBBED_LENGTH}
    for value in sorted(values, key=len, reverse=True):  # the longest first: a part does not spoil its whole
        for form in (value, repr(value)[1:-1], value.encode("unicode_escape").decode("ascii")):
            if form:
                text = text.replace(form, "***")
    return text


def _short(url: str) -> str:
    """A URL without its query (a filter may hold a user value; keep messages short)."""
    return url.split("?", 1)[0]


def error_from_response(response: t.Any, action: str) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return graph_error(action, response.status_code, response.headers, body, response.reason_phrase)


def graph_error(
    action: str, status: int, headers: t.Mapping[str, str], body: t.Any, reason: str | None = None
) -> GraphError:
    """A GraphError from an answer's parts (``headers``: case-insensitive, or with lower-case names)."""
    code = message = date = None
    request_id = headers.get("request-id")
    client_request_id = headers.get("client-request-id")
    details = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, details = error.get("code"), error.get("message"), error.get("details")
        inner = error.get("innerError") or error.get("innererror") or {}
        request_id = inner.get("request-id") or request_id
        client_request_id = inner.get("client-request-id") or client_request_id
        date = inner.get("date")
    text = f"{action}: Graph answered {status} {code or reason or ''}".rstrip()
    if message:
        text += f": {message}"
    if request_id:
        when = date or headers.get("date")
        text += f" (request-id {request_id}, date {when})" if when else f" (request-id {request_id})"
    if status == 429:
        text += (
            f"; still throttled after the allowed retries (Retry-After: {headers.get('retry-after', 'none')}). "
            "Run again later, or raise max_retries / max_retry_wait"
        )
    return GraphError(
        text,
        status=status,
        code=code,
        graph_message=message,
        request_id=request_id,
        client_request_id=client_request_id,
        date=date,
        details=details,
    )
