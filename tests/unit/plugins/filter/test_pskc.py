# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The filter tokenops.entra.pskc_tokens: the wiring of pskc_seeds into a filter plugin, with a pre-shared key or a
password."""

from __future__ import annotations

import io

import jinja2
import pskc
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tokenops.entra.plugins.filter import pskc as plugin
from ansible_collections.tokenops.entra.plugins.module_utils._files import pskc_seeds
from ansible_collections.tokenops.entra.tests.unit.plugins.pskc_data import (
    PASSWORD,
    PSK,
    SEED,
    SEED_B32,
    T2_0001,
    TEST_ITERATIONS,
)


def seed_file(encrypted=False, password=None):
    container = pskc.PSKC()
    container.add_key(
        serial="T2-0001",
        secret=SEED,
        algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp",
        manufacturer="Token2",
        model="C202",
        response_length=6,
    )
    if encrypted:
        container.encryption.setup_preshared_key(key=PSK, key_name="Pre-shared-key")
    if password:
        container.encryption.setup_pbkdf2(password, iterations=TEST_ITERATIONS)
    out = io.BytesIO()
    container.write(out)
    return out.getvalue().decode("utf-8")


def test_the_plugin_provides_the_filter():
    assert plugin.FilterModule().filters() == {"pskc_tokens": plugin.pskc_tokens}


def test_the_filter_gives_the_entries():
    assert plugin.pskc_tokens(seed_file()) == [T2_0001]
    assert plugin.pskc_tokens(seed_file(encrypted=True), preshared_key=PSK.hex()) == [T2_0001]
    assert plugin.pskc_tokens(seed_file(password=PASSWORD), password=PASSWORD) == [T2_0001]
    assert plugin.pskc_tokens(seed_file(password=PASSWORD), preshared_key=None, password=PASSWORD) == [T2_0001]


def test_the_filter_in_a_template_with_the_keyword():
    environment = jinja2.Environment(autoescape=False)
    environment.filters.update(plugin.FilterModule().filters())
    template = environment.from_string("{{ (text | pskc_tokens(preshared_key=key))[0].serial_number }}")
    assert template.render(text=seed_file(encrypted=True), key=PSK.hex()) == "T2-0001"
    # As the role passes them: both options, the one not used None.
    template = environment.from_string("{{ (text | pskc_tokens(preshared_key=key, password=pw))[0].serial_number }}")
    assert template.render(text=seed_file(password=PASSWORD), key=None, pw=PASSWORD) == "T2-0001"


def check_t2_0001_refusal(error, message, secrets):
    """``error`` refuses T2-0001 saying ``message``, holds neither its seed nor any of ``secrets``, and hides its
    cause."""
    text = error.message
    assert text.startswith("tokenops.entra.pskc_tokens: key package 1 (serial number 'T2-0001'): ")
    assert message in text
    for secret in (SEED_B32, SEED.decode(), *secrets):
        assert secret not in text
    assert error.__cause__ is None


@pytest.mark.parametrize(
    "key, message",
    [
        (None, "the file's secrets are encrypted: give the pre-shared key (hex) the vendor sent as preshared_key"),
        ("00" * 16, "the pre-shared key does not decrypt it ("),
    ],
)
def test_refusals_are_filter_errors_never_holding_the_secret_or_the_key(key, message):
    with pytest.raises(AnsibleFilterError) as info:
        plugin.pskc_tokens(seed_file(encrypted=True), preshared_key=key)
    check_t2_0001_refusal(info.value, message, secrets=(PSK.hex(), "00" * 16))
    assert info.value.__suppress_context__


def test_without_python_pskc_the_filter_says_to_install_it(monkeypatch):
    monkeypatch.setattr(pskc_seeds, "pskc", None)
    with pytest.raises(AnsibleFilterError, match="install python-pskc on the controller"):
        plugin.pskc_tokens(seed_file())


@pytest.mark.parametrize("value", [None, 42, ["x"]])
def test_input_that_is_not_text_is_refused(value):
    with pytest.raises(
        AnsibleFilterError, match="^tokenops.entra.pskc_tokens: the input must be the text of a PSKC file, not a "
    ):
        plugin.pskc_tokens(value)


@pytest.mark.parametrize("key", [42, b"\x12\x34", ["12"]])
def test_a_preshared_key_that_is_not_a_string_is_refused_without_repeating_it(key):
    with pytest.raises(AnsibleFilterError) as info:
        plugin.pskc_tokens(seed_file(), preshared_key=key)
    assert info.value.message == (
        f"tokenops.entra.pskc_tokens: preshared_key must be a string of hex, not a {type(key).__name__}"
    )


@pytest.mark.parametrize(
    "password, message",
    [
        (None, "the file's secrets are encrypted with a key derived from a password (PBKDF2): give the password as "),
        ("not the vendor's password", "the password does not decrypt it ("),
    ],
)
def test_password_refusals_never_hold_the_password(password, message):
    with pytest.raises(AnsibleFilterError) as info:
        plugin.pskc_tokens(seed_file(password=PASSWORD), password=password)
    check_t2_0001_refusal(info.value, message, secrets=(PASSWORD, "not the vendor's password"))


def test_a_preshared_key_and_a_password_together_are_refused():
    with pytest.raises(AnsibleFilterError) as info:
        plugin.pskc_tokens(seed_file(password=PASSWORD), preshared_key=PSK.hex(), password=PASSWORD)
    assert info.value.message == (
        "tokenops.entra.pskc_tokens: give preshared_key or password, not both: a file's key is either shared or derived"
    )


@pytest.mark.parametrize("password", [42, b"secret-bytes", ["secret-in-a-list"]])
def test_a_password_that_is_not_a_string_is_refused_without_repeating_it(password):
    with pytest.raises(AnsibleFilterError) as info:
        plugin.pskc_tokens(seed_file(password=PASSWORD), password=password)
    assert info.value.message == (
        f"tokenops.entra.pskc_tokens: password must be a string, not a {type(password).__name__}"
    )
