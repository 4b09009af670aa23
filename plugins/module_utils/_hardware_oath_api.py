# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Hardware OATH operations on Graph, and the execution of an assignment plan.

A write whose answer is lost is never repeated blindly: the token is read again, and only if the write did not
take effect is it sent again, with a fresh code (a code is never sent twice)."""

from __future__ import annotations

import typing as t

from ._errors import GraphError, WriteOutcomeUnknown
from ._graph_client import GraphClient, odata_string, segment
from ._hardware_oath import (ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, CODE_ACTIONS, SET_DISPLAY_NAME, UNASSIGN, Action,
                             CodeSource, Plan, PlanError, TokenView, UserView)

DEVICES = "/directory/authenticationMethodDevices/hardwareOathDevices"
USER_SELECT = "id,userPrincipalName,displayName,userType"

# What each operation needs, for error messages (reference section 2.4, least privilege first).
PERMISSIONS = {
    "read_token": "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod)",
    "write_token": "Policy.ReadWrite.AuthenticationMethod",
    "read_user": "User.Read.All (or User.ReadBasic.All)",
    "read_method": "UserAuthenticationMethod.Read (for yourself) or UserAuthenticationMethod.Read.All",
    "write_method": "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-HardwareOATH.ReadWrite.All)",
}


def _with_permission_hint(error: GraphError, need: str) -> GraphError:
    if error.status == 403:
        error.message += f". The caller needs the Microsoft Graph permission {PERMISSIONS[need]}"
        if need == "write_method":
            error.message += (" and, when signed in as a user, the Authentication Administrator role (Privileged "
                              "Authentication Administrator for admin users)")
    return error


class HardwareOathApi:
    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self.me: UserView | None = None  # the signed-in user, once looked up as "me"

    def _call(self, need: str, method: str, path: str, *, action: str, **kwargs: t.Any) -> t.Any:
        try:
            return self.client.request(method, path, action=action, **kwargs)
        except GraphError as exc:
            raise _with_permission_hint(exc, need) from None

    # ------------------------------------------------------------------ reads
    def user(self, user: str) -> UserView:
        path = "/me" if user == "me" else f"/users/{segment(user)}"
        try:
            body = self._call("read_user", "GET", path, action=f"Looking up user {user}", params={"$select": USER_SELECT})
        except GraphError as exc:
            if exc.status == 404:
                exc.message = f"User {user} was not found in the tenant ({exc.message})"
            raise
        view = UserView.from_graph(body)
        if user == "me":
            self.me = view
        return view

    def token_by_serial(self, serial: str) -> TokenView:
        body = self._call("read_token", "GET", DEVICES, action=f"Looking up token {serial}",
                          params={"$filter": f"serialNumber eq {odata_string(serial)}"})
        found = [d for d in body.get("value", []) if (d.get("serialNumber") or "").lower() == serial.lower()]
        if not found:
            raise GraphError(f"No hardware OATH token with serial number {serial} is in the tenant's inventory; "
                             "import it first (tokenops.entra.hardware_oath_token).", status=404, code="notFound")
        return TokenView.from_graph(found[0])

    def token_by_id(self, device_id: str) -> TokenView:
        try:
            body = self._call("read_token", "GET", f"{DEVICES}/{segment(device_id)}", action=f"Looking up token {device_id}")
        except GraphError as exc:
            if exc.status == 404:
                exc.message = f"No hardware OATH token with id {device_id} is in the tenant's inventory ({exc.message})"
            raise
        return TokenView.from_graph(body)

    def my_token(self, serial: str | None, device_id: str | None) -> TokenView | None:
        """For ``/me``: the token among the signed-in user's own methods, or None."""
        body = self._call("read_method", "GET", "/me/authentication/hardwareOathMethods",
                          action="Listing your hardware OATH tokens")
        for method in body.get("value", []):
            device = dict(method.get("device") or {})
            if not device.get("assignedTo") and self.me is not None:  # the user's own method: they hold it
                device["assignedTo"] = {"id": self.me.id, "displayName": self.me.display_name}
            if (serial and (device.get("serialNumber") or "").lower() == serial.lower()) or \
                    (device_id and method.get("id", "").lower() == device_id.lower()):
                return TokenView.from_graph({**device, "id": method["id"]})
        return None

    def reread(self, token: TokenView, me: bool = False) -> TokenView:
        if not me:
            return self.token_by_id(token.id)
        return self.my_token(None, token.id) or unknown_token(token.serial_number, token.id)

    # ------------------------------------------------------------------ writes
    def _methods(self, user_id: str, me: bool) -> str:
        return "/me/authentication/hardwareOathMethods" if me else f"/users/{segment(user_id)}/authentication/hardwareOathMethods"

    def write(self, action: Action, token: TokenView, user: UserView | None, code: str | None, display_name: str | None,
              *, by_serial: bool, me: bool) -> None:
        who = user.user_principal_name if user and user.id == action.user_id else action.user_id
        context = f"{action.kind.replace('_', ' ')} {token.label} for {who}"
        methods = self._methods(action.user_id, me and user is not None and user.id == action.user_id)
        if action.kind == UNASSIGN:
            self._call("write_method", "DELETE", f"{methods}/{segment(token.id)}", action=context, expected=(204,))
        elif action.kind == SET_DISPLAY_NAME:
            self._call("write_token", "PATCH", f"{DEVICES}/{segment(token.id)}", action=context,
                       json={"displayName": display_name}, expected=(204, 200))
        elif action.kind == ASSIGN:
            self._call("write_method", "POST", methods, action=context, json={"device": {"id": token.id}},
                       expected=(201, 200))
        else:
            body: dict[str, t.Any] = {"verificationCode": code}
            if display_name is not None:
                body["displayName"] = display_name
            if action.kind == ACTIVATE:
                path = f"{methods}/{segment(token.id)}/activate"
            elif by_serial:
                path, body = f"{methods}/assignAndActivateBySerialNumber", {"serialNumber": token.serial_number, **body}
            else:
                path, body = f"{methods}/assignAndActivate", {"device": {"id": token.id}, **body}
            self._call("write_method", "POST", path, action=context, json=body, expected=(204, 200))


def unknown_token(serial: str | None, device_id: str | None) -> TokenView:
    """A token a self-service user can't see: taken as available (Graph refuses the assignment if it is not)."""
    return TokenView(id=device_id or "", serial_number=serial or "", status="available", assigned_to_id=None,
                     assigned_to_name=None, display_name=None)


def took_effect(action: Action, token: TokenView, display_name: str | None) -> bool:
    """Judged from a fresh read: did ``action`` happen?"""
    if action.kind == UNASSIGN:
        return token.assigned_to_id != action.user_id
    if action.kind == SET_DISPLAY_NAME:
        return token.display_name == display_name
    if action.kind == ASSIGN:
        return token.assigned_to_id == action.user_id
    activated = token.assigned_to_id == action.user_id and token.status == "activated"
    return activated and (display_name is None or token.display_name == display_name)


def execute(api: HardwareOathApi, plan: Plan, token: TokenView, user: UserView, codes: CodeSource,
            display_name: str | None, *, by_serial: bool, me: bool, log: t.Callable[[str], None]) -> TokenView | None:
    """Run the plan's actions in order. Returns the token as last read, or None when no re-read was needed."""
    latest: TokenView | None = None
    for action in plan.actions:
        code = codes.next_code(token) if action.kind in CODE_ACTIONS else None
        try:
            api.write(action, token, user, code, display_name, by_serial=by_serial, me=me)
            continue
        except WriteOutcomeUnknown as exc:
            log(f"{exc}; reading {token.label} again before anything else")
            latest = api.reread(token, me)
        if took_effect(action, latest, display_name):
            continue
        if action.kind in CODE_ACTIONS and not codes.available:
            raise PlanError(f"{action.kind.replace('_', ' ')} {token.label} for {user.user_principal_name}: the answer "
                            f"was lost and the token is now {latest.status}, so the code was not accepted; the given "
                            "verification_code is never sent twice. Run again with a fresh code.")
        if action.kind == ASSIGN_AND_ACTIVATE and latest.assigned_to_id == user.id:
            action = Action(ACTIVATE, user.id, "assigned, but the activation's answer was lost")
        code = codes.next_code(latest) if action.kind in CODE_ACTIONS else None
        api.write(action, latest, user, code, display_name, by_serial=by_serial, me=me)
    return latest
