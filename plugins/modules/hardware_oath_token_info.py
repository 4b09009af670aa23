#!/usr/bin/python
# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_oath_token_info
short_description: List hardware OATH tokens of Microsoft Entra ID, and the tokens of users
version_added: 1.0.0
description:
  - Lists the tokens of the tenant's hardware OATH inventory that match every given filter, following every page,
    with the user principal name of each token's holder.
  - Graph documents one C(eq) comparison per inventory C($filter), and may ignore a filter it does not support. So
    the module asks Graph for one C(eq) listing per value of the most selective filter (serial numbers, then
    O(assigned_to), O(status), O(model), O(manufacturer)), several at once through JSON batching, and checks every
    filter again on what comes back, so a filter Graph ignored never widens the result. A filter Graph refuses is
    replaced, once, by a listing of the whole inventory filtered locally (with a warning).
  - Optionally reads the hardware OATH authentication methods of given users (O(users)), which needs only the
    permission to read their methods; set O(inventory=false) to read nothing else.
author:
  - tokenops developers (@tokenops)
extends_documentation_fragment:
  - tokenops.entra.graph_auth
  - tokenops.entra.attributes
  - tokenops.entra.attributes.info_module
  - tokenops.entra.attributes.actiongroup_graph
options:
  serial_numbers:
    description:
      - Only these tokens. Serial numbers that match no token are listed in RV(missing_serial_numbers).
      - Up to 20 serial numbers are one C(eq) listing each, in one round trip. Longer lists are read from a listing
        of the whole inventory, for at most as many pages as the C(eq) listings would take round trips; the serial
        numbers not seen by then are looked up with C(eq) listings. A list never costs more than twice the cheaper
        of the two ways.
    type: list
    elements: str
  status:
    description:
      - Only tokens with one of these statuses.
    type: list
    elements: str
    choices: [available, assigned, activated, failedActivation]
  manufacturer:
    description:
      - Only tokens of this manufacturer (Graph compares without regard to case).
    type: str
  model:
    description:
      - Only tokens of this model.
    type: str
  assigned_to:
    description:
      - Only the tokens this user holds, by user principal name or object id (one request looks the user up).
    type: str
  unassigned_only:
    description:
      - Only tokens nobody holds (status V(available)). Not with O(status) or O(assigned_to).
    type: bool
    default: false
  users:
    description:
      - Also read the hardware OATH methods of these users (user principal names, object ids, or V(me) for the
        signed-in user), into RV(hardware_oath_methods). A user that does not exist fails the task.
    type: list
    elements: str
  inventory:
    description:
      - List the inventory. V(false) reads only the methods of O(users) (and needs no inventory permission).
    type: bool
    default: true
  resolve_assignees:
    description:
      - Look up the user principal name of each token's holder (up to 300 users per request, through JSON
        batching). V(false) saves those requests and the C(User.Read.All) permission;
        RV(hardware_oath_tokens[].assigned_to.user_principal_name)
        is then null unless O(assigned_to) is given.
    type: bool
    default: true
notes:
  - Serial numbers, manufacturers, models and display names holding control characters (or bidirectional formatting
    characters), or longer than 128 characters (256 for display names), are refused before any request; see the
    collection's docs/security.md for the limits and where they come from.
  - "Least-privilege Microsoft Graph application permissions: C(Policy.Read.All) to list the inventory,
    C(User.Read.All) (or C(User.ReadBasic.All)) to resolve holders and O(assigned_to), and
    C(UserAuthenticationMethod.Read.All) for O(users). A signed-in (delegated) user needs the Global Reader role
    (or Authentication Policy Administrator for the inventory, Authentication Administrator for methods); anyone may
    read their own methods with O(users=[me]) and C(UserAuthenticationMethod.Read)."
  - "Cost: one request per page of up to 999 tokens, or one batched request per 20 C(eq) listings (see
    O(serial_numbers)), one batched request per 300 distinct holders, one per user for O(assigned_to), and one
    batched request per 10 O(users) (one more when Graph leaves the C(device) of methods out)."
seealso:
  - module: tokenops.entra.hardware_oath_token
  - module: tokenops.entra.hardware_oath_assignment
  - name: List hardwareOathDevices
    description: The Microsoft Graph (beta) API this module calls.
    link: https://learn.microsoft.com/en-us/graph/api/authenticationmethoddevice-list-hardwareoathdevices?view=graph-rest-beta
  - name: Token lifecycle guide
    description: Reports of the inventory and of users' tokens.
    link: https://github.com/tokenops/entra/blob/main/docs/lifecycle.md#4-report
"""

EXAMPLES = r"""
---
- name: Every token in the inventory
  tokenops.entra.hardware_oath_token_info:
    tenant_id: "{{ entra_tenant_id }}"
    client_id: "{{ entra_client_id }}"
    client_secret: "{{ entra_client_secret }}"
  register: inventory

- name: Show who holds what
  ansible.builtin.debug:
    msg: "{{ item.serial_number }}: {{ item.status }} {{ item.assigned_to.user_principal_name | default('-') }}"
  loop: "{{ inventory.hardware_oath_tokens }}"
  loop_control:
    label: "{{ item.serial_number }}"

- name: Spare Thales tokens on the shelf
  tokenops.entra.hardware_oath_token_info:
    manufacturer: Thales
    unassigned_only: true
  register: spares

- name: Tokens whose activation failed, to follow up
  tokenops.entra.hardware_oath_token_info:
    status: [failedActivation, assigned]

- name: These serial numbers; which of them are missing from the inventory?
  tokenops.entra.hardware_oath_token_info:
    serial_numbers: [GALT11420104, TOTP123456, NOT-IMPORTED-1]
  register: wanted

- name: The tokens Amy holds
  tokenops.entra.hardware_oath_token_info:
    assigned_to: amy.masters@contoso.com

- name: Only the methods of some users (UserAuthenticationMethod.Read.All is enough)
  tokenops.entra.hardware_oath_token_info:
    users: [amy.masters@contoso.com, e55cb360-e3ee-4757-bdd2-04b1e5a00e32]
    inventory: false

- name: The users' methods, legacy tokens from the old CSV upload told apart
  tokenops.entra.hardware_oath_token_info:
    users: [amy.masters@contoso.com, diego.siciliani@contoso.com]
    inventory: false
  register: holders

- name: Legacy tokens left to remove (each is also warned of, with the requests that remove it)
  ansible.builtin.debug:
    msg: "{{ item.0.user_principal_name }}: {{ item.1.token.serial_number }} (method {{ item.1.id }})"
  loop: "{{ holders.hardware_oath_methods | subelements('methods') }}"
  when: item.1.legacy
  loop_control:
    label: "{{ item.0.user_principal_name }}"
"""

RETURN = r"""
hardware_oath_tokens:
  description: The matching tokens, by serial number. Empty with O(inventory=false). Never holds a secret.
  returned: always
  type: list
  elements: dict
  contains:
    device_id:
      description: The token's id in the inventory.
      type: str
      sample: 3dee0e53-f50f-43ef-85c0-b44689f2d66d
    serial_number:
      description: The serial number.
      type: str
      sample: GALT11420104
    display_name:
      description: The display name, or null.
      type: str
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
      sample: activated
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
          description: The user's principal name (null with O(resolve_assignees=false), or if the user was deleted).
          type: str
    last_used_date_time:
      description: When the token was last used to sign in, or null.
      type: str
missing_serial_numbers:
  description:
    - The O(serial_numbers) that match no token, because they are not in the inventory or because the other filters
      exclude them.
  returned: when O(serial_numbers) is given and O(inventory=true)
  type: list
  elements: str
  sample: [NOT-IMPORTED-1]
hardware_oath_methods:
  description: For each of O(users), in order, the user and their hardware OATH methods.
  returned: when O(users) is given
  type: list
  elements: dict
  contains:
    user:
      description: The user as given in O(users).
      type: str
    user_id:
      description: The user's object id.
      type: str
    user_principal_name:
      description: The user's principal name.
      type: str
    display_name:
      description: The user's display name.
      type: str
    methods:
      description: The user's hardware OATH methods.
      type: list
      elements: dict
      contains:
        id:
          description: The method's id (the same as the token's id).
          type: str
        created_date_time:
          description: When the token was assigned to the user.
          type: str
        last_used_date_time:
          description: When the user last signed in with it, or null.
          type: str
        token:
          description: The token, as in RV(hardware_oath_tokens).
          type: dict
        legacy:
          description:
            - Whether the method is a legacy token (from the admin center's old CSV upload) rather than the
              inventory's token of the same serial number. Entra lets both be assigned to one user; each legacy
              one is also warned about, with how to remove it.
            - Told apart only where two of the user's methods share a serial number (one inventory lookup per
              such serial number); V(false) otherwise.
          type: bool
graph_error:
  description:
    - Graph's error, when the task failed on a Graph answer (status, code, message, request_id, client_request_id,
      date).
  returned: on failure
  type: dict
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.token_options import TEXT_LIMITS
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import STATUSES, TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import HardwareOathApi
from ansible_collections.tokenops.entra.plugins.module_utils._execution.token_query import TokenQuery, unique
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import hardware_oath_api
from ansible_collections.tokenops.entra.plugins.module_utils._planning.token import token_result

INVENTORY_FILTERS = ("serial_numbers", "status", "manufacturer", "model", "assigned_to", "unassigned_only")


def check_options(params: dict[str, t.Any]) -> None:
    """The rules between options that the argument spec can't say (it counts options given as false, too)."""
    if params["unassigned_only"] and (params["status"] or params["assigned_to"]):
        raise InputError("unassigned_only=true can't be combined with status or assigned_to.")
    if not params["inventory"]:
        given = [name for name in INVENTORY_FILTERS if params[name]]
        if given:
            raise InputError(f"{', '.join(given)} filter the inventory, which inventory=false does not read.")


def list_inventory(api: HardwareOathApi, params: dict[str, t.Any]) -> dict[str, t.Any]:
    holder = api.user(params["assigned_to"]) if params["assigned_to"] else None
    serials = unique(params["serial_numbers"] or [])
    statuses = ["available"] if params["unassigned_only"] else params["status"]
    tokens = api.list_tokens(
        TokenQuery(
            serial_numbers=tuple(serials),
            statuses=tuple(statuses or ()),
            manufacturer=params["manufacturer"],
            model=params["model"],
            assigned_to_id=holder.id if holder else None,
        )
    )
    tokens.sort(key=lambda token: (token.serial_number.lower(), token.id))
    upns = {holder.id: holder.user_principal_name} if holder else {}
    if params["resolve_assignees"] and not holder:
        users = api.users_by_ids([token.assigned_to_id for token in tokens if token.assigned_to_id])
        upns = {user_id: user.user_principal_name for user_id, user in users.items()}
    result: dict[str, t.Any] = {
        "hardware_oath_tokens": [token_result(token, upns.get(token.assigned_to_id or "")) for token in tokens]
    }
    if serials:
        found = {token.serial_number.lower() for token in tokens}
        result["missing_serial_numbers"] = [serial for serial in serials if serial.lower() not in found]
    return result


def method_result(user: UserView, method: dict[str, t.Any], legacy: t.AbstractSet[str]) -> dict[str, t.Any]:
    return {
        "id": method["id"],
        "created_date_time": method.get("createdDateTime"),
        "last_used_date_time": method.get("lastUsedDateTime"),
        "token": token_result(TokenView.from_method(method, user), user.user_principal_name),
        "legacy": method["id"] in legacy,
    }


def user_methods_result(api: HardwareOathApi, ref: str, user: UserView, methods: list[dict]) -> dict[str, t.Any]:
    legacy = api.legacy_methods(user.user_principal_name, methods)
    return {
        "user": ref,
        "user_id": user.id,
        "user_principal_name": user.user_principal_name,
        "display_name": user.display_name,
        "methods": [method_result(user, m, legacy) for m in methods],
    }


def run(module: GraphModule) -> dict[str, t.Any]:
    params = module.params
    module.check_text(
        {
            "serial_numbers": TEXT_LIMITS["serial_number"],
            "manufacturer": TEXT_LIMITS["manufacturer"],
            "model": TEXT_LIMITS["model"],
            "assigned_to": None,
            "users": None,
        }
    )
    check_options(params)
    api = hardware_oath_api(module)
    result: dict[str, t.Any] = {"changed": False, "hardware_oath_tokens": []}
    if params["inventory"]:
        result.update(list_inventory(api, params))
    if params["users"]:
        result["hardware_oath_methods"] = [
            user_methods_result(api, ref, user, methods)
            for ref, (user, methods) in zip(params["users"], api.users_with_methods(params["users"]))
        ]
    return result


def main() -> None:
    module = GraphModule(
        argument_spec={
            "serial_numbers": {"type": "list", "elements": "str"},
            "status": {"type": "list", "elements": "str", "choices": list(STATUSES)},
            "manufacturer": {"type": "str"},
            "model": {"type": "str"},
            "assigned_to": {"type": "str"},
            "unassigned_only": {"type": "bool", "default": False},
            "users": {"type": "list", "elements": "str"},
            "inventory": {"type": "bool", "default": True},
            "resolve_assignees": {"type": "bool", "default": True},
        },
        required_if=[("inventory", False, ("users",))],
        supports_check_mode=True,
    )
    module.run(run)


if __name__ == "__main__":
    main()
