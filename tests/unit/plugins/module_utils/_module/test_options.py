# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import READ_AFTER_WRITE_WAIT
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import AUTH_METHODS, resolve_credential
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import DEFAULT_QUOTA
from ansible_collections.tokenops.entra.plugins.module_utils._module.options import graph_argument_spec


# ---------------------------------------------------------------------------------------------------- argument spec
def test_graph_argument_spec_is_fresh_each_call():
    first = graph_argument_spec()
    second = graph_argument_spec()
    assert first == second
    assert first is not second
    first["tenant_id"]["required"] = True
    first["timeout"]["default"] = 1.0
    first["cloud"]["choices"].append("mars")
    first.pop("client_id")
    third = graph_argument_spec()
    assert "required" not in third["tenant_id"]
    assert third["timeout"]["default"] == 30.0
    assert "mars" not in third["cloud"]["choices"]
    assert "client_id" in third


@pytest.mark.parametrize(
    "option, variable",
    [
        ("tenant_id", "AZURE_TENANT_ID"),
        ("client_id", "AZURE_CLIENT_ID"),
        ("client_secret", "AZURE_CLIENT_SECRET"),
        ("client_certificate_path", "AZURE_CLIENT_CERTIFICATE_PATH"),
        ("client_certificate_password", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        ("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"),
        ("authority_host", "AZURE_AUTHORITY_HOST"),
    ],
)
def test_graph_argument_spec_env_fallbacks(option, variable):
    assert graph_argument_spec()[option]["fallback"] == (env_fallback, [variable])


def test_graph_argument_spec_fallbacks_are_exactly_these():
    spec = graph_argument_spec()
    assert sorted(name for name, option in spec.items() if "fallback" in option) == sorted(
        [
            "tenant_id",
            "client_id",
            "client_secret",
            "client_certificate_path",
            "client_certificate_password",
            "federated_token_file",
            "authority_host",
        ]
    )


def test_graph_argument_spec_no_log():
    spec = graph_argument_spec()
    assert sorted(name for name, option in spec.items() if option.get("no_log")) == [
        "access_token",
        "client_certificate_password",
        "client_secret",
    ]


def test_graph_argument_spec_choices_and_defaults():
    spec = graph_argument_spec()
    assert (
        spec["auth_method"]["choices"]
        == list(AUTH_METHODS)
        == ["auto", "access_token", "certificate", "federated", "client_secret", "managed_identity"]
    )
    assert spec["auth_method"]["default"] == "auto"
    assert spec["cloud"]["choices"] == ["public", "usgov", "usgov_dod", "china"]
    assert spec["cloud"]["default"] == "public"
    assert (
        spec["validate_certs"]["default"],
        spec["timeout"]["default"],
        spec["max_retries"]["default"],
        spec["max_retry_wait"]["default"],
    ) == (True, 30.0, 5, 60.0)


def test_graph_argument_spec_env_applies_only_to_unset_options(monkeypatch):
    for name in (
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant.onmicrosoft.com")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "env-secret-value")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "login.example.test")
    result = ArgumentSpecValidator(graph_argument_spec()).validate({"client_id": "task-client"})
    assert result.error_messages == []
    validated = result.validated_parameters
    assert validated["tenant_id"] == "env-tenant.onmicrosoft.com"
    assert validated["client_id"] == "task-client"
    assert validated["client_secret"] == "env-secret-value"
    assert validated["authority_host"] == "login.example.test"
    assert validated["client_certificate_path"] is None
    assert "env-secret-value" in result._no_log_values  # pylint: disable=protected-access
    credential = resolve_credential(validated, environ={})
    assert (
        credential.method,
        credential.tenant_id,
        credential.client_id,
        credential.secret,
        credential.authority_host,
    ) == (
        "client_secret",
        "env-tenant.onmicrosoft.com",
        "task-client",
        "env-secret-value",
        "https://login.example.test",
    )


def test_read_after_write_wait_option():
    assert graph_argument_spec()["read_after_write_wait"] == {"type": "float", "default": 10.0}


def test_the_defaults_are_the_named_constants():
    spec = graph_argument_spec()
    assert spec["write_quota"] == {"type": "str", "default": DEFAULT_QUOTA}
    assert spec["read_after_write_wait"]["default"] == READ_AFTER_WRITE_WAIT
