# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""``GraphModule``: AnsibleModule with the shared connection options, the library checks, a lazily built Graph
client, and the one place where a failure (any ``ModuleFailure``) becomes ``fail_json``."""

from __future__ import annotations

import threading
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ._auth import Credential, TokenProvider, graph_argument_spec, msal, resolve_credential
from ._endpoints import Destinations
from ._errors import InputError, ModuleFailure
from ._graph_client import GraphClient, Transport, httpx, tls_context
from ._pacer import Pacer
from ._validation import shown, text_problem


class GraphModule(AnsibleModule):
    def __init__(self, argument_spec: dict[str, t.Any], **kwargs: t.Any) -> None:
        # AnsibleModule.log iterates no_log_values: threads that log or add a value take this lock (see redact). It
        # exists before AnsibleModule.__init__, which logs the invocation.
        self._no_log_lock = threading.RLock()
        spec = graph_argument_spec()
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)
        for name, lib in (("httpx", httpx), ("msal", msal)):
            if lib is None:
                self.fail_json(msg=missing_required_lib(name))
        self._credential: Credential | None = None
        self._client: GraphClient | None = None
        self._transport: Transport | None = None

    @property
    def credential(self) -> Credential:
        """How the module signs in, from its options (no request)."""
        if self._credential is None:
            self._credential = resolve_credential(self.params)
        return self._credential

    @property
    def client(self) -> GraphClient:
        """The Graph client (built on first use; building it sends nothing)."""
        if self._client is None:
            params = self.params
            credential = self.credential
            if not params["validate_certs"]:
                self.warn(
                    "validate_certs=false: TLS certificates of Microsoft Graph and the identity platform are "
                    "not verified; anyone on the network path can read the credentials and codes."
                )
            try:
                pacer = Pacer.from_quota(params["write_quota"])
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
            tokens = TokenProvider(credential, self._transport.send, params["token_cache_path"])
            self._client = GraphClient(
                self._transport,
                credential.graph_endpoint,
                tokens.token,
                can_refresh=credential.method != "access_token",
            )
        return self._client

    def log(self, msg: str, log_args: t.Any = None) -> None:
        """AnsibleModule.log, safe while other threads log or redact."""
        with self._no_log_lock:
            super().log(msg, log_args=log_args)

    def redact(self, value: str) -> None:
        """Mask ``value`` wherever the module's output, logs or warnings would show it; safe from any thread."""
        with self._no_log_lock:
            self.no_log_values.add(value)

    def check_text(self, limits: t.Mapping[str, int | None]) -> None:
        """Refuse (InputError), before any request, a text option (or an element of a list option) holding control
        characters, or longer than its limit (None: no limit)."""
        for option, limit in limits.items():
            value = self.params.get(option)
            for text in value if isinstance(value, list) else [value]:
                problem = text_problem(text, limit) if isinstance(text, str) else None
                if problem:
                    raise InputError(f"{option} {shown(text)} {problem}. Nothing was changed.")

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
