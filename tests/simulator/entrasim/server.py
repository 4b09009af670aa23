"""The HTTPS server: one port for the identity platform, Graph (``/beta``, ``/v1.0``), the managed identity
endpoint (``/msi/token``) and the admin API (``/_admin``). Handles each connection in its own thread."""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import json
import os
import socket
import ssl
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

import jwt
import trustme

from . import faults as faultlib
from . import settings as settingslib
from .errors import ErrorAnswer, IdentityError, envelope, odata_bad_request
from .graph import GraphApi, Request
from .httpbase import RequestHandler, Server
from .identity import IdentityPlatform, Principal
from .tenant import Journal, Tenant

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
MAX_BATCH = 20
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
# The Limit of x-ms-throttle-scope (one of the throttling page's Read, Write, ReadWrite) and the
# x-ms-throttle-information of each quota's 429. The write quota's limit is the write_throttle_limit setting; the
# methods quota counts reads and writes alike, so its limit is ReadWrite, which a client must not take for the write
# quota's.
THROTTLE_HEADERS = {
    "write_quota": (None, "WriteLimitExceeded"),
    "read_rate": ("Read", "ResourceUnitLimitExceeded"),
    "methods_rate": ("ReadWrite", "ResourceUnitLimitExceeded"),
}
DIAGNOSTIC = json.dumps(
    {
        "ServerInfo": {
            "DataCenter": "Simulated",
            "Slice": "E",
            "Ring": "1",
            "ScaleUnit": "000",
            "RoleInstance": "ENTRASIM",
            "ADSiteName": "LOC",
        }
    }
)


@dataclass
class Outcome:
    status: int
    body: Any = None  # JSON-serialisable, bytes, or None
    headers: dict = field(default_factory=dict)
    reset: bool = False  # drop the connection instead of answering
    delay_after: float = 0.0


class RequestLog:
    """Every identity, managed identity and Graph request (batch items too); admin calls are not logged."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque = collections.deque(maxlen=max_entries)
        self._seq = 0
        self.dropped = 0

    def add(self, entry: dict) -> None:
        with self._lock:
            self._seq += 1
            if len(self._entries) == self._entries.maxlen:
                self.dropped += 1
            self._entries.append({"seq": self._seq, **entry})

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0

    def query(self, filters: dict) -> list[dict]:
        since = int(filters.get("since", 0) or 0)
        with self._lock:
            entries = list(self._entries)
        out = []
        for entry in entries:
            if entry["seq"] <= since:
                continue
            if any(
                filters.get(k) and str(entry.get(k, "")).lower() != filters[k].lower()
                for k in ("kind", "method", "client_id", "status")
            ):
                continue
            if filters.get("path") and filters["path"] not in entry["path"]:
                continue
            out.append(entry)
        return out


class Stats:
    """What ``GET /_admin/stats`` reports besides the process's CPU time: requests by kind since the start, and the
    CPU time the worker threads spent handling them."""

    KINDS = ("graph", "identity", "managed_identity", "unknown", "batch_items", "admin")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.requests = dict.fromkeys(self.KINDS, 0)
        self.handling_cpu = 0.0

    def count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def add_handling(self, cpu: float) -> None:
        with self._lock:
            self.handling_cpu += cpu

    def snapshot(self) -> dict:
        times = os.times()
        with self._lock:
            requests = dict(self.requests)
            handling = self.handling_cpu
        requests["total"] = sum(requests[k] for k in ("graph", "identity", "managed_identity", "unknown"))
        return {
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "cpu_seconds": {
                "user": times.user,
                "system": times.system,
                "total": times.user + times.system,
                "handling": round(handling, 6),
            },
            "threads": threading.active_count(),
            "requests": requests,
        }


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_query(raw_query: str) -> dict:
    return {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}


class Simulator:
    def __init__(
        self,
        seed_path: str,
        *,
        state_dir: str,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        max_page_size: int = settingslib.MAX_PAGE_SIZE,
        token_lifetime: int = 3599,
        fault_seed: int | None = None,
        initial_faults: dict | None = None,
        verbose: bool = False,
    ) -> None:
        self.tenant = Tenant.from_seed_file(seed_path)
        self.identity = IdentityPlatform(self.tenant, token_lifetime=token_lifetime)
        self.graph = GraphApi(self.tenant)
        # The seed's settings (tenant.config) with the command line's page sizes: what a reset restores.
        self.initial_settings = self.tenant.config.update({"page_size": page_size, "max_page_size": max_page_size})
        self.faults = faultlib.FaultEngine(fault_seed)
        self.faults.set_initial(initial_faults or {})
        self.log = RequestLog()
        self.stats = Stats()
        self.verbose = verbose
        os.makedirs(state_dir, exist_ok=True)
        self.ca = trustme.CA(organization_name="tokenops.entra simulator CA")
        self.ca_bundle = os.path.join(state_dir, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        leaf = self.ca.issue_cert("127.0.0.1", "localhost", "::1")
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(self.ssl_context)
        self.server = SimHTTPServer((host, port), SimHandler, self)
        self.host = host
        self.port = self.server.server_address[1]
        self.base_url = f"https://{host}:{self.port}"
        self.identity.set_base_url(self.base_url)
        self.graph.base_url = self.base_url

    def info(self) -> dict:
        return {
            "authority": f"{self.base_url}/{self.tenant.tenant_id}",
            "authority_host": self.base_url,
            "tenant_id": self.tenant.tenant_id,
            "graph_url": self.base_url,
            "graph_resource": self.base_url,
            "token_endpoint": f"{self.base_url}/{self.tenant.tenant_id}/oauth2/v2.0/token",
            "admin_url": f"{self.base_url}/_admin",
            "managed_identity": {
                "endpoint": f"{self.base_url}/msi/token",
                "header": self.identity.managed_identity_header,
            },
            "ca_bundle": self.ca_bundle,
            "pid": os.getpid(),
            "port": self.port,
        }

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ pipeline
    def process(self, method: str, raw_path: str, raw_query: str, headers: dict, body: bytes) -> Outcome:
        path_lower = raw_path.lower()
        if raw_path.startswith(("/beta/", "/v1.0/")) or raw_path in ("/beta", "/v1.0"):
            kind = "graph"
        elif raw_path == "/msi/token":
            kind = "managed_identity"
        elif "/oauth2/v2.0/" in path_lower or "/v2.0/.well-known/" in path_lower or "/discovery/" in path_lower:
            kind = "identity"
        else:
            self.stats.count("unknown")
            return Outcome(404, {"error": {"code": "NotFound", "message": f"No such endpoint: {raw_path}"}})
        self.stats.count(kind)
        started = time.monotonic()
        entry: dict = {
            "time": _now_iso(),
            "kind": kind,
            "method": method,
            "path": raw_path,
            "query": _split_query(raw_query),
            "client_request_id": headers.get("client-request-id"),
            "user_agent": headers.get("user-agent"),
            "retry_attempt": headers.get("retry-attempt"),
            "write": kind == "graph" and method in WRITE_METHODS and not raw_path.endswith("/$batch"),
        }
        client_id = self._client_hint(kind, headers, raw_query, body)
        entry["client_hint"] = client_id
        decision = self.faults.decide(method=method, path=unquote(raw_path), kind=kind, client_id=client_id)
        if decision.delay_before:
            time.sleep(decision.delay_before)
        if kind == "graph":
            handler = functools.partial(self._graph, method, raw_path, raw_query, headers, body, entry=entry)
        elif kind == "managed_identity":
            handler = functools.partial(self._managed_identity, raw_query, headers, entry)
        else:
            handler = functools.partial(self._identity, method, raw_path, headers, body, entry)
        outcome = self._with_faults(decision, handler, headers, entry)
        if kind == "graph":
            entry.setdefault("handled", self.tenant.next_handled())  # answered without being processed
            if "session" not in entry:  # answered by a fault before the token was looked at
                session = self.identity.session_of(headers.get("authorization"))
                if session:
                    entry["session"] = session
        outcome.delay_after += decision.delay_after
        entry["status"] = None if outcome.reset else outcome.status
        entry["reset"] = outcome.reset
        entry["duration_ms"] = round((time.monotonic() - started + outcome.delay_after) * 1000, 1)
        self.log.add(entry)
        return outcome

    def _with_faults(
        self, decision: faultlib.Decision, handler: Callable[[], Outcome], headers: dict, entry: dict
    ) -> Outcome:
        """Answer with the injected fault instead of processing, or process first and then replace the answer
        (``commit``) or point its next link elsewhere (``next_link``), or just process."""
        entry["faults"] = list(decision.rules)
        action = decision.action
        if action is not None and not decision.commit:
            return self._fault_outcome(action, headers, entry)
        outcome = handler()
        if action is not None and action["type"] == "next_link":
            outcome.body = faultlib.rewrite_next_link(outcome.body, action["base"])
        elif action is not None:
            entry["committed_status"] = outcome.status
            outcome = self._fault_outcome(action, headers, entry)
        return outcome

    def _fault_outcome(self, action: dict, headers: dict, entry: dict) -> Outcome:
        if action["type"] == "reset":
            return Outcome(0, reset=True)
        status = action["status"]
        error = ErrorAnswer(
            status, action.get("code") or _default_code(status), action.get("message") or _default_message(status)
        )
        extra = {}
        retry_after = faultlib.retry_after_header(action)
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        if action.get("quota"):  # answered as that quota's 429
            extra.update(self._throttle_headers(action["quota"], entry.get("client_hint") or "unknown"))
        entry["error_code"] = error.code
        return self._graph_error(error, headers, extra)

    def _graph_headers(self, headers: dict, request_id: str) -> dict:
        return {
            "request-id": request_id,
            "client-request-id": headers.get("client-request-id") or request_id,
            "x-ms-ags-diagnostic": DIAGNOSTIC,
            "x-ms-resource-unit": "1",
            "OData-Version": "4.0",
            "Strict-Transport-Security": "max-age=31536000",
            "Cache-Control": "no-cache",
        }

    def _opaque_errors(self) -> bool:
        return self.tenant.config.error_wording == "opaque"

    def _graph_error(
        self, error: ErrorAnswer, headers: dict, extra: dict | None = None, request_id: str | None = None
    ) -> Outcome:
        request_id = request_id or str(uuid.uuid4())
        body = envelope(error, request_id, headers.get("client-request-id"), opaque=self._opaque_errors())
        if error.status == 429:
            inner = body["error"]["innerError"]
            inner.update({"code": "429", "message": "Please retry after", "status": "429"})
        return Outcome(
            error.status, body, {**self._graph_headers(headers, request_id), **error.headers, **(extra or {})}
        )

    def _graph(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: dict,
        body: bytes,
        *,
        entry: dict,
        principal: Principal | None = None,
        batch_request_id: str | None = None,
    ) -> Outcome:
        """Authenticate, throttle, route. Used for top-level requests and for each batch item."""
        request_id = str(uuid.uuid4())
        entry["request_id"] = request_id
        journal = Journal()
        try:
            parts = raw_path.strip("/").split("/")
            version, segments = parts[0], [unquote(p) for p in parts[1:] if p != ""]
            if principal is None:
                principal = self.identity.authenticate(headers.get("authorization"))
            entry["client_id"] = principal.client_id
            # The access token's unique id (its uti claim): which sign-in, so which client process, sent the request.
            entry["session"] = principal.claims.get("uti")
            if principal.user is not None:
                entry["user"] = principal.user.user_principal_name
            if segments == ["$batch"] and batch_request_id is None:
                if method != "POST":
                    raise ErrorAnswer(
                        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
                    )
                return self._batch(principal, headers, body, request_id)
            self._throttle(principal, segments, entry)
            request = Request(
                method=method,
                segments=segments,
                query=_split_query(raw_query),
                headers=headers,
                body=body,
                principal=principal,
                version=version,
                journal=journal,
            )
            status, payload, extra = self.graph.handle(request)
        except ErrorAnswer as exc:
            entry["error_code"] = exc.code
            if exc.reason:
                entry["reason"] = exc.reason
            return self._graph_error(exc, headers, request_id=request_id)
        finally:
            entry.update(journal.log_fields())
        return Outcome(status, payload, {**self._graph_headers(headers, request_id), **extra})

    def _throttle(self, principal: Principal, segments: list[str], entry: dict) -> None:
        """Raise the 429 of the first quota the request exceeds, if any."""
        # Every request under a user's authentication methods also counts towards methods_rate.
        methods = (segments[:1] == ["me"] and segments[1:2] == ["authentication"]) or (
            segments[:1] == ["users"] and segments[2:3] == ["authentication"]
        )
        config = self.tenant.config
        throttled = self.faults.throttle(
            principal.client_id,
            entry["write"],
            methods,
            model=config.quota_model,
            throttled_requests=config.throttled_requests,
        )
        if throttled:
            quota, wait = throttled
            entry["throttled"] = True
            raise ErrorAnswer(
                429,
                "TooManyRequests",
                "Too many requests. Please retry again later.",
                headers={
                    "Retry-After": faultlib.quota_retry_after(wait),
                    **self._throttle_headers(quota, principal.client_id),
                },
            )

    def _throttle_headers(self, quota: str, client_id: str) -> dict:
        """The x-ms-throttle-* headers of a quota's 429, as the settings have them."""
        config = self.tenant.config
        limit, information = THROTTLE_HEADERS[quota]
        limit = limit or config.write_throttle_limit
        headers = {"x-ms-throttle-scope": f"Tenant_Application/{limit}/{client_id}/{self.tenant.tenant_id}"}
        if config.throttle_information == "sent":
            headers["x-ms-throttle-information"] = information
        return headers

    def _batch(self, principal: Principal, headers: dict, body: bytes, request_id: str) -> Outcome:
        items = _batch_items(body)
        statuses: dict[str, int] = {}
        # When each item's response is ready, in seconds of added latency after the batch started: items without
        # dependsOn run in parallel (batch_parallel) or one after the other; an item starts once its dependencies
        # are done. The batch answers when the last one is.
        done: dict[str, float] = {}
        parallel = self.tenant.config.batch_parallel
        responses = []
        reset = False
        for item in items:
            depends_on = [str(d).lower() for d in item.get("dependsOn") or []]
            started = max([done[d] for d in depends_on], default=0.0) if parallel else max(done.values(), default=0.0)
            failed_deps = [d for d in item.get("dependsOn") or [] if statuses.get(str(d).lower(), 0) >= 400]
            outcome, latency = self._batch_item(principal, item, request_id, failed_deps)
            reset = reset or outcome.reset
            statuses[item["id"].lower()] = outcome.status
            done[item["id"].lower()] = started + latency
            responses.append(_batch_response(item["id"], outcome))
        return Outcome(
            200,
            {"responses": responses},
            self._graph_headers(headers, request_id),
            reset=reset,
            delay_after=max(done.values(), default=0.0),
        )

    def _batch_item(
        self, principal: Principal, item: dict, request_id: str, failed_deps: list
    ) -> tuple[Outcome, float]:
        """Answer one batch item (400 when it depends on more than one request, 424 when a request it depends on
        failed) and log it; with the seconds of latency its faults add."""
        item_headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        method = item["method"].upper()
        url = item["url"] if item["url"].startswith("/") else "/" + item["url"]
        raw_path, _sep, raw_query = url.partition("?")
        raw_path = "/beta" + raw_path
        entry: dict = {
            "time": _now_iso(),
            "kind": "graph",
            "method": method,
            "path": raw_path,
            "query": _split_query(raw_query),
            "client_request_id": item_headers.get("client-request-id"),
            "batch_request_id": request_id,
            "batch_item_id": item["id"],
            "write": method in WRITE_METHODS,
        }
        latency = 0.0
        refusal = _dependency_refusal(item, failed_deps)
        if refusal is not None:
            entry["error_code"] = refusal.code
            outcome = self._graph_error(refusal, item_headers)
        else:
            raw_body = _batch_item_body(item.get("body"))
            decision = self.faults.decide(
                method=method, path=unquote(raw_path), kind="graph", client_id=principal.client_id
            )
            latency = decision.delay_before + decision.delay_after
            handler = functools.partial(
                self._graph,
                method,
                raw_path,
                raw_query,
                item_headers,
                raw_body,
                entry=entry,
                principal=principal,
                batch_request_id=request_id,
            )
            outcome = self._with_faults(decision, handler, item_headers, entry)
        entry.setdefault("handled", self.tenant.next_handled())
        entry.setdefault("session", principal.claims.get("uti"))
        entry["status"] = outcome.status
        self.log.add(entry)
        self.stats.count("batch_items")
        return outcome, latency

    def _identity(self, method: str, raw_path: str, headers: dict, body: bytes, entry: dict) -> Outcome:
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        tenant_segment = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        correlation = headers.get("client-request-id") or str(uuid.uuid4())
        plain = {
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
            "x-ms-request-id": str(uuid.uuid4()),
            "client-request-id": correlation,
        }
        if method == "GET" and rest in ("v2.0/.well-known/openid-configuration", "discovery/v2.0/keys"):
            if not self.identity.tenant_matches(tenant_segment):
                return Outcome(
                    400,
                    IdentityError(400, "invalid_tenant", 90002, f"Tenant '{tenant_segment}' not found.").body(
                        correlation_id=correlation
                    ),
                    plain,
                )
            body_json = self.identity.openid_configuration() if rest.endswith("configuration") else self.identity.jwks()
            return Outcome(200, body_json, plain)
        if rest == "oauth2/v2.0/token":
            if method != "POST":
                return Outcome(405, {"error": "invalid_request", "error_description": "Use POST."}, plain)
            form_client = _split_query(body.decode("utf-8", "replace")).get("client_id")
            entry["client_id"] = (form_client or "").lower() or None
            entry["grant_type"] = _split_query(body.decode("utf-8", "replace")).get("grant_type")
            try:
                request_base = f"https://{headers.get('host', f'{self.host}:{self.port}')}"
                with self.tenant.lock:
                    return Outcome(
                        200,
                        self.identity.token_endpoint(tenant_segment, body, request_base, headers.get("authorization")),
                        plain,
                    )
            except IdentityError as exc:
                entry["error_code"] = exc.error
                entry["reason"] = f"AADSTS{exc.aadsts}"
                return Outcome(exc.status, exc.body(correlation_id=correlation), plain)
        return Outcome(404, {"error": "not_found", "error_description": f"No such endpoint: {raw_path}"}, plain)

    def _managed_identity(self, raw_query: str, headers: dict, entry: dict) -> Outcome:
        query = _split_query(raw_query)
        with self.tenant.lock:
            status, body = self.identity.managed_identity_token(query, headers.get("x-identity-header"))
        entry["client_id"] = body.get("client_id")
        return Outcome(status, body, {"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ admin API
    def admin(self, method: str, raw_path: str, raw_query: str, body: bytes) -> Outcome:
        self.stats.count("admin")
        route = raw_path[len("/_admin") :].strip("/")
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return Outcome(400, {"error": "the body must be JSON"})
        try:
            return self._admin_route(method, route, _split_query(raw_query), data)
        except ErrorAnswer as exc:
            return Outcome(exc.status, {"error": exc.message})
        except KeyError as exc:
            return Outcome(400, {"error": f"missing field {exc}"})
        except (faultlib.FaultConfigError, ValueError, TypeError) as exc:
            return Outcome(400, {"error": str(exc)})

    def _admin_route(self, method: str, route: str, query: dict, data: Any) -> Outcome:
        if route == "requests" and method == "GET":
            entries = self.log.query(query)
            return Outcome(200, {"requests": entries, "count": len(entries), "dropped": self.log.dropped})
        if route == "requests" and method == "DELETE":
            self.log.clear()
            return Outcome(204)
        if route == "state" and method == "GET":
            with self.tenant.lock:
                return Outcome(200, self.tenant.state_json())
        if route == "faults" and method == "GET":
            return Outcome(200, self.faults.state())
        if route == "faults" and method == "POST":
            self.faults.configure(data)
            return Outcome(200, self.faults.state())
        if route == "faults" and method == "DELETE":
            self.faults.reset()
            return Outcome(200, self.faults.state())
        if route == "reset" and method == "POST":
            with self.tenant.lock:
                self.tenant.reset()
                self.tenant.config.update(self.initial_settings)
            self.faults.reset()
            self.log.clear()
            return Outcome(204)
        if route == "settings" and method == "GET":
            with self.tenant.lock:
                return Outcome(200, self.tenant.config.as_dict())
        if route == "settings" and method == "POST":
            with self.tenant.lock:
                return Outcome(200, self.tenant.config.update(data))
        if route == "clock" and method == "POST":
            self.tenant.clock_offset = float(data.get("offset_seconds", 0))
            return Outcome(200, {"offset_seconds": self.tenant.clock_offset, "now": self.tenant.now()})
        if route == "tokens" and method == "POST":
            return Outcome(200, self._mint(data))
        if route == "federated-assertions" and method == "POST":
            assertion = self.identity.mint_federated_assertion(
                str(data["issuer"]),
                str(data["subject"]),
                str(data.get("audience", "api://AzureADTokenExchange")),
                int(data.get("lifetime", 600)),
            )
            return Outcome(200, {"assertion": assertion})
        if route == "info" and method == "GET":
            return Outcome(200, self.info())
        if route == "stats" and method == "GET":
            return Outcome(200, self.stats_json(query.get("check_indexes", "").lower() in ("1", "true")))
        return Outcome(404, {"error": f"no admin route {method} /_admin/{route}"})

    def stats_json(self, check_indexes: bool = False) -> dict:
        """``GET /_admin/stats``: the process's CPU time and requests since the start, the objects reads examined,
        the tenant's size; with ``check_indexes`` (a full rebuild, for tests) whether its indexes are consistent."""
        out = self.stats.snapshot()
        with self.tenant.lock:
            out["examined"] = dict(self.tenant.examined)
            out["tenant"] = {
                "tokens": len(self.tenant.tokens),
                "users": len(self.tenant.users),
                "remembered_versions": len(self.tenant.versions),
            }
            if check_indexes:
                problems = self.tenant.check_indexes()
                out["indexes"] = {"consistent": not problems, "problems": problems}
        return out

    def _client_hint(self, kind: str, headers: dict, raw_query: str, body: bytes) -> str | None:
        known = self.identity.known_claims(headers.get("authorization", "")[7:]) if kind == "graph" else None
        return _client_hint(kind, headers, raw_query, body, known)

    def _mint(self, data: dict) -> dict:
        """Mint an access token directly: app-only, delegated (``user``), or for a managed identity."""
        resource = data.get("resource", "https://graph.microsoft.com")
        lifetime = data.get("lifetime")
        common = {
            "resource": resource,
            "lifetime": None if lifetime is None else int(lifetime),
            "tenant_id": data.get("tenant_id"),
            "foreign": bool(data.get("foreign", False)),
        }
        with self.tenant.lock:
            if data.get("managed_identity"):
                mi = self.tenant.managed_identities.get(str(data["managed_identity"]).lower())
                if mi is None:
                    raise ErrorAnswer(404, "notFound", f"no managed identity {data['managed_identity']}")
                token, lifetime = self.identity.mint_access_token(
                    client_id=mi.client_id,
                    app_display_name=mi.display_name,
                    object_id=mi.object_id,
                    roles=data.get("roles", mi.application_permissions),
                    appidacr="2",
                    **common,
                )
            else:
                app = self.tenant.apps.get(str(data["client_id"]).lower())
                if app is None:
                    raise ErrorAnswer(404, "notFound", f"no app {data['client_id']}")
                if data.get("user"):
                    user = self.tenant.require_user(str(data["user"]))
                    token, lifetime = self.identity.mint_access_token(
                        client_id=app.client_id,
                        app_display_name=app.display_name,
                        object_id=user.id,
                        user=user,
                        scopes=data.get("scopes", app.delegated_permissions),
                        **common,
                    )
                else:
                    token, lifetime = self.identity.mint_access_token(
                        client_id=app.client_id,
                        app_display_name=app.display_name,
                        object_id=app.object_id,
                        roles=data.get("roles", app.application_permissions),
                        **common,
                    )
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}


def _client_hint(kind: str, headers: dict, raw_query: str, body: bytes, known: dict | None = None) -> str | None:
    """The client id a request claims, unverified: only used to match fault rules, never to authorize. ``known``:
    the claims of its access token if they are already known (verified before)."""
    if kind == "graph":
        auth = headers.get("authorization", "")
        if known is not None:
            return str(known.get("appid", "")).lower() or None
        try:
            return str(jwt.decode(auth[7:], options={"verify_signature": False}).get("appid", "")).lower() or None
        except jwt.PyJWTError:
            return None
    source = raw_query if kind == "managed_identity" else body.decode("utf-8", "replace")
    return (_split_query(source).get("client_id") or "").lower() or None


def _batch_items(body: bytes) -> list[dict]:
    """The items of a ``$batch`` body, checked as Graph checks them before running any."""
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise odata_bad_request("Unable to read JSON request payload.") from exc
    items = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise odata_bad_request("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(items) > MAX_BATCH:
        raise odata_bad_request(f"Number of requests in a batch exceeds the limit of {MAX_BATCH}.")
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        _check_batch_item(item, seen)
        seen[item["id"].lower()] = index
    return items


def _check_batch_item(item: Any, seen: dict[str, int]) -> None:
    """One item: an unused id, a method and a relative url, Content-Type with a body, dependencies listed before it
    (``seen``: the ids before it, lower case)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise odata_bad_request("Each batch request must have a non-empty string 'id'.")
    if item["id"].lower() in seen:
        raise odata_bad_request(f"Batch request ids must be unique; '{item['id']}' is repeated.")
    if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
        raise odata_bad_request(f"Batch request '{item['id']}' needs a 'method' and a 'url'.")
    if "://" in item["url"]:
        raise odata_bad_request(f"Batch request '{item['id']}': the url must be relative, without the version.")
    item_headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
    if "body" in item and "content-type" not in item_headers:
        raise odata_bad_request(f"Batch request '{item['id']}': a Content-Type header is required with a body.")
    for dep in item.get("dependsOn") or []:
        if str(dep).lower() not in seen:
            raise odata_bad_request(
                f"Invalid dependency for request Id '{item['id']}': '{dep}' must be a request listed before it."
            )


def _batch_item_body(body: Any) -> bytes:
    """A batch item's ``body`` as the bytes of a request: a string as it is, anything else as JSON."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _dependency_refusal(item: dict, failed_deps: list) -> ErrorAnswer | None:
    """Why a batch item is answered without being run, if it is: Graph's known issue (a request depends on one other
    request at most) refuses the item, not the batch (*simulator choice*); a failed dependency is a 424."""
    depends_on = item.get("dependsOn") or []
    if len(depends_on) > 1:
        return odata_bad_request(
            f"Batch request '{item['id']}' depends on {len(depends_on)} requests; "
            "a request can depend on one other request only."
        )
    if failed_deps:
        failed = ", ".join(failed_deps)
        return ErrorAnswer(424, "FailedDependency", f"The request depends on failed request(s) {failed}.")
    return None


def _batch_response(item_id: str, outcome: Outcome) -> dict:
    """A batch item's entry in ``responses``: its status, the headers a client needs, and its body."""
    response: dict = {
        "id": item_id,
        "status": outcome.status,
        "headers": {
            k: v
            for k, v in outcome.headers.items()
            if k.lower()
            in (
                "retry-after",
                "location",
                "request-id",
                "client-request-id",
                "x-ms-throttle-scope",
                "x-ms-throttle-information",
            )
        },
    }
    if outcome.body is not None:
        response["headers"]["Content-Type"] = GRAPH_CONTENT_TYPE
        response["body"] = outcome.body
    return response


def _default_code(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "generalException",
        502: "badGateway",
        503: "serviceNotAvailable",
        504: "gatewayTimeout",
    }.get(status, "simulatedFault")


def _default_message(status: int) -> str:
    return {
        429: "Please retry again later.",
        500: "General exception while processing.",
        503: "The service is temporarily unavailable. Please retry later.",
        504: "The gateway timed out waiting for the backend.",
    }.get(status, f"Injected fault {status}.")


class SimHTTPServer(Server):
    request_queue_size = 128

    def __init__(self, address: tuple, handler: type, simulator: Simulator) -> None:
        self.simulator = simulator
        self.ssl_context = simulator.ssl_context
        super().__init__(address, handler)


class SimHandler(RequestHandler):
    server_version = "entrasim/1.0"
    server: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  pylint: disable=redefined-builtin
        if self.server.simulator.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        started = time.thread_time()
        body = self.read_body()
        raw_path, _sep, raw_query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        simulator = self.server.simulator
        if raw_path == "/_admin" or raw_path.startswith("/_admin/"):
            outcome = simulator.admin(self.command, raw_path, raw_query, body)
            self._answer(outcome)
            return
        try:
            self._answer(simulator.process(self.command, raw_path, raw_query, headers, body))
        finally:
            simulator.stats.add_handling(time.thread_time() - started)

    def _answer(self, outcome: Outcome) -> None:
        if outcome.delay_after:
            time.sleep(outcome.delay_after)
        if outcome.reset:
            self._reset()
            return
        self._send(outcome)

    def _reset(self) -> None:
        """Abort the TCP connection (RST) without any response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()

    def _send(self, outcome: Outcome) -> None:
        payload = b""
        content_type = None
        if isinstance(outcome.body, bytes):
            payload = outcome.body
        elif outcome.body is not None:
            payload = json.dumps(outcome.body).encode()
            content_type = GRAPH_CONTENT_TYPE if "request-id" in outcome.headers else "application/json; charset=utf-8"
        self.send_response(outcome.status)
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _dispatch
