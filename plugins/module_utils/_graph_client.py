# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""One HTTP stack (httpx) for sign-in and Graph: TLS, retries, paging, errors. Safe to share between threads."""

from __future__ import annotations

import ssl
import time
import typing as t
import uuid
from concurrent.futures import ThreadPoolExecutor

from ._endpoints import Destinations
from ._errors import GraphError, GraphTransportError, WriteOutcomeUnknown
from ._odata import relative_url
from ._pacer import DIRECTORY, Pacer, pacing_lane
from ._retry import RETRY_STATUSES, longest_retry_after, parse_retry_after, retry_delay, retryable

try:
    import httpx
except ImportError:  # reported by GraphModule through missing_required_lib
    httpx = None  # type: ignore[assignment]

COLLECTION_VERSION = "0.1.0"
USER_AGENT = f"tokenops.entra/{COLLECTION_VERSION}"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BATCH = 20  # Graph's limit of requests in one $batch
BATCHES_AT_ONCE = 4  # $batch round trips of one get_many sent side by side (reads only)
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
    retried after an error that may have come after the server acted; a write that may have happened raises
    WriteOutcomeUnknown.

    With a ``pacer`` (shared by the threads sending through this transport), every attempt first waits for it
    (:meth:`Pacer.acquire`: the shared pause, its lane's pace, and a write token for a write) and holds one of its
    places on the wire while it is sent. A 429 of Graph's write quota pauses everyone, a 429 of another quota paces
    the requests of its lane (:meth:`throttled`); any other Retry-After is waited by its request alone, without a
    place on the wire. A 429 does not use up a retry while other requests get answered (the task makes progress).
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
        while True:
            progress = 0
            if self.pacer is not None:
                with self.pacer.sending(write=writes > 0, count=writes, lane=lane):
                    progress = self.pacer.progress()
                    response, failure = self._attempt(method, url, safe, headers, kwargs)
                if response is not None:
                    self.pacer.answered(lane, throttled=response.status_code == 429)
            else:
                response, failure = self._attempt(method, url, safe, headers, kwargs)
            free = False  # a retry that does not count: a 429 while other requests got answered
            if response is not None:
                if response.status_code in RETRY_STATUSES:
                    self.throttled(response.headers, write=writes > 0 and response.status_code == 429, lane=lane)
                free = response.status_code == 429 and self.pacer is not None and self.pacer.progress() > progress
                if not retryable(response.status_code, safe) or (spent >= self.max_retries and not free):
                    return response
                retry_after = response.headers.get("Retry-After")
            elif spent >= self.max_retries:
                raise GraphTransportError(f"{method} {_short(url)}: gave up after {attempt} retries: {failure}")
            else:
                retry_after = None
            spent += 0 if free else 1
            attempt += 1
            self.pause(attempt, retry_after, f"{method} {_short(url)} {failure}", lane=lane, spent=spent)
            headers["Retry-Attempt"] = str(attempt)

    def pause(
        self, attempt: int, retry_after: str | None, why: str, *, lane: str | None = None, spent: int | None = None
    ) -> None:
        """Wait before retry number ``attempt``: Retry-After when given, else backoff; capped. With a pacer, first
        the pacer's pause for ``lane`` (which this Retry-After, reported by :meth:`throttled`, or another thread's
        set), then only what is left of this wait. ``spent``: the retries counted towards max_retries (default
        ``attempt``)."""
        wait = retry_delay(attempt, retry_after, time.time(), self.max_retry_wait)
        spent = attempt if spent is None else spent
        if spent == attempt:
            self._log(f"{why}; retry {attempt}/{self.max_retries} in {wait:.1f}s")
        else:
            self._log(f"{why}; retry {attempt} in {wait:.1f}s ({spent}/{self.max_retries} counted: others get answers)")
        if self.pacer is not None:
            wait -= self.pacer.acquire(write=False, lane=lane, send=False)
            if wait < PAUSE_SLACK:
                return
        self._sleep(wait)

    def throttled(self, headers: t.Mapping[str, str], *, write: bool = False, lane: str = DIRECTORY) -> None:
        """Graph answered ``Retry-After`` with these ``headers`` (429, 503 or 504; of a request or of a $batch item,
        to a request of ``lane``). A 429 of the write quota (``x-ms-throttle-information: WriteLimitExceeded``, or
        a ``x-ms-throttle-scope`` of the ``ReadWrite`` limit) pauses every request sharing the pacer and, for a
        ``write``, teaches it the write rate; one of another quota (another scope) paces ``lane``. The wait is capped
        at ``max_retry_wait``, as a retry waits. Nothing without a pacer, a readable Retry-After or a scope: the
        request waits on its own."""
        if self.pacer is None:
            return
        headers = {key.lower(): value for key, value in headers.items()}
        seconds = parse_retry_after(headers.get("retry-after"), time.time())
        scope = headers.get("x-ms-throttle-scope")
        if seconds is None or not scope:
            return
        seconds = min(seconds, self.max_retry_wait)
        information = headers.get("x-ms-throttle-information", "")
        limit = scope.split("/")[1] if scope.count("/") else ""
        if "WriteLimitExceeded" in information or (not information and limit.lower() == "readwrite"):
            self.pacer.throttled(seconds, write=write)
        else:
            self.pacer.throttled_lane(lane, seconds)

    def _attempt(self, method: str, url: str, safe: bool, headers: dict, kwargs: dict) -> tuple[t.Any, str]:
        """One try: ``(response, what happened)`` or ``(None, why it failed)`` when it may be retried."""
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.ConnectError as exc:  # nothing was sent: always safe to retry
            hint = _tls_hint(exc)
            if hint:
                raise GraphTransportError(f"{method} {_short(url)}: {hint}") from exc
            return None, f"could not connect ({exc})"
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if not safe:
                raise WriteOutcomeUnknown(
                    f"{method} {_short(url)}: the connection failed after the request was sent "
                    f"({type(exc).__name__}: {exc}); it may or may not have taken effect"
                ) from exc
            return None, f"failed ({type(exc).__name__}: {exc})"
        return response, f"answered {response.status_code}"


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


class GraphClient:
    """Graph requests with a bearer token, relative to ``{graph_endpoint}/{version}``."""

    def __init__(
        self,
        transport: Transport,
        graph_endpoint: str,
        token: t.Callable[[bool], str],
        *,
        can_refresh: bool = True,
        version: str = "beta",
    ) -> None:
        self.transport = transport
        self.base = f"{graph_endpoint.rstrip('/')}/{version}"
        self._token = token
        self.can_refresh = can_refresh  # False for a given access token: refreshing returns the same one

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: dict | None = None,
        json: t.Any = None,
        expected: tuple[int, ...] = (200,),
        absolute_url: str | None = None,
        safe: bool | None = None,
        writes: int | None = None,
        lane: str | None = None,
    ) -> t.Any:
        """Send one request; returns the decoded body (None for 204). Raises GraphError naming ``action``.
        ``safe``: may it be repeated after its answer was lost (default: GET only); ``writes``: how many writes it
        carries, for the transport's pacer (default: 1, or 0 for a GET); ``lane``: its pacing lane (default: by
        its URL)."""
        url = absolute_url or self.base + path
        sent = {"safe": safe, "writes": writes, "lane": lane}
        response = self._send(method, url, params, json, False, sent)
        if response.status_code == 401 and self.can_refresh:  # a revoked cached token: sign in again, once
            response = self._send(method, url, params, json, True, sent)
        if response.status_code not in expected:
            raise error_from_response(response, action)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise GraphError(f"{action}: Graph answered {response.status_code} with a body that is not JSON") from exc

    def _send(
        self,
        method: str,
        url: str,
        params: dict | None,
        json: t.Any,
        force_refresh: bool,
        sent: dict[str, t.Any],
    ) -> t.Any:
        headers = {"Authorization": "Bearer " + self._token(force_refresh), "Accept": "application/json"}
        return self.transport.send(method, url, params=params, json=json, headers=headers, **sent)

    def get(self, path: str, *, action: str, params: dict | None = None) -> t.Any:
        return self.request("GET", path, action=action, params=params)

    def pages(self, body: t.Any, *, action: str) -> t.Iterator[tuple[list[dict], bool]]:
        """Each page of a collection from its first page ``body``: ``(items, whether another page follows)``, the
        next page read only when asked for, by its ``@odata.nextLink`` as given (never rebuilt)."""
        while True:
            next_link = body.get("@odata.nextLink") if isinstance(body, dict) else None
            yield (body.get("value", []) if isinstance(body, dict) else []), bool(next_link)
            if not next_link:
                return
            body = self.request("GET", "", action=action, absolute_url=next_link)

    def get_many(
        self, requests: t.Sequence[tuple[str, dict | None]], *, action: str, follow_pages: bool = True
    ) -> list[t.Any]:
        """GET each ``(path, params)`` through JSON batching, MAX_BATCH per round trip. Returns, in order, each
        answer's body (a collection followed to its last page, or only its first with ``follow_pages=False``) or the
        GraphError it failed with. Items Graph throttled or could not serve (429, 503, 504) are sent again, after
        their Retry-After, for as long as each round gets some answered (``max_retries`` rounds without any); a
        quota's 429 among them is told to the transport's pacer (see Transport.throttled). The batches are paced in the
        lane of the requests they carry."""
        results: list[t.Any] = [None] * len(requests)
        pending = list(range(len(requests)))
        lane = pacing_lane(requests[0][0]) if requests else DIRECTORY
        stalled = 0
        while pending:
            retry: list[int] = []
            retry_afters: list[str] = []
            parts = [pending[start : start + MAX_BATCH] for start in range(0, len(pending), MAX_BATCH)]
            for numbers, answer in zip(parts, self._batches(parts, requests, action, lane)):
                items = {str(item.get("id")): item for item in (answer or {}).get("responses", [])}
                for number in numbers:
                    item = items.get(str(number), {"status": 500, "body": None})
                    status, headers = (
                        int(item.get("status", 500)),
                        {k.lower(): v for k, v in (item.get("headers") or {}).items()},
                    )
                    if retryable(status, safe=True) and stalled < self.transport.max_retries:
                        retry.append(number)
                        if headers.get("retry-after") is not None:
                            retry_afters.append(headers["retry-after"])
                            self.transport.throttled(headers, lane=lane)
                    elif 200 <= status < 300:
                        results[number] = (
                            self._rest_of_pages(item.get("body"), action) if follow_pages else item.get("body")
                        )
                    else:
                        results[number] = graph_error(
                            f"{action} ({requests[number][0]})", status, headers, item.get("body")
                        )
            # A round that got answers is progress (a rate limit lets some through): only rounds without count.
            stalled = stalled + 1 if len(retry) == len(pending) else 0
            pending = retry
            if pending:
                retry_after = longest_retry_after(retry_afters, time.time())
                self.transport.pause(
                    max(stalled, 1), retry_after, f"{len(pending)} batched request(s) answered 429/503/504", lane=lane
                )
        return results

    def _batches(
        self, parts: list[list[int]], requests: t.Sequence[tuple[str, dict | None]], action: str, lane: str
    ) -> list[t.Any]:
        """One $batch per part (the numbers of ``requests`` it carries), BATCHES_AT_ONCE at a time; their answers."""

        def send(numbers: list[int]) -> t.Any:
            body = {"requests": [{"id": str(n), "method": "GET", "url": relative_url(*requests[n])} for n in numbers]}
            # Only reads inside: safe to repeat, and no write for the pacer.
            return self.request("POST", "/$batch", action=action, json=body, safe=True, writes=0, lane=lane)

        if len(parts) == 1:
            return [send(parts[0])]
        with ThreadPoolExecutor(max_workers=min(BATCHES_AT_ONCE, len(parts))) as pool:
            return list(pool.map(send, parts))

    def _rest_of_pages(self, body: t.Any, action: str) -> t.Any:
        """A collection's first page ``body`` with the items of every page."""
        if not isinstance(body, dict) or not body.get("@odata.nextLink"):
            return body
        items = [item for page, _more in self.pages(body, action=action) for item in page]
        return {**{key: value for key, value in body.items() if key != "@odata.nextLink"}, "value": items}
