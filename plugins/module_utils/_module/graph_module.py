# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""``GraphModule``: AnsibleModule with the shared connection options, the library checks, a lazily built Graph
client, the one place where a failure (any ``ModuleFailure``) becomes ``fail_json``, and a result whose masking of
secrets costs what the result holds, not that times every secret of a large inventory."""

from __future__ import annotations

import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.warnings import get_deprecation_messages, get_warning_messages

from .._common.errors import InputError, ModuleFailure
from .._common.validation import shown, text_problem
from .._graph.auth import Credential, TokenProvider, msal, resolve_credential
from .._graph.client import GraphClient
from .._graph.endpoints import Destinations
from .._graph.pacer import Pacer
from .._graph.transport import Transport, httpx, tls_context
from .options import graph_argument_spec

# A list option longer than this is shown in the result's invocation by its length only (see ``long_lists``).
INVOCATION_LIST_LIMIT = 100


class GraphModule(AnsibleModule):
    def __init__(self, argument_spec: dict[str, t.Any], *, long_lists: tuple[str, ...] = (), **kwargs: t.Any) -> None:
        """``long_lists``: list options (a declared inventory) that the result's ``invocation`` shows by their length
        when they hold more than INVOCATION_LIST_LIMIT entries; the result would otherwise repeat the whole input.

        ``no_log_values`` is added to before any worker thread starts: AnsibleModule.log, which threads call,
        iterates it."""
        self._long_lists = long_lists
        spec = graph_argument_spec()
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)
        for name, lib in (("httpx", httpx), ("msal", msal)):
            if lib is None:
                self.fail_json(msg=missing_required_lib(name))
        self._credential: Credential | None = None
        self._client: GraphClient | None = None
        self._transport: Transport | None = None
        self._pacer: Pacer | None = None

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
        self._prepare_result(kwargs)
        super().exit_json(**kwargs)
        raise AssertionError("AnsibleModule.exit_json returned")  # it exits; for type checkers that can't see it

    def fail_json(self, msg: str, **kwargs: t.Any) -> t.NoReturn:
        self._prepare_result(kwargs, msg)
        super().fail_json(msg, **kwargs)
        raise AssertionError("AnsibleModule.fail_json returned")

    def _prepare_result(self, kwargs: dict[str, t.Any], msg: str | None = None) -> None:
        """Before AnsibleModule masks the result: the invocation with long lists shortened, and ``no_log_values``
        cut to the values the result holds. Ansible replaces every no-log value in every string of the result, which
        costs strings x values: 10,000 tokens give 20,000 values and, with their list in the invocation, 120,000
        strings. A value that occurs in no string of the result, its warnings or deprecations masks nothing, so
        the result is masked exactly as before. A value holding ``*`` is always kept (masking writes ``*``)."""
        if "invocation" not in kwargs:  # what AnsibleModule would add (with long lists shortened), masked with the rest
            kwargs["invocation"] = {"module_args": self._invocation_args()}
        values: set[str] = getattr(self, "no_log_values", set())  # none yet when the arguments themselves fail
        if values:
            shown_text = "\0".join(_texts([msg, kwargs, get_warning_messages(), get_deprecation_messages()]))
            self.no_log_values = {v for v in values if "*" in v or v in shown_text}

    def _invocation_args(self) -> dict[str, t.Any]:
        args = dict(self.params)
        for name in self._long_lists:
            value = args.get(name)
            if isinstance(value, list) and len(value) > INVOCATION_LIST_LIMIT:
                args[name] = f"{len(value)} entries (longer than {INVOCATION_LIST_LIMIT}: not repeated in the result)"
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

    def run(self, work: t.Callable[[GraphModule], dict[str, t.Any]]) -> None:
        """Run ``work`` and exit with its result; any ModuleFailure fails the task with its details."""
        try:
            result = work(self)
        except ModuleFailure as exc:
            self.close()
            self.fail_json(msg=exc.message, **exc.to_result())
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self.close()
            self.fail_json(msg=f"Unexpected error: {type(exc).__name__}: {exc}", exception=traceback.format_exc())
        self.close()
        self.exit_json(**result)


def _texts(value: t.Any) -> t.Iterator[str]:
    """Every text a result holds, as AnsibleModule's masking sees it: strings (and bytes), numbers as text, and the
    keys of mappings; other objects by their text form."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, bytes):
            yield item.decode("utf-8", "surrogateescape")
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, (int, float)):
            yield str(item)
        elif isinstance(item, t.Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            yield str(item)
