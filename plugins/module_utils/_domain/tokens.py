# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Hardware OATH tokens and their users as the modules see them, pure: normalised views of Graph's objects. No I/O
here."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

STATUSES = ("available", "assigned", "activated", "failedActivation")
# "Users can have up to five OATH hardware tokens or authenticator applications" (Entra's hardware OATH upload docs).
MAX_METHODS_PER_USER = 5


@dataclass(frozen=True)
class TokenView:
    id: str
    serial_number: str
    status: str
    assigned_to_id: str | None
    assigned_to_name: str | None
    display_name: str | None
    hash_function: str = "hmacsha1"
    time_interval: int = 30
    manufacturer: str | None = None
    model: str | None = None
    last_used: str | None = None

    @classmethod
    def from_graph(cls, device: dict[str, t.Any]) -> TokenView:
        """A device object of Graph, or a hardwareOathAuthenticationMethod wrapping it in ``device`` (how the pages of
        the bulk creation and of the inventory listing show their answers; the method's id is the device's). One with
        a holder but status ``available`` (how Entra's documentation shows a token created with ``assignTo``) is
        taken as ``assigned``: a holder means assigned."""
        wrapped = device.get("device")
        if isinstance(wrapped, dict):
            device = {**wrapped, "id": device.get("id") or wrapped.get("id")}
        assigned = device.get("assignedTo") or {}
        status = device.get("status") or ""
        if status == "available" and assigned.get("id"):
            status = "assigned"
        return cls(
            id=device["id"],
            serial_number=device.get("serialNumber") or "",
            status=status,
            assigned_to_id=(assigned.get("id") or "").lower() or None,
            assigned_to_name=assigned.get("displayName"),
            display_name=device.get("displayName"),
            hash_function=device.get("hashFunction") or "hmacsha1",
            time_interval=int(device.get("timeIntervalInSeconds") or 30),
            manufacturer=device.get("manufacturer"),
            model=device.get("model"),
            last_used=device.get("lastUsedDateTime"),
        )

    @classmethod
    def from_method(cls, method: dict[str, t.Any], holder: UserView | None) -> TokenView:
        """The token of a user's hardwareOathAuthenticationMethod (its id is the token's). Graph may leave the
        device's ``assignedTo`` empty there: the user whose method it is holds it."""
        device = dict(method.get("device") or {})
        if not device.get("assignedTo") and holder is not None:
            device["assignedTo"] = {"id": holder.id, "displayName": holder.display_name}
        return cls.from_graph({**device, "id": method["id"]})

    @property
    def label(self) -> str:
        return f"token {self.serial_number or self.id}"


@dataclass(frozen=True)
class UserView:
    id: str
    user_principal_name: str
    display_name: str | None = None
    user_type: str | None = None

    @classmethod
    def from_graph(cls, user: dict[str, t.Any]) -> UserView:
        return cls(
            id=user["id"].lower(),
            user_principal_name=user.get("userPrincipalName") or user["id"],
            display_name=user.get("displayName"),
            user_type=user.get("userType"),
        )
