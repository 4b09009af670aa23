# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test data shared by the unit tests: the demo tenant (its users, groups and hardwareOath policy) and its TOTP123456
token, as the modules see it (TokenView, token results) and as Graph answers and receives it. The stand-ins of Graph,
of the API objects and of GraphModule are in ``fakes``."""

from __future__ import annotations

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import CodeRefused

GRAPH = "https://graph.microsoft.com"
AUTHORITY = "https://login.microsoftonline.com"

# ---------------------------------------------------------------------------------------------------- the tenant
AMY = UserView(
    id="e55cb360-e3ee-4757-bdd2-04b1e5a00e32",
    user_principal_name="amy.masters@contoso.com",
    display_name="Amy Masters",
    user_type="Member",
)
ADELE = UserView(
    id="0a1b2c3d-0000-4000-8000-00000000abcd",
    user_principal_name="adele.vance@contoso.com",
    display_name="Adele Vance",
    user_type="Member",
)
GUEST = UserView(
    id="99999999-9999-4999-8999-999999999999",
    user_principal_name="grady_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    display_name="Grady",
    user_type="Guest",
)
# Group object ids, for the hardwareOath policy's targets (G2 has letters: case must not matter).
G1 = "11111111-1111-4111-8111-111111111111"
G2 = "2222aaaa-2222-4222-8222-22222222bbbb"
G3 = "33333333-cccc-4333-8333-333333333333"
# The hardwareOath policy as Graph answers a GET of it.
POLICY_ON = {"id": "HardwareOath", "state": "enabled", "includeTargets": [{"id": "all_users"}], "excludeTargets": []}
POLICY_OFF = {**POLICY_ON, "state": "disabled"}

# ---------------------------------------------------------------------------------------------------- the token
SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 SHA-1 seed
SERIAL = "TOTP123456"
DEVICE_ID = "6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b"
NEW_ID = "7a7a7a7a-0000-4000-8000-000000000001"  # the id of the token once recreated (rotated)
NAME = "Amy Masters Token"  # a display name a task sets
# What the inventory holds of the token besides its holder and status.
INVENTORY_FIELDS = {
    "display_name": "Front desk",
    "hash_function": "hmacsha1",
    "time_interval": 30,
    "manufacturer": "Contoso",
    "model": "OATH-TOTP",
    "last_used": "2026-01-02T03:04:05Z",
}


def token(
    status: str = "available", holder: UserView | None = None, display_name: str | None = None, **fields
) -> TokenView:
    """The token as an assignment sees it: its status, holder and display name."""
    return TokenView(
        id=DEVICE_ID,
        serial_number=SERIAL,
        status=status,
        assigned_to_id=holder.id if holder else None,
        assigned_to_name=holder.display_name if holder else None,
        display_name=display_name,
        **fields,
    )


def inv(status: str = "available", holder: UserView | None = None, **fields) -> TokenView:
    """The token as Graph's inventory lists it (INVENTORY_FIELDS, unless ``fields`` says otherwise)."""
    return token(status, holder, **{**INVENTORY_FIELDS, **fields})


def created(holder: UserView | None = None, **fields) -> TokenView:
    """The token as Graph answers its creation (id NEW_ID): assigned when created for ``holder``."""
    return TokenView(**{**inv("assigned" if holder else "available", holder, **fields).__dict__, "id": NEW_ID})


def res(status: str = "available", holder: UserView | None = None, upn: bool = False, **overrides) -> dict:
    """The expected token_result of ``inv(status, holder)`` with ``overrides`` (``upn``: the holder's UPN is known)."""
    assigned = None
    if holder is not None:
        assigned = {
            "id": holder.id,
            "display_name": holder.display_name,
            "user_principal_name": holder.user_principal_name if upn else None,
        }
    result = {
        "device_id": DEVICE_ID,
        "serial_number": SERIAL,
        "display_name": "Front desk",
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "time_interval": 30,
        "hash_function": "hmacsha1",
        "status": status,
        "assigned_to": assigned,
        "last_used_date_time": "2026-01-02T03:04:05Z",
    }
    return {**result, **overrides}


# ---------------------------------------------------------------------------------------------------- results
# What a task that failed after some writes took effect reports: the actions done, and those not done.
DONE = [{"action": "unassign", "user_id": "u1", "reason": "r"}]
PENDING = [{"action": "assign", "user_id": "u2", "reason": "r"}]
# How a text option holding control characters is refused (text_problem), before the characters' code points.
CONTROL = "holds control or bidirectional formatting characters"


# ---------------------------------------------------------------------------------------------------- Graph's side
def device(device_id: str, serial: str, holder: UserView | None = None) -> dict:
    """A hardwareOathTokenAuthenticationMethodDevice as Graph answers it."""
    answer = {
        "id": device_id,
        "serialNumber": serial,
        "status": "assigned" if holder else "available",
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "timeIntervalInSeconds": 30,
        "hashFunction": "hmacsha1",
    }
    if holder:
        answer["assignedTo"] = {"id": holder.id, "displayName": holder.display_name}
    return answer


def user_body(user: UserView) -> dict:
    """A user as Graph answers it (ids in upper case: Graph's case is not the modules')."""
    return {
        "id": user.id.upper(),
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "userType": user.user_type,
    }


def creation_body(holder: UserView | None = None, **fields) -> dict:
    """The body of the POST that creates ``inv()``'s token with SECRET (and ``assignTo`` for ``holder``)."""
    result = {
        "serialNumber": SERIAL,
        "manufacturer": "Contoso",
        "model": "OATH-TOTP",
        "secretKey": SECRET,
        "timeIntervalInSeconds": 30,
        "hashFunction": "hmacsha1",
        "displayName": "Front desk",
        **fields,
    }
    if holder is not None:
        result["assignTo"] = {"id": holder.id}
    return result


def refused(status=400, code="invalidVerificationCode", message="Invalid verification code.", *, of_code=None):
    """Graph's refusal of an assign-and-activate of the token for AMY, as HardwareOathApi.write raises it: by default
    judged a refusal of the verification code (CodeRefused; ``of_code``: whether it is, for other statuses)."""
    judged_of_code = status == 400 if of_code is None else of_code
    return (CodeRefused if judged_of_code else GraphError)(
        f"assign and activate token {SERIAL} for {AMY.user_principal_name}: Graph answered {status} {code}",
        status=status,
        code=code,
        graph_message=message,
    )


# The keys of a token in the modules' results, in order.
RESULT_KEYS = [
    "device_id",
    "serial_number",
    "display_name",
    "manufacturer",
    "model",
    "time_interval",
    "hash_function",
    "status",
    "assigned_to",
    "last_used_date_time",
]
