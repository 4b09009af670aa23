"""Fault injection and Graph's throttling quotas.

A rule matches requests (path regex, method, kind, client id), optionally with a probability, after skipping the
first ``skip`` matches and for the next ``count`` matches only. Its action is one of:

* ``{"type": "status", "status": 429|500|503|504|..., "retry_after": 2 | 2.5 | "2" | null, "retry_after_format":
  "seconds"|"http-date", "quota": "write_quota"|"read_rate"|"methods_rate"}``: answer with that status in Graph's
  envelope (a 429 with ``quota``: with that quota's throttle headers, as the settings have them);
* ``{"type": "reset"}``: drop the connection without a response;
* ``{"type": "latency", "ms": N, "jitter_ms": M}``: delay the response;
* ``{"type": "next_link", "base": "https://127.0.0.1:PORT"}``: process the request, then point the answer's
  ``@odata.nextLink`` (if any) at ``base``: its scheme and authority are replaced, its path and query kept. Tests
  use it to hand a client a link to another host, port or scheme.

``"commit": true`` on an action processes the request first (the write takes effect) and then applies the fault:
``{"type": "reset", "commit": true}`` is "commit then drop"; a latency with ``commit`` delays an already committed
response (a client time-out after a write). ``{"type": "commit_then_drop"}`` is accepted as shorthand.

Quotas are counted per application: ``write_quota`` (default 3,000 writes per 150 s, Graph's identity write limit
per app and tenant), ``read_rate`` (default 3,500 reads per 10 s) and ``methods_rate`` (off unless set; ``true`` is 5
requests per 10 s, the strict reading of Graph's limit for ``authenticationMethod``), which counts every request under
``/users/{id}/authentication/`` or ``/me/authentication/`` besides the other quotas. When a quota is used up the
request is answered 429 with an integer ``Retry-After`` (the seconds until it is served again, at least 1) and
Graph's throttle headers.

Graph documents a token bucket of N requests per S seconds, and that requests sent while throttled accrue against
the limits too; it does not say how the bucket refills, nor how a refused request is charged. So how a quota counts
is a setting (``QUOTA_MODELS``: the settings ``quota_model`` and ``throttled_requests``, docs/simulator.md,
"Fidelity"): a token bucket that refills continuously (``token_bucket``, the default: N at once, then N/S a second),
the requests of the last S seconds (``sliding_window``) or those since the start of the current window of S seconds,
the first window starting at the app's first request (``fixed_window``); and a refused request charged like a served
one (``charged``, the default: it lengthens the throttling) or not at all (``free``).
"""

from __future__ import annotations

import collections
import email.utils
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ACTION_TYPES = ("status", "reset", "latency", "next_link")
DEFAULT_WRITE_QUOTA = {"requests": 3000, "per_seconds": 150.0}
DEFAULT_READ_RATE = {"requests": 3500, "per_seconds": 10.0}
DEFAULT_METHODS_RATE = {"requests": 5, "per_seconds": 10.0}
# Quota name -> (its value for ``true``, its value when nothing configures it: None is off).
QUOTAS: dict[str, tuple[dict, dict | None]] = {
    "write_quota": (DEFAULT_WRITE_QUOTA, DEFAULT_WRITE_QUOTA),
    "read_rate": (DEFAULT_READ_RATE, DEFAULT_READ_RATE),
    "methods_rate": (DEFAULT_METHODS_RATE, None),
}


class FaultConfigError(ValueError):
    pass


@dataclass
class Rule:
    name: str
    action: dict
    path: re.Pattern | None = None
    method: str | None = None
    kind: str | None = None
    client_id: str | None = None
    probability: float = 1.0
    count: int | None = None
    skip: int = 0
    matched: int = 0
    applied: int = 0

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "action": self.action,
            "match": {
                "path": self.path.pattern if self.path else None,
                "method": self.method,
                "kind": self.kind,
                "client_id": self.client_id,
            },
            "probability": self.probability,
            "count": self.count,
            "skip": self.skip,
            "matched": self.matched,
            "applied": self.applied,
        }


@dataclass
class Decision:
    """What to do with one request."""

    delay_before: float = 0.0
    delay_after: float = 0.0
    action: dict | None = None  # a status, reset or next_link action
    commit: bool = False  # process the request before applying ``action`` (always for next_link)
    rules: list[str] = field(default_factory=list)


class TokenBucket:
    """``capacity`` requests at once, refilled continuously at ``capacity / per_seconds`` a second. A charged refusal
    takes a token it does not have: the bucket goes below zero (down to ``-capacity``, a window's worth at most), so
    the requests sent while throttled keep it throttled for longer."""

    def __init__(self, capacity: float, per_seconds: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = float(capacity) / float(per_seconds)
        self.tokens = float(capacity)
        self.updated = now

    def wait(self, now: float) -> float:
        """0 when a request may be served now, else the seconds until one may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:  # pylint: disable=unused-argument
        """Charge one request (after :meth:`wait`)."""
        self.tokens = max(-self.capacity, self.tokens - 1)


class SlidingWindow:
    """At most ``capacity`` requests charged in the last ``per_seconds`` seconds."""

    def __init__(self, capacity: float, per_seconds: float, now: float) -> None:  # pylint: disable=unused-argument
        self.capacity = int(capacity)
        self.span = float(per_seconds)
        self.charged: collections.deque[float] = collections.deque()  # when each request was charged, oldest first

    def wait(self, now: float) -> float:
        while self.charged and self.charged[0] <= now - self.span:
            self.charged.popleft()
        over = len(self.charged) - self.capacity  # the requests that must leave the window first, less one
        return 0.0 if over < 0 else self.charged[over] + self.span - now

    def take(self, now: float) -> None:
        self.charged.append(now)


class FixedWindow:
    """At most ``capacity`` requests charged in each window of ``per_seconds`` seconds, the first starting at the
    first request."""

    def __init__(self, capacity: float, per_seconds: float, now: float) -> None:
        self.capacity = int(capacity)
        self.span = float(per_seconds)
        self.start = now  # of the current window
        self.count = 0

    def wait(self, now: float) -> float:
        if now >= self.start + self.span:
            self.start += self.span * math.floor((now - self.start) / self.span)
            self.count = 0
        return 0.0 if self.count < self.capacity else self.start + self.span - now

    def take(self, now: float) -> None:  # pylint: disable=unused-argument
        self.count += 1


Counter = TokenBucket | SlidingWindow | FixedWindow
# How a quota counts (the setting quota_model), and how it charges a refused request (the setting throttled_requests).
QUOTA_MODELS: dict[str, type[Counter]] = {
    "token_bucket": TokenBucket,
    "sliding_window": SlidingWindow,
    "fixed_window": FixedWindow,
}
THROTTLED_REQUESTS = ("charged", "free")


def _quota(spec: Any, default: dict, name: str) -> dict | None:
    if spec is None or spec is False:
        return None
    if spec is True:
        return dict(default)
    if not isinstance(spec, dict):
        raise FaultConfigError(f"{name} must be a mapping with 'requests' and 'per_seconds', or false")
    if spec.get("enabled") is False:
        return None
    out = {
        "requests": int(spec.get("requests", default["requests"])),
        "per_seconds": float(spec.get("per_seconds", default["per_seconds"])),
    }
    if out["requests"] < 1 or out["per_seconds"] <= 0:
        raise FaultConfigError(f"{name}: requests must be >= 1 and per_seconds > 0")
    return out


def _initial_quotas() -> dict[str, dict | None]:
    return {name: None if initial is None else dict(initial) for name, (_true, initial) in QUOTAS.items()}


def parse_quota_arg(text: str) -> dict | None:
    """``N/S`` (N requests per S seconds), or ``off``."""
    if text == "off":
        return None
    match = re.fullmatch(r"(\d+)/(\d+(?:\.\d+)?)", text)
    if not match:
        raise FaultConfigError(f"quota '{text}' must look like 3000/150 or be 'off'")
    return {"requests": int(match.group(1)), "per_seconds": float(match.group(2))}


def _rule(spec: dict, index: int) -> Rule:
    if not isinstance(spec, dict):
        raise FaultConfigError(f"rules[{index}] must be a mapping")
    action = dict(spec.get("action") or {})
    if action.get("type") == "commit_then_drop":
        action = {"type": "reset", "commit": True}
    if action.get("type") not in ACTION_TYPES:
        raise FaultConfigError(
            f"rules[{index}].action.type must be one of {', '.join(ACTION_TYPES)} or commit_then_drop"
        )
    if action["type"] == "status":
        status = action.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultConfigError(f"rules[{index}].action.status must be an HTTP error status")
        if action.get("retry_after_format", "seconds") not in ("seconds", "http-date"):
            raise FaultConfigError(f"rules[{index}].action.retry_after_format must be seconds or http-date")
        if "quota" in action and (status != 429 or action["quota"] not in QUOTAS):
            raise FaultConfigError(f"rules[{index}].action.quota needs status 429 and one of {', '.join(QUOTAS)}")
    if action["type"] == "latency" and not isinstance(action.get("ms"), (int, float)):
        raise FaultConfigError(f"rules[{index}].action.ms is required for latency")
    if action["type"] == "next_link" and not _valid_base(action.get("base")):
        raise FaultConfigError(
            f"rules[{index}].action.base must be an absolute http or https URL with a host and "
            "no path, query or fragment, like https://127.0.0.1:8443"
        )
    match = spec.get("match") or {}
    try:
        path = re.compile(match["path"]) if match.get("path") else None
    except re.error as exc:
        raise FaultConfigError(f"rules[{index}].match.path: {exc}") from exc
    probability = float(spec.get("probability", 1.0))
    if not 0.0 <= probability <= 1.0:
        raise FaultConfigError(f"rules[{index}].probability must be within 0..1")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultConfigError(f"rules[{index}].count must be a positive integer")
    return Rule(
        name=str(spec.get("name") or f"rule{index}"),
        action=action,
        path=path,
        method=(match.get("method") or "").upper() or None,
        kind=match.get("kind"),
        client_id=(match.get("client_id") or "").lower() or None,
        probability=probability,
        count=count,
        skip=int(spec.get("skip", 0)),
    )


def _valid_base(base: Any) -> bool:
    if not isinstance(base, str):
        return False
    try:
        parts = urlsplit(base)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port != 0
        and parts.username is None
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def rewrite_next_link(body: Any, base: str) -> Any:
    """``body`` with the scheme and authority of its ``@odata.nextLink`` replaced by those of ``base``; any other
    body unchanged."""
    if not isinstance(body, dict) or not isinstance(body.get("@odata.nextLink"), str):
        return body
    link, target = urlsplit(body["@odata.nextLink"]), urlsplit(base)
    return {**body, "@odata.nextLink": urlunsplit(link._replace(scheme=target.scheme, netloc=target.netloc))}


class FaultEngine:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._initial: dict = {}
        self.rules: list[Rule] = []
        self.latency: dict = {"ms": 0, "jitter_ms": 0}
        # Quota name -> {"requests", "per_seconds"} or None (off).
        self.quotas: dict[str, dict | None] = _initial_quotas()
        self._buckets: dict[tuple[str, str, str], Counter] = {}

    def set_initial(self, spec: dict) -> None:
        """The start-up configuration, restored by :meth:`reset`."""
        self.configure(spec)
        self._initial = spec

    def reset(self) -> None:
        with self._lock:
            self.rules = []
            self.latency = {"ms": 0, "jitter_ms": 0}
            self.quotas = _initial_quotas()
            self._buckets.clear()
            self._rng.seed(self._seed)
        self.configure(self._initial)

    def configure(self, spec: dict) -> None:
        """Apply a fault specification. ``rules`` replace the current rules unless ``"append": true``."""
        if not isinstance(spec, dict):
            raise FaultConfigError("the fault specification must be a JSON object")
        rules = [_rule(r, i) for i, r in enumerate(spec.get("rules") or [])]
        latency = spec.get("latency")
        if latency is not None and (
            not isinstance(latency, dict) or not isinstance(latency.get("ms", 0), (int, float))
        ):
            raise FaultConfigError('latency must be a mapping like {"ms": 50, "jitter_ms": 10}')
        quotas = {name: _quota(spec[name], QUOTAS[name][0], name) for name in QUOTAS if name in spec}
        if "seed" in spec:
            self._rng.seed(spec["seed"])
        with self._lock:
            if "rules" in spec:
                self.rules = (self.rules + rules) if spec.get("append") else rules
            if latency is not None:
                self.latency = {"ms": float(latency.get("ms", 0)), "jitter_ms": float(latency.get("jitter_ms", 0))}
            for name, quota in quotas.items():
                self.quotas[name] = quota  # and its buckets refill
                self._buckets = {k: v for k, v in self._buckets.items() if k[0] != name}

    def state(self) -> dict:
        with self._lock:
            return {"rules": [r.to_json() for r in self.rules], "latency": dict(self.latency), **self.quotas}

    def _jitter(self, ms: float, jitter_ms: float) -> float:
        return max(0.0, ms + (self._rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0)) / 1000.0

    def decide(self, *, method: str, path: str, kind: str, client_id: str | None) -> Decision:
        decision = Decision()
        with self._lock:
            decision.delay_before = self._jitter(self.latency["ms"], self.latency["jitter_ms"])
            for rule in self.rules:
                if rule.count is not None and rule.applied >= rule.count:
                    continue
                if rule.method and rule.method != method or rule.kind and rule.kind != kind:
                    continue
                if rule.client_id and rule.client_id != (client_id or ""):
                    continue
                if rule.path and not rule.path.search(path):
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                action = rule.action
                if action["type"] == "latency":
                    rule.applied += 1
                    delay = self._jitter(action["ms"], action.get("jitter_ms", 0))
                    if action.get("commit"):
                        decision.delay_after += delay
                    else:
                        decision.delay_before += delay
                    decision.rules.append(rule.name)
                    continue
                if decision.action is None:
                    rule.applied += 1
                    decision.action = action
                    decision.commit = bool(action.get("commit")) or action["type"] == "next_link"
                    decision.rules.append(rule.name)
        return decision

    def throttle(
        self,
        client_id: str,
        write: bool,
        methods: bool = False,
        *,
        model: str = "token_bucket",
        throttled_requests: str = "charged",
        now: float | None = None,
    ) -> tuple[str, float] | None:
        """Charge the app's quotas (the write or the read one, and the methods one for a request under a user's
        authentication methods), counted as ``model`` (a QUOTA_MODELS name). None when every quota had room (each is
        then charged one), else the first quota that is used up and the seconds until it has room again. A refused
        request is charged to each of its quotas too when ``throttled_requests`` is ``charged``, and nothing when it
        is ``free``. ``now``: the time (seconds, monotonic), for tests."""
        names = ["write_quota" if write else "read_rate"] + (["methods_rate"] if methods else [])
        now = time.monotonic() if now is None else now
        with self._lock:
            counters: list[Counter] = []
            refused: tuple[str, Counter] | None = None
            for name in names:
                quota = self.quotas[name]
                if quota is None:
                    continue
                key = (name, client_id, model)
                counter = self._buckets.get(key)
                if counter is None:
                    counter = self._buckets[key] = QUOTA_MODELS[model](quota["requests"], quota["per_seconds"], now)
                counters.append(counter)
                if counter.wait(now) and refused is None:
                    refused = name, counter
            if refused is None or throttled_requests == "charged":
                for counter in counters:
                    counter.take(now)
            if refused is None:
                return None
            name, counter = refused
            return name, counter.wait(now)


def retry_after_header(action: dict) -> str | None:
    value = action.get("retry_after", 1 if action.get("status") == 429 else None)
    if value is None:
        return None
    if action.get("retry_after_format") == "http-date":
        return email.utils.formatdate(time.time() + float(value), usegmt=True)
    return str(value)


def quota_retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
