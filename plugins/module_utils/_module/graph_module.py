# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""``GraphModule``: AnsibleModule with the shared connection options, the library checks, a lazily built Graph
client, the one place where a failure (any ``ModuleFailure``) becomes ``fail_json``, and a result whose masking of
secrets costs what the result holds, not that times every secret of a large inventory.

Every value given to a no_log option (a suboption of a list of dicts included) is masked in every result, also when
AnsibleModule's own check of the arguments fails: the values are collected from the arguments as given, whatever
their shape, before that check (which collects none when an element of a list of dicts is not a dict), and the
result's ``invocation`` shows no no_log option's value at all."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.validation import check_type_dict
from ansible.module_utils.common.warnings import get_deprecation_messages, get_warning_messages

from .._common.errors import ISSUES, InputError, ModuleFailure, frames_only, raised_where
from .._common.progress import duration_text, waiting_snapshot, write_snapshot
from .._common.run_state import CodeLedger, RunLock, default_run_state_dir, private_directory, state_key
from .._common.texts import texts_in
from .._common.validation import shown, text_problem
from .._graph.auth import Credential, TokenProvider, msal, resolve_credential
from .._graph.client import GraphClient
from .._graph.endpoints import Destinations
from .._graph.pacer import Pacer
from .._graph.transport import Transport, httpx, tls_context
from .options import graph_argument_spec

# A list option longer than this is shown in the result's invocation by its length only (see ``long_lists``).
INVOCATION_LIST_LIMIT = 100
# What the invocation shows for the value of a no_log option (AnsibleModule's word for a masked value).
NO_LOG_MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
# Looking one window of a text up in a set costs about as much as this many characters compared by ``in``.
_WINDOW_LOOKUP_COST = 50
# A character that repr or JSON shows escaped: not printable ASCII, a quote or a backslash.
_NEEDS_ESCAPING = re.compile(r"[^ !#-&(-\[\]-~]")


class GraphModule(AnsibleModule):
    def __init__(self, argument_spec: dict[str, t.Any], *, long_lists: tuple[str, ...] = (), **kwargs: t.Any) -> None:
        """``long_lists``: list options (a declared inventory) that the result's ``invocation`` shows by their length
        when they hold more than INVOCATION_LIST_LIMIT entries; the result would otherwise repeat the whole input.

        ``no_log_values`` is added to before any worker thread starts: AnsibleModule.log, which threads call,
        iterates it."""
        self._long_lists = long_lists
        self._credential: Credential | None = None
        self._client: GraphClient | None = None
        self._transport: Transport | None = None
        self._pacer: Pacer | None = None  # set before AnsibleModule's checks, which may fail the task already
        self._parent, self._started = os.getppid(), time.time()  # see stop_requested
        self._stopped = False  # stop_requested said so once: the run ends midway
        self.code_history: CodeLedger | None = None  # the ledger of the codes sent, while an exclusive run holds it
        spec = graph_argument_spec()
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)
        for name, lib in (("httpx", httpx), ("msal", msal)):
            if lib is None:
                self.fail_json(msg=missing_required_lib(name))

    def _load_params(self) -> None:
        """AnsibleModule reads the task's arguments here, before it checks them against the argument spec. The
        values given to no_log options are added to ``no_log_values`` now, from the arguments as given: AnsibleModule
        collects them while it checks the arguments, and a failure of that check (an element of ``tokens`` that is
        not a dict) loses every one of them, connection secrets included, in the failure result it then returns."""
        super()._load_params()
        self.no_log_values.update(given_secrets(self.argument_spec, self.params))

    @property
    def credential(self) -> Credential:
        """How the module signs in, from its options (no request)."""
        if self._credential is None:
            self._credential = resolve_credential(self.params)
        return self._credential

    def graph_client(self, *, in_flight: int | None = None) -> GraphClient:
        """The Graph client, built at the first call (building it sends nothing). ``in_flight``: at most this many
        requests on the wire at once, for a module that works on several tokens at a time (None: no limit)."""
        if self._client is None:
            params = self.params
            credential = self.credential
            if not params["validate_certs"]:
                self.warn(
                    "validate_certs=false: TLS certificates of Microsoft Graph and the identity platform are "
                    "not verified; anyone on the network path can read the credentials and codes."
                )
            try:
                pacer = Pacer.from_quota(params["write_quota"], in_flight=in_flight)
            except ValueError as exc:
                raise InputError(f"write_quota: {exc}. Nothing was changed.") from None
            destinations = Destinations(
                credential.graph_endpoint, credential.authority_host, credential.managed_identity_origins
            )
            self._transport = Transport(
                destinations=destinations,
                verify=tls_context(params["validate_certs"], params["ca_path"]),
                timeout=params["timeout"],
                max_retries=params["max_retries"],
                max_retry_wait=params["max_retry_wait"],
                log=self.log,
                pacer=pacer,
            )
            self._pacer = pacer
            tokens = TokenProvider(credential, self._transport.send, params["token_cache_path"])
            self._client = GraphClient(
                self._transport,
                credential.graph_endpoint,
                tokens.token,
                can_refresh=credential.method != "access_token",
            )
        return self._client

    @property
    def pacer(self) -> Pacer | None:
        """The pacer of the Graph client's requests, once the client is built."""
        return self._pacer

    def pacing(self) -> dict[str, float]:
        """How the requests sent so far were paced (see ``Pacer.stats``); empty before the client is built."""
        return self._pacer.stats() if self._pacer is not None else {}

    def check_text(self, limits: t.Mapping[str, int | None]) -> None:
        """Refuse (InputError), before any request, a text option (or an element of a list option) holding control
        characters, or longer than its limit (None: no limit)."""
        for option, limit in limits.items():
            value = self.params.get(option)
            for text in value if isinstance(value, list) else [value]:
                problem = text_problem(text, limit) if isinstance(text, str) else None
                if problem:
                    raise InputError(f"{option} {shown(text)} {problem}. Nothing was changed.")

    def exit_json(self, **kwargs: t.Any) -> t.NoReturn:
        with _no_collection():
            self._prepare_result(kwargs)
            super().exit_json(**kwargs)
        raise AssertionError("AnsibleModule.exit_json returned")  # it exits; for type checkers that can't see it

    def fail_json(self, msg: str, **kwargs: t.Any) -> t.NoReturn:
        with _no_collection():
            self._prepare_result(kwargs, msg)
            super().fail_json(msg, **kwargs)
        raise AssertionError("AnsibleModule.fail_json returned")

    def _record_module_result(self, o: dict[str, t.Any]) -> None:
        """AnsibleModule's last step (ansible-core's hook, in 2.19 and 2.21), with the result built and masked, before
        it is written: a result with ``pacing`` gets ``result_seconds``, the seconds since Graph's last answer (what
        building it took)."""
        since = self._pacer.since_last_answer() if self._pacer is not None else None
        if since is not None and isinstance(o.get("pacing"), dict):
            o["pacing"]["result_seconds"] = round(since, 3)
        super()._record_module_result(o)

    def _prepare_result(self, kwargs: dict[str, t.Any], msg: str | None = None) -> None:
        """Before AnsibleModule masks the result: the invocation with long lists shortened, and ``no_log_values``
        cut to the values the result holds. Ansible replaces every no-log value in every string of the result, which
        costs strings x values: 10,000 tokens give 20,000 values and, with their list in the invocation, 120,000
        strings. A value that occurs in no string of the result, its warnings or deprecations masks nothing, so
        the result is masked exactly as before. A value holding ``*`` is always kept (masking writes ``*``). Each
        value's escaped forms (``_escaped``) are no-log values too."""
        if "invocation" not in kwargs:  # what AnsibleModule would add (with long lists shortened), masked with the rest
            kwargs["invocation"] = {"module_args": self._invocation_args()}
        values: set[str] = set(getattr(self, "no_log_values", set()))
        if _NEEDS_ESCAPING.search(" ".join(values)):  # one pass: most results have no value to escape
            values.update(form for value in list(values) for form in _escaped(value))
        if values:
            parts = [msg, kwargs, get_warning_messages(), get_deprecation_messages()]
            self.no_log_values = {v for v in values if "*" in v} | _occurring(values, texts_in(parts, keys=True))

    def _invocation_args(self) -> dict[str, t.Any]:
        """The arguments as the result shows them: no_log options (and suboptions) masked whatever their shape,
        long lists by their length."""
        shortened = {
            name: f"{len(value)} entries (longer than {INVOCATION_LIST_LIMIT}: not repeated in the result)"
            for name in self._long_lists
            if isinstance(value := self.params.get(name), list) and len(value) > INVOCATION_LIST_LIMIT
        }
        args = masked_args(self.argument_spec, {k: v for k, v in self.params.items() if k not in shortened})
        args.update(shortened)
        return args

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def result(
        self, changed: bool, before: dict[str, t.Any], after: dict[str, t.Any], **values: t.Any
    ) -> dict[str, t.Any]:
        """A module's result; in diff mode with the state before and after."""
        result: dict[str, t.Any] = {"changed": changed, **values}
        if self._diff:
            result["diff"] = {"before": before, "after": after}
        return result

    def run(self, work: t.Callable[[GraphModule], dict[str, t.Any]], *, exclusive: bool = False) -> None:
        """Run ``work`` and exit with its result; any ModuleFailure fails the task with its details. ``exclusive``
        (a module that writes tokens): outside check mode, ``work`` runs holding the lock of its tenant and
        application, with the ledger of the codes sent (see ``exclusive_run``)."""
        try:
            with self.exclusive_run() if exclusive and not self.check_mode else contextlib.nullcontext():
                result = work(self)
        except ModuleFailure as exc:
            self.close()
            self.fail_json(msg=exc.message, **exc.to_result())
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A fault of the collection: its type and where, never its text (it may hold a secret being handled).
            self.close()
            self.fail_json(
                msg=f"Unexpected error ({type(exc).__name__}{raised_where(exc)}), a fault of this collection, not of "
                "Graph or of the input. Writes made before it are not listed: run the task again, it reads the tenant "
                f"before it writes. Please report it at {ISSUES} with the collection's version and this message (it "
                "holds no secret).",
                exception=frames_only(exc),
            )
        self.close()
        self.exit_json(**result)

    @contextlib.contextmanager
    def exclusive_run(self) -> t.Iterator[None]:
        """Hold the lock of this tenant and application (``run_state_dir``, ``_common/run_state.py``) while the
        block runs, from its first read to its last write: a second run on this controller waits for it, up to
        ``lock_timeout`` seconds, saying so in ``progress_file`` (when the module has one) and, once it has the lock,
        in a warning. ``code_history`` is the ledger of the codes sent for the tenant meanwhile."""
        directory = private_directory(self.params["run_state_dir"] or default_run_state_dir())
        credential = self.credential
        service = (credential.graph_endpoint, credential.tenant_id)
        lock = RunLock(directory, state_key(*service, credential.client_id or credential.method))
        progress_file = self.params.get("progress_file")

        def waiting(seconds: float, holder: str) -> None:
            if progress_file:
                with contextlib.suppress(OSError):
                    write_snapshot(progress_file, waiting_snapshot(seconds, holder, time.time()))

        waited = lock.acquire(self.params["lock_timeout"], waiting)
        try:
            if waited >= 1:
                self.warn(
                    f"This run waited {duration_text(waited)} for another run of this tenant and application to "
                    "finish its writes (two runs never write side by side on one controller)."
                )
            self._settle_after(lock.previous_writes_end)
            self.code_history = CodeLedger(directory, state_key(*service))
            try:
                yield
            finally:
                self.code_history.close()
                self.code_history = None
        finally:
            lock.release(interrupted=self._stopped, wrote=bool(self.pacing().get("writes")))

    def _settle_after(self, previous_writes_end: float | None) -> None:
        """The run before this one wrote until ``previous_writes_end`` (it ended midway, killed or stopped, or this run
        waited for it): its last writes may not show in Graph's reads yet, and this run, reading too soon, would plan
        them again. It waits for them as long as it would for a write of its own to show
        (``read_after_write_wait``), counted from that end."""
        if previous_writes_end is None:
            return
        pause = previous_writes_end + self.params["read_after_write_wait"] - time.time()
        if pause > 0:
            self.log(f"the run before this one has just written: waiting {pause:.1f} s for its last writes to show")
            time.sleep(pause)

    def stop_requested(self) -> bool:
        """Whether the run should stop starting new work: the process that started the module has ended (a killed
        ansible-playbook's worker, say), or the action plugin, which watches ansible-playbook, asked for it by the
        file ``<progress_file>.stop`` (one older than this run is another run's, and ignored)."""
        self._stopped = self._stopped or self._stop_asked()
        return self._stopped

    def _stop_asked(self) -> bool:
        if os.getppid() != self._parent:
            return True
        progress_file = self.params.get("progress_file")
        if not progress_file:
            return False
        try:
            # A file's time comes from a coarser clock than time.time(): a little leeway.
            return os.stat(f"{progress_file}.stop").st_mtime >= self._started - 0.1
        except OSError:
            return False


@contextlib.contextmanager
def _no_collection() -> t.Iterator[None]:
    """No garbage collection while the result is masked and written: masking copies every container and string of
    the result (hundreds of thousands for a large inventory), and each collection that this sets off walks every
    object still alive (the plans of every token). Nothing of it is garbage; the process ends right after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------------- no_log options, as given
def given_secrets(spec: t.Mapping[str, t.Any], params: t.Any) -> set[str]:
    """Every text given to a no_log option of ``spec`` in ``params`` (the arguments as the task gave them, before any
    check), suboptions included: a dict, a list of dicts, a dict given as a JSON or ``key=value`` string. An element
    that can't be read as a dict, of an option whose suboptions hold a no_log one, is all taken: which part of it is
    the secret can't be told. Strings, and numbers as text, at any depth (not the keys of a mapping)."""
    found: set[str] = set()
    if not isinstance(params, t.Mapping):
        return found
    for name, option in spec.items():
        for key in (name, *(option.get("aliases") or ())):
            if key not in params or params[key] is None:
                continue
            value, options = params[key], option.get("options")
            if option.get("no_log"):
                found.update(texts_in(value))
            elif options:
                for element in _elements(value):
                    if isinstance(element, t.Mapping):
                        found.update(given_secrets(options, element))
                    elif _holds_no_log(options):
                        found.update(texts_in(element))
    return found


def masked_args(spec: t.Mapping[str, t.Any], params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """``params`` with the value of every no_log option (and suboption) replaced by NO_LOG_MASK, whatever its shape;
    an element that can't be read as a dict, of an option whose suboptions hold a no_log one, is masked whole."""
    args = dict(params)
    for name, option in spec.items():
        options = option.get("options")
        for key in (name, *(option.get("aliases") or ())):
            if args.get(key) is None or args[key] == "":
                continue
            if option.get("no_log"):
                args[key] = NO_LOG_MASK
            elif options and _holds_no_log(options):
                args[key] = _masked_value(options, args[key])
    return args


def _masked_value(options: t.Mapping[str, t.Any], value: t.Any) -> t.Any:
    if isinstance(value, t.Mapping):
        return masked_args(options, value)
    if isinstance(value, (list, tuple)):
        return [masked_args(options, item) if isinstance(item, t.Mapping) else NO_LOG_MASK for item in value]
    return NO_LOG_MASK


def _holds_no_log(spec: t.Mapping[str, t.Any]) -> bool:
    return any(option.get("no_log") or _holds_no_log(option.get("options") or {}) for option in spec.values())


def _elements(value: t.Any) -> list[t.Any]:
    """The elements of a dict or list-of-dicts option as given: a list's items, or the value itself; a string read
    as a dict (JSON or ``key=value``) where it can be, as AnsibleModule would."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [_as_dict(item) if isinstance(item, str) else item for item in items]


def _as_dict(text: str) -> t.Any:
    """``text`` read as a dict, as AnsibleModule reads it (JSON or ``key=value``); as it is when it is not one."""
    try:
        return check_type_dict(text)
    except (TypeError, ValueError):
        return text


def _occurring(values: t.Iterable[str], texts: t.Iterable[str]) -> set[str]:
    """The values that occur in some text. Searching each text for each value costs texts x values: minutes for the
    result of a large inventory and its secrets. Here the values of one length are looked up together among the
    texts' windows of that length (a set lookup each); only a length with few values is searched for value by
    value, where that costs less."""
    texts = [text for text in set(texts) if text]
    by_length: dict[int, set[str]] = {}
    for value in values:
        by_length.setdefault(len(value), set()).add(value)
    found = by_length.pop(0, set())  # the empty text occurs everywhere
    for length, group in by_length.items():
        candidates = [text for text in texts if len(text) >= length]
        windows = sum(len(text) - length + 1 for text in candidates)
        if len(group) * (windows + length * len(candidates)) <= _WINDOW_LOOKUP_COST * windows:
            joined = "\0".join(candidates)
            found.update(value for value in group if value in joined)
        else:
            found.update(
                group.intersection(
                    text[at : at + length] for text in candidates for at in range(len(text) - length + 1)
                )
            )
    return found


def _escaped(value: str) -> tuple[str, ...]:
    """The forms a value with a control character, a character outside ASCII, a quote or a backslash takes when a
    message quotes it (``repr``, JSON): ``'tok\\n'`` for ``tok`` and a newline. Masking the value alone would leave
    them, and the secret in them, shown. Most values need none (checked fast, for the thousands of an inventory)."""
    if not _NEEDS_ESCAPING.search(value):
        return ()
    return tuple({repr(value)[1:-1], json.dumps(value)[1:-1]} - {value})
