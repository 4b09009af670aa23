# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Where Microsoft documents the hardware OATH APIs, and the API objects a module works with: built once the cloud
is known to offer them."""

from __future__ import annotations

from .._common.errors import InputError
from .._execution.hardware_oath_api import HardwareOathApi
from .._execution.policy_api import PolicyApi
from .._graph.auth import national_cloud
from .._graph.client import GraphClient
from .graph_module import GraphModule

# Every hardware OATH API page of Graph marks the national clouds (US Gov L4, US Gov L5 (DoD), China) unavailable.
NATIONAL_CLOUD_MESSAGE = (
    "{what}: Microsoft documents the hardware OATH APIs of Microsoft Graph for the global service "
    "only (each API page marks US Government L4, L5 (DoD) and China (21Vianet) as not available), "
    "so the task stops before any request. If Microsoft has since made them available in your "
    "cloud, set allow_national_cloud=true."
)
GLOBAL_ONLY_NOTE = "The hardware OATH APIs are documented for the global cloud only; {what} may not offer them."


def hardware_oath_client(module: GraphModule, *, in_flight: int | None = None) -> GraphClient:
    """The module's Graph client (``in_flight``: see ``GraphModule.graph_client``), once the cloud is known to offer
    the hardware OATH APIs: a national cloud stops the task before any request, unless ``allow_national_cloud`` (then
    it warns)."""
    client = module.graph_client(in_flight=in_flight)
    national = national_cloud(module.params["cloud"], module.credential.graph_endpoint)
    if national and not module.params["allow_national_cloud"]:
        raise InputError(NATIONAL_CLOUD_MESSAGE.format(what=national))
    if national:
        module.warn(GLOBAL_ONLY_NOTE.format(what=national))
    return client


def hardware_oath_api(module: GraphModule, *, in_flight: int | None = None) -> HardwareOathApi:
    """The token and method calls, waiting for earlier writes as the module's ``read_after_write_wait`` says, with at
    most ``in_flight`` requests on the wire (None: no limit)."""
    client = hardware_oath_client(module, in_flight=in_flight)
    return HardwareOathApi(client, warn=module.warn, wait=module.params["read_after_write_wait"])


def policy_api(module: GraphModule) -> PolicyApi:
    return PolicyApi(hardware_oath_client(module))
