# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import AnsibleFallbackNotFound

from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import READ_AFTER_WRITE_WAIT
from ansible_collections.tokenops.entra.plugins.module_utils._graph.auth import AUTH_METHODS, resolve_credential
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import UnsafeDestination
from ansible_collections.tokenops.entra.plugins.module_utils._graph.pacer import DEFAULT_QUOTA
from ansible_collections.tokenops.entra.plugins.module_utils._module.options import (
    AZURE_CLOUD_ENVIRONMENTS,
    cloud_environment,
    environment,
    graph_argument_spec,
)


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


# Every variable an option falls back to, in the order it is read.
FALLBACKS = {
    "tenant_id": ["AZURE_TENANT_ID", "AZURE_TENANT"],
    "client_id": ["AZURE_CLIENT_ID"],
    "client_secret": ["AZURE_CLIENT_SECRET", "AZURE_SECRET"],
    "client_certificate_path": ["AZURE_CLIENT_CERTIFICATE_PATH"],
    "client_certificate_password": ["AZURE_CLIENT_CERTIFICATE_PASSWORD"],
    "federated_token_file": ["AZURE_FEDERATED_TOKEN_FILE"],
    "cloud": ["AZURE_CLOUD_ENVIRONMENT"],
    "authority_host": ["AZURE_AUTHORITY_HOST", "ENTRA_AUTHORITY_HOST"],
    "graph_endpoint": ["ENTRA_GRAPH_ENDPOINT"],
    "ca_path": ["ENTRA_CA_PATH"],
    "run_state_dir": ["ENTRA_RUN_STATE_DIR"],
}
VARIABLES = sorted({name for names in FALLBACKS.values() for name in names} | {"AZURE_AD_USER", "AZURE_PASSWORD"})


@pytest.fixture
def clean_environment(monkeypatch):
    """None of the variables the options read, whatever the machine running the tests has set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def validate(params):
    """The options as AnsibleModule hands them over: fallbacks, then defaults, then the checks."""
    return ArgumentSpecValidator(graph_argument_spec()).validate(params)


def test_graph_argument_spec_fallbacks_are_exactly_these():
    spec = graph_argument_spec()
    assert {name: option["fallback"][1] for name, option in spec.items() if "fallback" in option} == FALLBACKS
    fallbacks = {option["fallback"][0] for option in spec.values() if "fallback" in option}
    assert fallbacks == {environment, cloud_environment}


@pytest.mark.parametrize("option, variables", FALLBACKS.items())
def test_each_fallback_reads_its_variables_in_order(clean_environment, option, variables):
    values = {
        "cloud": ["usgov", "china"],
        "authority_host": ["login-a.example.test", "login-b.example.test"],
        "graph_endpoint": ["graph.example.test"],
    }.get(option, ["first-value", "second-value"])
    for variable, value in reversed(list(zip(variables, values))):
        clean_environment.setenv(variable, value)
        assert validate({}).validated_parameters[option] == value
    given = {"cloud": "public", "authority_host": "login.given.test", "graph_endpoint": "graph.given.test"}
    assert validate({option: given.get(option, "given")}).validated_parameters[option] == given.get(option, "given")


@pytest.mark.parametrize("option, variables", [(o, v) for o, v in FALLBACKS.items() if len(v) > 1])
def test_an_empty_variable_counts_as_unset(clean_environment, option, variables):
    """AWX sets every variable of a credential, empty when its field is: an empty one hides nothing."""
    first, second = variables
    clean_environment.setenv(first, "")
    clean_environment.setenv(second, "from-the-second")
    assert validate({}).validated_parameters[option] == "from-the-second"
    clean_environment.setenv(second, "")
    assert validate({}).validated_parameters[option] is None


def test_environment_raises_fallback_not_found_when_none_is_set(clean_environment):
    clean_environment.setenv("AZURE_SECRET", "")
    with pytest.raises(AnsibleFallbackNotFound):
        environment("AZURE_CLIENT_SECRET", "AZURE_SECRET")


def test_awx_built_in_azure_credential(clean_environment):
    """What AWX's Microsoft Azure Resource Manager credential injects (awx/main/models/credential/injectors.py,
    azure_rm) signs in as its app; the subscription is not used."""
    for name, value in {
        "AZURE_SUBSCRIPTION_ID": "2d3c1f4e-0000-4000-8000-000000000001",
        "AZURE_CLIENT_ID": "awx-client",
        "AZURE_TENANT": "contoso.onmicrosoft.com",
        "AZURE_SECRET": "awx-secret-value",
        "AZURE_CLOUD_ENVIRONMENT": "AzureCloud",
    }.items():
        clean_environment.setenv(name, value)
    result = validate({})
    assert result.error_messages == []
    assert "awx-secret-value" in result._no_log_values  # pylint: disable=protected-access
    credential = resolve_credential(result.validated_parameters, environ={})
    assert (credential.method, credential.tenant_id, credential.client_id, credential.secret) == (
        "client_secret",
        "contoso.onmicrosoft.com",
        "awx-client",
        "awx-secret-value",
    )
    assert (credential.authority_host, credential.graph_endpoint) == (
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
    )


def test_ours_win_over_the_awx_built_in_credential(clean_environment):
    for name, value in {
        "AZURE_CLIENT_ID": "client",
        "AZURE_TENANT_ID": "ours.onmicrosoft.com",
        "AZURE_CLIENT_SECRET": "our-secret",
        "AZURE_TENANT": "theirs.onmicrosoft.com",
        "AZURE_SECRET": "their-secret",
    }.items():
        clean_environment.setenv(name, value)
    credential = resolve_credential(validate({}).validated_parameters, environ={})
    assert (credential.tenant_id, credential.secret) == ("ours.onmicrosoft.com", "our-secret")


@pytest.mark.parametrize(
    "value, cloud",
    [
        ("AzureCloud", "public"),
        ("AzureUSGovernment", "usgov"),
        ("AzureChinaCloud", "china"),
        ("azurechinacloud", "china"),
        ("AZUREUSGOVERNMENT", "usgov"),
        ("usgov_dod", "usgov_dod"),
    ],
)
def test_azure_cloud_environment_names_the_cloud(clean_environment, value, cloud):
    clean_environment.setenv("AZURE_CLOUD_ENVIRONMENT", value)
    result = validate({})
    assert result.error_messages == []
    assert result.validated_parameters["cloud"] == cloud
    assert AZURE_CLOUD_ENVIRONMENTS.get(value.lower(), value) == cloud


@pytest.mark.parametrize("value", ["AzureGermanCloud", "https://management.local.azurestack.external", "mars"])
def test_an_unknown_azure_cloud_environment_is_refused_naming_it(clean_environment, value):
    clean_environment.setenv("AZURE_CLOUD_ENVIRONMENT", value)
    result = validate({})
    assert [str(error) for error in result.errors] == [
        f"value of cloud must be one of: public, usgov, usgov_dod, china, got: {value}"
    ]


def test_an_explicit_cloud_wins_over_azure_cloud_environment(clean_environment):
    clean_environment.setenv("AZURE_CLOUD_ENVIRONMENT", "AzureGermanCloud")
    assert validate({"cloud": "usgov_dod"}).validated_parameters["cloud"] == "usgov_dod"


def test_without_azure_cloud_environment_the_cloud_is_public(clean_environment):
    clean_environment.setenv("AZURE_CLOUD_ENVIRONMENT", "")
    assert validate({}).validated_parameters["cloud"] == "public"


def test_endpoints_and_ca_from_the_environment(clean_environment, tmp_path):
    clean_environment.setenv("ENTRA_AUTHORITY_HOST", "login.example.test:8443")
    clean_environment.setenv("ENTRA_GRAPH_ENDPOINT", "https://graph.example.test:9443/")
    clean_environment.setenv("ENTRA_CA_PATH", str(tmp_path / "ca.pem"))
    params = validate({"access_token": "token"}).validated_parameters
    assert params["ca_path"] == str(tmp_path / "ca.pem")
    credential = resolve_credential(params, environ={})
    assert (credential.authority_host, credential.graph_endpoint) == (
        "https://login.example.test:8443",
        "https://graph.example.test:9443",
    )
    assert credential.scope == "https://graph.microsoft.com/.default"  # the cloud's Graph resource, as for the option


def test_azure_authority_host_wins_over_entra_authority_host(clean_environment):
    clean_environment.setenv("ENTRA_AUTHORITY_HOST", "login.entra.test")
    clean_environment.setenv("AZURE_AUTHORITY_HOST", "login.azure.test")
    credential = resolve_credential(validate({"access_token": "token"}).validated_parameters, environ={})
    assert credential.authority_host == "https://login.azure.test"


@pytest.mark.parametrize(
    "variable, option, value, problem",
    [
        ("ENTRA_GRAPH_ENDPOINT", "graph_endpoint", "http://127.0.0.1:8080", "must use https://"),
        ("ENTRA_AUTHORITY_HOST", "authority_host", "http://login.example.test", "must use https://"),
        ("AZURE_AUTHORITY_HOST", "authority_host", "http://login.example.test", "must use https://"),
        ("ENTRA_GRAPH_ENDPOINT", "graph_endpoint", "https://graph.example.test/v1.0", "must be the root URL"),
    ],
)
def test_an_endpoint_from_the_environment_is_checked(clean_environment, variable, option, value, problem):
    """validate_certs=false does not let a plain-HTTP endpoint through, from the environment either."""
    clean_environment.setenv(variable, value)
    params = validate({"access_token": "token", "validate_certs": False}).validated_parameters
    with pytest.raises(UnsafeDestination) as info:
        resolve_credential(params, environ={})
    assert info.value.message.startswith(f"{option} '{value}' {problem}")


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


def test_graph_argument_spec_env_applies_only_to_unset_options(clean_environment):
    clean_environment.setenv("AZURE_TENANT_ID", "env-tenant.onmicrosoft.com")
    clean_environment.setenv("AZURE_CLIENT_ID", "env-client")
    clean_environment.setenv("AZURE_CLIENT_SECRET", "env-secret-value")
    clean_environment.setenv("AZURE_AUTHORITY_HOST", "login.example.test")
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
