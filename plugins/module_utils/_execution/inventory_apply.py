# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Applying the plan of a whole inventory: the tokens to create go to Graph in bulk (one request per
MAX_BULK_CREATE), then every token's remaining writes run, several tokens at a time, through the same executors the
single-token modules use (verified writes, codes never replayed, what a failure midway had done). One token's
failure never stops the others: each gets its outcome, even when the failure is a fault of the collection itself (an
unexpected exception fails its token alone, see unexpected_error)."""

from __future__ import annotations

import typing as t
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from .._common.errors import ISSUES, GraphError, ModuleFailure, PlanError, raised_where
from .._domain.actions import ASSIGN, ASSIGN_AND_ACTIVATE, CREATE, UNASSIGN, Action, outcome_of
from .._domain.codes import CodeSource, StepHistory, check_secret_for_codes
from .._domain.tokens import TokenView
from .._graph.pacer import DEFAULT_QUOTA
from .._planning.inventory import TokenPlan
from .._planning.token import create_body
from .bulk_create import BulkCreation, Created, MadeElsewhere
from .execute import BY_ANOTHER_RUN, check_assigned, execute_assignment_plan, execute_token_plan
from .hardware_oath_api import MAX_BULK_CREATE, HardwareOathApi
from .progress import Limits, Progress
from .token_query import TokenQuery, chunks

Log = t.Callable[[str], None]
TOKENS_PER_PLACE = 8  # tokens worked on per request allowed on the wire...
MAX_WORKERS = 128  # ...in at most this many threads


CREATED, NOT_SHOWN, UNKNOWN = "created", "not shown", "unknown"  # a broken bulk creation's token, as a listing shows
# A token whose work had not started when the run was told to stop: the ansible-playbook that started the module has
# gone (killed at a timeout, or cancelled), and its module must not go on writing beside the run started next.
STOPPED = (
    "token {serial}: not done: this run stopped before it made {which}, because the ansible-playbook that started "
    "it ended (a timeout or a cancel). The next run makes them."
)
NO_WRITE, AFTER_CREATION = "any write for it", "its writes after its creation (in bulk)"


def unexpected_error(serial: str, exc: BaseException, *, creation: str | None = None) -> str:
    """The failure message of a token whose work raised ``exc``, an exception the collection does not expect (a bug).
    It names the exception's type and where it was raised, never its text nor a traceback: either may hold what the
    failing code was handling (a seed, a code, a request body). ``creation``: for a token of a bulk creation that
    raised, what the inventory showed of it afterwards (CREATED, NOT_SHOWN, or UNKNOWN when it could not be read)."""
    if creation is not None:
        done = {
            CREATED: "it was created (the inventory shows it), its other writes were not made",
            NOT_SHOWN: "the inventory does not show it, so it was most likely not created",
            UNKNOWN: "it may have been created (the inventory could not be read)",
        }[creation] + ": run the task again, it reads the inventory before it writes"
        others = "The tokens of the other bulk requests went on."
    else:
        done = (
            "the writes listed in its actions took effect, the others were not made: run the task again, it reads "
            "the tenant before it writes"
        )
        others = "The other tokens went on."
    return (
        f"token {serial}: unexpected error ({type(exc).__name__}{raised_where(exc)}), a fault of this collection, "
        f"not of Graph or of the input; {done}. Please report it at {ISSUES} with the collection's version and this "
        f"message (its text holds no secret). {others}"
    )


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
        self.error = masked(exc.message, hide)
        self.request_id = exc.request_id if isinstance(exc, GraphError) else None


def masked(message: str, codes: t.Iterable[str]) -> str:
    """``message`` with each of ``codes`` (a token's computed codes) replaced by ``********``: the texts that carry
    Graph's words about a token (its failure message, its log lines) are masked with its codes (see Secrets)."""
    for code in codes:
        message = message.replace(code, "********")
    return message


@dataclass(frozen=True)
class Secrets:
    """Per token (by case-folded serial number): the secret in base32, the given verification code."""

    secrets: t.Mapping[str, str]
    codes: t.Mapping[str, str]

    def secret(self, serial: str) -> str | None:
        return self.secrets.get(serial.casefold())

    def code_source(
        self, serial: str, computed: t.Callable[[str], None], history: StepHistory | None = None
    ) -> CodeSource:
        """``computed`` is told each code computed from the secret; ``history``: the steps used by other runs.

        Codes computed here are not added to the module's no-log values, as hardware_oath_assignment does: a code
        is sent only in a request body and appears in no result. The texts that carry Graph's words about its token,
        its failure message (TokenOutcome.fail) and its log lines (a refused code's retry, _apply_token), are masked
        with them. Thousands of six-digit no-log values would make Ansible mask every such run of digits in the
        result (ids included), its masking costs strings x values, and worker threads would change the set
        AnsibleModule.log iterates."""
        secret = self.secret(serial)
        if secret is not None:
            return CodeSource(secret_b32=secret, redact=computed, history=history)
        return CodeSource(verification_code=self.codes.get(serial.casefold()))


def apply_inventory(
    api: HardwareOathApi,
    plans: t.Sequence[TokenPlan],
    secrets: Secrets,
    *,
    concurrency: int,
    log: Log,
    progress: Progress | None = None,
    history: StepHistory | None = None,
    stop_requested: t.Callable[[], bool] = lambda: False,
) -> list[TokenOutcome]:
    """Carry out ``plans`` (none failed in planning are sent); returns one outcome per plan, in order. The tokens to
    create go in bulk (see BulkCreation), one part after the other, and each part's tokens go on to their other writes
    as soon as it is created, while the next part is sent. What the creations had to fall back on is warned once.
    ``progress`` (of these plans) is told of each bulk creation answered and each token done; ``history``: the code
    steps other runs used (see CodeSource). Once ``stop_requested()``, no token's work starts (each fails as not
    started, see STOPPED); the writes under way end as they would."""
    outcomes = [TokenOutcome(plan, error=plan.error) for plan in plans]
    todo = [o for o in outcomes if o.plan.changed and not o.error]
    places = Places(todo)
    creating = [o for o in todo if o.plan.creates]
    # Tokens that only free a user's place go first: the tokens that take a place of the same user wait for them.
    existing = sorted((o for o in todo if not o.plan.creates), key=lambda o: not places.only_frees(o))
    progress = progress or Progress(plans, Limits.of_quota(DEFAULT_QUOTA, concurrency))  # counted only (no path)
    progress.start()
    # ``concurrency`` is the requests on the wire (the transport's pacer holds to it); more tokens are worked on, so
    # that a token waiting out its own Retry-After leaves its place to others.
    bulk = BulkCreation(api, log)
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency * TOKENS_PER_PLACE, MAX_WORKERS))) as pool:
        futures: dict[int, Future[None]] = {}

        def submit(outcome: TokenOutcome, created: Created) -> Future[None]:
            # Outcomes go to the result, not to the log: each AnsibleModule.log masks its message with every no-log
            # value. The tokens it waits for were submitted before it, so they run (or ran) before it waits.
            first = [futures[id(o)] for o in places.waits_for(outcome) if id(o) in futures]
            work = pool.submit(
                _after, first, _apply_token, api, outcome, created, secrets, log, history, stop_requested
            )
            work.add_done_callback(lambda _work: progress.token_done(outcome.plan))
            futures[id(outcome)] = work
            return work

        working = [submit(o, {}) for o in existing]

        def create(part: t.Sequence[TokenOutcome]) -> None:
            if stop_requested():
                for o in part:
                    o.error = STOPPED.format(serial=o.plan.serial_number, which=NO_WRITE)
                    progress.token_done(o.plan)
                return
            try:
                created = bulk.create([(o.plan.serial_number, _create_body(o.plan, secrets)) for o in part])
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # A fault of the collection: this part's tokens fail, the others go on.
                _after_broken_creation(api, part, exc)
                progress.created()
                for o in part:
                    progress.token_done(o.plan)
                return
            progress.created()
            working.extend(submit(o, created) for o in part)

        # A creation that takes the place of a user another token frees is sent once that token is done.
        later = [o for o in creating if places.waits_for(o)]
        for part in chunks([o for o in creating if not places.waits_for(o)], MAX_BULK_CREATE):
            create(part)
        if later:
            wait([futures[id(f)] for o in later for f in places.waits_for(o)])
            for part in chunks(later, MAX_BULK_CREATE):
                create(part)
        pending: set[Future[None]] = set(working)
        while pending:  # the progress is written while the last tokens are worked on, even when none is done
            pending = wait(pending, timeout=progress.every).not_done
            progress.tick()
        for work in working:
            work.result()  # _apply_token records every failure in its token's outcome: nothing is raised here
    progress.finish()
    for kind, message in bulk.warnings():
        api.warn_once(kind, message)
    return outcomes


class Places:
    """Which tokens' writes free a place among a user's five OATH methods (an unassignment) and which take one (a
    creation for the user, an assignment). Entra ID refuses a sixth, so where a declared list swaps a user's token for
    another, the token that takes the place waits for those that only free one (a token that frees a place and takes
    another, as a hand-over does, waits for nothing: two of those could wait for each other)."""

    def __init__(self, todo: t.Sequence[TokenOutcome]) -> None:
        self._takes: dict[int, set[str]] = {}
        self._freers: dict[str, list[TokenOutcome]] = {}
        for outcome in todo:
            frees, takes = self._of(outcome.plan)
            self._takes[id(outcome)] = takes
            if frees and not takes:
                for user_id in frees:
                    self._freers.setdefault(user_id, []).append(outcome)

    @staticmethod
    def _of(plan: TokenPlan) -> tuple[set[str], set[str]]:
        frees: set[str] = set()
        takes: set[str] = set()
        for action in (*plan.inventory.actions, *plan.assignment.actions):
            if action.user_id is None:
                continue
            if action.kind == UNASSIGN:
                frees.add(action.user_id)
            elif action.kind in (CREATE, ASSIGN, ASSIGN_AND_ACTIVATE):
                takes.add(action.user_id)
        return frees, takes

    def only_frees(self, outcome: TokenOutcome) -> bool:
        return not self._takes.get(id(outcome)) and any(outcome in freers for freers in self._freers.values())

    def waits_for(self, outcome: TokenOutcome) -> list[TokenOutcome]:
        """The tokens whose writes free a place of a user this token's writes take one of."""
        return [f for user_id in self._takes.get(id(outcome), ()) for f in self._freers.get(user_id, ())]


def _after(first: t.Sequence[Future[None]], work: t.Callable[..., None], *args: t.Any) -> None:
    """``work(*args)`` once ``first`` are done."""
    wait(first)
    work(*args)


def _after_broken_creation(api: HardwareOathApi, part: t.Sequence[TokenOutcome], exc: Exception) -> None:
    """A bulk creation raised an exception the collection does not expect, maybe after Graph created some of its
    tokens: each fails, and the tokens a listing shows get their creation as done (so ``changed`` tells it)."""
    try:
        query = TokenQuery(serial_numbers=tuple(o.plan.serial_number for o in part))
        listed: set[str] | None = {token.serial_number.casefold() for token in api.list_tokens(query)}
    except Exception:  # pylint: disable=broad-exception-caught
        listed = None
    for o in part:
        if listed is None:
            creation = UNKNOWN
        elif o.plan.serial_number.casefold() in listed:
            creation = CREATED
            o.done.append(o.plan.inventory.actions[0])
        else:
            creation = NOT_SHOWN
        o.error = unexpected_error(o.plan.serial_number, exc, creation=creation)


def _create_body(plan: TokenPlan, secrets: Secrets) -> dict[str, t.Any]:
    creation = plan.inventory.actions[0]  # assigned in the same request when the token is to be held
    return create_body(plan.spec, secrets.secret(plan.serial_number) or "", creation.user_id)


def _apply_token(
    api: HardwareOathApi,
    outcome: TokenOutcome,
    created: Created,
    secrets: Secrets,
    log: Log,
    history: StepHistory | None = None,
    stop_requested: t.Callable[[], bool] = lambda: False,
) -> None:
    """One token's writes: the inventory's (its creation already done in bulk), then the assignment's. Each write is
    added to the outcome as soon as it takes effect. Nothing more starts once the run is told to stop: a token created
    in bulk is then left held by its user, not activated, which the next run does."""
    plan = outcome.plan
    if stop_requested():
        try:
            if plan.creates:
                _created(plan, created, outcome)
        except ModuleFailure as exc:
            outcome.fail(exc)
            return
        outcome.error = STOPPED.format(serial=plan.serial_number, which=AFTER_CREATION if plan.creates else NO_WRITE)
        return
    computed: list[str] = []  # this token's codes, as they are computed (before they are sent)

    def token_log(message: str) -> None:
        log(masked(message, computed))

    try:
        view = (
            _created(plan, created, outcome)
            if plan.creates
            else _write_inventory(api, plan, secrets, outcome, token_log)
        )
        user, desired = plan.user, plan.desired
        # Assignment writes are planned only for a declared user, as desired, on a token that is not deleted.
        if plan.assignment.changed and user is not None and desired is not None and view is not None:
            execute_assignment_plan(
                api,
                plan.assignment,
                view,
                user,
                secrets.code_source(plan.serial_number, computed.append, history),
                desired.display_name,
                by_serial=False,
                me=False,
                log=token_log,
                on_done=outcome.done.append,
            )
    except ModuleFailure as exc:
        outcome.fail(exc, hide=computed)
    except ValueError as exc:
        outcome.error = _short_secret(plan, secrets) or unexpected_error(plan.serial_number, exc)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A fault of the collection (a KeyError, an AttributeError...): this token fails alone, with the writes it
        # made in outcome.done, and the others go on. Raised out of the thread, it would lose every token's outcome.
        outcome.error = unexpected_error(plan.serial_number, exc)


def _short_secret(plan: TokenPlan, secrets: Secrets) -> str | None:
    """Why codes can't be computed from the token's secret (pyotp refused it); None: the ValueError was not that."""
    secret = secrets.secret(plan.serial_number)
    try:
        if secret is not None:
            check_secret_for_codes(secret)
    except ValueError as exc:  # its message never holds the secret
        return f"token {plan.serial_number}: {exc}"
    return None


def _created(plan: TokenPlan, created: Created, outcome: TokenOutcome) -> TokenView:
    """The token the bulk creation made of this plan's, with its new id (held by the declared user, when one is); or
    the one another run created meanwhile, when it is held as this plan's creation would have left it."""
    made = created[plan.serial_number.casefold()]  # BulkCreation answers for every token it was given
    if isinstance(made, ModuleFailure):
        raise made
    creation = plan.inventory.actions[0]
    if isinstance(made, MadeElsewhere):
        if made.token.assigned_to_id != creation.user_id:
            holder = made.token.assigned_to_name or made.token.assigned_to_id
            raise PlanError(
                f"{plan.spec.label} was created by another run after this one read the inventory (its serial number "
                f"is in use), {f'held by {holder}' if holder else 'held by nobody'}: nothing was written for it. "
                "Run the task again to converge it."
            )
        creation = replace(creation, reason=BY_ANOTHER_RUN.format(reason=creation.reason))
        made = made.token
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
