# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Applying the plan of a whole inventory: the tokens to create go to Graph in bulk (one request per
MAX_BULK_CREATE), then every token's remaining writes run, several tokens at a time, through the same executors the
single-token modules use (verified writes, codes never replayed, what a failure midway had done). One token's
failure never stops the others: each gets its outcome."""

from __future__ import annotations

import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .._common.errors import GraphError, ModuleFailure
from .._domain.actions import Action, outcome_of
from .._domain.codes import CodeSource
from .._domain.tokens import TokenView
from .._planning.inventory import TokenPlan
from .._planning.token import create_body
from .bulk_create import BulkCreation
from .execute import check_assigned, execute_assignment_plan, execute_token_plan
from .hardware_oath_api import MAX_BULK_CREATE, HardwareOathApi
from .token_query import chunks

Log = t.Callable[[str], None]
TOKENS_PER_PLACE = 8  # tokens worked on per request allowed on the wire...
MAX_WORKERS = 128  # ...in at most this many threads


@dataclass
class TokenOutcome:
    """What happened to one token: the writes that took effect, the outcome, and why it failed."""

    plan: TokenPlan
    done: list[Action] = field(default_factory=list)
    error: str | None = None
    request_id: str | None = None

    @property
    def outcome(self) -> str:
        return "failed" if self.error else outcome_of(self.done)

    def fail(self, exc: ModuleFailure, hide: t.Iterable[str] = ()) -> None:
        """Record ``exc``; ``hide``: the codes computed for this token, masked in its message."""
        message = exc.message
        for code in hide:
            message = message.replace(code, "********")
        self.error = message
        self.request_id = exc.request_id if isinstance(exc, GraphError) else None


@dataclass(frozen=True)
class Secrets:
    """Per token (by case-folded serial number): the secret in base32, the given verification code."""

    secrets: t.Mapping[str, str]
    codes: t.Mapping[str, str]

    def secret(self, serial: str) -> str | None:
        return self.secrets.get(serial.casefold())

    def code_source(self, serial: str, computed: t.Callable[[str], None]) -> CodeSource:
        """``computed`` is told each code computed from the secret.

        Codes computed here are not added to the module's no-log values, as the single-token modules do: a code
        is sent only in a request body and appears in no result or log. Its token's failure message, the one text
        that carries Graph's words, is masked with them (TokenOutcome.fail). Thousands of six-digit no-log values
        would make Ansible mask every such run of digits in the result (ids included), and its masking costs
        strings x values."""
        secret = self.secret(serial)
        if secret is not None:
            return CodeSource(secret_b32=secret, redact=computed)
        return CodeSource(verification_code=self.codes.get(serial.casefold()))


def apply_inventory(
    api: HardwareOathApi, plans: t.Sequence[TokenPlan], secrets: Secrets, *, concurrency: int, log: Log
) -> list[TokenOutcome]:
    """Carry out ``plans`` (none failed in planning are sent); returns one outcome per plan, in order. The tokens to
    create go in bulk (see BulkCreation), one part after the other, and each part's tokens go on to their other writes
    as soon as it is created, while the next part is sent. What the creations had to fall back on is warned once."""
    outcomes = [TokenOutcome(plan, error=plan.error) for plan in plans]
    todo = [o for o in outcomes if o.plan.changed and not o.error]
    creating = [o for o in todo if o.plan.creates]
    existing = [o for o in todo if not o.plan.creates]
    # ``concurrency`` is the requests on the wire (the transport's pacer holds to it); more tokens are worked on, so
    # that a token waiting out its own Retry-After leaves its place to others.
    bulk = BulkCreation(api, log)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency * TOKENS_PER_PLACE, MAX_WORKERS))) as pool:
        # Outcomes go to the result, not to the log: each AnsibleModule.log masks its message with every no-log value.
        working = [pool.submit(_apply_token, api, o, {}, secrets, log) for o in existing]
        for part in chunks(creating, MAX_BULK_CREATE):
            created = bulk.create([(o.plan.serial_number, _create_body(o.plan, secrets)) for o in part])
            working += [pool.submit(_apply_token, api, o, created, secrets, log) for o in part]
        for work in working:
            work.result()
    for kind, message in bulk.warnings():
        api.warn_once(kind, message)
    return outcomes


def _create_body(plan: TokenPlan, secrets: Secrets) -> dict[str, t.Any]:
    creation = plan.inventory.actions[0]  # assigned in the same request when the token is to be held
    return create_body(plan.spec, secrets.secret(plan.serial_number) or "", creation.user_id)


def _apply_token(
    api: HardwareOathApi,
    outcome: TokenOutcome,
    created: t.Mapping[str, TokenView | ModuleFailure],
    secrets: Secrets,
    log: Log,
) -> None:
    """One token's writes: the inventory's (its creation already done in bulk), then the assignment's. Each write is
    added to the outcome as soon as it takes effect."""
    plan = outcome.plan
    computed: list[str] = []
    try:
        view = _created(plan, created, outcome) if plan.creates else _write_inventory(api, plan, secrets, outcome, log)
        user, desired = plan.user, plan.desired
        # Assignment writes are planned only for a declared user, as desired, on a token that is not deleted.
        if plan.assignment.changed and user is not None and desired is not None and view is not None:
            execute_assignment_plan(
                api,
                plan.assignment,
                view,
                user,
                secrets.code_source(plan.serial_number, computed.append),
                desired.display_name,
                by_serial=False,
                me=False,
                log=log,
                on_done=outcome.done.append,
            )
    except ModuleFailure as exc:
        outcome.fail(exc, hide=computed)
    except ValueError as exc:  # a secret too short to compute codes
        outcome.error = f"token {plan.serial_number}: {exc}"


def _created(plan: TokenPlan, created: t.Mapping[str, TokenView | ModuleFailure], outcome: TokenOutcome) -> TokenView:
    """The token the bulk creation made of this plan's, with its new id (held by the declared user, when one is)."""
    made = created[plan.serial_number.casefold()]  # BulkCreation answers for every token it was given
    if isinstance(made, ModuleFailure):
        raise made
    creation = plan.inventory.actions[0]
    outcome.done.append(creation)
    check_assigned(made, creation, plan.spec.label)
    return made


def _write_inventory(
    api: HardwareOathApi, plan: TokenPlan, secrets: Secrets, outcome: TokenOutcome, log: Log
) -> TokenView | None:
    """The inventory writes of a token in the inventory; returns the token as they leave it (None: deleted)."""
    if plan.inventory.changed:
        execute_token_plan(
            api,
            plan.inventory,
            plan.current,
            plan.spec,
            secrets.secret(plan.serial_number),
            log,
            then=plan.assignment,
            then_user=plan.user,
            on_done=outcome.done.append,
        )
    return plan.view
