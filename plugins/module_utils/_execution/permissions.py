# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""What each Graph operation needs (least privilege first, as Microsoft's API pages list them), and the one place
that adds it to a refusal (403), so that every error says which permission is missing."""

from __future__ import annotations

import typing as t

from .._common.errors import GraphError
from .._graph.client import GraphClient

PERMISSIONS = {
    "read_token": "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod)",
    "write_token": "Policy.ReadWrite.AuthenticationMethod",
    "read_user": "User.Read.All (or User.ReadBasic.All)",
    "read_memberships": "User.Read.All (or Directory.Read.All; a role's name needs RoleManagement.Read.Directory)",
    "read_method": "UserAuthenticationMethod.Read (for yourself) or UserAuthenticationMethod.Read.All",
    "read_own_method": "UserAuthenticationMethod.Read (delegated, with a signed-in user)",
    "write_method": "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All)",
    "read_policy": "Policy.Read.AuthenticationMethod (or Policy.ReadWrite.AuthenticationMethod)",
    "write_policy": "Policy.ReadWrite.AuthenticationMethod",
}
# The directory role a signed-in (delegated) caller needs besides the permission.
ROLES = {
    "read_token": "Global Reader or Authentication Policy Administrator role",
    "write_token": "Authentication Policy Administrator role",
    "read_method": "Global Reader or Authentication Administrator role",
    "write_method": "Authentication Administrator role (Privileged Authentication Administrator for admin users)",
    "read_policy": "Global Reader or Authentication Policy Administrator role",
    "write_policy": "Authentication Policy Administrator role",
}


def with_permission_hint(error: GraphError, need: str) -> GraphError:
    """``error``, when it is a refusal (403), with the permission (and role) that operation ``need`` requires."""
    if error.status != 403:
        return error
    hint = f". The caller needs the Microsoft Graph permission {PERMISSIONS[need]}"
    if need in ROLES:
        hint += f" and, when signed in as a user, the {ROLES[need]}"
    return error.with_message(error.message + hint)


def call(client: GraphClient, need: str, method: str, path: str, *, action: str, **kwargs: t.Any) -> t.Any:
    """``client.request``, with the permission hint on a refusal."""
    try:
        return client.request(method, path, action=action, **kwargs)
    except GraphError as exc:
        raise with_permission_hint(exc, need) from None
