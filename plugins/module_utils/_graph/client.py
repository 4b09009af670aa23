# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.
"""Graph's requests on top of the transport: a bearer token, paths relative to the version, pages and ``$batch``."""

from __future__ import annotations

import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from .._common.errors import GraphError, WriteOutcomeUnknown
from .odata import relative_url
from .pacer import DIRECTORY, pacing_lane
from .retry import longest_retry_after, retryable
from .transport import Transport, error_from_response, graph_error

MAX_BATCH = 20  # Graph's limit of requests in one $batch
BATCHES_AT_ONCE = 4  # $batch round trips of one get_many sent side by side (reads only)


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
        try:
            response = self._send(method, url, params, json, False, sent)
            if response.status_code == 401 and self.can_refresh:  # a revoked cached token: sign in again, once
                response = self._send(method, url, params, json, True, sent)
        except WriteOutcomeUnknown as exc:  # what the write was for (a token, a user), before how it was sent
            raise exc.with_message(f"{action}: {exc.message}") from None
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
