# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The connection options every Graph module takes (documented by the ``graph_auth`` doc fragment). Their defaults
are the named constants of the layers that use them."""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import env_fallback

from .._execution.hardware_oath_api import READ_AFTER_WRITE_WAIT
from .._graph.auth import AUTH_METHODS, CLOUDS
from .._graph.pacer import DEFAULT_QUOTA


def graph_argument_spec() -> dict[str, dict[str, t.Any]]:
    """A fresh argument spec for the connection options (documented by the ``graph_auth`` doc fragment)."""
    return {
        "auth_method": {"type": "str", "default": "auto", "choices": list(AUTH_METHODS)},
        "tenant_id": {"type": "str", "fallback": (env_fallback, ["AZURE_TENANT_ID"])},
        "client_id": {"type": "str", "fallback": (env_fallback, ["AZURE_CLIENT_ID"])},
        "client_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["AZURE_CLIENT_SECRET"])},
        "client_certificate_path": {"type": "path", "fallback": (env_fallback, ["AZURE_CLIENT_CERTIFICATE_PATH"])},
        "client_certificate_password": {
            "type": "str",
            "no_log": True,
            "fallback": (env_fallback, ["AZURE_CLIENT_CERTIFICATE_PASSWORD"]),
        },
        "federated_token_file": {"type": "path", "fallback": (env_fallback, ["AZURE_FEDERATED_TOKEN_FILE"])},
        "access_token": {"type": "str", "no_log": True},
        "cloud": {"type": "str", "default": "public", "choices": list(CLOUDS)},
        "allow_national_cloud": {"type": "bool", "default": False},
        "authority_host": {"type": "str", "fallback": (env_fallback, ["AZURE_AUTHORITY_HOST"])},
        "graph_endpoint": {"type": "str"},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "token_cache_path": {"type": "path"},
        "timeout": {"type": "float", "default": 30.0},
        "max_retries": {"type": "int", "default": 5},
        "max_retry_wait": {"type": "float", "default": 60.0},
        "read_after_write_wait": {"type": "float", "default": READ_AFTER_WRITE_WAIT},
        "write_quota": {"type": "str", "default": DEFAULT_QUOTA},
    }
