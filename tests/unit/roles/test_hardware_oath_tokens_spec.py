# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The role hardware_oath_tokens: its defaults and its argument spec name the same variables with the same defaults,
every variable carries the role's prefix, and its token options are those of hardware_oath_inventory's tokens."""

from __future__ import annotations

import pathlib

import yaml

from ansible_collections.tokenops.entra.plugins.modules import hardware_oath_inventory, hardware_oath_policy

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "hardware_oath_tokens"
PREFIX = "hardware_oath_tokens_"


def load(path: str):
    return yaml.safe_load((ROLE / path).read_text(encoding="utf-8"))


SPEC = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")


def test_defaults_and_the_spec_name_the_same_variables():
    assert sorted(DEFAULTS) == sorted(SPEC)
    assert all(name.startswith(PREFIX) for name in SPEC)


def test_defaults_and_the_spec_give_the_same_defaults():
    assert {name: option.get("default") for name, option in SPEC.items()} == DEFAULTS


def test_every_option_is_typed_and_described():
    def check(options, where):
        for name, option in options.items():
            assert option.get("type"), f"{where}{name} has no type"
            assert option.get("description"), f"{where}{name} has no description"
            if option.get("type") == "list" and option.get("options"):
                assert option.get("elements") == "dict", f"{where}{name}: a list of options holds dicts"
            check(option.get("options") or {}, f"{where}{name}.")

    check(SPEC, "")


def test_token_options_are_those_of_the_inventory_module():
    module_tokens = yaml.safe_load(hardware_oath_inventory.DOCUMENTATION)["options"]["tokens"]["suboptions"]
    role_tokens = SPEC[PREFIX + "tokens"]["options"]

    def essence(options):
        return {
            name: {key: option.get(key) for key in ("type", "choices", "default", "required", "elements")}
            for name, option in options.items()
        }

    assert essence(role_tokens) == essence(module_tokens)


def test_secrets_are_no_log():
    tokens = SPEC[PREFIX + "tokens"]["options"]
    assert tokens["secret_key"]["no_log"] is True and tokens["verification_code"]["no_log"] is True
    assert SPEC[PREFIX + "pskc_preshared_key"]["no_log"] is True
    assert SPEC[PREFIX + "pskc_password"]["no_log"] is True


def test_prune_and_policy_options_are_those_of_their_modules():
    module_prune = yaml.safe_load(hardware_oath_inventory.DOCUMENTATION)["options"]["prune"]["suboptions"]
    assert sorted(SPEC[PREFIX + "prune"]["options"]) == sorted(module_prune)
    policy_options = yaml.safe_load(hardware_oath_policy.DOCUMENTATION)["options"]
    assert set(SPEC[PREFIX + "policy"]["options"]) <= set(policy_options)
