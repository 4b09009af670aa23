# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The hardware OATH calls of Graph: the token inventory, users and their hardware OATH methods. Each call is one
request (or one batched round trip) and says which permission it needs when refused; carrying out plans is
``execute.py``'s job."""

from __future__ import annotations

import time
import typing as t

from .._common.errors import GraphError
from .._common.validation import is_guid
from .._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    CODE_ACTIONS,
    SET_DISPLAY_NAME,
    UNASSIGN,
    Action,
)
from .._domain.tokens import MAX_METHODS_PER_USER, TokenView, UserView
from .._graph.client import MAX_BATCH, GraphClient
from .._graph.odata import segment
from .permissions import call, with_permission_hint
from .token_query import MAX_FILTER_EXPRESSIONS, Lookup, TokenQuery, chunks, filter_in, unique, users_filter

DEVICES = "/directory/authenticationMethodDevices/hardwareOathDevices"
USER_SELECT = "id,userPrincipalName,displayName,userType"
MAX_BULK_CREATE = 100  # tokens per delta payload: the most the simulator takes (Graph documents no limit)
MAX_PAGE_SIZE = 999  # the largest $top directory collections take; the service may serve smaller pages
LISTING = "Listing the hardware OATH token inventory"
# Graph's directory is eventually consistent: a read may not show a write of a moment ago. Where a step must see an
# earlier write (a token imported by the task before, the answer of a lost write), it reads again, waiting 0.5, 1,
# 2, 4 ... s, for at most this many seconds in all (the read_after_write_wait option's default).
READ_AFTER_WRITE_WAIT = 10.0
T = t.TypeVar("T")
# The methods that count towards a user's five (hardware tokens and authenticator apps), in /authentication/methods.
OATH_METHOD_TYPES = frozenset(
    {"#microsoft.graph.hardwareOathAuthenticationMethod", "#microsoft.graph.softwareOathAuthenticationMethod"}
)
DIRECTORY_ROLE_TYPE = "#microsoft.graph.directoryRole"


class TokenExists(GraphError):
    """Graph refused a creation (409): a token with that serial number is in the inventory, maybe not visible yet."""


class BulkRefused(GraphError):
    """Graph refused a bulk creation as a whole (400) without naming an item: because of its size, or of something in
    it that it does not say. Nothing was created (Graph creates a delta payload all or none)."""


class CodeRefused(GraphError):
    """Graph refused an activation, and the re-read state leaves nothing else to blame than the verification code."""


class FilterRefused(Exception):
    """Graph answered 400 to an inventory listing's ``$filter``."""

    def __init__(self, text: str, error: GraphError) -> None:
        super().__init__(text)
        self.filter = text
        self.error = error


def _user_path(user: str) -> str:
    """``/me`` for the signed-in user, else ``/users/{id or UPN}``."""
    return "/me" if user == "me" else f"/users/{segment(user)}"


def _user_not_found(error: GraphError, user: str) -> GraphError:
    if error.status == 404:
        return error.with_message(f"User {user} was not found in the tenant ({error.message})")
    return error


class HardwareOathApi:
    """``warn``: shown to the user once per kind of surprise (a filter Graph ignored or refused, a refused $top);
    ``wait``: the most seconds a step waits for an earlier write to show (see :meth:`poll`); ``sleep``: how."""

    def __init__(
        self,
        client: GraphClient,
        warn: t.Callable[[str], None] | None = None,
        wait: float = READ_AFTER_WRITE_WAIT,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.wait = wait
        self.me: UserView | None = None  # the signed-in user, once looked up as "me"
        self._warn = warn or (lambda message: None)
        self._warned: set[str] = set()
        self._sleep = sleep
        self.top: str | None = str(MAX_PAGE_SIZE)  # None once Graph refused $top

    def _call(self, need: str, method: str, path: str, *, action: str, **kwargs: t.Any) -> t.Any:
        return call(self.client, need, method, path, action=action, **kwargs)

    def warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn(message)

    def poll(self, read: t.Callable[[], T], done: t.Callable[[T], bool]) -> T:
        """``read()`` until ``done`` says its answer shows an earlier write, for at most ``self.wait`` seconds (waits
        of 0.5, 1, 2, 4 ... s): Graph's directory is eventually consistent. Returns the last answer."""
        answer, waited, wait = read(), 0.0, 0.5
        while not done(answer) and waited < self.wait:
            wait = min(wait, self.wait - waited)
            self._sleep(wait)
            waited += wait
            wait *= 2
            answer = read()
        return answer

    # ------------------------------------------------------------------ reads
    def user(self, user: str) -> UserView:
        try:
            body = self._call(
                "read_user", "GET", _user_path(user), action=f"Looking up user {user}", params={"$select": USER_SELECT}
            )
        except GraphError as exc:
            raise _user_not_found(exc, user) from None
        view = UserView.from_graph(body)
        if user == "me":
            self.me = view
        return view

    def find_token(self, serial: str) -> TokenView | None:
        """The token with this serial number (one filtered request), or None."""
        found = self.list_tokens(TokenQuery(serial_numbers=(serial,)))
        return found[0] if found else None

    def token_by_serial(self, serial: str) -> TokenView:
        """The token with this serial number; one imported a moment ago is waited for (see :meth:`poll`)."""
        token = self.poll(lambda: self.find_token(serial), lambda found: found is not None)
        if token is None:
            raise GraphError(
                f"No hardware OATH token with serial number {serial} is in the tenant's inventory (looked "
                f"up again for {self.wait:g} s, in case it was imported a moment ago); "
                "import it first (tokenops.entra.hardware_oath_token).",
                status=404,
                code="notFound",
            )
        return token

    def token_by_id(self, device_id: str, *, wait: bool = False) -> TokenView:
        """The token with this id; with ``wait``, one imported a moment ago is waited for (see :meth:`poll`)."""

        def read() -> TokenView | GraphError:
            try:
                body = self._call(
                    "read_token", "GET", f"{DEVICES}/{segment(device_id)}", action=f"Looking up token {device_id}"
                )
            except GraphError as exc:
                if exc.status != 404:
                    raise
                return exc.with_message(
                    f"No hardware OATH token with id {device_id} is in the tenant's inventory ({exc.message})"
                )
            return TokenView.from_graph(body)

        answer = self.poll(read, lambda found: not isinstance(found, GraphError)) if wait else read()
        if isinstance(answer, GraphError):
            if wait:
                raise answer.with_message(
                    f"{answer.message}; looked up again for {self.wait:g} s, in case it was imported a moment ago"
                )
            raise answer
        return answer

    def token_exists(self, device_id: str) -> bool:
        try:
            self.token_by_id(device_id)
        except GraphError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_tokens(self, query: TokenQuery | None = None) -> list[TokenView]:
        """The tokens matching ``query``, each checked locally. Up to MAX_BATCH values: one ``eq`` listing each, in
        one round trip. More (serial numbers): the whole inventory is listed for at most as many pages as those
        listings would take round trips, and the serial numbers not seen by then are looked up; a query costs at most
        twice the cheaper way. A filter Graph refuses (400) is replaced by a listing of everything, once."""
        query = query or TokenQuery()  # everything
        lookups = query.lookups()
        try:
            if not lookups:
                found = self._list_everything()
            elif len(lookups) <= MAX_BATCH or not query.serial_numbers:
                found = self._look_up(lookups)
            else:
                found = self._list_then_look_up(lookups)
        except FilterRefused as exc:
            self.warn_once(
                "filter-refused",
                f"Graph refused the inventory filter {exc.filter!r} ({exc.error.message}); "
                "listing the whole inventory and filtering it locally instead.",
            )
            found = self._list_everything()
        tokens: dict[str, TokenView] = {}
        for token in found:
            if query.matches(token):
                tokens.setdefault(token.id.lower(), token)
        return list(tokens.values())

    def _params(self, text: str | None, many: bool) -> dict[str, str]:
        """A listing's query: ``$top`` where many tokens may come (unless Graph refused it)."""
        params = {"$filter": text} if text else {}
        if many and self.top:
            params["$top"] = self.top
        return params

    def _first_page(self, text: str | None, many: bool, action: str = LISTING) -> t.Any:
        """The first page of one inventory listing. A 400 is taken for a refused $top when the listing without it is
        answered (then $top is left out for the rest of the task), else for a refused filter (FilterRefused)."""
        try:
            return self.client.get(DEVICES, action=action, params=self._params(text, many))
        except GraphError as exc:
            if exc.status == 400 and many and self.top:
                top, self.top = self.top, None
                try:
                    body = self._first_page(text, many, action)
                except FilterRefused:
                    self.top = top  # the filter was refused, not $top
                    raise
                self.warn_once(
                    "top-refused",
                    f"Graph refused $top={MAX_PAGE_SIZE} ({exc.message}); listing in the pages it chooses.",
                )
                return body
            if exc.status == 400 and text:
                raise FilterRefused(text, exc) from None
            raise with_permission_hint(exc, "read_token") from None

    def _tokens(self, first_page: t.Any) -> list[TokenView]:
        """Every token of a listing from its first page on."""
        try:
            return [
                TokenView.from_graph(d) for page, _more in self.client.pages(first_page, action=LISTING) for d in page
            ]
        except GraphError as exc:
            raise with_permission_hint(exc, "read_token") from None

    def _list_everything(self) -> list[TokenView]:
        return self._tokens(self._first_page(None, True))

    def _look_up(self, lookups: list[Lookup]) -> list[TokenView]:
        """One ``eq`` listing per lookup (several: batched). An answer that shows that Graph ignored its filter (it
        holds other tokens) is the whole inventory: it is read to its end, and the other answers are not needed."""
        many = lookups[0].field != "serial_number"  # a serial number matches one token at most
        if len(lookups) == 1:
            action = LISTING if many else f"Looking up token {lookups[0].value}"
            first_pages: list[t.Any] = [self._first_page(lookups[0].filter, many, action)]
        else:
            first_pages = self.client.get_many(
                [(DEVICES, self._params(lookup.filter, many)) for lookup in lookups], action=LISTING, follow_pages=False
            )
        for lookup, answer in zip(lookups, first_pages):
            if isinstance(answer, GraphError):
                if answer.status == 400:
                    raise FilterRefused(lookup.filter, answer)
                raise with_permission_hint(answer, "read_token")
        for lookup, body in zip(lookups, first_pages):
            if not all(lookup.answers(TokenView.from_graph(d)) for d in body.get("value", [])):
                self.warn_once(
                    "filter-ignored",
                    f"Graph ignored the inventory filter {lookup.filter!r} (its answer "
                    "holds other tokens); reading the whole inventory and filtering it locally.",
                )
                return self._tokens(body)
        return [token for body in first_pages for token in self._tokens(body)]

    def _list_then_look_up(self, lookups: list[Lookup]) -> list[TokenView]:
        budget = -(-len(lookups) // MAX_BATCH)  # the round trips the eq listings would take
        listed: list[TokenView] = []
        for number, (items, more) in enumerate(self.client.pages(self._first_page(None, True), action=LISTING), 1):
            listed += [TokenView.from_graph(d) for d in items]
            if not more:
                return listed
            if number >= budget:
                break
        seen = {token.serial_number.casefold() for token in listed}
        rest = [lookup for lookup in lookups if lookup.value.casefold() not in seen]
        return listed + (self._look_up(rest) if rest else [])

    def users_by_ids(self, user_ids: t.Sequence[str]) -> dict[str, UserView]:
        """The users with these object ids, ``MAX_FILTER_EXPRESSIONS`` per filtered listing, the listings batched.
        Ids that are not users (deleted since) are left out."""
        requests = [
            ("/users", {"$filter": users_filter(part), "$select": USER_SELECT})
            for part in chunks(unique(user_ids), MAX_FILTER_EXPRESSIONS)
        ]
        users: dict[str, UserView] = {}
        for answer in self.client.get_many(requests, action="Looking up the users holding tokens"):
            if isinstance(answer, GraphError):
                raise with_permission_hint(answer, "read_user")
            for item in answer.get("value", []):
                user = UserView.from_graph(item)
                users[user.id] = user
        return users

    def users_by_refs(self, refs: t.Sequence[str]) -> dict[str, UserView]:
        """The users named by object id or user principal name, keyed by the reference as given (case-folded):
        ``id in (...)`` and ``userPrincipalName in (...)`` listings of ``MAX_FILTER_EXPRESSIONS`` each, batched.
        References that name no user are left out."""
        ids = unique(ref for ref in refs if is_guid(ref))
        upns = unique(ref for ref in refs if not is_guid(ref))
        requests = [
            ("/users", {"$filter": filter_in(prop, part), "$select": USER_SELECT})
            for prop, values in (("id", ids), ("userPrincipalName", upns))
            for part in chunks(values, MAX_FILTER_EXPRESSIONS)
        ]
        found: dict[str, UserView] = {}
        for answer in self.client.get_many(requests, action="Looking up the declared users"):
            if isinstance(answer, GraphError):
                raise with_permission_hint(answer, "read_user")
            for item in answer.get("value", []):
                user = UserView.from_graph(item)
                found[user.id.casefold()] = found[user.user_principal_name.casefold()] = user
        return {ref.casefold(): found[ref.casefold()] for ref in refs if ref.casefold() in found}

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
                raise with_permission_hint(_user_not_found(user, ref), "read_user")
            if isinstance(methods, GraphError):
                raise with_permission_hint(methods, "read_method")
            out.append((UserView.from_graph(user), methods.get("value", [])))
        self._complete_devices(
            [(_user_path(ref), method) for ref, (_user, methods) in zip(refs, out) for method in methods]
        )
        return out

    def _complete_devices(self, methods: t.Sequence[tuple[str, dict[str, t.Any]]]) -> None:
        """Graph may leave a method's ``device`` out of a listing (it is a navigation property): read it, for each
        ``(user path, method)`` that lacks it, in one batched round trip, and put it in."""
        missing = [(path, method) for path, method in methods if not method.get("device")]
        if not missing:
            return
        requests: list[tuple[str, dict | None]] = [
            (f"{path}/authentication/hardwareOathMethods/{segment(method['id'])}/device", None)
            for path, method in missing
        ]
        devices = self.client.get_many(requests, action="Reading the devices of hardware OATH methods")
        for (_path, method), device in zip(missing, devices):
            if isinstance(device, GraphError):
                raise with_permission_hint(device, "read_method")
            method["device"] = device

    def my_token(self, serial: str | None, device_id: str | None) -> TokenView | None:
        """For ``/me``: the token among the signed-in user's own methods, or None. Two with the serial number: the one
        in the inventory (see :meth:`legacy_methods`)."""
        body = self._call(
            "read_own_method",
            "GET",
            "/me/authentication/hardwareOathMethods",
            action="Listing your hardware OATH tokens",
        )
        methods = body.get("value", [])
        self._complete_devices([("/me", method) for method in methods])
        if device_id:
            mine = [m for m in methods if str(m.get("id", "")).lower() == device_id.lower()]
        else:
            mine = [m for m in methods if _method_serial(m).lower() == (serial or "").lower()]
        if len(mine) > 1:
            legacy = self.legacy_methods("me", mine)
            mine = [m for m in mine if m["id"] not in legacy]
        return TokenView.from_method(mine[0], self.me) if mine else None

    def warn_of_legacy_twins(self, user: UserView, token: TokenView) -> None:
        """Warn of the user's legacy tokens of ``token``'s serial number: their methods of that serial number that are
        not the inventory's ``token``. Best effort: a refused read warns of nothing."""
        action = f"Listing {user.user_principal_name}'s hardware OATH tokens"
        try:
            body = self._call("read_method", "GET", self._methods(user.id, False), action=action)
            methods = [m for page, _more in self.client.pages(body, action=action) for m in page]
            self._complete_devices([(_user_path(user.id), method) for method in methods])
        except GraphError:
            return
        for method in methods:
            serial = _method_serial(method)
            if serial.lower() == token.serial_number.lower() and str(method.get("id")).lower() != token.id.lower():
                self._warn(legacy_warning(user.user_principal_name, serial, method["id"]))

    def legacy_methods(self, user: str, methods: t.Sequence[dict[str, t.Any]]) -> set[str]:
        """The ids of ``user``'s methods that are legacy tokens: where several of the methods hold one serial number
        (Entra lets a token of the old CSV upload and one of the inventory share it), those the inventory does not
        hold. Each is warned about, with how to remove it. A duplicate the caller can't tell apart (no permission to
        read the inventory) fails, asking for the device id."""
        by_serial: dict[str, list[dict[str, t.Any]]] = {}
        for method in methods:
            serial = _method_serial(method)
            by_serial.setdefault(serial.lower(), []).append(method)
        legacy: set[str] = set()
        for key, same in by_serial.items():
            if not key or len(same) < 2:
                continue
            serial = same[0]["device"]["serialNumber"]
            try:
                listed = self.find_token(serial)
            except GraphError as exc:
                if exc.status != 403:
                    raise
                raise exc.with_message(
                    f"{exc.message}. {len(same)} hardware OATH methods of {user} have serial number {serial} (ids "
                    f"{', '.join(m['id'] for m in same)}): one is in the inventory, the others are legacy tokens "
                    "(from the old CSV upload), and telling them apart needs the inventory. Give device_id, or ask an "
                    "administrator to remove the legacy token"
                ) from None
            for method in same:
                if listed is None or method["id"].lower() != listed.id.lower():
                    legacy.add(method["id"])
                    self._warn(legacy_warning(user, serial, method["id"]))
        return legacy

    def directory_roles(self, user: str, me: bool = False) -> list[dict[str, t.Any]]:
        """The directory roles ``user`` (an id or UPN) holds, directly or through a role-assignable group: the
        ``directoryRole`` objects of their transitive memberships, every page. Not the documented cast
        (``.../microsoft.graph.directoryRole``): it needs Graph's advanced query parameters, whose index may lag
        behind a role assigned a moment ago; no query option either (the page says options need them too), so pages
        of 100. An app that may not read roles sees each with its type and id only (the name is None)."""
        action = f"Reading the directory roles of {user}"
        path = ("/me" if me else _user_path(user)) + "/transitiveMemberOf"
        body = self._call("read_memberships", "GET", path, action=action)
        return [
            {
                "id": item.get("id"),
                "display_name": item.get("displayName"),
                "role_template_id": item.get("roleTemplateId"),
            }
            for page, _more in self.client.pages(body, action=action)
            for item in page
            if item.get("@odata.type") == DIRECTORY_ROLE_TYPE
        ]

    def reread(self, token: TokenView, me: bool = False) -> TokenView:
        """The token read again after a write. One created a moment ago may not show in reads yet (404): it is
        waited for (see :meth:`poll`)."""
        if not me:
            return self.token_by_id(token.id, wait=True)
        return self.my_token(None, token.id) or unknown_token(token.serial_number, token.id)

    # ------------------------------------------------------------------ writes
    def _methods(self, user_id: str, me: bool) -> str:
        return _user_path("me" if me else user_id) + "/authentication/hardwareOathMethods"

    def write(
        self,
        action: Action,
        token: TokenView,
        user: UserView | None,
        code: str | None,
        display_name: str | None,
        *,
        by_serial: bool,
        me: bool,
    ) -> None:
        who = user.user_principal_name if user and user.id == action.user_id else action.user_id
        context = f"{action.kind.replace('_', ' ')} {token.label} for {who}"
        methods = self._methods(t.cast(str, action.user_id), me and user is not None and user.id == action.user_id)
        if action.kind == UNASSIGN:
            self._call("write_method", "DELETE", f"{methods}/{segment(token.id)}", action=context, expected=(204,))
        elif action.kind == SET_DISPLAY_NAME:
            self._call(
                "write_token",
                "PATCH",
                f"{DEVICES}/{segment(token.id)}",
                action=context,
                json={"displayName": display_name},
                expected=(204, 200),
            )
        elif action.kind == ASSIGN:
            try:
                self._call(
                    "write_method",
                    "POST",
                    methods,
                    action=context,
                    json={"device": {"id": token.id}},
                    expected=(201, 200),
                )
            except GraphError as exc:
                raise self._judge_refusal(exc, action, token, me) from None
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
            try:
                self._call("write_method", "POST", path, action=context, json=body, expected=(204, 200))
            except GraphError as exc:
                raise self._judge_refusal(exc, action, token, me) from None

    def _judge_refusal(self, error: GraphError, action: Action, token: TokenView, me: bool) -> GraphError:
        """Why Graph refused an assignment or activation (400 or 409), judged from state: Microsoft documents no error
        code for a wrong verification code, a user's five-method limit or a token someone else holds, and its
        messages are not a contract. The token is read again (and, for a token the user does not hold yet, the
        user's methods counted): a token someone else holds, an activated token activated again, or a user at the
        limit are said with what to do; with none of those, an activation refused with 400 is CodeRefused."""
        if error.status not in (400, 409) or action.kind not in (ASSIGN, ACTIVATE, ASSIGN_AND_ACTIVATE):
            return error
        user_id = t.cast(str, action.user_id)
        own = me and self.me is not None and self.me.id == user_id
        try:
            now = self.reread(token, own)
            holder = now.assigned_to_id
            if holder and holder != user_id.lower():
                return _with_hint(
                    error,
                    f"{token.label} is held by {now.assigned_to_name or 'another user'} ({holder}) now: it was "
                    "assigned after this task read it. Run the task again to plan from the new state (reassign=true "
                    "takes it from its holder)",
                )
            if action.kind == ACTIVATE and now.status == "activated":
                return _with_hint(
                    error,
                    "Graph does not activate an activated token again, so its display name can't be changed this way: "
                    "leave display_name unset, or unassign the token and assign it again with display_name (its "
                    "holder activates it again)",
                )
            if holder != user_id.lower() and self.oath_method_count(user_id, own) >= MAX_METHODS_PER_USER:
                return _method_limit(error)
        except GraphError:
            return error  # the state can't be read: Graph's refusal as it is
        return error.as_kind(CodeRefused) if action.kind in CODE_ACTIONS and error.status == 400 else error

    def oath_method_count(self, user: str, me: bool = False) -> int:
        """How many of the user's five OATH methods (hardware tokens, authenticator apps) are taken."""
        path = "/me" if me else _user_path(user)
        count = 0
        body = self._call("read_method", "GET", f"{path}/authentication/methods", action=f"Listing {user}'s methods")
        for page, _last in self.client.pages(body, action=f"Listing {user}'s methods"):
            count += sum(1 for method in page if method.get("@odata.type") in OATH_METHOD_TYPES)
        return count

    def create_token(self, body: dict[str, t.Any], *, while_deleted: bool = False) -> TokenView:
        """``body`` holds the secret: it goes to Graph only, never into a message. A serial number in use is
        TokenExists; with ``while_deleted`` (the token of that serial number was deleted a moment ago, to rotate it)
        the creation is sent again while the delete propagates (see :meth:`poll`)."""
        need = "write_method" if body.get("assignTo") else "write_token"

        def create() -> TokenView | TokenExists:
            try:
                answer = self._call(
                    need,
                    "POST",
                    DEVICES,
                    action=f"Creating token {body['serialNumber']}",
                    json=body,
                    expected=(201, 200),
                )
            except GraphError as exc:
                if exc.status != 409:
                    raise self._judge_creation_refusal(exc, body) from None
                return exc.as_kind(TokenExists)
            return TokenView.from_graph(answer)

        created = self.poll(create, lambda answer: not isinstance(answer, TokenExists)) if while_deleted else create()
        if isinstance(created, TokenExists):
            raise created
        return created

    def _judge_creation_refusal(self, error: GraphError, body: dict[str, t.Any]) -> GraphError:
        """A creation for a user (``assignTo``) refused with 400: when the user's methods are at the limit, said."""
        user_id = (body.get("assignTo") or {}).get("id")
        if error.status != 400 or not user_id:
            return error
        try:
            at_limit = self.oath_method_count(user_id) >= MAX_METHODS_PER_USER
        except GraphError:
            return error
        return _method_limit(error) if at_limit else error

    def create_tokens(self, bodies: t.Sequence[dict[str, t.Any]]) -> tuple[list[TokenView], dict[int, GraphError]]:
        """Create many tokens in one request (``PATCH`` with an OData delta payload, at most MAX_BULK_CREATE). Graph
        creates all or none: when it refuses some items (400 naming them by ``@contentId``), the others are sent again
        without them; a refusal that names no item is BulkRefused. Returns the tokens the answer lists and, by
        position in ``bodies``, the refusal of each item refused. The answer may list the tokens as devices, or (as
        Graph's page shows) as methods wrapping their device, or not at all (204): a token it does not list is for
        the caller to find by a listing, never to send again. The bodies hold secrets: they go to Graph only, never
        into a message."""
        pending = dict(enumerate(bodies))
        refused: dict[int, GraphError] = {}
        while pending:
            payload = {"@context": "#$delta", "value": [{"@contentId": str(n), **b} for n, b in pending.items()]}
            need = "write_method" if any(b.get("assignTo") for b in pending.values()) else "write_token"
            try:
                answer = self._call(
                    need,
                    "PATCH",
                    DEVICES,
                    action=f"Creating {len(pending)} tokens",
                    json=payload,
                    expected=(200, 201, 204),
                )
            except GraphError as exc:
                items = {str((d or {}).get("target")): d for d in exc.details or [] if isinstance(d, dict)}
                named = [n for n in pending if str(n) in items]
                if exc.status == 400 and not named:
                    raise exc.as_kind(BulkRefused) from None
                if exc.status != 400:
                    raise
                for number in named:
                    detail = items[str(number)]
                    body = pending.pop(number)
                    refusal = exc.with_message(
                        f"Creating token {body['serialNumber']}: Graph refused it in a bulk creation: "
                        f"{detail.get('code')}: {detail.get('message')}"
                    )
                    # The item's own code: "conflict" is the serial number in use, as a single creation's 409 says.
                    if str(detail.get("code")).lower() == "conflict":
                        refused[number] = refusal.as_kind(TokenExists)
                    else:
                        refused[number] = self._judge_creation_refusal(refusal, body)
                continue
            listed = (answer or {}).get("value") or []
            return [TokenView.from_graph(item) for item in listed if isinstance(item, dict)], refused
        return [], refused

    def update_token(self, token: TokenView, body: dict[str, t.Any]) -> None:
        self._call(
            "write_token",
            "PATCH",
            f"{DEVICES}/{segment(token.id)}",
            action=f"Updating {token.label}",
            json=body,
            expected=(204, 200),
        )

    def delete_token(self, token: TokenView) -> None:
        self._call(
            "write_token", "DELETE", f"{DEVICES}/{segment(token.id)}", action=f"Deleting {token.label}", expected=(204,)
        )


def unknown_token(serial: str | None, device_id: str | None) -> TokenView:
    """A token a self-service user can't see: taken as available (Graph refuses the assignment if it is not)."""
    return TokenView(
        id=device_id or "",
        serial_number=serial or "",
        status="available",
        assigned_to_id=None,
        assigned_to_name=None,
        display_name=None,
    )


def _method_serial(method: dict[str, t.Any]) -> str:
    """The serial number of a user's method (of its device), or "" when the method carries none."""
    return str((method.get("device") or {}).get("serialNumber") or "")


def legacy_warning(user: str, serial: str, method_id: str) -> str:
    path = "/me" if user == "me" else _user_path(user)
    return (
        f"{user} holds a legacy hardware OATH token with serial number {serial} (method id {method_id}): it is not "
        "in the inventory, and was left alone. To remove it, as Entra's guide to duplicate tokens says: DELETE "
        f"{path}/authentication/hardwareOathMethods/{method_id}, then DELETE {DEVICES}/{method_id} (Graph beta), or "
        "delete it among the user's authentication methods in the Entra admin center."
    )


def _with_hint(error: GraphError, hint: str) -> GraphError:
    """``error`` with what to do about it."""
    return error.with_message(f"{error.message.rstrip('.')}. {hint}")


def _method_limit(error: GraphError) -> GraphError:
    return _with_hint(
        error,
        f"The user holds {MAX_METHODS_PER_USER} OATH methods, hardware tokens and authenticator apps together, the "
        "most Entra ID allows: remove one of theirs first (a hardware token with "
        "tokenops.entra.hardware_oath_assignment state=absent, an authenticator app in the Entra admin center), or "
        "give this token to someone else",
    )
