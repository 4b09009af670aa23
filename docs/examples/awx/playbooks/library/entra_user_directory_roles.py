# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# A module of the AWX example only (docs/examples/awx/playbooks/library/, found by ansible-playbook beside
# assign_token.yml): it is not part of the collection's interface. It signs in and reaches Graph exactly as the
# collection's modules do, through their shared code, which is private to the collection: keep it with the version
# of tokenops.entra it came with.

from __future__ import annotations

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError
from ansible_collections.tokenops.entra.plugins.module_utils._graph.odata import segment
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule

DOCUMENTATION = r"""
module: entra_user_directory_roles
short_description: The Microsoft Entra ID directory roles a user holds
description:
  - Reads C(GET /users/{user}/transitiveMemberOf/microsoft.graph.directoryRole) from Microsoft Graph, every page:
    the directory roles the user holds through an active assignment, directly or through a role-assignable group.
  - Used by the AWX example's C(assign_token.yml) to refuse, before any write, a user who holds a directory role.
  - Reads only. Needs the application permission C(User.Read.All) (Graph then shows a role's type and id, and may
    leave its name null).
  - Signs in as the tokenops.entra modules do; it takes their connection options and environment variables.
options:
  user:
    description: The user, by user principal name or object id.
    type: str
    required: true
extends_documentation_fragment:
  - tokenops.entra.graph_auth
"""

RETURN = r"""
user:
  description: The user, as given.
  returned: success
  type: str
directory_roles:
  description: The directory roles the user holds (empty when none).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The role's object id in the tenant.
      type: str
    display_name:
      description: The role's name (null when the app may not read roles).
      type: str
    role_template_id:
      description: The id of the role's template, the same in every tenant (null when the app may not read roles).
      type: str
holds_directory_role:
  description: Whether the user holds any directory role.
  returned: success
  type: bool
"""

ACTION = "read the user's directory roles"


def directory_roles(module: GraphModule) -> dict[str, t.Any]:
    user = module.params["user"].strip()
    if not user:
        raise InputError("user is empty. Nothing was read.")
    module.check_text({"user": 1024})
    client = module.graph_client()
    first = client.get(
        f"/users/{segment(user)}/transitiveMemberOf/microsoft.graph.directoryRole",
        action=ACTION,
        params={"$select": "id,displayName,roleTemplateId"},
    )
    roles = [
        {
            "id": item.get("id"),
            "display_name": item.get("displayName"),
            "role_template_id": item.get("roleTemplateId"),
        }
        for page, _more in client.pages(first, action=ACTION)
        for item in page
    ]
    return {"changed": False, "user": user, "directory_roles": roles, "holds_directory_role": bool(roles)}


def main() -> None:
    module = GraphModule({"user": {"type": "str", "required": True}}, supports_check_mode=True)
    module.run(directory_roles)


if __name__ == "__main__":
    main()
