"""Per-operation authorization, after the least-privilege permission tables of Microsoft's API pages.

Application tokens are checked against their ``roles``. Delegated tokens need a scope in ``scp`` and, when
acting on anyone but the signed-in user, a directory role; acting on an admin's methods needs a privileged role.
"""

from __future__ import annotations

from .errors import access_denied
from .identity import Principal
from .tenant import User

DEVICES_READ = "devices.read"
DEVICES_WRITE = "devices.write"
METHODS_READ = "methods.read"
METHODS_WRITE = "methods.write"
USERS_READ = "users.read"
MEMBERSHIPS_READ = "memberships.read"
POLICY_READ = "policy.read"
POLICY_WRITE = "policy.write"

_METHODS_READ_ALL = (
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "UserAuthMethod-HardwareOATH.Read.All",
    "UserAuthMethod-HardwareOATH.ReadWrite.All",
)
_METHODS_WRITE_ALL = ("UserAuthenticationMethod.ReadWrite.All", "UserAuthMethod-HardwareOATH.ReadWrite.All")
_USERS_READ_ALL = (
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
# A user's memberOf and transitiveMemberOf (user-list-memberof, user-list-transitivememberof): User.Read.All least
# privileged, Directory.Read.All, GroupMember.Read.All and Group.Read.All higher; their ReadWrite forms pass too.
_MEMBERSHIPS_READ_ALL = (
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
)

APPLICATION = {
    DEVICES_READ: ("Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"),
    DEVICES_WRITE: ("Policy.ReadWrite.AuthenticationMethod",),
    METHODS_READ: _METHODS_READ_ALL,
    METHODS_WRITE: _METHODS_WRITE_ALL,
    USERS_READ: _USERS_READ_ALL,
    MEMBERSHIPS_READ: _MEMBERSHIPS_READ_ALL,
    POLICY_READ: ("Policy.Read.AuthenticationMethod", "Policy.ReadWrite.AuthenticationMethod", "Policy.Read.All"),
    POLICY_WRITE: ("Policy.ReadWrite.AuthenticationMethod",),
}

# Delegated scopes acting on the signed-in user themself.
DELEGATED_SELF = {
    METHODS_READ: (
        "UserAuthenticationMethod.Read",
        "UserAuthenticationMethod.ReadWrite",
        "UserAuthMethod-HardwareOATH.Read",
        "UserAuthMethod-HardwareOATH.ReadWrite",
    )
    + _METHODS_READ_ALL,
    METHODS_WRITE: ("UserAuthenticationMethod.ReadWrite", "UserAuthMethod-HardwareOATH.ReadWrite") + _METHODS_WRITE_ALL,
    USERS_READ: ("User.Read",) + _USERS_READ_ALL,
    MEMBERSHIPS_READ: ("User.Read",) + _MEMBERSHIPS_READ_ALL,
}
# Delegated scopes acting on others, or on tenant-wide resources.
DELEGATED = dict(APPLICATION)

GLOBAL_ADMIN = "Global Administrator"
PRIVILEGED_AUTH_ADMIN = "Privileged Authentication Administrator"
AUTH_ADMIN = "Authentication Administrator"
AUTH_POLICY_ADMIN = "Authentication Policy Administrator"
GLOBAL_READER = "Global Reader"

# Directory roles a signed-in user needs for each operation on others (None: any member may).
ROLES = {
    DEVICES_READ: (GLOBAL_READER, AUTH_POLICY_ADMIN, GLOBAL_ADMIN),
    DEVICES_WRITE: (AUTH_POLICY_ADMIN, GLOBAL_ADMIN),
    METHODS_READ: (GLOBAL_READER, AUTH_ADMIN, PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN),
    METHODS_WRITE: (AUTH_ADMIN, PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN),
    USERS_READ: None,
    MEMBERSHIPS_READ: None,
    POLICY_READ: (GLOBAL_READER, AUTH_POLICY_ADMIN, GLOBAL_ADMIN),
    POLICY_WRITE: (AUTH_POLICY_ADMIN, GLOBAL_ADMIN),
}
# Writing an admin's methods needs more than Authentication Administrator.
ADMIN_TARGET_WRITE_ROLES = (PRIVILEGED_AUTH_ADMIN, GLOBAL_ADMIN)

# "Returning limited information for inaccessible member objects" (user-list-memberof): a membership list returns
# every object, but one whose type the caller may not read carries only its @odata.type and id (its other
# properties null). Who may read the properties of each type: an application's permissions or, simply, a
# delegated caller's scopes (the signed-in user's own directory roles are not considered).
READ_OBJECT_PROPERTIES = {
    "directoryRole": (
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "RoleManagement.Read.Directory",
        "RoleManagement.Read.All",
        "RoleManagement.ReadWrite.Directory",
    ),
    "group": (
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
}


def authorize(principal: Principal, operation: str, target: User | None = None) -> None:
    """Raise 403 unless ``principal`` may perform ``operation`` (on ``target``'s methods, where given)."""
    directory = operation in (USERS_READ, MEMBERSHIPS_READ)
    if not principal.delegated:
        needed = APPLICATION[operation]
        if not principal.roles.intersection(needed):
            raise access_denied(
                f"{operation} needs one of the application permissions: {', '.join(needed)}", directory=directory
            )
        return
    user = principal.signed_in_user
    is_self = target is not None and target.id == user.id
    scopes = DELEGATED_SELF.get(operation, ()) if is_self else DELEGATED[operation]
    if not principal.scopes.intersection(scopes):
        raise access_denied(
            f"{operation} needs one of the delegated permissions: {', '.join(scopes)}", directory=directory
        )
    if is_self:
        return
    roles = ROLES[operation]
    if operation == METHODS_WRITE and target is not None and target.is_admin:
        roles = ADMIN_TARGET_WRITE_ROLES
    if roles is not None and not set(user.roles).intersection(roles):
        raise access_denied(
            f"{operation} by a signed-in user needs one of the directory roles: {', '.join(roles)}", directory=directory
        )


def may_read_properties(principal: Principal, object_type: str) -> bool:
    """Whether ``principal`` sees the properties of a ``object_type`` (``directoryRole``, ``group``) that a
    membership list returns, rather than its type and id only (:data:`READ_OBJECT_PROPERTIES`)."""
    granted = principal.scopes if principal.delegated else principal.roles
    return bool(granted.intersection(READ_OBJECT_PROPERTIES[object_type]))
