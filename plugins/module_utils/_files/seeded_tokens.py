# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The declared tokens joined with a vendor's seed file (the role hardware_oath_tokens): pure code behind the filter
``tokenops.entra.hardware_oath_seeded_tokens``."""

from __future__ import annotations

import typing as t

# What a seed file knows of a token, and an entry of the declared list may leave to it.
SEED_FIELDS = ("secret_key", "secret_format", "time_interval", "hash_function", "manufacturer", "model")
UNNAMED_STATES = ("available", "absent")


class SeededTokensError(ValueError):
    """The declared list and the seed file can't be joined; the message names the serial numbers, never a secret."""


def seeded_tokens(
    tokens: t.Sequence[t.Mapping[str, t.Any]],
    seeds: t.Sequence[t.Mapping[str, t.Any]],
    unnamed_state: str = "available",
) -> list[dict[str, t.Any]]:
    """``tokens`` (entries of hardware_oath_inventory's ``tokens``), each completed from the seed of its serial number
    (without regard to case): the seed's fields the entry does not give itself. The seeds no entry names follow, with
    ``state: unnamed_state`` (``available``: imported, held by nobody; ``absent``: not in the inventory)."""
    if unnamed_state not in UNNAMED_STATES:
        raise SeededTokensError(f"unnamed_state must be one of {', '.join(UNNAMED_STATES)}, not {unnamed_state!r}")
    by_serial: dict[str, t.Mapping[str, t.Any]] = {}
    for number, seed in enumerate(seeds):
        serial = seed.get("serial_number") if isinstance(seed, t.Mapping) else None
        if not isinstance(serial, str) or not serial:
            raise SeededTokensError(f"seed {number + 1} has no serial number")
        if serial.casefold() in by_serial:
            raise SeededTokensError(f"the seed file holds serial number {serial} twice")
        by_serial[serial.casefold()] = seed
    named: set[str] = set()
    out = []
    for index, entry in enumerate(tokens):
        serial = entry.get("serial_number") if isinstance(entry, t.Mapping) else None
        if not isinstance(serial, str) or not serial:
            raise SeededTokensError(f"tokens[{index}] has no serial_number")
        named.add(serial.casefold())
        seed = by_serial.get(serial.casefold(), {})
        given = {key: value for key, value in entry.items() if value is not None}
        if "secret_key" not in given and "secret_key" in seed:  # a secret and its format come together
            given.pop("secret_format", None)
        out.append({**{key: seed[key] for key in SEED_FIELDS if key in seed}, **given})
    for key, seed in by_serial.items():
        if key not in named:
            out.append(
                {
                    **{name: seed[name] for name in ("serial_number", *SEED_FIELDS) if name in seed},
                    "state": unnamed_state,
                }
            )
    return out
