# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hardware_oath_seeded_tokens
short_description: Join declared hardware OATH tokens with the seeds of a vendor's file
version_added: 1.0.0
author:
  - tokenops developers (@tokenops)
description:
  - Completes each declared token (an entry of the C(tokens) option of M(tokenops.entra.hardware_oath_inventory))
    with the seed of its serial number, without regard to case. The entry's own values win; an entry without
    C(secret_key) takes the seed's secret with its format.
  - The seeds that no entry names follow the declared tokens, with C(state) set to O(unnamed_state).
  - Used by the role R(tokenops.entra.hardware_oath_tokens,ansible_collections.tokenops.entra.hardware_oath_tokens_role)
    to join its YAML list with a PSKC file read by P(tokenops.entra.pskc_tokens#filter).
options:
  _input:
    description: The declared tokens.
    type: list
    elements: dict
    required: true
  seeds:
    description: The seeds, as P(tokenops.entra.pskc_tokens#filter) gives them (each with C(serial_number)).
    type: list
    elements: dict
    required: true
  unnamed_state:
    description: The state of the seeds no entry names.
    type: str
    choices: [available, absent]
    default: available
"""

EXAMPLES = r"""
- name: Hold and activate two tokens of a vendor's file; import its other tokens as available
  tokenops.entra.hardware_oath_inventory:
    tokens: >-
      {{ [{'serial_number': '1000001', 'user': 'amy@contoso.com'},
          {'serial_number': '1000002', 'user': 'lee@contoso.com', 'state': 'assigned'}]
         | tokenops.entra.hardware_oath_seeded_tokens(lookup('ansible.builtin.file', 'seeds.pskc')
                                                      | tokenops.entra.pskc_tokens) }}
"""

RETURN = r"""
_value:
  description: The declared tokens completed from their seeds, then the seeds no entry names.
  type: list
  elements: dict
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.seeded_tokens import (
    SeededTokensError,
    seeded_tokens,
)
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def hardware_oath_seeded_tokens(
    tokens: t.Any, seeds: t.Any, unnamed_state: str = "available"
) -> list[dict[str, t.Any]]:
    if not isinstance(tokens, list) or not isinstance(seeds, list):
        raise filter_error("hardware_oath_seeded_tokens", "the declared tokens and the seeds must be lists")
    try:
        return seeded_tokens(tokens, seeds, unnamed_state)
    except SeededTokensError as exc:
        raise filter_error("hardware_oath_seeded_tokens", exc) from None


class FilterModule:
    """The join of declared tokens with a vendor's seeds."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"hardware_oath_seeded_tokens": hardware_oath_seeded_tokens}
