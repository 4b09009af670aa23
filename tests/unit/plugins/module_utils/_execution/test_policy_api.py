# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Graph calls of the hardwareOath policy (PolicyApi), over a FakeClient."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._execution.policy_api import PolicyApi
from ansible_collections.tokenops.entra.plugins.module_utils._planning.policy import POLICY_PATH
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import FakeClient


def test_policy_read_and_update():
    client = FakeClient({"id": "HardwareOath", "state": "enabled"}, None, GraphError("p", status=403))
    api = PolicyApi(client)
    assert api.read() == {"id": "HardwareOath", "state": "enabled"}
    api.update({"state": "disabled"})
    with pytest.raises(GraphError) as info:
        api.update({"state": "enabled"})
    assert client.calls[:2] == [
        ("GET", POLICY_PATH, "Reading the hardwareOath authentication method policy", {}),
        (
            "PATCH",
            POLICY_PATH,
            "Updating the hardwareOath authentication method policy",
            {"json": {"state": "disabled"}, "expected": (204, 200)},
        ),
    ]
    assert info.value.message == (
        "p. The caller needs the Microsoft Graph permission Policy.ReadWrite.AuthenticationMethod "
        "and, when signed in as a user, the Authentication Policy Administrator role"
    )
