# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter hardware_oath_seeded_tokens: _files/seeded_tokens.py behind a filter, its errors as AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tokenops.entra.plugins.filter.hardware_oath_seeded_tokens import FilterModule

SEED_A = {"serial_number": "A-1", "secret_key": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "secret_format": "base32"}


def test_the_filter():
    join = FilterModule().filters()["hardware_oath_seeded_tokens"]
    assert join([{"serial_number": "A-1", "user": "u"}], [SEED_A])[0]["secret_key"] == SEED_A["secret_key"]
    with pytest.raises(
        AnsibleFilterError,
        match="^tokenops.entra.hardware_oath_seeded_tokens: the seed file holds serial number A-1 twice",
    ):
        join([], [SEED_A, SEED_A])
    with pytest.raises(
        AnsibleFilterError,
        match="^tokenops.entra.hardware_oath_seeded_tokens: the declared tokens and the seeds must be lists",
    ):
        join("A-1", [SEED_A])
