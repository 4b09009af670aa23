# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Carrying out plans: the writes of an assignment plan, an inventory-entry plan and a policy plan, each through
:func:`verified_write`; and what a failure midway says about what was done.

A write whose answer is lost is never repeated blindly: the state is read again, and only if the write did not
take effect is it sent again, with a fresh code (a code is never sent twice)."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, replace

from .._common.errors import GraphError, ModuleFailure, PlanError, WriteOutcomeUnknown
from .._domain.actions import (
    ACTIVATE,
    ASSIGN,
    ASSIGN_AND_ACTIVATE,
    CODE_ACTIONS,
    CREATE,
    DELETE,
    DONE_TEXTS,
    NO_PLAN,
    SET_DISPLAY_NAME,
    UNASSIGN,
    UPDATE,
    Action,
    Plan,
)
from .._domain.codes import CodeSource
from .._domain.tokens import TokenView, UserView
from .._planning.policy import PolicyPlan, reached
from .._planning.token import TokenSpec, create_body, plan_token, recreation_spec, update_body
from .hardware_oath_api import CodeRefused, HardwareOathApi, TokenExists
from .policy_api import PolicyApi

R = t.TypeVar("R")
S = t.TypeVar("S")
Log = t.Callable[[str], None]
Done = t.Callable[[Action], None]  # told each write that took effect, as soon as it did


# A write whose outcome is unknown (see verified_write) is judged from a re-read and sent again, up to this many
# times in all (max_retries' default, and one). On the soak's bad day one send in ten has an unknown outcome (503s,
# connections reset, answers dropped): three in a row came about once in a thousand writes, six come about once in a
# million.
WRITE_SENDS = 6

# Refusals another run's write can explain (made between this run's read and its write: a token already assigned
# to the user, 409; a method or token already gone, 404; a token activated or assigned meanwhile, 400): such a
# refused write is judged from a fresh read, and when that shows it done, another run did it. Never judged from
# Graph's words. Others (401, 403, 429, 5xx) are failures as they are.
REFUSALS_ANOTHER_RUN_EXPLAINS = frozenset({400, 404, 409})

# A computed code Graph refuses (its time step was already used, say by a run a moment ago) is followed by the code
# of a later step, up to this many codes in all; a given code is sent once. Any other refusal is not retried.
COMPUTED_CODE_ATTEMPTS = 3


def _forget(action: Action) -> None:
    """The default ``on_done``: nobody keeps count."""


@dataclass(frozen=True)
class Written(t.Generic[R, S]):
    """What :func:`verified_write` saw: the write's answer (None when it was lost and not sent again), and the fresh
    read that judged a lost answer (None when no answer was lost)."""

    answer: R | None
    seen: S | None


def verified_write(
    write: t.Callable[[], R],
    *,
    reread: t.Callable[[], S],
    took_effect: t.Callable[[S], bool],
    subject: str,
    log: Log,
    write_again: t.Callable[[S], R] | None = None,
) -> Written[R, S]:
    """Send one write. If its outcome is unknown (its answer lost, or a 503), ``reread()`` the state (it may wait
    for the write to show) and, only if the write did not take effect, send it again: ``write_again(what was
    read)``, by default ``write()``; up to WRITE_SENDS times in all, each outcome judged so. Both compute any code
    afresh, so a code is never sent twice."""
    seen: S | None = None
    sent = 0
    while True:
        sent += 1
        try:
            return Written(write() if seen is None or write_again is None else write_again(seen), seen)
        except WriteOutcomeUnknown as exc:
            log(f"{exc}; reading {subject} again before anything else")
            seen = reread()
            if took_effect(seen):
                return Written(None, seen)
            if sent == WRITE_SENDS:
                raise exc.with_message(
                    f"{exc.message}. The write was sent {sent} times, each time without a sure answer; read again, "
                    f"{subject} does not show it done. Run the task again later"
                ) from None


# ---------------------------------------------------------------------- assignment plans
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


def execute_assignment_plan(
    api: HardwareOathApi,
    plan: Plan,
    token: TokenView,
    user: UserView,
    codes: CodeSource,
    display_name: str | None,
    *,
    by_serial: bool,
    me: bool,
    log: Log,
    on_done: Done = _forget,
) -> TokenView | None:
    """Run the plan's actions in order. Returns the token as last read, or None when no re-read was needed. When an
    action fails after earlier ones took effect (a token taken from its holder, say), the error says so."""
    run = _Assignment(api, token, user, codes, display_name, by_serial, me, log)
    latest: TokenView | None = None
    done: list[Action] = []
    for action in plan.actions:
        try:
            seen, by_another_run = _assignment_action(run, action)
        except ModuleFailure as exc:
            names = {token.assigned_to_id: token.assigned_to_name, user.id: user.user_principal_name}
            raise interrupted(
                exc,
                token,
                done,
                plan.actions[len(done) :],
                names,
                rerun=f"Run the task again to finish for {user.user_principal_name}",
            ) from None
        latest = seen or latest
        effective = replace(action, reason=BY_ANOTHER_RUN.format(reason=action.reason)) if by_another_run else action
        done.append(effective)
        on_done(effective)
    return latest


@dataclass(frozen=True)
class _Assignment:
    """What every action of one assignment plan is carried out with."""

    api: HardwareOathApi
    token: TokenView  # as read before planning
    user: UserView
    codes: CodeSource
    display_name: str | None
    by_serial: bool
    me: bool
    log: Log


def _assignment_action(run: _Assignment, action: Action) -> tuple[TokenView | None, bool]:
    """One action, verified; returns the token as read when an answer was lost or a code was refused, and whether
    the action was found done by another run (its code refused because that run had just used one of its steps)."""

    def write_again(latest: TokenView) -> TokenView | None:
        if action.kind in CODE_ACTIONS and not run.codes.available:
            raise PlanError(
                f"{action.kind.replace('_', ' ')} {run.token.label} for {run.user.user_principal_name}: the "
                f"answer was lost and the token is now {latest.status}, so the code was not accepted; the "
                "given verification_code is never sent twice. Run again with a fresh code."
            )
        if action.kind == ASSIGN_AND_ACTIVATE and latest.assigned_to_id == run.user.id:
            return _write_with_codes(
                run, Action(ACTIVATE, run.user.id, "assigned, but the activation's answer was lost"), latest
            )
        return _write_with_codes(run, action, latest)

    def done(now: TokenView) -> bool:
        return took_effect(action, now, run.display_name)

    written = verified_write(
        lambda: _write_with_codes(run, action, run.token),
        reread=lambda: run.api.poll(lambda: run.api.reread(run.token, run.me), done),
        took_effect=done,
        write_again=write_again,
        subject=run.token.label,
        log=run.log,
    )
    return written.answer or written.seen, written.answer is not None


# The reason of an action another run did while this one tried it (see _write_with_codes).
BY_ANOTHER_RUN = "{reason}; done by another run at the same time (the token, read again, showed it done)"


def _write_with_codes(run: _Assignment, action: Action, token: TokenView) -> TokenView | None:
    """``api.write`` with a fresh code for a code action; a refused computed code is followed by a later one.

    A refusal may come from another run (another pipeline, a machine that shares no lock with this one) that had just
    made this very write (with a code of the same step, say): the token is read again after a refusal another run
    can explain (a refused code, REFUSALS_ANOTHER_RUN_EXPLAINS), and when it shows the write done, that is the
    action's outcome, not a failure. So too before the first code, when another run of this controller sent one for
    the token a moment ago: this run's read of the token may be from before that write showed. Returns that token
    (None: this run's write was accepted)."""

    def done(now: TokenView) -> bool:
        return took_effect(action, now, run.display_name)

    def reread() -> TokenView:
        return run.api.reread(run.token, run.me)

    lately = action.kind in CODE_ACTIONS and run.codes.sent_lately_elsewhere(token)
    attempt = 1
    while True:
        code = run.codes.next_code(token) if action.kind in CODE_ACTIONS else None
        if lately:  # read once, after the code's wait for a step no other run used: that run's write shows by then
            lately = False
            latest = reread()
            if done(latest):
                run.log(f"another run sent a code for {run.token.label} a moment ago; read again, it shows it done")
                return latest
        try:
            run.api.write(action, token, run.user, code, run.display_name, by_serial=run.by_serial, me=run.me)
            return None
        except GraphError as exc:
            coded = isinstance(exc, CodeRefused) and action.kind in CODE_ACTIONS  # a later code may follow
            if not coded and exc.status not in REFUSALS_ANOTHER_RUN_EXPLAINS:
                raise
            last = not coded or not run.codes.computes or attempt >= COMPUTED_CODE_ATTEMPTS
            # Before the last word, wait for another run's write to show (Graph's reads lag behind its writes).
            latest = run.api.poll(reread, done) if last else reread()
            if done(latest):
                run.log(f"{exc.message}; read again, {run.token.label} shows it done: another run did it")
                return latest
            if last:
                raise
            run.log(
                f"{exc.message}; the code's time step may have been used already: trying the code of a later step "
                f"({attempt + 1}/{COMPUTED_CODE_ATTEMPTS})"
            )
            attempt += 1


def interrupted(
    exc: ModuleFailure,
    token: TokenView | TokenSpec,
    done: t.Sequence[Action],
    pending: t.Sequence[Action],
    names: t.Mapping[str | None, str | None],
    rerun: str,
) -> ModuleFailure:
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
    done_text = "; ".join(DONE_TEXTS[a.kind].format(who=who(a.user_id), changes=", ".join(a.changes)) for a in done)
    message = f"{exc.message.rstrip('.')}. Already done for token {serial}: {done_text}"
    if pending:
        message += f". Not done: {'; '.join(not_done(a) for a in pending)}"
    holders = {a.user_id for a in done if a.kind in (ASSIGN, ASSIGN_AND_ACTIVATE, ACTIVATE, CREATE)}
    for action in done:
        if action.kind == UNASSIGN and action.user_id not in holders:
            message += (
                f". {who(action.user_id)} no longer holds token {serial}: to give it back, run "
                f"tokenops.entra.hardware_oath_assignment with user={action.user_id} and "
                f"serial_number={serial} (it must be activated again)"
            )
    return exc.with_message(
        f"{message}. {rerun}.",
        changed=True,
        result={"actions": [a.to_result() for a in done], "pending_actions": [a.to_result() for a in pending]},
    )


# ---------------------------------------------------------------------- inventory-entry plans
def apply_token(
    api: HardwareOathApi, spec: TokenSpec, secret_b32: str | None, *, check_mode: bool, log: Log
) -> tuple[Plan, TokenView | None]:
    """Read one inventory entry, plan, and (outside check mode) write. Returns the plan and the token a creation made.
    A creation refused because the serial number is in use (imported a moment ago, not visible to reads yet) is
    planned again against that token once it shows: never a second token of one serial number."""
    current = api.find_token(spec.serial_number)
    plan = plan_token(current, spec)
    if not plan.changed or check_mode:
        return plan, None
    try:
        return plan, execute_token_plan(api, plan, current, spec, secret_b32, log)
    except TokenExists:
        if current is not None:
            raise
        log(f"{spec.label} is in use although the inventory did not show it: reading it again")
        current = api.poll(lambda: api.find_token(spec.serial_number), lambda token: token is not None)
        if current is None:
            raise
    plan = plan_token(current, spec)
    return plan, execute_token_plan(api, plan, current, spec, secret_b32, log) if plan.changed else None


def execute_token_plan(
    api: HardwareOathApi,
    plan: Plan,
    current: TokenView | None,
    spec: TokenSpec,
    secret_b32: str | None,
    log: Log,
    *,
    then: Plan = NO_PLAN,
    then_user: UserView | None = None,
    on_done: Done = _forget,
) -> TokenView | None:
    """Run an inventory plan's writes in order. Returns the token a creation made, else None. When a write fails
    after earlier ones took effect, the error says what was done and what was not (``then``: the writes that were to
    follow this plan, such as ``then_user``'s activation)."""
    created = None
    done: list[Action] = []
    names = {current.assigned_to_id: current.assigned_to_name} if current else {}
    for user in (spec.assigned_to, then_user):
        if user is not None:
            names[user.id] = user.user_principal_name
    try:
        for action in plan.actions:
            try:
                result, by_another_run = _token_write(api, action, current, spec, secret_b32, log)
            except ModuleFailure as exc:
                if action.kind == CREATE and current is not None:  # a rotation, whose delete is done
                    kept = recreation_spec(current, spec)
                    raise exc.with_message(
                        f"{exc.message}. {spec.label} was deleted to rotate its secret and is not in the inventory "
                        f"now: run the task again without rotate, with manufacturer={kept.manufacturer!r}, "
                        f"model={kept.model!r}, time_interval={kept.time_interval}, "
                        f"hash_function={kept.hash_function!r}, display_name={kept.display_name!r}, to create it"
                    ) from None
                raise
            effective = (
                replace(action, reason=BY_ANOTHER_RUN.format(reason=action.reason)) if by_another_run else action
            )
            done.append(effective)
            on_done(effective)
            if action.kind == CREATE:
                created = t.cast(TokenView, result)
                check_assigned(created, action, spec.label)
    except ModuleFailure as exc:
        pending = [*plan.actions[len(done) :], *then.actions]
        raise interrupted(
            exc, spec, done, pending, names, rerun="Fix the cause and run the task again to finish"
        ) from None
    return created


def check_assigned(created: TokenView, action: Action, label: str) -> None:
    """A creation with ``assignTo`` that Graph answered with a token nobody holds (or another user holds): Graph
    ignores ``assignTo`` when the caller lacks the permission to write users' methods."""
    if action.user_id and created.assigned_to_id != action.user_id:
        raise GraphError(
            f"{label} was created but Graph did not assign it to user {action.user_id}: it ignores assignTo when "
            "the caller lacks UserAuthenticationMethod.ReadWrite.All. The token is in the inventory, available; "
            "grant the permission and run again, or assign it with tokenops.entra.hardware_oath_assignment."
        )


def _token_write(
    api: HardwareOathApi, action: Action, current: TokenView | None, spec: TokenSpec, secret_b32: str | None, log: Log
) -> tuple[TokenView | None, bool]:
    """One inventory write, verified; returns the token a creation made (as answered, or as read), and whether
    another run had made the write (Graph refused it, and a fresh read showed it done; see _write_with_codes)."""
    read, done = _token_write_check(api, action, current, spec)
    try:
        written = verified_write(
            lambda: _send_token_write(api, action, current, spec, secret_b32),
            reread=lambda: api.poll(read, done),
            took_effect=done,
            subject=spec.label,
            log=log,
        )
    except GraphError as exc:  # a creation refused as in use: TokenExists, for apply_token or the bulk creations
        if action.kind == CREATE or exc.status not in REFUSALS_ANOTHER_RUN_EXPLAINS or not done(api.poll(read, done)):
            raise
        log(f"{exc.message}; read again, {spec.label} shows it done: another run did it")
        return None, True
    if action.kind != CREATE:
        return None, False
    return (written.answer if written.answer is not None else t.cast(TokenView, written.seen)), False


def _send_token_write(
    api: HardwareOathApi, action: Action, current: TokenView | None, spec: TokenSpec, secret_b32: str | None
) -> TokenView | None:
    if action.kind == CREATE:
        source = recreation_spec(current, spec) if current is not None else spec
        return api.create_token(
            create_body(source, secret_b32 or "", action.user_id), while_deleted=current is not None
        )
    current = t.cast(TokenView, current)  # every other write acts on the existing token
    if action.kind == UPDATE:
        api.update_token(current, update_body(spec, action.changes))
    elif action.kind == DELETE:
        api.delete_token(current)
    else:  # UNASSIGN, ASSIGN
        api.write(action, current, None, None, None, by_serial=False, me=False)
    return None


def _token_write_check(
    api: HardwareOathApi, action: Action, current: TokenView | None, spec: TokenSpec
) -> tuple[t.Callable[[], t.Any], t.Callable[[t.Any], bool]]:
    """How to read the state an inventory write changes, and how to tell from that read that it took effect."""
    if action.kind == CREATE:
        return lambda: api.find_token(spec.serial_number), lambda token: token is not None
    token = t.cast(TokenView, current)
    if action.kind == DELETE:
        return lambda: api.token_exists(token.id), lambda exists: not exists
    if action.kind == UPDATE:
        return (
            lambda: api.token_by_id(token.id),
            lambda now: all(getattr(now, name) == getattr(spec, name) for name in action.changes),
        )
    if action.kind == UNASSIGN:  # a token deleted meanwhile is held by nobody

        def held() -> TokenView | None:
            try:
                return api.token_by_id(token.id)
            except GraphError as exc:
                if exc.status != 404:
                    raise
                return None

        return held, lambda now: now is None or took_effect(action, now, None)
    return lambda: api.token_by_id(token.id), lambda now: took_effect(action, now, None)


# ---------------------------------------------------------------------- policy plans
def execute_policy_plan(api: PolicyApi, plan: PolicyPlan, log: Log) -> None:
    """Send the plan's PATCH, verified (a lost answer is judged from one fresh read of the policy)."""
    verified_write(
        lambda: api.update(plan.patch),
        reread=api.read,
        took_effect=lambda config: reached(config, plan),
        subject="the policy",
        log=log,
    )
