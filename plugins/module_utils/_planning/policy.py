# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The hardwareOath authentication method configuration, pure: the wanted state, the PATCH that reaches it, and
the snake_case result. No I/O here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .._common.errors import InputError
from .._common.validation import is_guid

POLICY_PATH = "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath"
POLICY_TYPE = "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration"
ALL_USERS = "all_users"


@dataclass(frozen=True)
class PolicySpec:
    """``None``: leave as it is."""

    state: str | None = None  # enabled | disabled
    include_targets: tuple[str, ...] | None = None  # group object ids, or all_users
    exclude_targets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PolicyPlan:
    patch: dict[str, t.Any]  # empty: nothing to change
    before: dict[str, t.Any]
    after: dict[str, t.Any]

    @property
    def changed(self) -> bool:
        return bool(self.patch)


def normalize_targets(targets: t.Sequence[str] | None, option: str) -> tuple[str, ...] | None:
    """Group object ids (lower case) or ``all_users``, without duplicates. Raises ValueError for anything else."""
    if targets is None:
        return None
    out: list[str] = []
    for target in targets:
        value = str(target).strip().lower()
        if value != ALL_USERS and not is_guid(value):
            raise ValueError(f"{option}: '{target}' is neither a group object id (GUID) nor {ALL_USERS}")
        if value not in out:
            out.append(value)
    if option == "exclude_targets" and ALL_USERS in out:
        raise ValueError(f"exclude_targets: {ALL_USERS} can only be included, not excluded")
    return tuple(out)


def check_no_overlap(include: t.Iterable[str], exclude: t.Iterable[str], *, given_both: bool) -> None:
    """A group can't be both included and excluded: Entra ID would exclude it, which is rarely what was meant.
    Raises InputError naming the groups (``given_both``: both lists come from the task, else one is the tenant's)."""
    both = sorted(set(include) & set(exclude))
    if not both:
        return
    where = (
        "in include_targets and in exclude_targets"
        if given_both
        else "in the task's targets and, for the other list, in the tenant's current policy"
    )
    raise InputError(
        f"Group{'s' if len(both) > 1 else ''} {', '.join(both)} would be both included in and excluded "
        f"from the hardwareOath policy ({where}); a group excluded is excluded even when included. Remove "
        "it from one of the lists (give both include_targets and exclude_targets to set both). Nothing "
        "was changed."
    )


def policy_result(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """The configuration in snake_case."""
    include = [
        {
            "id": str(x.get("id")).lower(),
            "target_type": x.get("targetType", "group"),
            "is_registration_required": bool(x.get("isRegistrationRequired", False)),
        }
        for x in config.get("includeTargets") or []
    ]
    exclude = [
        {"id": str(x.get("id")).lower(), "target_type": x.get("targetType", "group")}
        for x in config.get("excludeTargets") or []
    ]
    return {
        "id": config.get("id"),
        "state": config.get("state"),
        "include_targets": include,
        "exclude_targets": exclude,
    }


def _same_targets(current: list[dict[str, t.Any]], wanted: tuple[str, ...]) -> bool:
    return sorted(x["id"] for x in current) == sorted(wanted)


def plan_policy(config: dict[str, t.Any], spec: PolicySpec) -> PolicyPlan:
    """The PATCH (only what differs) that takes ``config`` (Graph's GET answer) to ``spec``. Target order and case
    don't matter; an include target that stays keeps its ``isRegistrationRequired``. Raises InputError when a group
    would end up both included and excluded."""
    before = policy_result(config)
    after = {**before}
    patch: dict[str, t.Any] = {}
    if spec.state is not None and spec.state != before["state"]:
        patch["state"] = after["state"] = spec.state
    if spec.include_targets is not None and not _same_targets(before["include_targets"], spec.include_targets):
        kept = {x["id"]: x["is_registration_required"] for x in before["include_targets"]}
        after["include_targets"] = [
            {"id": x, "target_type": "group", "is_registration_required": kept.get(x, False)}
            for x in spec.include_targets
        ]
        patch["includeTargets"] = [
            {"targetType": "group", "id": x["id"], "isRegistrationRequired": x["is_registration_required"]}
            for x in after["include_targets"]
        ]
    if spec.exclude_targets is not None and not _same_targets(before["exclude_targets"], spec.exclude_targets):
        after["exclude_targets"] = [{"id": x, "target_type": "group"} for x in spec.exclude_targets]
        patch["excludeTargets"] = [{"targetType": "group", "id": x} for x in spec.exclude_targets]
    if "includeTargets" in patch or "excludeTargets" in patch:  # never write an overlap; one made elsewhere is not ours
        check_no_overlap(
            [x["id"] for x in after["include_targets"]],
            [x["id"] for x in after["exclude_targets"]],
            given_both=spec.include_targets is not None and spec.exclude_targets is not None,
        )
    if patch:
        patch = {"@odata.type": POLICY_TYPE, **patch}
    return PolicyPlan(patch=patch, before=before, after=after)


def reached(config: dict[str, t.Any], plan: PolicyPlan) -> bool:
    """Judged from a fresh read: does the configuration match what the plan wanted?"""
    now = policy_result(config)
    return (
        now["state"] == plan.after["state"]
        and _same_targets(now["include_targets"], tuple(x["id"] for x in plan.after["include_targets"]))
        and _same_targets(now["exclude_targets"], tuple(x["id"] for x in plan.after["exclude_targets"]))
    )
