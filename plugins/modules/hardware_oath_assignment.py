#!/usr/bin/python
# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_oath_assignment
short_description: Assign and activate a hardware OATH token for a user in Microsoft Entra ID
version_added: 1.0.0
description:
  - Makes one hardware OATH (TOTP) token, found by serial number or device id in the tenant's inventory, assigned to
    and activated for one user, or unassigned from them, through Microsoft Graph (beta).
  - It reads the token and the user first and writes only what must change, so running it again changes nothing.
  - A token that is available is assigned and activated in one request (C(assignAndActivateBySerialNumber) or
    C(assignAndActivate)); a token already assigned to the user but not activated (or whose activation failed) is
    activated. A token held by another user is left alone and the task fails, unless O(reassign=true).
  - The 6-digit activation code is given (O(verification_code)), or computed from the token's secret
    (O(secret_key)) with the token's own hash function and time step right before the request, for the step after
    the current one, so a code its previous holder (or another run) has just used is never sent again. A computed
    code Graph refuses anyway is followed by the code of a later step, at most three in all.
  - A write whose answer is lost (a dropped connection, a time-out) is never repeated blindly. The token is read
    again; only if the write did not take effect is it sent again, with a code for a later time step. A given
    O(verification_code) is never sent twice.
author:
  - tokenops developers (@tokenops)
extends_documentation_fragment:
  - tokenops.entra.graph_auth
  - tokenops.entra.attributes
  - tokenops.entra.attributes.writes
  - tokenops.entra.attributes.actiongroup_graph
options:
  user:
    description:
      - The user, by user principal name or object id.
      - V(me) means the signed-in user (C(/me)); it needs a delegated access token (O(access_token)). When the
        user may not read the tenant's inventory (self-service), the token is looked up among their own methods;
        one that is not there is taken as available, with the default hash function and time step (SHA-1, 30 s)
        for computing its code.
    type: str
    required: true
  serial_number:
    description:
      - The serial number of the token. One filtered request finds it in the inventory. A token that is not there is
        looked up again for up to O(read_after_write_wait) seconds, in case it was imported a moment ago (Graph's
        directory is eventually consistent), before the task fails.
      - Exactly one of O(serial_number) and O(device_id) is required.
    type: str
  device_id:
    description:
      - The id of the token in the inventory (hardwareOathTokenAuthenticationMethodDevice).
    type: str
  verification_code:
    description:
      - The code the token shows now, a string of 6 digits. Quote it in YAML, as in C("012345"); unquoted, a code
        with a leading zero is read as an octal number. An integer is zero-padded to 6 digits.
      - Used at most once. Mutually exclusive with O(secret_key).
    type: str
  secret_key:
    description:
      - The token's secret seed, to compute the activation code. Base32 by default (case, spaces, dashes and
        padding do not matter); see O(secret_format). Keep it in Ansible Vault.
      - It is never sent to Graph by this module and never returned.
    type: str
  secret_format:
    description:
      - The encoding of O(secret_key). Vendors often ship V(hex) seeds.
    type: str
    choices: [base32, hex]
    default: base32
  display_name:
    description:
      - The name the user sees for the token. Set when the token is activated. Omit it to leave the name as it is.
      - Renaming an activated token re-activates it, so it needs O(verification_code) or O(secret_key).
    type: str
  state:
    description:
      - V(present) assigns the token to O(user) (and activates it unless O(activate=false)).
      - V(absent) unassigns it if O(user) holds it; the token stays in the inventory, available.
    type: str
    choices: [present, absent]
    default: present
  activate:
    description:
      - Activate the token. V(false) only assigns it; an already activated token is left activated.
    type: bool
    default: true
  reassign:
    description:
      - When the token is assigned to another user, unassign it from them and assign it to O(user). Without this,
        the task fails and names both users.
      - If the assignment to O(user) fails after the unassignment, the token is held by nobody. The task then fails
        with C(changed=true), names the user who lost the token and the task that gives it back, and lists what was
        done (RV(actions)) and what was not (RV(pending_actions)). Running it again finishes the handover.
    type: bool
    default: false
  refuse_directory_role_holders:
    description:
      - Fail, before any write, when a user whose methods the task would change holds a Microsoft Entra directory
        role (directly or through a role-assignable group) - O(user), and with O(reassign=true) the token's current
        holder. The error names the user and the roles.
      - Entra ID lets an Authentication Administrator manage the methods of users without an admin role only; an
        administrator's methods are for a Privileged Authentication Administrator. An application permission
        (C(UserAuthenticationMethod.ReadWrite.All)) has no such split. Set this where the people who run the task
        (an AWX job template's survey, a self-service pipeline) must not give a token they hold to an administrator.
      - Each such user's memberships are read (C(GET /users/{id}/transitiveMemberOf), every page) only when the task
        would write; a read that fails fails the task, with nothing changed. Also in check mode.
      - Needs C(User.Read.All) (or C(Directory.Read.All)). With it alone Graph hides a role's name; the error then
        gives the role's id.
    type: bool
    default: false
notes:
  - Serial numbers, manufacturers, models and display names holding control characters (or bidirectional formatting
    characters), or longer than 128 characters (256 for display names), are refused before any request; see the
    collection's docs/security.md for the limits and where they come from.
  - "Least-privilege Microsoft Graph application permissions: C(Policy.Read.All) to look up the token,
    C(User.Read.All) to look up the user, C(UserAuthenticationMethod.ReadWrite.All) to assign, activate and unassign.
    A signed-in (delegated) user also needs the Authentication Administrator role, or Privileged Authentication
    Administrator when the target user holds an admin role."
  - Entra ID does not allow hardware OATH tokens for guest users, or more than five OATH methods (hardware tokens
    and authenticator apps) per user. A refused assignment or activation is judged from state, not from Graph's
    words. The token is read again and, when the user does not hold it yet, the user's OATH methods are counted
    (C(UserAuthenticationMethod.Read.All) is enough for that read; without it Graph's refusal is shown as it is).
  - A legacy token (from the admin center's old CSV upload) is not in the inventory but may be held by a user beside
    the inventory's token of the same serial number. The module acts on the inventory's token and, when it gives a
    token to a user, warns of each legacy twin among the user's methods, with how to remove it.
  - An unchanged run makes two Graph requests (the token and the user); an assignment with activation four (the
    write, and a read of the user's methods for legacy twins). With O(user=me), a token not yet among the user's own
    methods costs one more read (the inventory). O(refuse_directory_role_holders=true) adds, to a run that writes,
    one read per user it writes for (one per 100 of their group memberships and roles).
seealso:
  - name: assignAndActivateBySerialNumber
    description: The Microsoft Graph (beta) action this module calls.
    link: https://learn.microsoft.com/en-us/graph/api/hardwareoathauthenticationmethod-assignandactivatebyserialnumber?view=graph-rest-beta
  - name: Manage hardware OATH tokens
    description: Microsoft Entra documentation.
    link: https://learn.microsoft.com/en-us/entra/identity/authentication/how-to-mfa-manage-oath-tokens
  - name: Assigning and activating hardware OATH tokens
    description: Every decision of this module, activation codes, lost answers, sign-in from CI and AWX.
    link: https://github.com/tokenops/entra/blob/main/docs/assignment.md
"""

EXAMPLES = r"""
---
- name: Assign and activate TOTP123456 for Amy Masters, computing the code from the token's secret
  tokenops.entra.hardware_oath_assignment:
    tenant_id: "{{ entra_tenant_id }}"
    client_id: "{{ entra_client_id }}"
    client_secret: "{{ entra_client_secret }}"
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    secret_key: "{{ vault_token_secrets['TOTP123456'] }}"  # from Ansible Vault
    display_name: Amy Masters Token

- name: Set the connection once for every module of the collection
  module_defaults:
    group/tokenops.entra.graph:
      tenant_id: "{{ entra_tenant_id }}"
      client_id: "{{ entra_client_id }}"
      client_certificate_path: /etc/tokenops/app.pem  # certificate and private key, PEM
  block:
    - name: Activate with the code the user reads from the token
      tokenops.entra.hardware_oath_assignment:
        user: amy.masters@contoso.com
        serial_number: TOTP123456
        verification_code: "012345"  # quoted: a leading zero matters

    - name: Hand a token over to another user
      tokenops.entra.hardware_oath_assignment:
        user: adele.vance@contoso.com
        serial_number: TOTP654321
        secret_key: "{{ vault_token_secrets['TOTP654321'] }}"
        reassign: true

- name: Assign without activating (the user activates it in My Security Info)
  tokenops.entra.hardware_oath_assignment:
    user: e55cb360-e3ee-4757-bdd2-04b1e5a00e32
    device_id: 6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b
    activate: false

- name: Let a help-desk job give tokens to users without an admin role only
  tokenops.entra.hardware_oath_assignment:
    user: "{{ survey_user }}"
    serial_number: "{{ survey_serial_number }}"
    verification_code: "{{ survey_code }}"
    refuse_directory_role_holders: true  # fails, before any write, for a user who holds a directory role
  no_log: true  # the arguments hold the code

- name: Take the token away from the user; it stays in the inventory
  tokenops.entra.hardware_oath_assignment:
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    state: absent

- name: Preview what would change (no write is made)
  tokenops.entra.hardware_oath_assignment:
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    secret_key: "{{ vault_token_secrets['TOTP123456'] }}"
  check_mode: true
  diff: true

- name: Sign in from a GitHub Actions job with workload identity federation
  tokenops.entra.hardware_oath_assignment:
    tenant_id: "{{ entra_tenant_id }}"
    client_id: "{{ entra_client_id }}"
    federated_token_file: "{{ lookup('env', 'RUNNER_TEMP') }}/oidc-token"
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    secret_key: "{{ vault_token_secrets['TOTP123456'] }}"

- name: Use the managed identity of the runner (AWX on Azure, App Service, Functions)
  tokenops.entra.hardware_oath_assignment:
    auth_method: managed_identity
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    secret_key: "{{ vault_token_secrets['TOTP123456'] }}"

- name: Use an access token obtained elsewhere, and keep sign-ins in a cache across tasks
  tokenops.entra.hardware_oath_assignment:
    access_token: "{{ graph_access_token }}"
    user: amy.masters@contoso.com
    serial_number: TOTP123456
    verification_code: "{{ code_from_the_token }}"
"""

RETURN = r"""
assignment:
  description: The token and who holds it, after the task (predicted in check mode).
  returned: always
  type: dict
  contains:
    device_id:
      description: The token's id in the inventory.
      type: str
      sample: 6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b
    serial_number:
      description: The token's serial number.
      type: str
      sample: TOTP123456
    status:
      description: V(available), V(assigned), V(activated) or V(failedActivation).
      type: str
      sample: activated
    display_name:
      description: The token's display name.
      type: str
      sample: Amy Masters Token
    assigned_to:
      description: Who holds the token; null when it is available.
      type: dict
      contains:
        id:
          description: The user's object id.
          type: str
          sample: e55cb360-e3ee-4757-bdd2-04b1e5a00e32
        display_name:
          description: The user's display name.
          type: str
          sample: Amy Masters
        user_principal_name:
          description: The user's principal name when the holder is O(user); null otherwise.
          type: str
          sample: amy.masters@contoso.com
actions:
  description:
    - What the task did (or would do in check mode), in order. Empty when nothing had to change.
    - When the task failed after some writes took effect (C(changed=true)), the writes that did.
  returned: always, and on a failure after writes took effect
  type: list
  elements: dict
  contains:
    action:
      description: V(unassign), V(set_display_name), V(assign), V(activate) or V(assign_and_activate).
      type: str
      sample: assign_and_activate
    user_id:
      description: The object id of the user whose method it changes.
      type: str
      sample: e55cb360-e3ee-4757-bdd2-04b1e5a00e32
    reason:
      description: Why.
      type: str
      sample: token TOTP123456 is available
pending_actions:
  description: When the task failed after some writes took effect, the actions that did not happen (the failed one
    first), with the same keys as RV(actions).
  returned: on a failure after writes took effect
  type: list
  elements: dict
  sample: [{"action": "assign_and_activate", "user_id": "e55cb360-e3ee-4757-bdd2-04b1e5a00e32",
            "reason": "token TOTP123456 is available"}]
graph_error:
  description: Graph's error, when the task failed on a Graph answer.
  returned: on failure
  type: dict
  contains:
    status:
      description: The HTTP status.
      type: int
      sample: 403
    code:
      description: Graph's error code.
      type: str
      sample: accessDenied
    message:
      description: Graph's error message.
      type: str
      sample: Request Authorization failed
    request_id:
      description: The request id, for a Microsoft support case.
      type: str
      sample: 94fb3b52-452a-4535-a601-69e0a90e3aa2
    client_request_id:
      description: The client request id this module sent.
      type: str
      sample: 0e5d7a1c-7b8f-4b35-a0a4-1d2b8c1e9f10
    date:
      description: When Graph answered.
      type: str
      sample: "2026-11-21T22:42:25"
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, PlanError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import ASSIGN, ASSIGN_AND_ACTIVATE, Plan
from ansible_collections.tokenops.entra.plugins.module_utils._domain.codes import (
    CodeSource,
)
from ansible_collections.tokenops.entra.plugins.module_utils._domain.token_options import TEXT_LIMITS
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.execute import execute_assignment_plan
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    HardwareOathApi,
    unknown_token,
)
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.secret_intake import take_code, take_secret
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import hardware_oath_api
from ansible_collections.tokenops.entra.plugins.module_utils._planning.assignment import Desired, plan_assignment


def code_source(module: GraphModule) -> CodeSource:
    """Where the codes come from: the secret (computed, each hidden from the output) or the given code."""
    params = module.params
    subject = f"token {params['serial_number'] or params['device_id']}"
    secret = take_secret(module, params["secret_key"], params["secret_format"], subject=subject, computes_codes=True)
    if secret is not None:
        return CodeSource(secret_b32=secret, redact=module.no_log_values.add, history=module.code_history)
    return CodeSource(verification_code=take_code(module, params["verification_code"], subject=subject))


def assignment_result(after: dict[str, t.Any], user: UserView) -> dict[str, t.Any]:
    holder = after["assigned_to"]
    if holder:
        upn = user.user_principal_name if holder["id"] == user.id else None
        holder = {**holder, "user_principal_name": upn}
    return {
        "device_id": after["device_id"],
        "serial_number": after["serial_number"],
        "status": after["status"],
        "display_name": after["display_name"],
        "assigned_to": holder,
    }


def find_token(api: HardwareOathApi, params: dict[str, t.Any]) -> TokenView:
    serial, device_id, me = params["serial_number"], params["device_id"], params["user"] == "me"
    if me:  # a self-service user may read only their own methods, not the inventory
        mine = api.my_token(serial, device_id)
        if mine is not None:
            return mine
    try:
        return api.token_by_serial(serial) if serial else api.token_by_id(device_id, wait=True)
    except GraphError as exc:
        if not me or exc.status != 403:
            raise
    return unknown_token(serial, device_id)


def refuse_directory_role_holders(api: HardwareOathApi, plan: Plan, token: TokenView, user: UserView, me: bool) -> None:
    """Fail when a user whose methods ``plan`` writes holds a directory role (their methods are for a Privileged
    Authentication Administrator). Reads each such user's roles; a failed read fails the task too."""
    for user_id in dict.fromkeys(action.user_id for action in plan.actions if action.user_id):
        if user_id == user.id:
            who = user.user_principal_name
        else:
            who = f"{token.assigned_to_name or 'the holder of ' + token.label} ({user_id})"
        roles = api.directory_roles(user_id, me=me and user_id == user.id)
        if roles:
            names = ", ".join(
                role["display_name"] or f"a role whose name the app may not read (id {role['id']})" for role in roles
            )
            raise PlanError(
                f"Refused: {who} holds the directory role(s) {names}, and refuse_directory_role_holders is set. "
                f"The hardware OATH tokens of a user with a directory role are managed by a Privileged Authentication "
                f"Administrator. Nothing was changed ({token.label})."
            )


def run(module: GraphModule) -> dict[str, t.Any]:
    params = module.params
    module.check_text(
        {
            "user": None,
            "serial_number": TEXT_LIMITS["serial_number"],
            "device_id": None,
            "display_name": TEXT_LIMITS["display_name"],
        }
    )
    codes = code_source(module)
    api = hardware_oath_api(module)
    user = api.user(params["user"])
    token = find_token(api, params)
    desired = Desired(
        state=params["state"],
        activate=params["activate"],
        display_name=params["display_name"],
        reassign=params["reassign"],
    )
    plan = plan_assignment(token, user, desired)
    if plan.needs_code and not codes.available:
        raise PlanError(
            f"{token.label} must be activated for {user.user_principal_name} "
            f"({', '.join(a.reason for a in plan.actions)}): give verification_code (the code the token "
            "shows) or secret_key (to compute it)."
        )
    if plan.changed and params["refuse_directory_role_holders"]:
        refuse_directory_role_holders(api, plan, token, user, me=params["user"] == "me")
    if plan.changed and not module.check_mode:
        execute_assignment_plan(
            api,
            plan,
            token,
            user,
            codes,
            params["display_name"],
            by_serial=bool(params["serial_number"]),
            me=params["user"] == "me",
            log=module.log,
        )
    if params["user"] != "me" and any(a.kind in (ASSIGN, ASSIGN_AND_ACTIVATE) for a in plan.actions):
        api.warn_of_legacy_twins(user, token)  # (for "me", find_token told them apart)
    return module.result(
        plan.changed,
        plan.before,
        plan.after,
        actions=[a.to_result() for a in plan.actions],
        assignment=assignment_result(plan.after, user),
    )


def main() -> None:
    module = GraphModule(
        argument_spec={
            "user": {"type": "str", "required": True},
            "serial_number": {"type": "str"},
            "device_id": {"type": "str"},
            "verification_code": {"type": "str", "no_log": True},
            "secret_key": {"type": "str", "no_log": True},
            "secret_format": {"type": "str", "choices": ["base32", "hex"], "default": "base32"},
            "display_name": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "activate": {"type": "bool", "default": True},
            "reassign": {"type": "bool", "default": False},
            "refuse_directory_role_holders": {"type": "bool", "default": False},
        },
        required_one_of=[("serial_number", "device_id")],
        mutually_exclusive=[("serial_number", "device_id"), ("verification_code", "secret_key")],
        supports_check_mode=True,
    )
    module.run(run, exclusive=True)


if __name__ == "__main__":
    main()
