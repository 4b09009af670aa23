# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The Graph calls of the hardwareOath authentication method configuration (the tenant's policy)."""

from __future__ import annotations

import typing as t

from .._graph.client import GraphClient
from .._planning.policy import POLICY_PATH
from .permissions import call


class PolicyApi:
    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def read(self) -> dict[str, t.Any]:
        return call(
            self.client,
            "read_policy",
            "GET",
            POLICY_PATH,
            action="Reading the hardwareOath authentication method policy",
        )

    def update(self, patch: dict[str, t.Any]) -> None:
        call(
            self.client,
            "write_policy",
            "PATCH",
            POLICY_PATH,
            action="Updating the hardwareOath authentication method policy",
            json=patch,
            expected=(204, 200),
        )
