# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The API objects a module works with (_module/service.py): built only once the cloud is known to offer the hardware
OATH APIs; a national cloud stops the task before any request unless allow_national_cloud."""

from __future__ import annotations

import pytest

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import HardwareOathApi
from ansible_collections.tokenops.entra.plugins.module_utils._execution.policy_api import PolicyApi
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import resolve_credential
from ansible_collections.tokenops.entra.plugins.module_utils._module.options import graph_argument_spec
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import (
    GLOBAL_ONLY_NOTE,
    NATIONAL_CLOUD_MESSAGE,
    hardware_oath_api,
    hardware_oath_client,
    policy_api,
)
from ansible_collections.tokenops.entra.tests.unit.plugins.fakes import FakeClient, FakeModule, graph_params


def signed_in(**given) -> FakeModule:
    """A module signed in with an access token (``given``: more options), its Graph client a FakeClient."""
    module = FakeModule(graph_params(access_token="t", **given))
    module.client = FakeClient()
    module.in_flight = []  # what each graph_client() call asked for

    def graph_client(*, in_flight=None):
        module.in_flight.append(in_flight)
        return module.client

    module.graph_client = graph_client
    module.credential = resolve_credential(module.params, environ={})
    return module


def test_national_cloud_message_says_what_to_do():
    message = NATIONAL_CLOUD_MESSAGE.format(what="cloud=usgov")
    assert message.startswith(
        "cloud=usgov: Microsoft documents the hardware OATH APIs of Microsoft Graph for the global service only"
    )
    assert message.endswith("set allow_national_cloud=true.")
    assert graph_argument_spec()["allow_national_cloud"] == {"type": "bool", "default": False}


def test_the_global_cloud_gets_its_client():
    module = signed_in()
    assert hardware_oath_client(module) is module.client
    assert module.logs == []


@pytest.mark.parametrize(
    "given, what",
    [
        ({"cloud": "usgov"}, "cloud=usgov"),
        ({"cloud": "usgov_dod"}, "cloud=usgov_dod"),
        ({"cloud": "china"}, "cloud=china"),
        (
            {"graph_endpoint": "https://graph.microsoft.us"},
            "graph_endpoint=https://graph.microsoft.us (the usgov cloud's Graph)",
        ),
    ],
)
def test_a_national_cloud_stops_the_task_before_any_request(given, what):
    module = signed_in(**given)
    with pytest.raises(InputError) as info:
        hardware_oath_api(module)
    assert info.value.message == NATIONAL_CLOUD_MESSAGE.format(what=what)
    with pytest.raises(InputError):
        policy_api(module)
    assert module.client.calls == []


def test_a_national_cloud_allowed_is_warned_about():
    module = signed_in(cloud="usgov", allow_national_cloud=True)
    assert hardware_oath_client(module) is module.client
    assert module.logs == ["warning: " + GLOBAL_ONLY_NOTE.format(what="cloud=usgov")]
    assert module.client.calls == []


def test_hardware_oath_api_waits_as_the_module_says_and_warns_through_it():
    module = signed_in(read_after_write_wait=2.5)
    api = hardware_oath_api(module)
    assert isinstance(api, HardwareOathApi)
    assert (api.client, api.wait) == (module.client, 2.5)
    api.warn_once("filter-refused", "Graph refused the filter")
    api.warn_once("filter-refused", "Graph refused the filter")
    assert module.logs == ["warning: Graph refused the filter"]


def test_the_requests_on_the_wire_are_passed_to_the_client_explicitly():
    module = signed_in()
    hardware_oath_api(module, in_flight=8)
    hardware_oath_api(module)
    policy_api(module)
    assert module.in_flight == [8, None, None]


def test_policy_api():
    module = signed_in()
    api = policy_api(module)
    assert isinstance(api, PolicyApi) and api.client is module.client
