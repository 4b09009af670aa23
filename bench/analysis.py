"""What the simulator's request log (``GET /_admin/requests``) says about one run: round trips, writes, the bounds
of docs/performance.md, where the time went (requests per path, requests in flight, idle gaps) and the timeline
the plot draws."""

from __future__ import annotations

import collections
import datetime
import math
import re
from typing import Any, Iterable

ROUND_TRIP_KINDS = ("graph", "identity", "managed_identity")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A request about one token or one user's methods: the work the module spreads over `concurrency` threads.
PER_TOKEN = re.compile(r"/users/[^/]+/authentication/|/hardwareOathDevices/[^/?]+")
METHODS = re.compile(r"/(users/[^/]+|me)/authentication/")
ACTIVATIONS = re.compile(r"/hardwareOathMethods/([^/]+/activate|assignAndActivate(BySerialNumber)?)$")
METHOD_ACTIONS = {"assignAndActivate", "assignAndActivateBySerialNumber", "activate", "deactivate", "device"}


def started(entry: dict) -> float:
    """When the simulator received the request (epoch seconds)."""
    return datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def finished(entry: dict) -> float:
    """When its answer left (the log's duration includes the injected latency)."""
    return started(entry) + (entry.get("duration_ms") or 0) / 1000


def round_trips(log: Iterable[dict]) -> list[dict]:
    """HTTP round trips to Graph and the identity platform: a $batch is one (its items are not)."""
    return [e for e in log if e["kind"] in ROUND_TRIP_KINDS and "batch_request_id" not in e]


def template(entry: dict) -> str:
    """The request's method and path with ids, user names and tenants replaced: what the per-path counts group by."""
    parts = entry["path"].split("/")
    out = []
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else ""
        if before == "users" or (entry["kind"] == "identity" and index == 1):
            out.append("{user}" if before == "users" else "{tenant}")
        elif GUID.match(part) or (
            before in ("hardwareOathDevices", "hardwareOathMethods") and part not in METHOD_ACTIONS
        ):
            out.append("{id}")
        else:
            out.append(part)
    return f"{entry['method']} {'/'.join(out)}"


def writes_served(log: Iterable[dict]) -> list[dict]:
    """Graph writes the service carried out: those the work needs (the bounds count them; a write answered 429 is
    charged too when the simulator's throttled_requests is charged, but a run that keeps to the quota has none). A
    bulk creation is one write, whatever it holds."""
    return [e for e in log if e.get("write") and e.get("status") not in (None, 429)]


def per_path(log: Iterable[dict]) -> dict[str, dict[str, int]]:
    """Round trips (and batch items, marked) by method and path template, then by status."""
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for entry in log:
        if entry["kind"] not in ROUND_TRIP_KINDS:
            continue
        key = template(entry) + (" (in $batch)" if "batch_request_id" in entry else "")
        table[key][str(entry.get("status"))] += 1
    return {key: dict(sorted(counter.items())) for key, counter in sorted(table.items())}


def critical_path(log: Iterable[dict], concurrency: int) -> dict[str, int]:
    """The round trips on the critical path at ``concurrency``: every request that is not about one token (sign-in,
    listings, $batch, bulk creations) one after the other, then the per-token requests spread over ``concurrency``
    threads (never fewer than the longest chain of requests about one token)."""
    trips = round_trips(log)
    per_token = [e for e in trips if e["kind"] == "graph" and PER_TOKEN.search(e["path"])]
    chains = collections.Counter(_token_key(e["path"]) for e in per_token)
    sequential = len(trips) - len(per_token)
    spread = max([*chains.values(), math.ceil(len(per_token) / max(1, concurrency))])
    return {"sequential": sequential, "per_token": len(per_token), "spread": spread, "critical": sequential + spread}


def _token_key(path: str) -> str:
    """The token a per-token request is about: its device or method id, else its user."""
    parts = path.split("/")
    for name in ("hardwareOathDevices", "hardwareOathMethods"):
        if name in parts:
            index = parts.index(name)
            if index + 1 < len(parts) and parts[index + 1] not in METHOD_ACTIONS:
                return parts[index + 1]
    return parts[parts.index("users") + 1] if "users" in parts else path


def quota_bound(served: int, burst: int, rate: float) -> float:
    """Seconds a bucket of ``burst`` refilled at ``rate`` a second needs to serve ``served`` requests."""
    return max(0, served - burst) / rate


def window_bound(served: int, most: int, seconds: float, concurrency: int, latency: float) -> float:
    """Seconds a quota of ``most`` requests in any window of ``seconds`` (sliding, or fixed from the first request)
    needs to serve ``served`` requests: ``most`` at once, then ``most`` more every window; the requests of the last
    window on ``concurrency`` at a time, ``latency`` seconds each."""
    windows = max(0, math.ceil(served / most) - 1)
    return windows * seconds + math.ceil((served - windows * most) / concurrency) * latency


def span(log: list[dict]) -> dict[str, float | None]:
    """First request received, last answer sent, first and last write (epoch seconds)."""
    trips = round_trips(log)
    writes = [e for e in trips if e.get("write")]
    return {
        "first": min((started(e) for e in trips), default=None),
        "last": max((finished(e) for e in trips), default=None),
        "first_write": min((started(e) for e in writes), default=None),
        "last_write": max((finished(e) for e in writes), default=None),
    }


def in_flight(log: Iterable[dict], predicate: Any = None) -> dict[str, float]:
    """Requests in flight at the simulator (round trips matching ``predicate``): the most at once, the mean over
    the time from the first to the last, and the idle time within it (no such request in flight): time spent
    in the client (its CPU, the pacer's waits, a Retry-After pause)."""
    intervals = sorted((started(e), finished(e)) for e in round_trips(log) if predicate is None or predicate(e))
    if not intervals:
        return {"requests": 0, "max": 0, "mean": 0.0, "span_s": 0.0, "idle_s": 0.0, "longest_idle_s": 0.0}
    events = sorted([(start, 1) for start, _end in intervals] + [(end, -1) for _start, end in intervals])
    current = peak = 0
    busy = weighted = idle = longest = 0.0
    previous = events[0][0]
    for when, change in events:
        elapsed = when - previous
        if current:
            busy += elapsed
            weighted += elapsed * current
        else:
            idle += elapsed
            longest = max(longest, elapsed)
        current += change
        peak = max(peak, current)
        previous = when
    total = intervals[-1][1] - intervals[0][0] if intervals else 0.0
    total = max(total, events[-1][0] - events[0][0])
    return {
        "requests": len(intervals),
        "max": peak,
        "mean": round(weighted / total, 2) if total else 0.0,
        "span_s": round(total, 3),
        "idle_s": round(idle, 3),
        "longest_idle_s": round(longest, 3),
    }


def gaps(log: Iterable[dict], least: float = 0.25) -> list[tuple[float, float]]:
    """(when, seconds) of each stretch of at least ``least`` seconds without a round trip in flight, from the first
    request: where the client did not talk to the service."""
    trips = sorted((started(e), finished(e)) for e in round_trips(log))
    if not trips:
        return []
    origin = trips[0][0]
    out = []
    reach = trips[0][1]
    for start, end in trips[1:]:
        if start - reach >= least:
            out.append((round(reach - origin, 3), round(start - reach, 3)))
        reach = max(reach, end)
    return out


def throttled(log: Iterable[dict]) -> dict[str, Any]:
    """429 answers: how many, to writes and to requests under users' authentication methods, and from which rule
    (the quota's, or an injected fault)."""
    answered = [e for e in log if e.get("status") == 429]
    return {
        "total": len(answered),
        "writes": sum(1 for e in answered if e.get("write")),
        "methods": sum(1 for e in answered if METHODS.search(e["path"])),
        "quota": sum(1 for e in answered if e.get("throttled")),
        "injected": sum(1 for e in answered if e.get("faults")),
    }


def methods_requests(log: Iterable[dict]) -> list[dict]:
    return [e for e in log if e["kind"] == "graph" and METHODS.search(e["path"])]


def timeline(log: list[dict], origin: float) -> dict[str, list[tuple[float, int]]]:
    """Cumulative counts over time (seconds from ``origin``): tokens activated (answered 2xx), writes served, and
    requests under users' authentication methods served."""
    activated = sorted(finished(e) - origin for e in log if ACTIVATIONS.search(e["path"]) and 200 <= e["status"] < 300)
    writes = sorted(finished(e) - origin for e in writes_served(log))
    methods = sorted(finished(e) - origin for e in methods_requests(log) if e.get("status") not in (None, 429))
    return {
        name: [(round(t, 3), n + 1) for n, t in enumerate(times)]
        for name, times in (("activated", activated), ("writes", writes), ("methods", methods))
    }
