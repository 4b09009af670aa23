"""Microsoft Graph beta: the hardware OATH inventory, user methods, users and the authentication method policy.

``GraphApi.handle`` takes one already-authenticated request (path segments percent-decoded one by one) and
returns ``(status, json_body_or_None, headers)`` or raises :class:`ErrorAnswer`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable, Sequence

from . import odata
from . import permissions as perm
from .errors import ErrorAnswer, bad_request, conflict, not_found, odata_bad_request
from .identity import Principal
from .settings import Settings
from .tenant import GUID_RE, MAX_METHODS_PER_USER, Journal, Tenant, Token, User, method_limit

# The well-known id of every user's password method (Graph's passwordAuthenticationMethod pages).
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"

DEVICE_TYPE = "microsoft.graph.hardwareOathTokenAuthenticationMethodDevice"
METHOD_TYPE = "microsoft.graph.hardwareOathAuthenticationMethod"
USER_TYPE = "microsoft.graph.user"
POLICY_TYPE = "microsoft.graph.hardwareOathAuthenticationMethodConfiguration"
DEVICES_PATH = ("directory", "authenticationMethodDevices", "hardwareOathDevices")
POLICY_PATH = ("policies", "authenticationMethodsPolicy", "authenticationMethodConfigurations", "hardwareOath")

DEVICE_PROPERTIES = {
    "id": odata.Property("id"),
    "displayName": odata.Property("displayName"),
    "serialNumber": odata.Property("serialNumber"),
    "manufacturer": odata.Property("manufacturer"),
    "model": odata.Property("model"),
    "status": odata.Property("status", "enum:available,assigned,activated,failedActivation,unknownFutureValue"),
    "hashFunction": odata.Property("hashFunction", "enum:hmacsha1,hmacsha256,unknownFutureValue"),
    "timeIntervalInSeconds": odata.Property("timeIntervalInSeconds", "int"),
    "assignedTo/id": odata.Property("assignedTo/id"),
    "assignedTo/displayName": odata.Property("assignedTo/displayName"),
    "secretKey": odata.Property("secretKey", filterable=False),
    "lastUsedDateTime": odata.Property("lastUsedDateTime", filterable=False),
}
DEVICE_SELECT = {
    "id",
    "displayName",
    "serialNumber",
    "manufacturer",
    "model",
    "secretKey",
    "timeIntervalInSeconds",
    "status",
    "lastUsedDateTime",
    "hashFunction",
    "assignedTo",
}
DEVICE_WRITABLE = {
    "serialNumber",
    "manufacturer",
    "model",
    "secretKey",
    "timeIntervalInSeconds",
    "hashFunction",
    "displayName",
}
DEVICE_UPDATABLE = {"manufacturer", "model", "timeIntervalInSeconds", "hashFunction", "displayName"}
DEVICE_READ_ONLY = {"id", "status", "assignedTo", "lastUsedDateTime"}
METHOD_PROPERTIES = {
    "id": odata.Property("id"),
    "device/serialNumber": odata.Property("device/serialNumber"),
    "device/status": odata.Property("device/status"),
}
METHOD_SELECT = {"id", "createdDateTime", "lastUsedDateTime", "device"}
USER_PROPERTIES = {
    "id": odata.Property("id"),
    "userPrincipalName": odata.Property("userPrincipalName"),
    "displayName": odata.Property("displayName"),
    "userType": odata.Property("userType"),
}
USER_SELECT = {"id", "userPrincipalName", "displayName", "userType", "accountEnabled"}

# $filter support per collection. The inventory's depends on filter_mode (see GraphApi._device_filter): lenient is
# DEVICE_LENIENT; documented is one eq comparison of a property Microsoft documents as filterable (the list
# page of hardwareOathDevices and the beta SDK model's "Supports $filter (eq)"); silent ignores what documented
# refuses. Users take what the user resource documents (eq, ne, not, in, startswith); user methods eq, in and.
DEVICE_LENIENT = odata.Support()
DOCUMENTED_DEVICE_FILTERS = (
    "serialNumber",
    "status",
    "manufacturer",
    "model",
    "hashFunction",
    "timeIntervalInSeconds",
    "assignedTo/id",
)
DOCUMENTED_FILTER_MESSAGE = (
    "Unsupported query: only one 'eq' comparison of "
    + ", ".join(DOCUMENTED_DEVICE_FILTERS[:-1])
    + f" or {DOCUMENTED_DEVICE_FILTERS[-1]} is supported."
)
USER_FILTERS = odata.Support(
    operators=frozenset({"eq", "ne", "in"}), functions=frozenset({"startswith"}), negation=True
)
METHOD_FILTERS = odata.Support()


@dataclass
class Request:
    method: str
    segments: list[str]
    query: dict
    headers: dict  # lower-case names
    body: bytes
    principal: Principal
    version: str = "beta"
    extra: dict = field(default_factory=dict)
    journal: Journal = field(default_factory=Journal)  # what the request did to the inventory, for its log entry


DIRECTORY_ROLE_CAST = "microsoft.graph.directoryRole"
DIRECTORY_ROLE_SELECT = {"id", "displayName", "description", "roleTemplateId"}
GROUP_CAST = "microsoft.graph.group"
GROUP_SELECT = {"id", "displayName"}
ADMINISTRATIVE_UNIT_CAST = "microsoft.graph.administrativeUnit"
ADMINISTRATIVE_UNIT_SELECT = {"id", "displayName", "description"}
DIRECTORY_OBJECT_TYPE = "microsoft.graph.directoryObject"
MEMBERSHIP_RELATIONS = ("memberOf", "transitiveMemberOf")
# A user's memberships: the uncast directoryObject collection, or one type of it (an OData cast): the entity set the
# @odata.context names and the properties $select may name (on the uncast list, those of any of the types).
MEMBERSHIP_VIEWS: dict[str | None, tuple[str, set[str], str]] = {
    None: ("directoryObjects", DIRECTORY_ROLE_SELECT | GROUP_SELECT, DIRECTORY_OBJECT_TYPE),
    DIRECTORY_ROLE_CAST: ("directoryRoles", DIRECTORY_ROLE_SELECT, DIRECTORY_ROLE_CAST),
    GROUP_CAST: ("groups", GROUP_SELECT, GROUP_CAST),
    ADMINISTRATIVE_UNIT_CAST: ("administrativeUnits", ADMINISTRATIVE_UNIT_SELECT, ADMINISTRATIVE_UNIT_CAST),
}
# The query options of advanced queries (ConsistencyLevel: eventual and $count=true), which the simulator refuses.
ADVANCED_ONLY_OPTIONS = ("$filter", "$search", "$orderby")
ROLE_TEMPLATE_IDS = {  # template ids of Microsoft Entra built-in roles
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Authentication Policy Administrator": "0526716b-113d-4c15-b2c8-68e3c22b9f80",
}
Response = tuple[int, Any, dict]


def parse_json_body(request: Request, required: bool = True) -> dict:
    if not request.body.strip():
        if required:
            raise odata_bad_request("Empty Payload. JSON content expected.")
        return {}
    content_type = request.headers.get("content-type", "")
    if "application/json" not in content_type.lower():
        raise ErrorAnswer(
            415, "UnsupportedMediaType", f"The content type '{content_type}' is not supported; use application/json."
        )
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise odata_bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format."
        ) from exc
    if not isinstance(body, dict):
        raise odata_bad_request("Unable to read JSON request payload: the payload must be a JSON object.")
    return body


def check_properties(body: dict, allowed: set[str], type_name: str, read_only: frozenset | set = frozenset()) -> None:
    """Reject unknown properties (as OData does) and non-null read-only ones; annotations (``@odata.*`` and any
    other ``@name``) pass."""
    for key, value in body.items():
        if key.startswith("@"):
            continue
        if key in read_only:
            if value is not None:
                raise odata_bad_request(f"The property '{key}' is read-only and cannot be set.")
            continue
        if key not in allowed:
            raise odata_bad_request(
                f"The property '{key}' does not exist on type '{type_name}'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type."
            )


def _reference_id(value: Any, name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise bad_request(f"The property '{name}' must be an object with an 'id'.")
    check_properties(value, {"id", "displayName"}, f"microsoft.graph.{'identity' if name == 'assignTo' else 'entity'}")
    return value["id"]


class GraphApi:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.base_url = ""

    @property
    def config(self) -> Settings:
        """The runtime settings (the tenant's)."""
        return self.tenant.config

    def _paginate(self, items: list[Any], key: Callable[[Any], Any], request: Request) -> tuple[list[Any], dict | None]:
        return odata.paginate(
            items,
            key,
            request.query,
            self.config.page_size,
            max_page_size=self.config.max_page_size,
            top_above_max=self.config.top_above_max,
        )

    def _paginate_sorted(
        self,
        items: Sequence[Any],
        key: Callable[[Any], Any],
        key_type: type,
        request: Request,
        render: Callable[[Any], Any],
    ) -> tuple[list[Any], dict | None]:
        return odata.paginate_sorted(
            items,
            key,
            key_type,
            request.query,
            self.config.page_size,
            max_page_size=self.config.max_page_size,
            top_above_max=self.config.top_above_max,
            render=render,
        )

    def url(self, path: str, version: str = "beta") -> str:
        return f"{self.base_url}/{version}/{path}"

    # ------------------------------------------------------------------ routing
    def handle(self, request: Request) -> Response:
        segs = request.segments
        if request.version != "beta" and segs[:1] != ["users"] and segs[:1] != ["me"]:
            raise odata_bad_request(f"Resource not found for the segment '{segs[0] if segs else ''}'.")
        with self.tenant.lock:
            request.journal.handled = self.tenant.next_handled()
            self.tenant.journal = request.journal
            try:
                if tuple(segs[:3]) == DEVICES_PATH:
                    return self._devices(request, segs[3:])
                if tuple(segs[:4]) == POLICY_PATH and len(segs) == 4:
                    return self._policy(request)
                if segs[:1] == ["users"] and len(segs) >= 2:
                    return self._user_routes(request, self._resolve_user(segs[1]), segs[2:])
                if segs == ["users"]:
                    return self._list_users(request)
                if segs[:1] == ["me"]:
                    if not request.principal.delegated:
                        raise odata_bad_request("/me request is only valid with delegated authentication flow.")
                    return self._user_routes(request, request.principal.signed_in_user, segs[1:])
            finally:
                self.tenant.journal = None
        raise self._unknown_segment(segs)

    def _target(self, request: Request, token_id: Any) -> None:
        """Note in the request's journal the token a write addresses by id (found or not)."""
        if isinstance(token_id, str) and token_id:
            token = self.tenant.tokens.get(token_id.lower())
            request.journal.target(token_id, token.serial_number if token else None)

    @staticmethod
    def _unknown_segment(segs: list[str]) -> ErrorAnswer:
        return odata_bad_request(f"Resource not found for the segment '{segs[-1] if segs else ''}'.")

    @staticmethod
    def _method_not_allowed() -> ErrorAnswer:
        return ErrorAnswer(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")

    def _resolve_user(self, ref: str) -> User:
        return self.tenant.require_user(ref)

    def _user_routes(self, request: Request, user: User, rest: list[str]) -> Response:
        if not rest:
            return self._get_user(request, user)
        if rest[:2] == ["authentication", "hardwareOathMethods"] and request.version == "beta":
            return self._methods(request, user, rest[2:])
        if rest == ["authentication", "methods"]:
            return self._all_methods(request, user)
        if rest[0] in MEMBERSHIP_RELATIONS and (len(rest) == 1 or (len(rest) == 2 and rest[1] in MEMBERSHIP_VIEWS)):
            return self._memberships(request, user, rest[0], rest[1] if len(rest) == 2 else None)
        raise self._unknown_segment(rest)

    def _memberships(self, request: Request, user: User, relation: str, cast: str | None) -> Response:
        """``GET /users/{id}/memberOf`` and ``/transitiveMemberOf`` (``/me/...`` too), uncast or cast to one type
        (``microsoft.graph.directoryRole``, ``microsoft.graph.group``, ``microsoft.graph.administrativeUnit``).

        The memberships are the seed's: the user's ``groups`` (direct membership), then the directory roles of its
        ``roles`` (held directly), in seed order; no administrative units. The seed has no nested groups and no
        group holds a role, so the transitive memberships are the direct ones and both relations answer the same.

        Permission: User.Read.All, Directory.Read.All, GroupMember.Read.All or Group.Read.All (User.Read for oneself,
        delegated). An object whose type the caller may not read (:func:`permissions.may_read_properties`) keeps its
        ``@odata.type`` and ``id``, its other properties null. Paged (default 100, ``$top`` up to 999). A cast and
        ``$filter``, ``$search``, ``$orderby`` need the advanced query parameters (``ConsistencyLevel: eventual``
        and ``$count=true``; the answer then carries ``@odata.count``), else 400 ``Request_UnsupportedQuery``;
        ``$filter``, ``$search`` and ``$orderby`` are refused even then (*simulator choice*). ``$count=true``
        without the header is 400 ``Request_BadRequest`` "$count is not currently supported." (what Graph
        answers, microsoftgraph/microsoft-graph-docs issues 9254 and 18613)."""
        if request.method != "GET":
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.MEMBERSHIPS_READ, user)
        advanced = self._advanced_query(request, relation, cast)
        entity_set, selectable, type_name = MEMBERSHIP_VIEWS[cast]
        fields = odata.parse_select(request.query.get("$select"), selectable, type_name)
        memberships = [m for m in self._membership_objects(request.principal, user) if cast in (None, m[0])]
        if "$skiptoken" in request.query:  # the position of the last item of the page before: an integer
            after = odata.decode_skiptoken(request.query["$skiptoken"])
            if not isinstance(after, int) or isinstance(after, bool):
                raise odata_bad_request("The $skiptoken is invalid or has expired.")
        page, next_query = self._paginate(list(enumerate(memberships)), lambda item: item[0], request)
        body: dict = {"@odata.context": self.url(f"$metadata#{entity_set}", request.version)}
        if advanced:
            body["@odata.count"] = len(memberships)
        body["value"] = [odata.apply_select(item, fields) for _index, (_type, item) in page]
        if next_query:
            path = f"users/{user.id}/{relation}" + (f"/{cast}" if cast else "")
            body["@odata.nextLink"] = self.url(f"{path}?" + odata.build_query_string(next_query), request.version)
        return 200, body, {}

    @staticmethod
    def _advanced_query(request: Request, relation: str, cast: str | None) -> bool:
        """Check a membership list's query options; whether they make an advanced query (the header
        ``ConsistencyLevel: eventual`` and ``$count=true``, aad-advanced-queries)."""
        query = request.query
        odata.check_options({k: v for k, v in query.items() if k != "$count" and k not in ADVANCED_ONLY_OPTIONS})
        count = query.get("$count")
        if count is not None and count.strip().lower() not in ("true", "false"):
            raise odata_bad_request(f"Invalid value '{count}' for $count: true or false.")
        counted = count is not None and count.strip().lower() == "true"
        eventual = str(request.headers.get("consistencylevel", "")).strip().lower() == "eventual"
        advanced = counted and eventual
        needs = ([f"the OData cast '{cast}'"] if cast else []) + [o for o in ADVANCED_ONLY_OPTIONS if o in query]
        if needs and not advanced:
            raise bad_request(
                f"Unsupported query: {' and '.join(needs)} on {relation} needs the advanced query parameters: "
                "the ConsistencyLevel header set to 'eventual' and $count=true.",
                code="Request_UnsupportedQuery",
            )
        if counted and not eventual:
            raise ErrorAnswer(400, "Request_BadRequest", "$count is not currently supported.")
        refused = [o for o in ADVANCED_ONLY_OPTIONS if o in query]
        if refused:
            raise bad_request(
                f"Unsupported query: the simulator does not support {', '.join(refused)} on {relation}.",
                code="Request_UnsupportedQuery",
            )
        return advanced

    def _membership_objects(self, principal: Principal, user: User) -> list[tuple[str, dict]]:
        """``(cast, object)`` of each of ``user``'s memberships: groups, then directory roles, in seed order; an
        object of a type ``principal`` may not read keeps its ``@odata.type`` and ``id`` only (the rest null)."""
        groups = [
            {
                "@odata.type": "#microsoft.graph.group",
                "id": gid,
                "displayName": self.tenant.groups[gid].display_name,
            }
            for gid in user.groups
        ]
        roles = [
            {
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"entrasim:directory-role:{name}")),
                "displayName": name,
                "description": None,
                "roleTemplateId": ROLE_TEMPLATE_IDS.get(name),
            }
            for name in user.roles
        ]
        out: list[tuple[str, dict]] = []
        kinds = ((GROUP_CAST, "group", groups), (DIRECTORY_ROLE_CAST, "directoryRole", roles))
        for cast, object_type, objects in kinds:
            readable = perm.may_read_properties(principal, object_type)
            out += [
                (cast, obj if readable else {k: (v if k in ("@odata.type", "id") else None) for k, v in obj.items()})
                for obj in objects
            ]
        return out

    def _all_methods(self, request: Request, user: User) -> Response:
        """``GET .../authentication/methods``: every method of the user, one page: a password, the hardware OATH
        methods (legacy ones too) and the seed's ``other_oath_methods`` as authenticator apps (software OATH)."""
        if request.method != "GET":
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.METHODS_READ, user)
        odata.check_options(request.query)
        methods: list[dict] = [
            {"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": PASSWORD_METHOD_ID}
        ]
        methods += [
            {key: value for key, value in self.tenant.method_json(token).items() if key != "device"}
            for token in self.tenant.visible_methods_of(user.id)
        ]
        methods += [
            {
                "@odata.type": "#microsoft.graph.softwareOathAuthenticationMethod",
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"entrasim:{user.id}:software-oath:{number}")),
                "secretKey": None,
            }
            for number in range(user.other_oath_methods)
        ]
        return (
            200,
            {"@odata.context": self.url(f"$metadata#users('{user.id}')/authentication/methods"), "value": methods},
            {},
        )

    # ------------------------------------------------------------------ users
    def _get_user(self, request: Request, user: User) -> Response:
        if request.method != "GET":
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.USERS_READ, user)
        odata.check_entity_options(request.query)
        fields = odata.parse_select(request.query.get("$select"), USER_SELECT, USER_TYPE)
        body = {
            "@odata.context": self.url("$metadata#users/$entity", request.version),
            **odata.apply_select(self.tenant.user_json(user), fields),
        }
        return 200, body, {}

    def _list_users(self, request: Request) -> Response:
        if request.method != "GET":
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.USERS_READ)
        odata.check_options(request.query)
        parsed = None
        if "$filter" in request.query:
            parsed = odata.parse_filter(request.query["$filter"], USER_PROPERTIES, USER_TYPE, USER_FILTERS)
        fields = odata.parse_select(request.query.get("$select"), USER_SELECT, USER_TYPE)
        users = self._user_candidates(parsed)

        def render(user: User) -> dict | None:
            item = self.tenant.user_json(user)
            return item if parsed is None or parsed.matches(item) else None

        page, next_query = self._paginate_sorted(users, attrgetter("id"), str, request, render)
        body: dict = {
            "@odata.context": self.url("$metadata#users", request.version),
            "value": [odata.apply_select(u, fields) for u in page],
        }
        if next_query:
            body["@odata.nextLink"] = self.url("users?" + odata.build_query_string(next_query), request.version)
        return 200, body, {}

    def _user_candidates(self, parsed: odata.Filter | None) -> list[User]:
        """The users that may match ``parsed``, sorted by id: the few an index finds for an ``id`` or
        ``userPrincipalName`` comparison (eq or in) the filter requires, else every user."""
        for path, values in odata.equality_terms(parsed) if parsed is not None else []:
            if path not in ("id", "userPrincipalName") or not all(isinstance(v, str) for v in values):
                continue
            if path == "id":
                users = [self.tenant.users.get(v.lower()) for v in values]
            else:
                users = [self.tenant.find_user_by_upn(v) for v in values]
            return sorted({u.id: u for u in users if u is not None}.values(), key=attrgetter("id"))
        return self.tenant.users_by_id()

    # ------------------------------------------------------------------ inventory
    def _devices(self, request: Request, rest: list[str]) -> Response:
        if not rest:
            if request.method == "GET":
                return self._list_devices(request)
            if request.method in ("POST", "PATCH"):
                return self._write_devices(request)
            raise self._method_not_allowed()
        if len(rest) == 1:
            if request.method not in ("GET", "PATCH", "DELETE"):
                raise self._method_not_allowed()
            perm.authorize(request.principal, perm.DEVICES_READ if request.method == "GET" else perm.DEVICES_WRITE)
            if request.method == "GET":
                return self._get_device(request, rest[0])
            self._target(request, rest[0])
            token = self.tenant.require_token(rest[0])
            if request.method == "PATCH":
                body = parse_json_body(request)
                if "secretKey" in body:
                    raise bad_request(
                        "The secretKey of a hardware OATH token can't be updated; delete and recreate the token."
                    )
                if "serialNumber" in body:
                    raise bad_request("The serialNumber of a hardware OATH token can't be updated.")
                check_properties(body, DEVICE_UPDATABLE, DEVICE_TYPE, DEVICE_READ_ONLY)
                self.tenant.update_device(token, self.tenant.validate_device_fields(body, creating=False))
                return 204, None, {}
            self.tenant.delete_device(token)
            return 204, None, {}
        raise self._unknown_segment(rest)

    def _get_device(self, request: Request, token_id: str) -> Response:
        """One inventory token. Its page documents no query option (reference §2.1.2), so any is refused; the
        method's ``/device`` navigation takes ``$select``."""
        options = sorted(key for key in request.query if key.startswith("$"))
        if options:
            raise odata_bad_request(f"Query option '{options[0]}' is not supported when reading a hardware OATH token.")
        return self._device_entity(
            request,
            self.tenant.require_visible_token(token_id),
            "directory/authenticationMethodDevices/hardwareOathDevices/$entity",
        )

    def _device_entity(self, request: Request, token: Token, context: str) -> Response:
        """One device (``GET`` of the inventory item, or of a user method's ``/device``), ``$select`` applied."""
        odata.check_entity_options(request.query)
        fields = odata.parse_select(request.query.get("$select"), DEVICE_SELECT, DEVICE_TYPE)
        return (
            200,
            {
                "@odata.context": self.url("$metadata#" + context),
                **odata.apply_select(self.tenant.device_json(token), fields),
            },
            {},
        )

    def _device_filter(self, text: str) -> odata.Filter | None:
        """The inventory's ``$filter`` as filter_mode has it; None: answer the whole collection."""
        if self.config.filter_mode == "lenient":
            return odata.parse_filter(text, DEVICE_PROPERTIES, DEVICE_TYPE, DEVICE_LENIENT)
        parsed = odata.FilterParser(text, DEVICE_PROPERTIES, DEVICE_TYPE).parse()
        root = parsed.root
        if (
            not parsed.grouped
            and isinstance(root, odata.Comparison)
            and root.operator == "eq"
            and root.prop.path in DOCUMENTED_DEVICE_FILTERS
        ):
            return parsed
        if self.config.filter_mode == "silent":
            return None  # Graph's known issue: an unsupported query may be ignored, not refused
        raise odata_bad_request(DOCUMENTED_FILTER_MESSAGE)

    def _list_devices(self, request: Request) -> Response:
        perm.authorize(request.principal, perm.DEVICES_READ)
        odata.check_options(request.query)
        parsed = self._device_filter(request.query["$filter"]) if "$filter" in request.query else None
        fields = odata.parse_select(request.query.get("$select"), DEVICE_SELECT, DEVICE_TYPE)
        tokens = self.tenant.visible_tokens(self._token_candidates(parsed))

        def render(token: Token) -> dict | None:
            if token.legacy:
                return None  # uploaded by the old CSV flow: a user's method, never in the inventory's listing
            item = self.tenant.device_json(token)
            if parsed is not None and not parsed.matches(item):
                return None
            return odata.apply_select(item, fields)

        page, next_query = self._paginate_sorted(tokens, attrgetter("order"), int, request, render)
        context = "$metadata#directory/authenticationMethodDevices/hardwareOathDevices"
        if fields:
            context += "(" + ",".join(fields) + ")"
        body: dict = {"@odata.context": self.url(context), "value": page}
        if next_query:
            body["@odata.nextLink"] = self.url("/".join(DEVICES_PATH) + "?" + odata.build_query_string(next_query))
        return 200, body, {}

    def _token_candidates(self, parsed: odata.Filter | None) -> set[str] | None:
        """The ids of the tokens that may match ``parsed``, from an index, for a ``serialNumber``, ``assignedTo/id``
        or ``id`` comparison (eq or in) the filter requires; None: no index answers it (every token may)."""
        for path, values in odata.equality_terms(parsed) if parsed is not None else []:
            if not all(isinstance(v, str) for v in values):
                continue
            if path == "serialNumber":
                return self.tenant.token_ids_by_serial(values)
            if path == "assignedTo/id":
                return self.tenant.token_ids_by_holder(values)
            if path == "id":
                return {v.lower() for v in values if v.lower() in self.tenant.tokens}
        return None

    def _assign_target(self, request: Request, value: Any) -> User | None:
        """Resolve ``assignTo`` of a create, enforcing the extra permission it needs."""
        if value is None:
            return None
        user_id = _reference_id(value, "assignTo")
        if not GUID_RE.match(user_id):
            raise bad_request(f"assignTo.id must be a user object id (GUID), not '{user_id}'.")
        user = self.tenant.users.get(user_id.lower())
        if user is None:
            raise bad_request(f"The user '{user_id}' in assignTo was not found.")
        try:
            perm.authorize(request.principal, perm.METHODS_WRITE, user)
        except ErrorAnswer:
            if self.config.create_assign_without_permission == "ignore":
                return None  # reported by a third party: the token is created, assignTo silently dropped
            raise
        return user

    def _write_devices(self, request: Request) -> Response:
        """``POST`` or ``PATCH`` on the inventory: an OData delta payload is a bulk creation (the HTTP section of its
        page says PATCH, its example POST), anything else a POST's single creation."""
        perm.authorize(request.principal, perm.DEVICES_WRITE)
        body = parse_json_body(request)
        if "#$delta" in (body.get("@context"), body.get("@odata.context")):
            return self._bulk_devices(request, body)
        if request.method == "PATCH":
            raise bad_request(
                'A PATCH on the hardwareOathDevices collection must be a delta payload with "@context": "#$delta".'
            )
        return self._create_device(request, body)

    def _create_device(self, request: Request, body: dict) -> Response:
        if isinstance(body.get("serialNumber"), str):
            request.journal.target(serial_number=body["serialNumber"])
        check_properties(body, DEVICE_WRITABLE | {"assignTo"}, DEVICE_TYPE, DEVICE_READ_ONLY)
        fields = self.tenant.validate_device_fields(body, creating=True)
        user = self._assign_target(request, body.get("assignTo"))
        token = self.tenant.create_device(fields, user)
        out = {
            "@odata.context": self.url("$metadata#directory/authenticationMethodDevices/hardwareOathDevices/$entity"),
            **self.tenant.device_json(token),
        }
        return 201, out, {"Location": self.url("/".join(DEVICES_PATH) + "/" + token.id)}

    def _bulk_devices(self, request: Request, body: dict) -> Response:
        """A delta payload: create (no id) or update (id) many tokens; all or nothing. Answered as bulk_answer says."""
        items = body.get("value")
        if not isinstance(items, list) or not items:
            raise bad_request("The delta payload must carry a non-empty 'value' array.")
        most = self.config.bulk_max_items
        if len(items) > most:
            raise bad_request(f"A delta payload can carry at most {most} hardware OATH tokens.")
        plans, details = [], []
        serials: set[str] = set()
        added: dict[str, int] = {}
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("id"):
                self._target(request, item["id"])
            elif isinstance(item, dict) and isinstance(item.get("serialNumber"), str):
                request.journal.target(serial_number=item["serialNumber"])
            content_id = str(item.get("@contentId", index + 1)) if isinstance(item, dict) else str(index + 1)
            try:
                plans.append(self._plan_bulk_item(request, item, serials, added) + (content_id,))
            except ErrorAnswer as exc:
                if exc.status == 403:
                    raise  # a missing permission fails the request, not one item
                details.append({"code": exc.code, "message": exc.message, "target": content_id})
        if details:
            raise self._bulk_refusal(details, len(items))
        done = []
        for existing, fields, user, content_id in plans:
            if existing is None:
                token = self.tenant.create_device(fields, user)
            else:
                token = existing
                self.tenant.update_device(token, fields)
            done.append((content_id, token))
        return self._bulk_answer(done)

    def _bulk_refusal(self, details: list[dict], count: int) -> ErrorAnswer:
        """The 400 of a bulk creation with refused items: naming each by its @contentId (``per_item``), or none."""
        if self.config.bulk_refusal == "whole":
            return bad_request("The delta payload holds invalid hardware OATH tokens; nothing was changed.")
        return bad_request(
            f"{len(details)} of {count} hardware OATH tokens in the delta payload are invalid; nothing was changed.",
            details=details,
        )

    def _bulk_answer(self, done: list[tuple[str, Token]]) -> Response:
        """The answer to a bulk creation (bulk_answer): the page's 201 listing methods that wrap their device (no
        @contentId, no @context), a 200 delta of devices with their @contentId, or a 204."""
        answer = self.config.bulk_answer
        if answer == "empty":
            return 204, None, {}
        if answer == "flat":
            devices = [{"@contentId": content_id, **self.tenant.device_json(token)} for content_id, token in done]
            return 200, {"@context": "#$delta", "value": devices}, {}
        methods = [
            {"@odata.type": "#" + METHOD_TYPE, "id": token.id, "device": self.tenant.device_json(token)}
            for _content_id, token in done
        ]
        return 201, {"value": methods}, {}

    def _plan_bulk_item(self, request: Request, item: Any, serials: set[str], added: dict[str, int]) -> tuple:
        if not isinstance(item, dict):
            raise bad_request("Each delta item must be a JSON object.")
        if "@removed" in item:
            raise bad_request("Removing tokens through a delta payload is not supported; DELETE each token.")
        if item.get("id"):
            token = self.tenant.require_token(str(item["id"]))
            if "secretKey" in item or "serialNumber" in item:
                raise bad_request("The secretKey and serialNumber of an existing hardware OATH token can't be updated.")
            check_properties(
                {k: v for k, v in item.items() if k != "id"}, DEVICE_UPDATABLE, DEVICE_TYPE, DEVICE_READ_ONLY
            )
            if token.assigned_to is not None:
                raise bad_request(
                    f"The hardware OATH token '{token.serial_number}' is assigned to a user; "
                    "unassign it before updating it."
                )
            return token, self.tenant.validate_device_fields(item, creating=False), None
        check_properties(item, DEVICE_WRITABLE | {"assignTo"}, DEVICE_TYPE, DEVICE_READ_ONLY)
        fields = self.tenant.validate_device_fields(item, creating=True)
        serial = fields["serialNumber"].lower()
        if serial in serials or self.tenant.serial_taken(serial):
            raise conflict(f"A hardware OATH token with serial number '{fields['serialNumber']}' already exists.")
        serials.add(serial)
        user = self._assign_target(request, item.get("assignTo"))
        if user is not None:
            if user.is_guest:
                raise bad_request(
                    f"Hardware OATH tokens can't be assigned to guest users ({user.user_principal_name})."
                )
            added[user.id] = added.get(user.id, 0) + 1
            if self.tenant.oath_method_count(user) + added[user.id] > MAX_METHODS_PER_USER:
                raise method_limit(user)
        return None, fields, user

    # ------------------------------------------------------------------ user methods
    def _methods(self, request: Request, user: User, rest: list[str]) -> Response:
        if not rest:
            return self._methods_collection(request, user)
        action = rest[0]
        if action in ("assignAndActivate", "assignAndActivateBySerialNumber") and len(rest) == 1:
            return self._assign_and_activate(request, user, action)
        if len(rest) > 2 or (len(rest) == 2 and rest[1] not in ("activate", "deactivate", "device")):
            raise self._unknown_segment(rest)
        allowed = ("GET", "DELETE") if len(rest) == 1 else ("GET",) if rest[1] == "device" else ("POST",)
        if request.method not in allowed:
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.METHODS_READ if request.method == "GET" else perm.METHODS_WRITE, user)
        if request.method == "GET":
            return self._read_method(request, user, rest)
        return self._change_method(request, user, rest)

    def _methods_collection(self, request: Request, user: User) -> Response:
        """GET lists the user's hardware OATH methods; POST assigns a token to the user."""
        if request.method == "GET":
            perm.authorize(request.principal, perm.METHODS_READ, user)
            return self._list_methods(request, user)
        if request.method == "POST":
            perm.authorize(request.principal, perm.METHODS_WRITE, user)
            body = parse_json_body(request)
            check_properties(body, {"device"}, METHOD_TYPE, {"id", "createdDateTime", "lastUsedDateTime"})
            device_id = _reference_id(body.get("device"), "device")
            self._target(request, device_id)
            token = self.tenant.require_token(device_id)
            self.tenant.assign(token, user)
            return (
                201,
                {
                    "@odata.context": self.url(
                        f"$metadata#users('{user.id}')/authentication/hardwareOathMethods/$entity"
                    ),
                    "@odata.type": "#" + METHOD_TYPE,
                    "id": token.id,
                    "createdDateTime": self.tenant.method_json(token)["createdDateTime"],
                },
                {},
            )
        raise self._method_not_allowed()

    def _assign_and_activate(self, request: Request, user: User, action: str) -> Response:
        """``assignAndActivate`` (the device by id) and ``assignAndActivateBySerialNumber``."""
        if request.method != "POST":
            raise self._method_not_allowed()
        perm.authorize(request.principal, perm.METHODS_WRITE, user)
        body = parse_json_body(request)
        token = self._token_to_activate(request, action, body)
        self._require_code(body)
        self.tenant.assign_and_activate(token, user, body["verificationCode"], self._display_name(body))
        return 204, None, {}

    def _token_to_activate(self, request: Request, action: str, body: dict) -> Token:
        if action == "assignAndActivate":
            check_properties(
                body,
                {"device", "verificationCode", "displayName"},
                "microsoft.graph.assignAndActivatePostRequestBody",
            )
            device_id = _reference_id(body.get("device"), "device")
            self._target(request, device_id)
            return self.tenant.require_token(device_id)
        check_properties(
            body,
            {"serialNumber", "verificationCode", "displayName"},
            "microsoft.graph.assignAndActivateBySerialNumberPostRequestBody",
        )
        serial = body.get("serialNumber")
        if not isinstance(serial, str) or not serial:
            raise bad_request("The property 'serialNumber' is required.")
        token = self.tenant.find_token_by_serial(serial)
        request.journal.target(token.id if token else None, token.serial_number if token else serial)
        if token is None:
            raise not_found(f"No hardware OATH token with serial number '{serial}' was found.")
        return token

    def _read_method(self, request: Request, user: User, rest: list[str]) -> Response:
        """GET .../{methodId} and .../{methodId}/device."""
        token = self.tenant.require_visible_method(user, rest[0])
        if len(rest) == 2:  # .../{methodId}/device: in every mode, the way to the device when not inline
            return self._device_entity(
                request,
                token,
                f"users('{user.id}')/authentication/hardwareOathMethods('{token.id}')/device/$entity",
            )
        odata.check_entity_options(request.query)
        fields = odata.parse_select(request.query.get("$select"), METHOD_SELECT, METHOD_TYPE)
        return (
            200,
            {
                "@odata.context": self.url(f"$metadata#users('{user.id}')/authentication/hardwareOathMethods/$entity"),
                **odata.apply_select(self._method_json(token), fields),
            },
            {},
        )

    def _change_method(self, request: Request, user: User, rest: list[str]) -> Response:
        """DELETE .../{methodId} (unassign), POST .../{methodId}/deactivate and .../{methodId}/activate."""
        self._target(request, rest[0])
        token = self.tenant.require_method(user, rest[0])
        if len(rest) == 1:
            self.tenant.unassign(token)
            return 204, None, {}
        if rest[1] == "deactivate":
            if request.body.strip():
                check_properties(parse_json_body(request), set(), "microsoft.graph.deactivatePostRequestBody")
            self.tenant.deactivate(token)
            return 204, None, {}
        body = parse_json_body(request)
        check_properties(body, {"verificationCode", "displayName"}, "microsoft.graph.activatePostRequestBody")
        self._require_code(body)
        self.tenant.activate(token, body["verificationCode"], self._display_name(body))
        return 204, None, {}

    @staticmethod
    def _require_code(body: dict) -> None:
        if body.get("verificationCode") is None:
            raise bad_request("The property 'verificationCode' is required.")

    @staticmethod
    def _display_name(body: dict) -> str | None:
        name = body.get("displayName")
        if name is not None and not isinstance(name, str):
            raise bad_request("The property 'displayName' must be a string.")
        return name

    def _method_json(self, token: Token) -> dict:
        """A user method as reads answer it: with its device inline unless method_device_inline is off."""
        method = self.tenant.method_json(token)
        if not self.config.method_device_inline:
            del method["device"]
        return method

    def _list_methods(self, request: Request, user: User) -> Response:
        odata.check_options(request.query)
        tokens = self.tenant.visible_methods_of(user.id)
        if "$filter" in request.query:
            # On the device even when it is not inline (*simulator choice*).
            parsed = odata.parse_filter(request.query["$filter"], METHOD_PROPERTIES, METHOD_TYPE, METHOD_FILTERS)
            tokens = [t for t in tokens if parsed.matches(self.tenant.method_json(t))]
        fields = odata.parse_select(request.query.get("$select"), METHOD_SELECT, METHOD_TYPE)
        page, next_query = self._paginate(tokens, lambda t: t.order, request)
        body: dict = {
            "@odata.context": self.url(f"$metadata#users('{user.id}')/authentication/hardwareOathMethods"),
            "value": [odata.apply_select(self._method_json(t), fields) for t in page],
        }
        if next_query:
            body["@odata.nextLink"] = self.url(
                f"users/{user.id}/authentication/hardwareOathMethods?" + odata.build_query_string(next_query)
            )
        return 200, body, {}

    # ------------------------------------------------------------------ policy
    def _policy(self, request: Request) -> Response:
        policy = self.tenant.policy
        if request.method == "GET":
            perm.authorize(request.principal, perm.POLICY_READ)
            odata.check_entity_options(request.query)
            return (
                200,
                {
                    "@odata.context": self.url(
                        "$metadata#policies/authenticationMethodsPolicy/authenticationMethodConfigurations/$entity"
                    ),
                    **self.tenant.policy_json(),
                },
                {},
            )
        if request.method == "PATCH":
            perm.authorize(request.principal, perm.POLICY_WRITE)
            body = parse_json_body(request)
            if "@odata.type" not in body:  # the update page requires it
                raise odata_bad_request(f"The property '@odata.type' with the value '#{POLICY_TYPE}' is required.")
            if body["@odata.type"] != "#" + POLICY_TYPE:
                raise odata_bad_request(f"The @odata.type '{body['@odata.type']}' does not match '#{POLICY_TYPE}'.")
            check_properties(body, {"state", "includeTargets", "excludeTargets"}, POLICY_TYPE, {"id"})
            if "state" in body and body["state"] not in ("enabled", "disabled"):
                raise odata_bad_request(f"The string '{body['state']}' is not a valid enumeration type constant.")
            include = (
                self._targets(body["includeTargets"], True) if "includeTargets" in body else policy.include_targets
            )
            exclude = (
                self._targets(body["excludeTargets"], False) if "excludeTargets" in body else policy.exclude_targets
            )
            policy.state = body.get("state", policy.state)
            policy.include_targets, policy.exclude_targets = include, exclude
            return 204, None, {}
        if request.method == "DELETE":
            perm.authorize(request.principal, perm.POLICY_WRITE)
            policy.state = "disabled"
            policy.include_targets = [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}]
            policy.exclude_targets = []
            return 204, None, {}
        raise self._method_not_allowed()

    def _targets(self, targets: Any, include: bool) -> list[dict]:
        name = "includeTargets" if include else "excludeTargets"
        if not isinstance(targets, list):
            raise bad_request(f"The property '{name}' must be an array.")
        out = []
        for target in targets:
            allowed = {"id", "targetType", "isRegistrationRequired"} if include else {"id", "targetType"}
            if not isinstance(target, dict):
                raise bad_request(f"Each entry of '{name}' must be an object.")
            check_properties(target, allowed, "microsoft.graph.authenticationMethodTarget")
            target_id = target.get("id")
            if target.get("targetType", "group") != "group":
                raise bad_request(f"Only group targets are supported in '{name}'.")
            if target_id != "all_users" and str(target_id).lower() not in self.tenant.groups:
                raise bad_request(f"The group '{target_id}' in '{name}' was not found.")
            entry = {"targetType": "group", "id": target_id}
            if include:
                required = target.get("isRegistrationRequired", False)
                if not isinstance(required, bool):
                    raise bad_request("isRegistrationRequired must be a boolean.")
                entry["isRegistrationRequired"] = required
            out.append(entry)
        return out
