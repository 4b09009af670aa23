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
from ._inventory import (CREATE, DELETE, MAX_FILTER_EXPRESSIONS, UPDATE, TokenSpec, chunks, create_body, recreation_spec,
                         unique, update_body, users_filter)
from ._policy import POLICY_PATH, PolicyPlan, reached
from ._hardware_oath import (ACTIVATE, ASSIGN, ASSIGN_AND_ACTIVATE, CODE_ACTIONS, SET_DISPLAY_NAME, UNASSIGN, Action,
                             CodeSource, Plan, PlanError, TokenView, UserView)

DEVICES = "/directory/authenticationMethodDevices/hardwareOathDevices"
USER_SELECT = "id,userPrincipalName,displayName,userType"
MAX_PAGE_SIZE = 999  # the largest $top directory collections take; the service may serve smaller pages

# What each operation needs, for error messages (reference section 2.4, least privilege first).
PERMISSIONS = {
    "read_token": "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod)",
    "write_token": "Policy.ReadWrite.AuthenticationMethod",
    "read_user": "User.Read.All (or User.ReadBasic.All)",
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


def _user_path(user: str) -> str:
    """``/me`` for the signed-in user, else ``/users/{id or UPN}``."""
    return "/me" if user == "me" else f"/users/{segment(user)}"


def _user_not_found(error: GraphError, user: str) -> GraphError:
    if error.status == 404:
        error.message = f"User {user} was not found in the tenant ({error.message})"
    return error


def _with_permission_hint(error: GraphError, need: str) -> GraphError:
    if error.status == 403:
        error.message += f". The caller needs the Microsoft Graph permission {PERMISSIONS[need]}"
        if need in ROLES:
            error.message += f" and, when signed in as a user, the {ROLES[need]}"
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
        try:
            body = self._call("read_user", "GET", _user_path(user), action=f"Looking up user {user}",
                              params={"$select": USER_SELECT})
        except GraphError as exc:
            raise _user_not_found(exc, user) from None
        view = UserView.from_graph(body)
        if user == "me":
            self.me = view
        return view

    def find_token(self, serial: str) -> TokenView | None:
        """The token with this serial number (one filtered request), or None."""
        body = self._call("read_token", "GET", DEVICES, action=f"Looking up token {serial}",
                          params={"$filter": f"serialNumber eq {odata_string(serial)}"})
        found = [d for d in body.get("value", []) if (d.get("serialNumber") or "").lower() == serial.lower()]
        return TokenView.from_graph(found[0]) if found else None

    def token_by_serial(self, serial: str) -> TokenView:
        token = self.find_token(serial)
        if token is None:
            raise GraphError(f"No hardware OATH token with serial number {serial} is in the tenant's inventory; "
                             "import it first (tokenops.entra.hardware_oath_token).", status=404, code="notFound")
        return token

    def token_by_id(self, device_id: str) -> TokenView:
        try:
            body = self._call("read_token", "GET", f"{DEVICES}/{segment(device_id)}", action=f"Looking up token {device_id}")
        except GraphError as exc:
            if exc.status == 404:
                exc.message = f"No hardware OATH token with id {device_id} is in the tenant's inventory ({exc.message})"
            raise
        return TokenView.from_graph(body)

    def token_exists(self, device_id: str) -> bool:
        try:
            self.token_by_id(device_id)
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_tokens(self, filters: t.Sequence[str | None]) -> list[TokenView]:
        """Every token matching any of ``filters`` (None: all), each listing followed to its last page, in the
        largest pages Graph serves."""
        tokens: dict[str, TokenView] = {}
        for text in filters:
            params = {"$top": str(MAX_PAGE_SIZE), **({"$filter": text} if text else {})}
            try:
                for device in self.client.paged(DEVICES, action="Listing the hardware OATH token inventory", params=params):
                    token = TokenView.from_graph(device)
                    tokens.setdefault(token.id.lower(), token)
            except GraphError as exc:
                raise _with_permission_hint(exc, "read_token") from None
        return list(tokens.values())

    def users_by_ids(self, user_ids: t.Sequence[str]) -> dict[str, UserView]:
        """The users with these object ids, ``MAX_FILTER_EXPRESSIONS`` per filtered listing, the listings batched.
        Ids that are not users (deleted since) are left out."""
        requests = [("/users", {"$filter": users_filter(part), "$select": USER_SELECT})
                    for part in chunks(unique(user_ids), MAX_FILTER_EXPRESSIONS)]
        users: dict[str, UserView] = {}
        for answer in self.client.get_many(requests, action="Looking up the users holding tokens"):
            if isinstance(answer, GraphError):
                raise _with_permission_hint(answer, "read_user")
            for item in answer.get("value", []):
                user = UserView.from_graph(item)
                users[user.id] = user
        return users

    def users_with_methods(self, refs: t.Sequence[str]) -> list[tuple[UserView, list[dict[str, t.Any]]]]:
        """Each user (object id, UPN, or ``me``) and their hardware OATH methods, in batched reads."""
        requests: list[tuple[str, dict | None]] = []
        for ref in refs:
            base = _user_path(ref)
            requests += [(base, {"$select": USER_SELECT}), (f"{base}/authentication/hardwareOathMethods", None)]
        answers = self.client.get_many(requests, action="Reading the hardware OATH methods of users")
        out = []
        for number, ref in enumerate(refs):
            user, methods = answers[2 * number], answers[2 * number + 1]
            if isinstance(user, GraphError):
                raise _with_permission_hint(_user_not_found(user, ref), "read_user")
            if isinstance(methods, GraphError):
                raise _with_permission_hint(methods, "read_method")
            out.append((UserView.from_graph(user), methods.get("value", [])))
        return out

    def policy(self) -> dict[str, t.Any]:
        return self._call("read_policy", "GET", POLICY_PATH, action="Reading the hardwareOath authentication method policy")

    def update_policy(self, patch: dict[str, t.Any]) -> None:
        self._call("write_policy", "PATCH", POLICY_PATH, action="Updating the hardwareOath authentication method policy",
                   json=patch, expected=(204, 200))

    def apply_policy(self, plan: PolicyPlan, log: t.Callable[[str], None]) -> None:
        """Send the plan's PATCH; if its answer is lost, send it again only if a fresh read does not show it."""
        try:
            self.update_policy(plan.patch)
        except WriteOutcomeUnknown as exc:
            log(f"{exc}; reading the policy again before anything else")
            if not reached(self.policy(), plan):
                self.update_policy(plan.patch)

    def my_token(self, serial: str | None, device_id: str | None) -> TokenView | None:
        """For ``/me``: the token among the signed-in user's own methods, or None."""
        body = self._call("read_own_method", "GET", "/me/authentication/hardwareOathMethods",
                          action="Listing your hardware OATH tokens")
        for method in body.get("value", []):
            token = TokenView.from_method(method, self.me)
            if (serial and token.serial_number.lower() == serial.lower()) or \
                    (device_id and token.id.lower() == device_id.lower()):
                return token
        return None

    def reread(self, token: TokenView, me: bool = False) -> TokenView:
        if not me:
            return self.token_by_id(token.id)
        return self.my_token(None, token.id) or unknown_token(token.serial_number, token.id)

    # ------------------------------------------------------------------ writes
    def _methods(self, user_id: str, me: bool) -> str:
        return _user_path("me" if me else user_id) + "/authentication/hardwareOathMethods"

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

    def create_token(self, body: dict[str, t.Any]) -> TokenView:
        """``body`` holds the secret: it goes to Graph only, never into a message."""
        need = "write_method" if body.get("assignTo") else "write_token"
        answer = self._call(need, "POST", DEVICES, action=f"Creating token {body['serialNumber']}", json=body,
                            expected=(201, 200))
        return TokenView.from_graph(answer)

    def update_token(self, token: TokenView, body: dict[str, t.Any]) -> None:
        self._call("write_token", "PATCH", f"{DEVICES}/{segment(token.id)}", action=f"Updating {token.label}",
                   json=body, expected=(204, 200))

    def delete_token(self, token: TokenView) -> None:
        self._call("write_token", "DELETE", f"{DEVICES}/{segment(token.id)}", action=f"Deleting {token.label}",
                   expected=(204,))


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


# A computed code Graph refuses (its time step was already used, say by a run a moment ago) is followed by the code
# of a later step, up to this many codes in all; a given code is sent once. Graph documents no error code for a
# refused code: a 400 whose code or message speaks of the code (the simulator's invalidVerificationCode, "Invalid
# verification code.") is taken for one; any other 400 (the five-token limit, say) is not retried.
COMPUTED_CODE_ATTEMPTS = 3
CODE_REFUSAL_WORDS = ("code", "otp", "verification")


def execute(api: HardwareOathApi, plan: Plan, token: TokenView, user: UserView, codes: CodeSource,
            display_name: str | None, *, by_serial: bool, me: bool, log: t.Callable[[str], None]) -> TokenView | None:
    """Run the plan's actions in order. Returns the token as last read, or None when no re-read was needed. When an
    action fails after earlier ones took effect (a token taken from its holder, say), the error says so."""
    latest: TokenView | None = None
    done: list[Action] = []
    for action in plan.actions:
        try:
            latest = _execute_action(api, action, token, user, codes, display_name, by_serial=by_serial, me=me,
                                     log=log) or latest
        except GraphError as exc:
            names = {token.assigned_to_id: token.assigned_to_name, user.id: user.user_principal_name}
            raise interrupted(exc, token, done, plan.actions[len(done):], names,
                              rerun=f"Run the task again to finish for {user.user_principal_name}") from None
        done.append(action)
    return latest


def _execute_action(api: HardwareOathApi, action: Action, token: TokenView, user: UserView, codes: CodeSource,
                    display_name: str | None, *, by_serial: bool, me: bool,
                    log: t.Callable[[str], None]) -> TokenView | None:
    """One action; a lost answer is judged from a fresh read (returned) and the write sent again only if needed."""
    try:
        _write_with_codes(api, action, token, user, codes, display_name, by_serial=by_serial, me=me, log=log)
        return None
    except WriteOutcomeUnknown as exc:
        log(f"{exc}; reading {token.label} again before anything else")
        latest = api.reread(token, me)
    if took_effect(action, latest, display_name):
        return latest
    if action.kind in CODE_ACTIONS and not codes.available:
        raise PlanError(f"{action.kind.replace('_', ' ')} {token.label} for {user.user_principal_name}: the answer "
                        f"was lost and the token is now {latest.status}, so the code was not accepted; the given "
                        "verification_code is never sent twice. Run again with a fresh code.")
    if action.kind == ASSIGN_AND_ACTIVATE and latest.assigned_to_id == user.id:
        action = Action(ACTIVATE, user.id, "assigned, but the activation's answer was lost")
    _write_with_codes(api, action, latest, user, codes, display_name, by_serial=by_serial, me=me, log=log)
    return latest


def _write_with_codes(api: HardwareOathApi, action: Action, token: TokenView, user: UserView | None, codes: CodeSource,
                      display_name: str | None, *, by_serial: bool, me: bool, log: t.Callable[[str], None]) -> None:
    """``api.write`` with a fresh code for a code action; a refused computed code is followed by a later one."""
    attempt = 1
    while True:
        code = codes.next_code(token) if action.kind in CODE_ACTIONS else None
        try:
            api.write(action, token, user, code, display_name, by_serial=by_serial, me=me)
            return
        except GraphError as exc:
            if action.kind not in CODE_ACTIONS or not codes.computes or not refuses_the_code(exc) \
                    or attempt >= COMPUTED_CODE_ATTEMPTS:
                raise
            log(f"{exc.message}; the code's time step may have been used already: trying the code of a later step "
                f"({attempt + 1}/{COMPUTED_CODE_ATTEMPTS})")
            attempt += 1


def refuses_the_code(error: GraphError) -> bool:
    """Did Graph refuse the verification code (rather than the request for another reason)?"""
    said = f"{error.code or ''} {error.graph_message or ''}".lower()
    return error.status == 400 and any(word in said for word in CODE_REFUSAL_WORDS)


_DONE = {UNASSIGN: "unassigned it from {who}", SET_DISPLAY_NAME: "set its display name", ASSIGN: "assigned it to {who}",
         ACTIVATE: "activated it for {who}", ASSIGN_AND_ACTIVATE: "assigned and activated it for {who}",
         CREATE: "created it", UPDATE: "updated {changes}", DELETE: "deleted it"}


def interrupted(exc: GraphError, token: TokenView | TokenSpec, done: t.Sequence[Action], pending: t.Sequence[Action],
                names: t.Mapping[str | None, str | None], rerun: str) -> GraphError:
    """``exc`` stopped a sequence of writes: when some took effect (``done``), the task fails with changed=true,
    saying what was done, what was not, who lost the token, and what to run. Without ``done``, ``exc`` as it is."""
    if not done:
        return exc

    def who(user_id: str | None) -> str:
        name = names.get(user_id)
        return f"{name} ({user_id})" if name else str(user_id)

    def not_done(action: Action) -> str:
        return action.kind.replace("_", " ") + (f" for {who(action.user_id)}" if action.user_id else "")

    serial = token.serial_number
    done_text = "; ".join(_DONE[a.kind].format(who=who(a.user_id), changes=", ".join(a.changes)) for a in done)
    exc.message = f"{exc.message.rstrip('.')}. Already done for token {serial}: {done_text}"
    if pending:
        exc.message += f". Not done: {'; '.join(not_done(a) for a in pending)}"
    holders = {a.user_id for a in done if a.kind in (ASSIGN, ASSIGN_AND_ACTIVATE, ACTIVATE, CREATE)}
    for action in done:
        if action.kind == UNASSIGN and action.user_id not in holders:
            exc.message += (f". {who(action.user_id)} no longer holds token {serial}: to give it back, run "
                            f"tokenops.entra.hardware_oath_assignment with user={action.user_id} and "
                            f"serial_number={serial} (it must be activated again)")
    exc.message += f". {rerun}."
    exc.changed = True
    exc.result = {"actions": [a.to_result() for a in done], "pending_actions": [a.to_result() for a in pending]}
    return exc


# ---------------------------------------------------------------------- inventory plans
def execute_token_plan(api: HardwareOathApi, plan: Plan, current: TokenView | None, spec: TokenSpec, secret_b32: str | None,
                       log: t.Callable[[str], None]) -> TokenView | None:
    """Run an inventory plan's writes in order. Returns the token a creation made, else None. A write whose answer
    is lost is judged from a fresh read and sent again only if it did not take effect. When a write fails after
    earlier ones took effect, the error says what was done."""
    created = None
    done: list[Action] = []
    names = {current.assigned_to_id: current.assigned_to_name} if current else {}
    if spec.assigned_to:
        names[spec.assigned_to.id] = spec.assigned_to.user_principal_name
    try:
        for action in plan.actions:
            try:
                result = _write_once(api, action, current, spec, secret_b32, log)
            except GraphError as exc:
                if action.kind == CREATE and current is not None:  # a rotation, whose delete is done
                    kept = recreation_spec(current, spec)
                    exc.message += (f". {spec.label} was deleted to rotate its secret and is not in the inventory now: "
                                    f"run the task again without rotate, with manufacturer={kept.manufacturer!r}, "
                                    f"model={kept.model!r}, time_interval={kept.time_interval}, "
                                    f"hash_function={kept.hash_function!r}, display_name={kept.display_name!r}, to "
                                    "create it")
                raise
            done.append(action)
            if action.kind == CREATE:
                created = result
                if action.user_id and created.assigned_to_id != action.user_id:
                    raise GraphError(f"{spec.label} was created but Graph did not assign it to user {action.user_id}: "
                                     "it ignores assignTo when the caller lacks UserAuthenticationMethod.ReadWrite.All. "
                                     "The token is in the inventory, available; grant the permission and run again, or "
                                     "assign it with tokenops.entra.hardware_oath_assignment.")
    except GraphError as exc:
        raise interrupted(exc, spec, done, plan.actions[len(done):], names,
                          rerun="Fix the cause and run the task again to finish") from None
    return created


def _write_once(api: HardwareOathApi, action: Action, current: TokenView | None, spec: TokenSpec, secret_b32: str | None,
                log: t.Callable[[str], None]) -> TokenView | None:
    try:
        return _send_inventory_write(api, action, current, spec, secret_b32)
    except WriteOutcomeUnknown as exc:
        log(f"{exc}; reading {spec.label} again before anything else")
    done, result = _inventory_write_took_effect(api, action, current, spec)
    return result if done else _send_inventory_write(api, action, current, spec, secret_b32)


def _send_inventory_write(api: HardwareOathApi, action: Action, current: TokenView | None, spec: TokenSpec,
                          secret_b32: str | None) -> TokenView | None:
    if action.kind == CREATE:
        source = recreation_spec(current, spec) if current is not None else spec
        return api.create_token(create_body(source, secret_b32 or "", action.user_id))
    current = t.cast(TokenView, current)  # every other write acts on the existing token
    if action.kind == UPDATE:
        api.update_token(current, update_body(spec, action.changes))
    elif action.kind == DELETE:
        api.delete_token(current)
    else:  # UNASSIGN, ASSIGN
        api.write(action, current, None, None, None, by_serial=False, me=False)
    return None


def _inventory_write_took_effect(api: HardwareOathApi, action: Action, current: TokenView | None,
                                 spec: TokenSpec) -> tuple[bool, TokenView | None]:
    if action.kind == CREATE:
        found = api.find_token(spec.serial_number)
        return found is not None, found
    current = t.cast(TokenView, current)
    if action.kind == DELETE:
        return not api.token_exists(current.id), None
    now = api.token_by_id(current.id)
    if action.kind == UPDATE:
        return all(getattr(now, name) == getattr(spec, name) for name in action.changes), None
    return took_effect(action, now, None), None
