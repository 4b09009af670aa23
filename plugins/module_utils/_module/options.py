# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The connection options every Graph module takes (documented by the ``graph_auth`` doc fragment). Their defaults
are the named constants of the layers that use them."""

from __future__ import annotations

import os
import typing as t

from ansible.module_utils.errors import AnsibleFallbackNotFound

from .._common.run_state import DEFAULT_LOCK_TIMEOUT
from .._execution.hardware_oath_api import READ_AFTER_WRITE_WAIT
from .._graph.auth import AUTH_METHODS, CLOUDS
from .._graph.pacer import DEFAULT_QUOTA

# AZURE_CLOUD_ENVIRONMENT's names of Azure's clouds (AWX's Azure Resource Manager credential, azure.azcollection) for
# the values of ``cloud``. US Government's one name covers L4 and L5 (DoD): a DoD tenant sets cloud=usgov_dod.
AZURE_CLOUD_ENVIRONMENTS = {"azurecloud": "public", "azureusgovernment": "usgov", "azurechinacloud": "china"}


def environment(*names: str) -> str:
    """An option's environment fallback: the first of ``names`` that is set and not empty. An empty variable counts
    as unset (AWX sets every variable of a credential, empty when its field is), so it never hides the next one;
    Ansible's ``env_fallback`` would take it."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    raise AnsibleFallbackNotFound


def cloud_environment(name: str) -> str:
    """``cloud``'s fallback: an Azure cloud name from ``name`` (AzureCloud, AzureUSGovernment, AzureChinaCloud, in any
    case) as the cloud it names. Any other value is handed on as it is, so that the check of ``cloud``'s choices
    refuses it, naming it, rather than the global cloud being signed in to with another cloud's credential."""
    value = environment(name)
    return AZURE_CLOUD_ENVIRONMENTS.get(value.lower(), value)


def graph_argument_spec() -> dict[str, dict[str, t.Any]]:
    """A fresh argument spec for the connection options (documented by the ``graph_auth`` doc fragment)."""
    return {
        "auth_method": {"type": "str", "default": "auto", "choices": list(AUTH_METHODS)},
        # AZURE_TENANT and AZURE_SECRET: what AWX's built-in Azure Resource Manager credential sets; ours win.
        "tenant_id": {"type": "str", "fallback": (environment, ["AZURE_TENANT_ID", "AZURE_TENANT"])},
        "client_id": {"type": "str", "fallback": (environment, ["AZURE_CLIENT_ID"])},
        "client_secret": {
            "type": "str",
            "no_log": True,
            "fallback": (environment, ["AZURE_CLIENT_SECRET", "AZURE_SECRET"]),
        },
        "client_certificate_path": {"type": "path", "fallback": (environment, ["AZURE_CLIENT_CERTIFICATE_PATH"])},
        "client_certificate_password": {
            "type": "str",
            "no_log": True,
            "fallback": (environment, ["AZURE_CLIENT_CERTIFICATE_PASSWORD"]),
        },
        "federated_token_file": {"type": "path", "fallback": (environment, ["AZURE_FEDERATED_TOKEN_FILE"])},
        "access_token": {"type": "str", "no_log": True},
        "cloud": {
            "type": "str",
            "default": "public",
            "choices": list(CLOUDS),
            "fallback": (cloud_environment, ["AZURE_CLOUD_ENVIRONMENT"]),
        },
        "allow_national_cloud": {"type": "bool", "default": False},
        "authority_host": {"type": "str", "fallback": (environment, ["AZURE_AUTHORITY_HOST", "ENTRA_AUTHORITY_HOST"])},
        "graph_endpoint": {"type": "str", "fallback": (environment, ["ENTRA_GRAPH_ENDPOINT"])},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path", "fallback": (environment, ["ENTRA_CA_PATH"])},
        "token_cache_path": {"type": "path"},
        "timeout": {"type": "float", "default": 30.0},
        "max_retries": {"type": "int", "default": 5},
        "max_retry_wait": {"type": "float", "default": 60.0},
        "read_after_write_wait": {"type": "float", "default": READ_AFTER_WRITE_WAIT},
        "write_quota": {"type": "str", "default": DEFAULT_QUOTA},
        "run_state_dir": {"type": "path", "fallback": (environment, ["ENTRA_RUN_STATE_DIR"])},
        "lock_timeout": {"type": "float", "default": DEFAULT_LOCK_TIMEOUT},
    }
