"""The simulator's runtime settings: page sizes and how it behaves where Microsoft's documentation and the real
service may differ (docs/simulator.md, "Fidelity").

Every behaviour setting defaults to what Microsoft documents (where nothing is documented, to the simulator's
long-standing behaviour); the other values are plausible behaviours of the real service that clients should
survive. They are set by the seed's ``settings`` (validated at start), changed at run time by
``POST /_admin/settings`` (all or nothing), shown by ``GET /_admin/settings`` and restored to their start-up values
by ``POST /_admin/reset``. The page sizes come from the command line (``--page-size``, ``--max-page-size``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_PAGE_SIZE = 999  # the largest $top directory collections take

# Behaviour settings with a fixed set of values (the defaults are those of Settings below).
CHOICES: dict[str, tuple] = {
    # What a create with assignTo does when the caller may write the inventory but not the user's methods.
    "create_assign_without_permission": ("forbid", "ignore"),
    # $filter on the inventory: the documented single eq, unsupported filters ignored silently, or eq/in/and.
    "filter_mode": ("documented", "silent", "lenient"),
    # A $top above the maximum page size: capped to it, or refused.
    "top_above_max": ("cap", "reject"),
    # Whether user method reads carry the device inline (else: .../hardwareOathMethods/{id}/device).
    "method_device_inline": (True, False),
    # The status a create with assignTo answers and keeps (the Graph page's example, or the Entra page's).
    "create_assign_status": ("assigned", "available"),
    # Activating an already activated token: re-activates it (e.g. to rename it), or is refused.
    "reactivate_activated": ("allow", "refuse"),
    # Whether the latency of $batch items without dependsOn adds up (false) or overlaps (true).
    "batch_parallel": (True, False),
    # The answer to a successful bulk creation: the Graph page's 201 with methods wrapping their device, a 200 delta
    # of devices with their @contentId (what a vendor reports), or a 204 without a body.
    "bulk_answer": ("wrapped", "flat", "empty"),
    # A refused bulk creation: a 400 naming each refused item by its @contentId, or one naming none.
    "bulk_refusal": ("per_item", "whole"),
    # The messages of 4xx errors: descriptive, or one generic sentence (clients decide from status and codes).
    "error_wording": ("descriptive", "opaque"),
    # The Limit part of x-ms-throttle-scope on a 429 of the write quota: the throttling page's example, or its
    # definition of a limit on writes.
    "write_throttle_limit": ("ReadWrite", "Write"),
    # Whether a 429 of a quota carries x-ms-throttle-information.
    "throttle_information": ("sent", "omitted"),
    # Whether an accepted activation code sets the token's lastUsedDateTime (documented as a property, not when it
    # is set): it stays as it was, or becomes the time of the activation.
    "activation_last_used": ("unchanged", "set"),
    # How a quota counts N requests per S seconds: the documented token bucket (refilled continuously), the requests
    # of the last S seconds, or those of the current window of S seconds (faults.QUOTA_MODELS).
    "quota_model": ("token_bucket", "sliding_window", "fixed_window"),
    # Whether a request refused 429 is charged to its quotas (documented: "all requests accrue against your usage
    # limits"), which lengthens the throttling, or not.
    "throttled_requests": ("charged", "free"),
}
# Integer settings: (smallest, largest or None, what the error calls them).
INTEGERS: dict[str, tuple[int, int | None, str]] = {
    "page_size": (1, None, "a positive integer"),
    "max_page_size": (1, MAX_PAGE_SIZE, "a positive integer"),
    # Reads show the state as it was this long before (a write takes effect at once for writes and checks).
    "read_after_write_delay_ms": (0, None, "a non-negative integer"),
    # The most items a bulk creation (#$delta) may carry; more is a 400 that names no item.
    "bulk_max_items": (1, None, "a positive integer"),
}
NAMES = ("page_size", "max_page_size", *CHOICES, "read_after_write_delay_ms", "bulk_max_items")
# What a seed's ``settings`` may set (the page sizes are command-line options).
SEED_NAMES = tuple(name for name in NAMES if name not in ("page_size", "max_page_size"))


def _describe(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def check_value(name: str, value: Any) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is one of its values."""
    if name in CHOICES:
        choices = CHOICES[name]
        # Compare types too: 1 == True, but 1 is not a boolean setting's value.
        if not any(type(value) is type(choice) and value == choice for choice in choices):
            allowed = [_describe(c) if isinstance(c, bool) else c for c in choices]
            raise ValueError(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {_describe(value)}")
        return
    low, high, kind = INTEGERS[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be {kind}, not {_describe(value)}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}, not {value}")


def check(data: Any) -> None:
    """Validate a settings change (a non-empty mapping of known names to valid values); raises ValueError."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"the settings must be a JSON object with one or more of {', '.join(NAMES)}")
    for name, value in data.items():
        if name not in NAMES:
            raise ValueError(f"unknown setting '{name}' (known: {', '.join(NAMES)})")
        check_value(name, value)


@dataclass
class Settings:
    """The settings in force. One instance per simulator, shared by the tenant, the Graph API and the server."""

    page_size: int = 100
    max_page_size: int = MAX_PAGE_SIZE
    create_assign_without_permission: str = "forbid"
    filter_mode: str = "documented"
    top_above_max: str = "cap"
    method_device_inline: bool = True
    create_assign_status: str = "assigned"
    reactivate_activated: str = "allow"
    batch_parallel: bool = True
    bulk_answer: str = "wrapped"
    bulk_refusal: str = "per_item"
    error_wording: str = "descriptive"
    write_throttle_limit: str = "ReadWrite"
    throttle_information: str = "sent"
    activation_last_used: str = "unchanged"
    quota_model: str = "token_bucket"
    throttled_requests: str = "charged"
    read_after_write_delay_ms: int = 0
    bulk_max_items: int = 100

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in NAMES}

    def update(self, data: Any) -> dict:
        """Change some settings, all or nothing (ValueError names the first bad one); returns them all."""
        check(data)
        for name, value in data.items():
            setattr(self, name, value)
        return self.as_dict()

    @classmethod
    def from_seed(cls, seed_settings: dict) -> Settings:
        """The seed's behaviour settings over the defaults; ValueError names a bad one (``settings.NAME ...``)."""
        values = {name: seed_settings[name] for name in SEED_NAMES if name in seed_settings}
        for name, value in values.items():
            try:
                check_value(name, value)
            except ValueError as exc:
                raise ValueError(f"settings.{exc}") from exc
        return cls(**values)
