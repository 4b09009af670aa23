"""The targets of docs/performance.md as one table (``TARGETS``), and how each is judged against the runs.

A target reads one figure from each run of its scenario (the run summaries of scenarios.py), takes the median or the
worst of them, and compares that with its limit: a number, or a multiple of another figure of the same benchmark run
(``Scaled``). The ratio figure / limit is met at most 1 for "<=", at least 1 for ">=". A timing target is not judged
in the short run, which is not timed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

Runs = dict[str, list[dict]]  # the runs of each scenario, by scenario ("1" to "7")
MEDIAN, WORST = "median", "worst run"  # what a target's figure is: the median run's, or the worst run's


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def median_run(items: list[dict]) -> dict | None:
    """The run of median wall time (of two in the middle, the slower)."""
    if not items:
        return None
    return sorted(items, key=lambda r: r["wall_s"])[len(items) // 2]


def tokens(runs: Runs, scenario: str) -> int:
    """How many tokens the scenario declares (0 when it did not run)."""
    return runs[scenario][0]["tokens"] if runs.get(scenario) else 0


# ---------------------------------------------------------------------- the figure of each run
def per_run(scenario: str, field: str) -> Callable[[Runs], list[float]]:
    """The field of each run of the scenario that has it."""

    def values(runs: Runs) -> list[float]:
        return [run[field] for run in runs.get(scenario, []) if run[field] is not None]

    return values


def per_token(items: list[dict]) -> float | None:
    """The median wall time per token."""
    return median([run["wall_s"] / run["tokens"] for run in items])


def speedups(runs: Runs) -> list[float]:
    """Target 4: each loop run's time per token over the median time per token of target 1."""
    if not (runs.get("4") and runs.get("1")):
        return []
    inventory = per_token(runs["1"]) or 1.0
    return [run["wall_s"] / run["tokens"] / inventory for run in runs["4"]]


def converged_every_token(runs: Runs) -> list[float]:
    """Target 5a: 1 for a faulted run that succeeded and converged every token, 0 for one that did not."""
    return [float(run["rc"] == 0 and run.get("converged") == run["tokens"]) for run in runs.get("5", [])]


def writes_answered_429(runs: Runs) -> list[float]:
    """Target 7b: the share of the write requests answered 429."""
    return [run["quota"]["share_429"] for run in runs.get("7", [])]


def methods_answered_429(runs: Runs) -> list[float]:
    """Target 6b: the share of the requests under users' authentication methods answered 429."""
    return [run["methods"]["answered_429"] / max(1, run["methods"]["requests"]) for run in runs.get("6", [])]


# ---------------------------------------------------------------------- what a limit is made of
def converge_bound(runs: Runs) -> float | None:
    """Target 1's bound: the median over its runs of the larger of the quota bound and the critical path."""
    return median([run["bound"]["bound_s"] for run in runs.get("1", [])])


def unfaulted_median(runs: Runs) -> float | None:
    """Target 1's median wall time, the reference of the faulted runs."""
    return median(per_run("1", "wall_s")(runs))


def at_quota_bound(runs: Runs) -> float | None:
    """Target 7's bound: the median over its runs of the larger of the quota bound and the critical path."""
    return median([run["bound"]["bound_s"] for run in runs.get("7", [])])


def rate_bound(runs: Runs) -> float | None:
    """Target 6's bound: the median time the methods rate needs to serve the requests its runs made."""
    return median([run["methods"]["rate_bound_s"] for run in runs.get("6", [])])


@dataclass(frozen=True)
class Scaled:
    """A limit made from a figure of the same benchmark run: factor x reference + plus (None without reference)."""

    factor: float
    reference: Callable[[Runs], float | None]
    plus: float = 0

    def of(self, runs: Runs) -> float | None:
        value = self.reference(runs)
        return None if value is None else self.factor * value + self.plus


# ---------------------------------------------------------------------- notes printed beside a figure
def no_note(_runs: Runs) -> str:
    return ""


def bound_note(runs: Runs) -> str:
    bound, run = converge_bound(runs), median_run(runs.get("1", []))
    if bound is None or run is None:
        return ""
    parts = run["bound"]
    return (
        f"bound {bound:.2f} s = max(writes beyond the burst / rate {parts['writes_beyond_burst_s']:.2f} s, "
        f"critical path {parts['critical_path_s']:.2f} s); limit 1.3 x bound + 3 s"
    )


def at_quota_note(runs: Runs) -> str:
    bound, run = at_quota_bound(runs), median_run(runs.get("7", []))
    if bound is None or run is None:
        return ""
    requests = (run.get("phases") or {}).get("requests")
    return (
        f"{run['quota']['model']}, refused requests {run['quota']['throttled_requests']}: bound {bound:.2f} s "
        f"(quota {run['bound']['writes_beyond_burst_s']:.2f} s, critical path {run['bound']['critical_path_s']:.2f} "
        "s); limit 1.03 x bound" + ("" if requests is None else f"; the requests, first to last, {requests:.2f} s")
    )


def speedup_note(runs: Runs) -> str:
    if not (runs.get("4") and runs.get("1")):
        return ""
    inventory, loop = per_token(runs["1"]) or 1.0, per_token(runs["4"]) or 0.0
    return (
        f"per token: loop {loop:.3f} s ({tokens(runs, '4')} tokens, 2 module runs each) vs hardware_oath_inventory "
        f"{inventory * 1000:.1f} ms ({tokens(runs, '1'):,} tokens)"
    )


def converged_note(runs: Runs) -> str:
    complete = converged_every_token(runs)
    return f"{int(sum(complete))} of {len(complete)} runs"


def unfaulted_note(runs: Runs) -> str:
    unfaulted = unfaulted_median(runs)
    return f"limit 2 x the unfaulted median {unfaulted:.2f} s" if unfaulted else ""


def rate_bound_note(runs: Runs) -> str:
    bound = rate_bound(runs)
    return "" if bound is None else f"rate bound {bound:.1f} s; limit 1.25 x bound"


# ---------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Target:
    id: str  # its digit is the scenario whose runs it reads: 2a and 2b read the runs of scenario 2
    measures: str  # {tokens}: how many tokens the scenario declares
    unit: str  # "s", "MB", "x", "%", or "" for a count or a share
    comparison: str  # "<=" or ">="
    figure_is: str  # MEDIAN or WORST: the largest figure for "<=", the smallest for ">="
    timed: bool  # a timing figure: not judged in the short run
    limit: float | Scaled
    values: Callable[[Runs], list[float]]  # the figure of each run
    note: Callable[[Runs], str] = no_note
    listed_when_not_run: bool = True  # False: left out of the table when its scenario did not run

    @property
    def scenario(self) -> str:
        return self.id[0]


# One target a row: id, what it measures, unit, comparison, median or worst run, then how it is judged.
# fmt: off
TARGETS: tuple[Target, ...] = (
    Target(
        "1", "converge {tokens:,} new tokens, end to end", "s", "<=", MEDIAN, timed=True,
        limit=Scaled(1.3, converge_bound, plus=3), values=per_run("1", "wall_s"), note=bound_note,
    ),
    Target(
        "2a", "re-run {tokens:,}, round trips", "", "<=", WORST, timed=False,
        limit=15, values=per_run("2", "round_trips"),
    ),
    Target(
        "2b", "re-run {tokens:,}, end to end", "s", "<=", MEDIAN, timed=True,
        limit=4, values=per_run("2", "wall_s"),
    ),
    Target(
        "3a", "{tokens:,} held, round trips", "", "<=", WORST, timed=False,
        limit=60, values=per_run("3", "round_trips"),
    ),
    Target(
        "3b", "{tokens:,} held, end to end", "s", "<=", MEDIAN, timed=True,
        limit=10, values=per_run("3", "wall_s"),
    ),
    Target(
        "3c", "{tokens:,} held, module peak RSS", "MB", "<=", WORST, timed=True,
        limit=150, values=per_run("3", "module_peak_rss_mb"),
    ),
    Target(
        "4", "speed-up per token over the loop", "x", ">=", MEDIAN, timed=True,
        limit=100, values=speedups, note=speedup_note,
    ),
    Target(
        "5a", "20 % of writes 429: share of runs converging every token", "", ">=", WORST, timed=False,
        limit=1.0, values=converged_every_token, note=converged_note, listed_when_not_run=False,
    ),
    Target(
        "5b", "20 % of writes 429, {tokens:,} new tokens, end to end", "s", "<=", MEDIAN, timed=True,
        limit=Scaled(2, unfaulted_median), values=per_run("5", "wall_s"), note=unfaulted_note,
        listed_when_not_run=False,
    ),
    Target(
        "6a", "activate {tokens} under methods_rate, end to end", "s", "<=", MEDIAN, timed=True,
        limit=Scaled(1.25, rate_bound), values=per_run("6", "wall_s"), note=rate_bound_note,
        listed_when_not_run=False,
    ),
    Target(
        "6b", "methods requests answered 429 (share)", "%", "<=", MEDIAN, timed=True,
        limit=0.10, values=methods_answered_429, listed_when_not_run=False,
    ),
    Target(
        "7a", "converge {tokens:,} new tokens at Graph's write quota, end to end", "s", "<=", MEDIAN, timed=True,
        limit=Scaled(1.03, at_quota_bound), values=per_run("7", "wall_s"), note=at_quota_note,
        listed_when_not_run=False,
    ),
    Target(
        "7b", "at Graph's write quota, writes answered 429 (share)", "%", "<=", MEDIAN, timed=True,
        limit=0.02, values=writes_answered_429, listed_when_not_run=False,
    ),
    Target(
        "7c", "at Graph's write quota, result built after the last answer", "s", "<=", MEDIAN, timed=True,
        limit=2, values=per_run("7", "result_s"), listed_when_not_run=False,
    ),
)
# fmt: on


def fixed_limit(target_id: str) -> float:
    """The limit of a target that is a plain number (the short run checks its round trips against 2a and 3a)."""
    [limit] = [target.limit for target in TARGETS if target.id == target_id]
    if isinstance(limit, Scaled):
        raise ValueError(f"target {target_id}'s limit depends on the runs")
    return limit


# ---------------------------------------------------------------------- the table against the runs
@dataclass
class Row:
    """A target against the runs: its figure (the median or the worst run), min, limit, ratio and whether it is met."""

    target: Target
    what: str
    limit: float | None
    values: list[float]
    note: str

    def figure(self) -> float | None:
        if not self.values:
            return None
        if self.target.figure_is == WORST:
            return min(self.values) if self.target.comparison == ">=" else max(self.values)
        return median(self.values)

    def ratio(self) -> float | None:
        figure = self.figure()
        return None if figure is None or not self.limit else figure / self.limit

    def met(self, judged: bool = True) -> bool | None:
        ratio = self.ratio()
        if ratio is None or not judged:
            return None
        return ratio >= 1 if self.target.comparison == ">=" else ratio <= 1

    def as_json(self, timed_profile: bool) -> dict[str, Any]:
        judged = timed_profile or not self.target.timed
        return {
            "target": self.target.id,
            "what": self.what,
            "unit": self.target.unit,
            "min": min(self.values) if self.values else None,
            "median": median(self.values),
            "figure": self.figure(),
            "figure_is": self.target.figure_is,
            "limit": self.limit,
            "comparison": self.target.comparison,
            "ratio": self.ratio(),
            "met": self.met(judged),
            "note": self.note if judged else "not judged in the short run (not timed)",
        }


def evaluate(runs: Runs) -> list[Row]:
    """Each target of the table against the runs."""
    rows = []
    for target in TARGETS:
        if not runs.get(target.scenario) and not target.listed_when_not_run:
            continue
        limit = target.limit.of(runs) if isinstance(target.limit, Scaled) else target.limit
        what = target.measures.format(tokens=tokens(runs, target.scenario))
        rows.append(Row(target, what, limit, target.values(runs), target.note(runs)))
    return rows
