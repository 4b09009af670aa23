#!/usr/bin/python
# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_oath_policy
short_description: Enable or disable hardware OATH tokens in the Microsoft Entra ID authentication methods policy
version_added: 1.0.0
description:
  - Sets the state and the targets of the hardware OATH method (C(hardwareOath)) in the tenant's authentication
    methods policy, through Microsoft Graph (beta). Users can sign in with a hardware OATH token only while the
    method is enabled for them.
  - It reads the configuration first and sends one PATCH with only what differs, so running it again changes
    nothing.
author:
  - tokenops developers (@tokenops)
extends_documentation_fragment:
  - tokenops.entra.graph_auth
  - tokenops.entra.attributes
  - tokenops.entra.attributes.writes
  - tokenops.entra.attributes.actiongroup_graph
options:
  state:
    description:
      - V(enabled) turns the method on for the included groups; V(disabled) turns it off for everyone. Omitted, the
        state is left as it is.
    type: str
    choices: [enabled, disabled]
  include_targets:
    description:
      - The groups the method is enabled for, by object id, or V(all_users). The list replaces the current one
        (order and case do not matter); a group that stays keeps its C(isRegistrationRequired) setting.
      - Omitted, the included groups are left as they are.
    type: list
    elements: str
  exclude_targets:
    description:
      - The groups the method is disabled for even when included, by object id. V([]) removes every exclusion.
      - Omitted, the excluded groups are left as they are.
    type: list
    elements: str
notes:
  - A group can't be both included and excluded. Given in both O(include_targets) and O(exclude_targets), or
    excluded while the tenant's policy includes it (or the reverse), it is refused before any write.
  - "Least-privilege Microsoft Graph application permissions: C(Policy.Read.AuthenticationMethod) to read,
    C(Policy.ReadWrite.AuthenticationMethod) to change. A signed-in (delegated) user needs the Authentication Policy
    Administrator role."
  - B(Propagation delay.) Microsoft documents up to 20 minutes before a policy change reaches sign-ins everywhere
    and recommends allowing an hour. Graph accepts token imports and assignments right away, but users may not be
    able to sign in with their tokens until the change has propagated. Enable the policy early in the rollout.
  - An unchanged run makes one Graph request; a change two.
seealso:
  - module: tokenops.entra.hardware_oath_token
  - module: tokenops.entra.hardware_oath_assignment
  - name: hardwareOathAuthenticationMethodConfiguration
    description: The Microsoft Graph (beta) resource this module manages.
    link: https://learn.microsoft.com/en-us/graph/api/resources/hardwareoathauthenticationmethodconfiguration?view=graph-rest-beta
  - name: Token lifecycle guide
    description: Enable the method, and the least-privilege permissions of each module.
    link: https://github.com/tokenops/entra/blob/main/docs/lifecycle.md#1-enable-the-method
"""

EXAMPLES = r"""
---
- name: Enable hardware OATH tokens for everyone
  tokenops.entra.hardware_oath_policy:
    tenant_id: "{{ entra_tenant_id }}"
    client_id: "{{ entra_client_id }}"
    client_secret: "{{ entra_client_secret }}"
    state: enabled
    include_targets: [all_users]
    exclude_targets: []

- name: Pilot with one group, excluding the break-glass accounts' group
  tokenops.entra.hardware_oath_policy:
    state: enabled
    include_targets:
      - 8361d191-fd0f-42ba-b637-98f616a7f4d7  # Hardware token holders
    exclude_targets:
      - 0464e283-b086-4607-8b49-e7344869c57b  # Break-glass accounts

- name: Preview the change
  tokenops.entra.hardware_oath_policy:
    state: disabled
  check_mode: true
  diff: true
"""

RETURN = r"""
policy:
  description: The configuration after the task (predicted in check mode).
  returned: always
  type: dict
  contains:
    id:
      description: The configuration's id.
      type: str
      sample: HardwareOath
    state:
      description: V(enabled) or V(disabled).
      type: str
      sample: enabled
    include_targets:
      description: The groups the method is enabled for.
      type: list
      elements: dict
      contains:
        id:
          description: The group's object id, or V(all_users).
          type: str
          sample: all_users
        target_type:
          description: V(group).
          type: str
        is_registration_required:
          description: Whether the group's users are asked to register a token.
          type: bool
    exclude_targets:
      description: The groups the method is disabled for.
      type: list
      elements: dict
      contains:
        id:
          description: The group's object id.
          type: str
        target_type:
          description: V(group).
          type: str
graph_error:
  description:
    - Graph's error, when the task failed on a Graph answer (status, code, message, request_id, client_request_id,
      date).
  returned: on failure
  type: dict
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._execution.execute import execute_policy_plan
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import policy_api
from ansible_collections.tokenops.entra.plugins.module_utils._planning.policy import (
    PolicySpec,
    check_no_overlap,
    normalize_targets,
    plan_policy,
)


def spec_from(module: GraphModule) -> PolicySpec:
    """Checked before any request; bad input changes nothing."""
    params = module.params
    try:
        spec = PolicySpec(
            state=params["state"],
            include_targets=normalize_targets(params["include_targets"], "include_targets"),
            exclude_targets=normalize_targets(params["exclude_targets"], "exclude_targets"),
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    check_no_overlap(spec.include_targets or (), spec.exclude_targets or (), given_both=True)
    return spec


def run(module: GraphModule) -> dict[str, t.Any]:
    spec = spec_from(module)
    api = policy_api(module)
    plan = plan_policy(api.read(), spec)
    if plan.changed and not module.check_mode:
        execute_policy_plan(api, plan, module.log)
    return module.result(plan.changed, plan.before, plan.after, policy=plan.after)


def main() -> None:
    module = GraphModule(
        argument_spec={
            "state": {"type": "str", "choices": ["enabled", "disabled"]},
            "include_targets": {"type": "list", "elements": "str"},
            "exclude_targets": {"type": "list", "elements": "str"},
        },
        required_one_of=[("state", "include_targets", "exclude_targets")],
        supports_check_mode=True,
    )
    module.run(run)


if __name__ == "__main__":
    main()
