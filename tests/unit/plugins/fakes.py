# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-ins shared by the unit tests, from the wire up: scripted Graph servers behind httpx.MockTransport and the
transports over them, a GraphClient stand-in, the API objects (HardwareOathApi) as the modules and the executors use
them, and GraphModule as a module's ``run()`` uses it. The data they answer is in ``oath_data``; the pytest fixtures
in ``conftest``."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import typing as t
from unittest import mock

import httpx

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import GraphError, WriteOutcomeUnknown
from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView
from ansible_collections.tokenops.entra.plugins.module_utils._execution.hardware_oath_api import (
    READ_AFTER_WRITE_WAIT,
    BulkRefused,
    HardwareOathApi,
)
from ansible_collections.tokenops.entra.plugins.module_utils._graph import transport
from ansible_collections.tokenops.entra.plugins.module_utils._graph.client import GraphClient
from ansible_collections.tokenops.entra.plugins.module_utils._graph.endpoints import Destinations
from ansible_collections.tokenops.entra.plugins.module_utils._graph.transport import Transport
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.options import graph_argument_spec
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE, AMY, AUTHORITY, GRAPH

DESTINATIONS = Destinations(GRAPH, AUTHORITY)
BATCH_URL = GRAPH + "/beta/$batch"
# The users the API fakes know, by user principal name and by object id.
USERS = {key: user for user in (AMY, ADELE) for key in (user.user_principal_name, user.id)}


# ---------------------------------------------------------------------------------------------------- HTTP
class Server:
    """A scripted Graph: each request gets the next answer (a Response, an exception class, or a callable); the last
    answer is given to every further request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("scripted failure", request=request)
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def reply(status: int, json=None, headers=None, **kwargs) -> httpx.Response:
    return httpx.Response(status, json=json, headers=headers, **kwargs)


def make_transport(handler, *, max_retries=3, max_retry_wait=60.0, sleeps=None, logs=None) -> Transport:
    """A Transport built by its own constructor (to DESTINATIONS), whose httpx.Client sends every request to
    ``handler`` (a Server, Graph or Batch) through httpx.MockTransport; its sleeps and logs are recorded."""
    real_client = httpx.Client

    def client(**kwargs):
        return real_client(transport=httpx.MockTransport(handler), **kwargs)

    with mock.patch.object(transport.httpx, "Client", client):
        return Transport(
            destinations=DESTINATIONS,
            verify=True,
            timeout=5.0,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            sleep=(sleeps if sleeps is not None else []).append,
            log=(logs if logs is not None else []).append,
        )


class Tokens:
    """The access tokens a GraphClient is handed: ``token``, or token-1, token-2 ... (one more each call). Records
    each call's ``force_refresh``."""

    def __init__(self, token: str | None = None):
        self.token = token
        self.calls: list[bool] = []

    def __call__(self, force_refresh: bool) -> str:
        self.calls.append(force_refresh)
        return self.token or f"token-{len(self.calls)}"


def items_of(client, path, *, action, params=None):
    """Every item of a collection, page by page, as the modules read listings."""
    for items, _more in client.pages(client.get(path, action=action, params=params), action=action):
        yield from items


class Graph:
    """A mock Graph behind httpx.MockTransport: ``routes`` maps a path (under /beta) to a function of the request
    giving (status, body), or to a list of such answers given in turn."""

    def __init__(self, routes):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        path = request.url.path[len("/beta") :]
        route = self.routes[path]
        answer = route.pop(0) if isinstance(route, list) else route(request)
        status, answer_body = answer
        headers = {"request-id": "rid", "date": "Sat, 21 Nov 2026 22:42:25 GMT"} if status >= 400 else {}
        return httpx.Response(status, json=answer_body, headers=headers)

    @property
    def params(self):
        return [dict(r.url.params) for r in self.requests]


def graph_api(graph: Graph, warnings: list | None = None, sleeps: list | None = None) -> HardwareOathApi:
    """The real HardwareOathApi over the real GraphClient and Transport, on ``graph``; its warnings and the sleeps of
    its waits for earlier writes are recorded."""
    transport = make_transport(graph, max_retries=2, max_retry_wait=1.0)
    return HardwareOathApi(
        GraphClient(transport, GRAPH, lambda force: "t"),
        warn=(warnings if warnings is not None else []).append,
        sleep=(sleeps if sleeps is not None else []).append,
    )


def batch_of(*bodies):
    """A $batch answer (for Graph's routes): each body answered 200, in order."""
    return 200, {"responses": [{"id": str(n), "status": 200, "body": body} for n, body in enumerate(bodies)]}


def batch_items(answer):
    """A $batch route of Graph: ``answer(url)`` gives each item's (status, body)."""

    def route(request):
        responses = []
        for item in json.loads(request.content)["requests"]:
            status, item_body = answer(item["url"])
            responses.append(
                {"id": item["id"], "status": status, "headers": {"Content-Type": "application/json"}, "body": item_body}
            )
        return 200, {"responses": responses}

    return route


class Batch:
    """A scripted $batch endpoint: ``items(number, id, url)`` gives the answer item (without its id) for each request
    of each round trip (``number``: 0-based count of the batch POSTs so far)."""

    def __init__(self, items, pages=()):
        self.items = items
        self.pages = dict(pages)  # absolute nextLink URL -> body
        self.posts: list[list[dict]] = []
        self.gets: list[str] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET":
            self.gets.append(str(request.url))
            return reply(200, json=self.pages[str(request.url)])
        assert str(request.url) == BATCH_URL
        sent = json.loads(request.read())["requests"]
        number = len(self.posts)
        self.posts.append(sent)
        responses = []
        for item in reversed(sent):  # Graph answers in any order
            answer = self.items(number, item["id"], item["url"])
            if answer is not None:
                responses.append({"id": item["id"], **answer})
        return reply(200, json={"responses": responses})


def ok(body):
    """A $batch answer item (for Batch): 200 with ``body``."""
    return {"status": 200, "headers": {"Content-Type": "application/json"}, "body": body}


# ---------------------------------------------------------------------------------------------------- GraphClient
class FakeClient:
    """GraphClient.request stand-in: records calls and gives the next answer (a body, or a GraphError to raise)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls: list[tuple] = []

    pages = GraphClient.pages  # the real one, over request

    def request(self, method, path, *, action, **kwargs):
        self.calls.append((method, path, action, kwargs))
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


# ---------------------------------------------------------------------------------------------------- API objects
class FakeApi:
    """HardwareOathApi as the assignment module and its executor use it.

    Reads: ``user`` answers from USERS; ``token_by_serial`` and ``token_by_id`` answer ``current``; ``reread`` answers
    ``rereads`` in turn, the last one to every further re-read (none given: no answer may be lost); ``directory_roles``
    answers ``roles`` (user id -> roles, or a GraphError to raise). Writes, re-reads and roles reads are recorded in
    ``calls``; ``lost``: numbers (0-based) of the writes whose answer is lost; ``failures``: write
    number -> the GraphError it fails with. ``poll`` is the real one, waiting through ``_sleep`` (recorded)."""

    poll = HardwareOathApi.poll  # the real one, waiting through _sleep
    wait = READ_AFTER_WRITE_WAIT

    def __init__(self, current=None, *, lost=(), rereads=(), failures=None, roles=None):
        self.current = current
        self.roles = dict(roles or {})  # user id -> their directory roles (or a GraphError to raise)
        self.lost = set(lost)
        self.rereads = list(rereads)  # the last one is answered to every further re-read
        self.failures = dict(failures or {})
        self.calls: list[tuple] = []
        self.sleeps: list[float] = []
        self.legacy_checks: list[tuple] = []  # (user id, token id) of each warn_of_legacy_twins

    def _sleep(self, seconds):
        self.sleeps.append(seconds)

    @property
    def writes(self):
        return [c for c in self.calls if c[0] == "write"]

    @property
    def sent(self):
        """What each write sent: (kind, user_id, code, display_name, by_serial, me)."""
        return [(c[1], c[2], c[5], c[6], c[7], c[8]) for c in self.writes]

    def user(self, user):
        assert user in USERS, f"unexpected user lookup: {user}"
        return USERS[user]

    def token_by_serial(self, serial):
        assert serial == self.current.serial_number
        return self.current

    def token_by_id(self, device_id, wait=False):
        assert device_id == self.current.id
        return self.current

    def my_token(self, serial, device_id):
        raise AssertionError("not a self-service run")

    def reread(self, token_view, me=False):
        assert self.rereads, "no answer was lost"
        self.calls.append(("reread", token_view.id, me))
        return self.rereads.pop(0) if len(self.rereads) > 1 else self.rereads[0]

    def warn_of_legacy_twins(self, user, token_view):
        self.legacy_checks.append((user.id, token_view.id))

    def directory_roles(self, user, me=False):
        self.calls.append(("roles", user, me))
        roles = self.roles.get(user, [])
        if isinstance(roles, Exception):
            raise roles
        return roles

    def write(self, action, token_view, user, code, display_name, *, by_serial, me):
        number = len(self.writes)
        self.calls.append(("write", action.kind, action.user_id, token_view, user, code, display_name, by_serial, me))
        if number in self.lost:
            raise WriteOutcomeUnknown(f"POST /x: the connection failed after the request was sent (write {number})")
        if number in self.failures:
            raise self.failures[number]


def view_of(body: dict[str, t.Any], *, assign: bool = True) -> TokenView:
    """The token Graph creates from a creation ``body`` (id ``id-{serial}``); held by ``assignTo`` when ``assign``
    (Graph ignores assignTo for a caller without UserAuthenticationMethod.ReadWrite.All)."""
    holder = (body.get("assignTo") or {}).get("id") if assign else None
    return TokenView(
        id=f"id-{body['serialNumber']}",
        serial_number=body["serialNumber"],
        status="assigned" if holder else "available",
        assigned_to_id=holder,
        assigned_to_name=None,
        display_name=body.get("displayName"),
        hash_function=body.get("hashFunction", "hmacsha1"),
        time_interval=body.get("timeIntervalInSeconds", 30),
        manufacturer=body.get("manufacturer"),
        model=body.get("model"),
    )


class FakeInventoryApi:
    """HardwareOathApi as the token modules and the inventory executor use it; every call is recorded in ``calls``
    (thread-safe: the inventory executor writes for several tokens at a time).

    ``reads``: the answers of find_token / token_exists / token_by_id, in turn (the last one to every further read);
    ``creates``: what create_token answers (a TokenView, or an exception to raise), in turn; none left: the token
    the body describes (``view_of``). ``lost``: numbers (0-based) of the writes whose answer is lost; ``failures``:
    write number -> the error it fails with; ``refuse``: (call kind, token id) -> the error that write fails with,
    every time (a creation's token id is its serial number; kind ``create_tokens``: that item of a bulk creation is
    refused). ``assign``: created tokens are held by their ``assignTo``. ``delay``: seconds each write takes.
    A bulk creation answers: ``bulk_listed`` (default all) of the tokens it created, the others are created but not
    listed (as a 204 answers); more than ``bulk_max_items`` tokens, or any serial number of ``refuse_whole``: a
    refusal naming no token (BulkRefused), nothing created. ``warn_once`` records in ``warnings``.
    ``user`` and ``users_by_refs`` answer from USERS; ``list_tokens`` answers the tokens of ``tokens`` its query
    matches (created tokens are added to ``tokens``); ``users_with_methods`` answers ``methods`` (user reference ->
    (UserView, methods)). ``poll`` is the real one, waiting through ``_sleep`` (recorded)."""

    poll = HardwareOathApi.poll  # the real one, waiting through _sleep
    wait = READ_AFTER_WRITE_WAIT

    def __init__(
        self,
        lost=(),
        reads=(),
        creates=(),
        failures=None,
        *,
        tokens=(),
        methods=None,
        refuse=None,
        assign=True,
        delay=0.0,
        bulk_listed=None,
        bulk_max_items=None,
        refuse_whole=(),
    ):
        self.lost = set(lost)
        self.reads = list(reads)
        self.creates = list(creates)
        self.failures = dict(failures or {})
        self.refuse = dict(refuse or {})
        self.assign = assign
        self.delay = delay
        self.tokens = list(tokens)
        self.methods = dict(methods or {})
        self.bulk_listed = bulk_listed
        self.bulk_max_items = bulk_max_items
        self.refuse_whole = {serial.casefold() for serial in refuse_whole}
        self.warnings: list[str] = []
        self.calls: list[tuple] = []
        self.writes = 0
        self.threads: set[int] = set()  # the threads that wrote
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def _sleep(self, seconds):
        self.sleeps.append(seconds)

    def _read(self):
        """The next read answer; the last one is answered to every further read."""
        with self._lock:
            return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]

    def _record(self, call):
        with self._lock:
            self.calls.append(call)

    def _written(self, call, token_id=None):
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append(call)
            self.threads.add(threading.get_ident())
            number = self.writes
            self.writes += 1
        if number in self.lost:
            raise WriteOutcomeUnknown(f"{call[0]}: the connection failed after the request was sent")
        if number in self.failures:
            raise self.failures[number]
        if (call[0], token_id) in self.refuse:
            raise self.refuse[(call[0], token_id)]

    def _created(self, body):
        made = view_of(body, assign=self.assign)
        with self._lock:
            self.tokens.append(made)
        return made

    def create_token(self, body, *, while_deleted=False):
        self._written(("create", body), body["serialNumber"])
        if body["serialNumber"].casefold() in self.refuse_whole:
            raise GraphError(f"Creating token {body['serialNumber']}: Graph answered 400 badRequest", status=400)
        with self._lock:
            queued = self.creates.pop(0) if self.creates else None
        answer = self._created(body) if queued is None else queued  # _created takes the lock itself
        if isinstance(answer, Exception):
            raise answer
        return answer

    def create_tokens(self, bodies):
        self._written(("create_tokens", list(bodies)))
        too_many = self.bulk_max_items is not None and len(bodies) > self.bulk_max_items
        if too_many or any(body["serialNumber"].casefold() in self.refuse_whole for body in bodies):
            raise BulkRefused(f"Creating {len(bodies)} tokens: Graph answered 400 badRequest", status=400)
        made, refused = [], {}
        for number, body in enumerate(bodies):
            refusal = self.refuse.get(("create_tokens", body["serialNumber"]))
            if refusal is not None:
                refused[number] = refusal
            else:
                made.append(self._created(body))
        return (made if self.bulk_listed is None else made[: self.bulk_listed]), refused

    def warn_once(self, kind, message):
        self.warnings.append(message)

    def update_token(self, token_view, body):
        self._written(("update", token_view.id, body), token_view.id)

    def delete_token(self, token_view):
        self._written(("delete", token_view.id), token_view.id)

    def write(self, action, token_view, user, code, display_name, *, by_serial, me):
        call = (action.kind, action.user_id, token_view.id, user, code, display_name, by_serial, me)
        self._written(call, token_view.id)

    def find_token(self, serial):
        self._record(("find_token", serial))
        return self._read()

    def token_exists(self, device_id):
        self._record(("token_exists", device_id))
        return self._read()

    def token_by_id(self, device_id):
        self._record(("token_by_id", device_id))
        return self._read()

    def reread(self, token_view, me=False):
        """The real rule (``token_by_id``); with no ``reads`` given, the token as it was (the write did not show)."""
        if not self.reads:
            self._record(("token_by_id", token_view.id))
            return token_view
        return HardwareOathApi.reread(self, token_view, me)

    def user(self, user):
        self._record(("user", user))
        assert user in USERS, f"unexpected user lookup: {user}"
        return USERS[user]

    def users_by_refs(self, refs):
        self._record(("users_by_refs", list(refs)))
        known = {key.casefold(): user for key, user in USERS.items()}
        return {ref.casefold(): known[ref.casefold()] for ref in refs if ref.casefold() in known}

    def list_tokens(self, query=None):
        self._record(("list_tokens", query))
        with self._lock:
            return [token_view for token_view in self.tokens if query is None or query.matches(token_view)]

    def users_by_ids(self, user_ids):
        self._record(("users_by_ids", list(user_ids)))
        return {user.id: user for user in USERS.values() if user.id in user_ids}

    def users_with_methods(self, refs):
        self._record(("users_with_methods", list(refs)))
        return [self.methods[ref] for ref in refs]

    def legacy_methods(self, user, methods):
        """The real rule on what ``users_with_methods`` answered: twins of a serial number not in ``tokens``."""
        return HardwareOathApi.legacy_methods(self, user, methods)

    def _warn(self, message):
        self.warnings.append(message)


# ---------------------------------------------------------------------------------------------------- GraphModule
class Failed(Exception):
    """fail_json was called; ``args[0]``: its keyword arguments (the failure result)."""


class Exited(Exception):
    """exit_json was called; ``args[0]``: its keyword arguments (the result)."""


class FakeModule:
    """GraphModule as a module's ``run()`` uses it, without Ansible's argument handling: ``params`` (see
    :func:`task_options`) and the options ``given``, check and diff mode, ``no_log_values``, ``log`` and ``warn``
    (both recorded in ``logs``). ``result``, ``check_text`` and ``run`` are GraphModule's own: ``run`` is the one
    place where a failure becomes ``fail_json`` (raised here as Failed; ``exit_json`` as Exited)."""

    result = GraphModule.result  # the real one: it reads only _diff
    pacing = GraphModule.pacing  # the real one: it reads only _pacer, which a test may set
    pacer = GraphModule.pacer  # the same
    check_text = GraphModule.check_text  # the real one: it reads only params
    run = GraphModule.run  # the real one: the one place where a failure becomes fail_json
    code_history = None  # no ledger of other runs' codes (see GraphModule.exclusive_run)

    def __init__(self, params: dict[str, t.Any], *, check_mode: bool = False, diff: bool = False, **given: t.Any):
        self.params = {**params, **given}
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values: set[str] = set()
        self.logs: list[str] = []
        self.closed = False
        self._pacer = None
        self.exclusive_runs = 0  # the runs that held the lock of their tenant and application
        self.stop_after: int | None = None  # stop_requested() answers True from this call on

    @contextlib.contextmanager
    def exclusive_run(self):
        self.exclusive_runs += 1
        yield

    def stop_requested(self) -> bool:
        self.stop_calls = getattr(self, "stop_calls", 0) + 1
        return self.stop_after is not None and self.stop_calls > self.stop_after

    def close(self):
        self.closed = True

    def exit_json(self, **result):
        raise Exited(result)

    def fail_json(self, **result):
        raise Failed(result)

    def log(self, message):
        self.logs.append(message)

    def warn(self, message):
        self.logs.append(f"warning: {message}")


def graph_params(**given) -> dict[str, t.Any]:
    """GraphModule's connection options as AnsibleModule hands them over: every option present, defaults applied."""
    result = {name: spec.get("default") for name, spec in graph_argument_spec().items()}
    result.update(given)
    return result


def module_spec(module) -> dict[str, t.Any]:
    """The argument spec ``module`` (a module of plugins/modules) builds its GraphModule with in its ``main()``."""

    class Built(Exception):
        pass

    spec: dict[str, t.Any] = {}

    def build(argument_spec, **kwargs):
        spec.update(argument_spec)
        raise Built

    with mock.patch.object(module, "GraphModule", build), contextlib.suppress(Built):
        module.main()
    assert spec, f"{module.__name__}.main() built no GraphModule"
    return spec


def task_options(module, **given) -> dict[str, t.Any]:
    """The params that ``module`` (a module of plugins/modules) hands its ``run()`` for a task that gives ``given``:
    every option, the module's own (its argument spec, as its ``main()`` builds it) and GraphModule's, at its
    default unless given."""
    spec = module_spec(module)
    return {**graph_params(), **{name: option.get("default") for name, option in spec.items()}, **given}
