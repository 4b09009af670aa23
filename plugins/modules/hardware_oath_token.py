#!/usr/bin/python
# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_oath_token
short_description: Manage a hardware OATH token in the Microsoft Entra ID inventory
version_added: 1.0.0
description:
  - Makes the inventory entry of one hardware OATH (TOTP) token, keyed by its serial number, exist with the wanted
    properties, or not exist, through Microsoft Graph (beta).
  - It reads the token first (one filtered request) and writes only what must change, so running it again changes
    nothing.
  - Graph never returns a token's secret and can't change it. O(secret_key) is used to create a token and is
    B(ignored when the token already exists), whatever its value; O(rotate=true) is the explicit way to re-seed a
    token (delete and recreate it with the new secret).
  - Graph changes and deletes only unassigned tokens. When the token is assigned and something must change, the
    task fails and names the holder, unless O(force_unassign=true).
  - To assign and activate a token for a user, use M(tokenops.entra.hardware_oath_assignment).
author:
  - tokenops developers (@tokenops)
extends_documentation_fragment:
  - tokenops.entra.graph_auth
  - tokenops.entra.attributes
  - tokenops.entra.attributes.writes
  - tokenops.entra.attributes.actiongroup_graph
attributes:
  idempotent:
    support: partial
    details:
      - With O(rotate=true) the token is recreated on every run.
options:
  serial_number:
    description:
      - The serial number printed on the token. Serial numbers are unique in the inventory (Graph compares them
        without regard to case).
    type: str
    required: true
  state:
    description:
      - V(present) creates the token if it is missing and updates the properties that differ.
      - V(absent) deletes it from the inventory. An assigned token is unassigned first only with
        O(force_unassign=true).
    type: str
    choices: [present, absent]
    default: present
  secret_key:
    description:
      - The token's secret seed, from the vendor's seed file. Required to create a token and with O(rotate=true).
      - Base32 by default (case, spaces, dashes and V(=) padding do not matter); see O(secret_format). It is checked
        before any request, sent to Graph only when the token is created, and never returned or logged. Keep it in
        Ansible Vault.
      - Ignored for comparison, because Graph never returns it.
    type: str
  secret_format:
    description:
      - The encoding of O(secret_key). Vendors often ship V(hex) seeds; they are converted to base32.
    type: str
    choices: [base32, hex]
    default: base32
  manufacturer:
    description:
      - The token's manufacturer, for example V(Thales) or V(Token2). Required to create a token.
    type: str
  model:
    description:
      - The token's model, for example V(OTP 110 Token). Required to create a token.
    type: str
  time_interval:
    description:
      - How many seconds each code is valid. Omitted, an existing token keeps its value and a new one gets V(30).
    type: int
    choices: [30, 60]
  hash_function:
    description:
      - The HMAC hash of the TOTP algorithm. Omitted, an existing token keeps its value and a new one gets
        V(hmacsha1).
    type: str
    choices: [hmacsha1, hmacsha256]
  display_name:
    description:
      - The token's display name. Omitted, it is left as it is.
    type: str
  user:
    description:
      - The user (user principal name or object id) who should hold the token. A new token is created already
        assigned to them (in the same request); an available token is assigned to them (not activated). Activate it
        with M(tokenops.entra.hardware_oath_assignment).
      - Omitted, the module does not change who holds the token. Ignored with O(state=absent).
    type: str
  force_unassign:
    description:
      - When the token is assigned and must be changed, rotated, deleted or given to O(user), unassign it
        first. Unless it is deleted it is then assigned again, to O(user) or else to its holder, B(but not
        activated); the holder must activate it again.
      - Without this, the task fails, names the holder and changes nothing.
      - If a later write fails after the unassignment, the task fails with C(changed=true), names the user who lost
        the token and the task that gives it back, and lists what was done (RV(actions)) and what was not
        (RV(pending_actions)).
    type: bool
    default: false
  rotate:
    description:
      - Replace the token's secret with O(secret_key) by deleting the token and creating it again. Properties not
        given are kept. The new token has a new id; its holder (see O(force_unassign)) must activate it again.
      - This changes the token on every run; use it once, when the token was re-seeded.
    type: bool
    default: false
notes:
  - Serial numbers, manufacturers, models and display names holding control characters (or bidirectional formatting
    characters), or longer than 128 characters (256 for display names), are refused before any request; see the
    collection's docs/security.md for the limits and where they come from.
  - "Least-privilege Microsoft Graph application permissions: C(Policy.Read.All) to read the inventory,
    C(Policy.ReadWrite.AuthenticationMethod) to create, update and delete tokens;
    C(UserAuthenticationMethod.ReadWrite.All)
    to assign or unassign (O(user), O(force_unassign)); C(User.Read.All) to look up O(user). A signed-in (delegated)
    user needs the Authentication Policy Administrator role (and Authentication Administrator to assign or
    unassign)."
  - Without C(UserAuthenticationMethod.ReadWrite.All), Graph silently ignores the assignment of a token created
    with O(user); this module detects it and fails, naming the permission.
  - An unchanged run makes one Graph request (two with O(user)); a creation or an update one more.
  - Graph's directory is eventually consistent. A token created a moment ago (by the task before) may not be listed
    yet; Graph then refuses to create it again, and the module reads it again (for up to O(read_after_write_wait)
    seconds) and updates it as needed. With O(rotate), the creation is sent again while the deletion propagates.
seealso:
  - module: tokenops.entra.hardware_oath_assignment
  - module: tokenops.entra.hardware_oath_token_info
  - name: Create hardwareOathTokenAuthenticationMethodDevice
    description: The Microsoft Graph (beta) API this module calls.
    link: https://learn.microsoft.com/en-us/graph/api/authenticationmethoddevice-post-hardwareoathdevices?view=graph-rest-beta
  - name: Token lifecycle guide
    description: Enable the policy, import, assign and activate, report, unassign, retire.
    link: https://github.com/tokenops/entra/blob/main/docs/lifecycle.md
"""

EXAMPLES = r"""
---
- name: Import a token from the vendor's seed file
  tokenops.entra.hardware_oath_token:
    tenant_id: "{{ entra_tenant_id }}"
    client_id: "{{ entra_client_id }}"
    client_secret: "{{ entra_client_secret }}"
    serial_number: GALT11420104
    secret_key: "{{ vault_token_secrets['GALT11420104'] }}"  # from Ansible Vault
    manufacturer: Thales
    model: OTP 110 Token
    time_interval: 30
    hash_function: hmacsha1

- name: Import a 60-second SHA-256 token whose seed is hex, already assigned to its user
  tokenops.entra.hardware_oath_token:
    serial_number: T2-SHA256-60-0002
    secret_key: "{{ vault_token_secrets['T2-SHA256-60-0002'] }}"
    secret_format: hex
    manufacturer: Token2
    model: C302
    time_interval: 60
    hash_function: hmacsha256
    display_name: Amy's fob
    user: amy.masters@contoso.com

- name: Import a whole seed file; connection set once for the collection
  module_defaults:
    group/tokenops.entra.graph:
      tenant_id: "{{ entra_tenant_id }}"
      client_id: "{{ entra_client_id }}"
      client_certificate_path: /etc/tokenops/app.pem
  tokenops.entra.hardware_oath_token:
    serial_number: "{{ item.serial_number }}"
    secret_key: "{{ item.secret_key }}"
    manufacturer: "{{ item.manufacturer }}"
    model: "{{ item.model }}"
  loop: "{{ vault_token_seed_file }}"
  loop_control:
    label: "{{ item.serial_number }}"  # never the secret

- name: Correct the model of an assigned token (it is unassigned, updated, and assigned back, not activated)
  tokenops.entra.hardware_oath_token:
    serial_number: GALT11420104
    model: OTP 110
    force_unassign: true

- name: Re-seed a token with a new secret
  tokenops.entra.hardware_oath_token:
    serial_number: GALT11420104
    secret_key: "{{ vault_new_secret }}"
    rotate: true

- name: Retire a token, even if someone still holds it
  tokenops.entra.hardware_oath_token:
    serial_number: GALT11420104
    state: absent
    force_unassign: true

- name: Preview the change (no write is made)
  tokenops.entra.hardware_oath_token:
    serial_number: GALT11420104
    display_name: Spare token
  check_mode: true
  diff: true
"""

RETURN = r"""
token:
  description:
    - The token after the task (predicted in check mode; a token to be created has no id yet). Empty when it is not
      in the inventory.
    - Never holds the secret.
  returned: always
  type: dict
  contains:
    device_id:
      description: The token's id in the inventory (it is also the id of the user's authentication method).
      type: str
      sample: 3dee0e53-f50f-43ef-85c0-b44689f2d66d
    serial_number:
      description: The serial number.
      type: str
      sample: GALT11420104
    display_name:
      description: The display name.
      type: str
      sample: Spare token
    manufacturer:
      description: The manufacturer.
      type: str
      sample: Thales
    model:
      description: The model.
      type: str
      sample: OTP 110 Token
    time_interval:
      description: How many seconds each code is valid.
      type: int
      sample: 30
    hash_function:
      description: V(hmacsha1) or V(hmacsha256).
      type: str
      sample: hmacsha1
    status:
      description: V(available), V(assigned), V(activated) or V(failedActivation).
      type: str
      sample: available
    assigned_to:
      description: Who holds the token; null when it is available.
      type: dict
      contains:
        id:
          description: The user's object id.
          type: str
        display_name:
          description: The user's display name.
          type: str
        user_principal_name:
          description: The user's principal name when the task looked the user up (O(user)), else null.
          type: str
    last_used_date_time:
      description: When the token was last used to sign in, or null.
      type: str
actions:
  description:
    - What the task did (or would do in check mode), in order. Empty when nothing had to change.
    - When the task failed after some writes took effect (C(changed=true)), the writes that did.
  returned: always, and on a failure after writes took effect
  type: list
  elements: dict
  contains:
    action:
      description: V(unassign), V(delete), V(create), V(update) or V(assign).
      type: str
      sample: update
    user_id:
      description: The object id of the user an V(unassign), V(assign) or V(create) with assignment concerns.
      type: str
    reason:
      description: Why.
      type: str
      sample: model differ
    changes:
      description: The fields an V(update) or a V(create) sets.
      type: list
      elements: str
      returned: for update and create
      sample: [model]
pending_actions:
  description: When the task failed after some writes took effect, the actions that did not happen (the failed one
    first), with the same keys as RV(actions).
  returned: on a failure after writes took effect
  type: list
  elements: dict
  sample: [{"action": "update", "user_id": null, "reason": "model differs", "changes": ["model"]}]
graph_error:
  description:
    - Graph's error, when the task failed on a Graph answer (status, code, message, request_id, client_request_id,
      date).
  returned: on failure
  type: dict
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.token_options import (
    TEXT_LIMITS,
    token_argument_spec,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.execute import apply_token
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.secret_intake import take_secret
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import hardware_oath_api
from ansible_collections.tokenops.entra.plugins.module_utils._planning.token import TokenSpec, token_result


def run(module: GraphModule) -> dict[str, t.Any]:
    params = module.params
    module.check_text({**TEXT_LIMITS, "user": None})
    subject = f"token {params['serial_number']}"
    secret_b32 = take_secret(module, params["secret_key"], params["secret_format"], subject=subject)
    if params["rotate"] and (secret_b32 is None or params["state"] == "absent"):
        # Not the argument spec's required_if: its message could not name the token.
        raise InputError(
            f"token {params['serial_number']}: rotate=true recreates the token with a new secret; give "
            "secret_key, with state=present."
        )
    api = hardware_oath_api(module)
    target = api.user(params["user"]) if params["user"] and params["state"] == "present" else None
    spec = TokenSpec(
        serial_number=params["serial_number"],
        state=params["state"],
        has_secret=secret_b32 is not None,
        manufacturer=params["manufacturer"],
        model=params["model"],
        time_interval=params["time_interval"],
        hash_function=params["hash_function"],
        display_name=params["display_name"],
        assigned_to=target,
        force_unassign=params["force_unassign"],
        rotate=params["rotate"],
    )
    plan, created = apply_token(api, spec, secret_b32, check_mode=module.check_mode, log=module.log)
    after = plan.after
    if created is not None:  # Graph's answer: the new id and status
        after = token_result(created, (after.get("assigned_to") or {}).get("user_principal_name"))
    return module.result(plan.changed, plan.before, after, actions=[a.to_result() for a in plan.actions], token=after)


def main() -> None:
    module = GraphModule(
        argument_spec={
            **token_argument_spec(),
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "user": {"type": "str"},
            "force_unassign": {"type": "bool", "default": False},
            "rotate": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    module.run(run, exclusive=True)


if __name__ == "__main__":
    main()
