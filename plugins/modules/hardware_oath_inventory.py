#!/usr/bin/python
# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_oath_inventory
short_description: Converge the whole hardware OATH token inventory of Microsoft Entra ID to a declared list
version_added: 1.0.0
description:
  - Makes the tenant's hardware OATH tokens match a declared list (O(tokens)), in one task, for hundreds to tens of
    thousands of tokens. Each token is in the inventory with its fields, held by its declared user, activated or only
    assigned, available, or deleted.
  - The list is the source of truth. A token held by someone other than its declared user is taken from them and
    given to the declared user (outcome V(reassigned)), with the care of M(tokenops.entra.hardware_oath_assignment)
    (never left with nobody without saying so, codes never replayed).
  - It reads first, in a handful of round trips whatever the size of the list. One paged listing of the inventory
    and the declared users looked up in batched listings; no token is read on its own. A run where nothing has to
    change makes no write.
  - Tokens to create are sent in bulk (one request per 100 tokens), whatever shape Graph's answer takes. A token
    the answer does not list is found by a listing, never sent again. A request Graph refuses as a whole is halved
    (when it may be too large) or its tokens are created one request each. Each fallback is warned of once, with
    counts. The other writes run for several tokens at a time (O(concurrency)) and slow down, all together, when
    Graph throttles.
  - One token that can't be converged never stops the others. Each token gets an outcome; the task fails at the
    end, after every other token converged, when any token failed, listing them and why. This holds for an
    unexpected error too (a fault of the collection). It fails its token alone, named by the exception's type (never
    its text, which may hold what the code was handling), and the writes already made stay in the result, so
    C(changed) is V(true) when anything was written.
  - Tokens the list does not name are left alone, unless O(prune) gives a scope and what to do with them.
author:
  - tokenops developers (@tokenops)
extends_documentation_fragment:
  - tokenops.entra.graph_auth
  - tokenops.entra.attributes
  - tokenops.entra.attributes.writes
  - tokenops.entra.attributes.actiongroup_graph
attributes:
  action:
    description: The collection's action plugin of the same name runs the module and shows its progress.
    support: full
    details:
      - The progress shows for a task that runs on the controller (see the notes).
options:
  tokens:
    description:
      - The declared tokens. A serial number may appear once; a user may be given at most five tokens (Entra ID's
        limit of OATH methods per user). A list that contradicts itself is refused before any request, naming the
        entries.
    type: list
    elements: dict
    required: true
    suboptions:
      serial_number:
        description: The serial number printed on the token.
        type: str
        required: true
      state:
        description:
          - V(activated) (the default) - in the inventory, held by O(tokens[].user) and activated.
          - V(assigned) - in the inventory, held by O(tokens[].user); an activated token stays activated.
          - V(available) - in the inventory, held by nobody (unassigned when held).
          - V(absent) - not in the inventory (unassigned first when held, then deleted).
        type: str
        choices: [activated, assigned, available, absent]
        default: activated
      user:
        description:
          - Who holds the token (user principal name or object id). Required with V(activated) and V(assigned), not
            allowed otherwise.
        type: str
      secret_key:
        description:
          - The token's secret seed. Needed to create the token, and used to compute the activation code.
          - In check mode it may be left out. The plan is made as if it were given, and a warning names the tokens
            whose apply needs it. A pull request's plan job needs no seed.
          - Never returned or logged. Keep it in Ansible Vault.
        type: str
      secret_format:
        description: The encoding of O(tokens[].secret_key).
        type: str
        choices: [base32, hex]
        default: base32
      verification_code:
        description:
          - A code read off the token, for a token whose secret is not known, to activate it. Sent at most once.
        type: str
      manufacturer:
        description: The manufacturer. Needed to create the token.
        type: str
      model:
        description: The model. Needed to create the token.
        type: str
      time_interval:
        description: How many seconds each code is valid; omitted, an existing token keeps its value, a new one 30.
        type: int
        choices: [30, 60]
      hash_function:
        description: The HMAC hash; omitted, an existing token keeps its value, a new one V(hmacsha1).
        type: str
        choices: [hmacsha1, hmacsha256]
      display_name:
        description:
          - The token's display name; omitted, it is left as it is. A held token's name is set by activating it
            again.
        type: str
  prune:
    description:
      - What to do with tokens in the tenant that O(tokens) does not name, within a scope. Without O(prune), they
        are left alone. At least one of O(prune.serial_number_prefix), O(prune.manufacturer) and O(prune.model) is
        required, and every one given must match.
    type: dict
    suboptions:
      action:
        description: V(unassign) them (they stay in the inventory, available) or V(delete) them.
        type: str
        choices: [unassign, delete]
        required: true
      serial_number_prefix:
        description: Only tokens whose serial number starts with this (without regard to case).
        type: str
      manufacturer:
        description: Only tokens of this manufacturer (without regard to case).
        type: str
      model:
        description: Only tokens of this model (without regard to case).
        type: str
  force_unassign:
    description:
      - Graph changes a token's fields only while it is unassigned. When a held token's declared fields differ,
        unassign it, change it and give it to its declared user again (activated again when so declared).
      - Without this, such a token fails (the others go on), naming its holder.
    type: bool
    default: false
  concurrency:
    description:
      - How many requests are on the wire at the same time (1 to 32). Up to eight times as many tokens are worked on
        at once, so that a token waiting out its own C(Retry-After) leaves its place to the others.
    type: int
    default: 8
  progress_file:
    description:
      - Where the module writes how far it has got while it applies (a small JSON file of counts and seconds, replaced
        about once a second; never a serial number, a user or a secret).
      - Set by the collection's action plugin, which shows the progress from it, for a task that runs on the
        controller. You need not set it.
      - The action plugin also creates C(<progress_file>.stop) when C(ansible-playbook) is gone (killed at a timeout
        or cancelled). The module then starts no new token's work, ends what is under way and exits.
    type: path
  report:
    description:
      - Which tokens RV(tokens) lists. V(changes) (the default) - the tokens that changed (or would, in check mode)
        and those that failed, so the result stays small when little changes. V(all) - every declared and pruned
        token. V(failed) (added in 1.1.0) - only the tokens that failed, so the result stays small however many
        change (RV(counts) says how many did).
      - V(failed) is for a run that changes many tokens, such as a first import. Ansible handles a result in time
        that grows with its size (the rows of 10,000 new tokens, 9 MB, take the controller about 6 seconds), and AWX
        and ansible-runner leave a result of more than 700,000 characters (C(MAX_EVENT_RES_DATA)) out of the job's
        events whole, its counts included. That is about 700 rows of changed tokens.
    type: str
    choices: [changes, all, failed]
    default: changes
notes:
  - "Microsoft Graph application permissions: C(Policy.ReadWrite.AuthenticationMethod) for the inventory,
    C(UserAuthenticationMethod.ReadWrite.All) to assign, activate and unassign, C(User.Read.All) to look up the
    declared users."
  - An unchanged run makes a few requests whatever the size of the list (the inventory listing, one page per 999
    tokens, and one batched round trip per 300 declared users).
  - Codes are computed from O(tokens[].secret_key) for the next time step, never sent twice, not even across runs
    (the ledger in O(run_state_dir)); a code refused as already used is followed by a later step's, unless the token,
    read again, shows that another run did the write.
  - Two runs of one tenant and application on one controller never write side by side. A run that writes holds a
    lock from its first read to its last write, and the second waits for it (O(lock_timeout)), then, if the first
    wrote, for its last writes to show in Graph's reads (O(read_after_write_wait)). A run whose
    C(ansible-playbook) was killed stops starting new work and exits, releasing the lock.
  - A list of more than 100 tokens is shown in the result's C(invocation) (Ansible's record of the arguments, seen
    with C(-v)) by its length only, so that the result does not repeat the whole inventory.
  - "Progress: a run that takes longer than 20 seconds shows, without C(-v), a line every 10 seconds while it runs,
    in the output of C(ansible-playbook) and in the job output of AWX (ansible-runner's events): the tokens done of
    those to change, the writes sent, the answers that were 429 (throttled), the time elapsed and the time left.
    This needs the task to run on the controller (C(connection: local), or C(delegate_to: localhost), as is usual
    for this module) without C(async) and without C(become); otherwise the task runs as usual, silent until it
    ends."
  - Check mode states how long applying the plan would take (RV(estimate)), for a pipeline's timeout.
seealso:
  - module: tokenops.entra.hardware_oath_token
  - module: tokenops.entra.hardware_oath_assignment
  - module: tokenops.entra.hardware_oath_token_info
  - name: Converging a whole inventory
    description: What each declared state means, how the module reads and writes, its outcomes.
    link: https://github.com/tokenops/entra/blob/main/docs/inventory.md
  - name: Performance of hardware_oath_inventory
    description: The benchmark, its bounds and latest figures.
    link: https://github.com/tokenops/entra/blob/main/docs/performance.md
"""

EXAMPLES = r"""
---
- name: Converge the token inventory kept in git
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ token_inventory }}"  # serial_number, user, state; secret_key from Ansible Vault
  register: converged

- name: Import a vendor's delivery of thousands of tokens, listing only the ones that fail (counts say the rest)
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ delivered_tokens }}"  # e.g. from the vendor's PSKC file, see tokenops.entra.pskc_tokens
    report: failed
  register: imported

- name: Converge, and delete the Token2 fobs the list no longer names
  tokenops.entra.hardware_oath_inventory:
    tokens:
      - serial_number: T2-0001
        user: amy.masters@contoso.com
        secret_key: "{{ vault_seeds['T2-0001'] }}"
        manufacturer: Token2
        model: C202
      - serial_number: T2-0002
        state: available
        secret_key: "{{ vault_seeds['T2-0002'] }}"
        manufacturer: Token2
        model: C202
    prune:
      action: delete
      manufacturer: Token2

- name: Preview the changes in a merge request pipeline (no write is made; the seeds are not needed)
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ token_inventory }}"
  check_mode: true
  diff: true
"""

RETURN = r"""
counts:
  description: How many tokens ended with each outcome (predicted in check mode).
  returned: always
  type: dict
  sample: {"created": 3, "updated": 0, "assigned": 0, "activated": 1, "reassigned": 1, "unassigned": 0,
           "deleted": 0, "failed": 0, "unchanged": 995}
tokens:
  description:
    - One row per token (see O(report)), in list order, then the pruned tokens. Never holds a secret or a code.
  returned: always
  type: list
  elements: dict
  contains:
    serial_number:
      description: The serial number.
      type: str
    entry:
      description: The token's position in O(tokens) (0-based); null for a pruned token.
      type: int
    declared_state:
      description: The declared state; null for a pruned token.
      type: str
    user:
      description: The declared user.
      type: str
    outcome:
      description: V(unchanged), V(created), V(updated), V(assigned), V(activated), V(reassigned), V(unassigned),
        V(deleted) or V(failed).
      type: str
    actions:
      description: The writes made (or that would be made in check mode), as in M(tokenops.entra.hardware_oath_token).
      type: list
      elements: dict
    before:
      description: The token before the task, as M(tokenops.entra.hardware_oath_token) returns it; empty if it was
        not in the inventory.
      type: dict
    after:
      description: The token as the task leaves it (planned); empty if it is deleted.
      type: dict
    error:
      description:
        - Why the token failed, with Graph's error code and message (the codes computed for the token masked).
        - For an unexpected error, a fault of the collection, C(unexpected error) with the exception's type and where
          it was raised, and where to report it.
      type: str
      returned: for failed tokens
    request_id:
      description: Graph's request id of the failed request.
      type: str
      returned: for tokens that failed on a Graph answer
failed_tokens:
  description: The serial numbers of the tokens that failed.
  returned: always
  type: list
  elements: str
estimate:
  description:
    - How long applying the plan takes, estimated from the plan before any write (in check mode, what applying it
      would take), at O(write_quota) with O(concurrency) requests on the wire. See the collection's
      C(docs/performance.md) for how it is computed.
  returned: always
  type: dict
  contains:
    seconds:
      description: The seconds it takes when Graph paces the writes by the write quota only.
      type: float
    text:
      description: The estimate for people, with the longest it may take when Graph limits the requests under users'
        authentication methods (as the plan of a pull request shows it).
      type: str
    writes:
      description: The write requests the plan makes (a bulk creation of up to 100 tokens counts one).
      type: int
    methods_requests:
      description: Those under users' authentication methods (assign, activate, unassign).
      type: int
    methods_limit_seconds:
      description: The seconds it takes should Graph hold those to the strict reading of its limit for them, 5
        requests per 10 seconds per application and tenant.
      type: float
  sample: {"seconds": 379.0, "text": "about 6 min (10,100 writes at write_quota 3000/150); up to 5 h 33 min if Graph
           holds the 10,000 requests under users' authentication methods to 5 per 10 s", "writes": 10100,
           "methods_requests": 10000, "methods_limit_seconds": 19990.0}
pacing:
  description:
    - How the task's requests were paced to stay within Graph's quotas (O(write_quota), O(concurrency) and what
      Graph's throttling answers taught the task). A run that Graph throttled shows it here.
  returned: always
  type: dict
  contains:
    writes:
      description: The writes sent (a C($batch) of N writes counts N).
      type: int
    waits:
      description: The requests that waited for the write quota or for the pace of their lane.
      type: int
    waited:
      description: The seconds those requests waited, in all.
      type: float
    pauses:
      description: The C(Retry-After) answers of Graph that paused every request, or the requests of one lane.
      type: int
    paused:
      description: The seconds those pauses lasted.
      type: float
    lowered:
      description: The times a rate was learned from Graph's throttling (HTTP 429).
      type: int
    throttled:
      description: The answers that were HTTP 429 (throttled).
      type: int
    rate:
      description: The writes a second allowed at the end of the task.
      type: float
    rate_methods:
      description: The requests a second learned for users' authentication methods.
      type: float
      returned: when Graph throttled those requests
    rate_directory:
      description: The requests a second learned for the other requests.
      type: float
      returned: when Graph throttled those requests with a limit other than the write quota
    windowed:
      description:
        - True once Graph's throttling showed that it counts the write quota over a window (at most O(write_quota)'s
          WRITES in SECONDS) rather than as a bucket that refills continuously; the writes then kept to the window.
      type: bool
      returned: when Graph's throttling showed it
    result_seconds:
      description: The seconds from Graph's last answer to this result, built and masked.
      type: float
      returned: when the task sent a request
  sample: {"writes": 2000, "waits": 12, "waited": 3.4, "pauses": 0, "paused": 0.0, "lowered": 0, "throttled": 0,
           "rate": 20.0, "result_seconds": 0.08}
"""

import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.tokenops.entra.plugins.module_utils._common.errors import InputError, ModuleFailure
from ansible_collections.tokenops.entra.plugins.module_utils._common.validation import shown, text_problem
from ansible_collections.tokenops.entra.plugins.module_utils._domain.actions import counts
from ansible_collections.tokenops.entra.plugins.module_utils._domain.token_options import (
    TEXT_LIMITS,
    token_argument_spec,
)
from ansible_collections.tokenops.entra.plugins.module_utils._execution.inventory_apply import Secrets, apply_inventory
from ansible_collections.tokenops.entra.plugins.module_utils._execution.progress import Limits, Progress, estimate
from ansible_collections.tokenops.entra.plugins.module_utils._module.graph_module import GraphModule
from ansible_collections.tokenops.entra.plugins.module_utils._module.secret_intake import take_code, take_secret
from ansible_collections.tokenops.entra.plugins.module_utils._module.service import hardware_oath_api
from ansible_collections.tokenops.entra.plugins.module_utils._planning.inventory import (
    HOLDING_STATES,
    PRUNE_ACTIONS,
    STATES,
    Entry,
    PruneScope,
    check_entries,
    check_users,
    plan_inventory,
    report_row,
)

MAX_CONCURRENCY = 32
REPORTS = ("changes", "all", "failed")  # the choices of the option report: which tokens the result lists


def entries_from(module: GraphModule) -> tuple[list[Entry], Secrets]:
    """The declared list, checked before any request: text, secrets, codes, and the list as a whole."""
    entries: list[Entry] = []
    secrets: dict[str, str] = {}
    codes: dict[str, str] = {}
    for index, item in enumerate(module.params["tokens"]):
        label = f"tokens[{index}] ({item['serial_number']})"
        for name, limit in {**TEXT_LIMITS, "user": None}.items():
            problem = text_problem(item[name], limit) if isinstance(item[name], str) else None
            if problem:
                raise InputError(f"tokens[{index}].{name} {shown(item[name])} {problem}. Nothing was changed.")
        key = item["serial_number"].casefold()
        # An activated token's code may have to be computed from its secret.
        secret = take_secret(
            module,
            item["secret_key"],
            item["secret_format"],
            subject=label,
            computes_codes=item["state"] == "activated",
        )
        code = take_code(module, item["verification_code"], subject=label)
        if secret is not None:
            secrets[key] = secret
        if code is not None:
            codes[key] = code
        entries.append(
            Entry(
                index=index,
                serial_number=item["serial_number"],
                state=item["state"],
                user=item["user"],
                has_secret=key in secrets,
                has_code=key in codes,
                **{
                    name: item[name]
                    for name in ("manufacturer", "model", "time_interval", "hash_function", "display_name")
                },
            )
        )
    check_entries(entries)
    return entries, Secrets(secrets, codes)


def prune_from(params: dict[str, t.Any]) -> PruneScope | None:
    prune = params["prune"]
    if prune is None:
        return None
    return PruneScope(prune["action"], prune["serial_number_prefix"], prune["manufacturer"], prune["model"])


def run(module: GraphModule) -> dict[str, t.Any]:
    params = module.params
    if not 1 <= params["concurrency"] <= MAX_CONCURRENCY:
        raise InputError(f"concurrency must be between 1 and {MAX_CONCURRENCY}; nothing was changed.")
    entries, secrets = entries_from(module)
    api = hardware_oath_api(module, in_flight=params["concurrency"])
    refs = [e.user for e in entries if e.user and e.state in HOLDING_STATES]
    with ThreadPoolExecutor(max_workers=1) as pool:  # the users are looked up while the inventory is listed
        looking_up = pool.submit(api.users_by_refs, refs) if refs else None
        tokens = api.list_tokens()
        users = looking_up.result() if looking_up else {}
    check_users(entries, users)
    plans = plan_inventory(
        entries,
        tokens,
        users,
        force_unassign=params["force_unassign"],
        prune=prune_from(params),
        secrets_later=module.check_mode,  # a plan needs no seed: a pull request's plan job holds none
    )
    expected = estimate(plans, quota=params["write_quota"], in_flight=params["concurrency"])
    if module.check_mode:
        rows = [report_row(plan) for plan in plans]
        later = [plan.serial_number for plan in plans if plan.secret_later]
        if later:
            module.warn(
                f"{len(later)} token(s) were planned without their secret_key, which applying the plan needs (to "
                f"create them, or to compute their activation code): {', '.join(later[:10])}"
                + (f" and {len(later) - 10} more" if len(later) > 10 else "")
            )
    else:
        progress = Progress(
            plans,
            Limits.of_quota(params["write_quota"], params["concurrency"]),
            pacer=module.pacer,
            path=params["progress_file"],
        )
        outcomes = apply_inventory(
            api,
            plans,
            secrets,
            concurrency=params["concurrency"],
            log=module.log,
            progress=progress,
            history=module.code_history,
            stop_requested=module.stop_requested,
        )
        rows = [
            report_row(o.plan, outcome=o.outcome, error=o.error, request_id=o.request_id, done=o.done) for o in outcomes
        ]
    changed = any(row["actions"] for row in rows)
    failed = [row for row in rows if row["outcome"] == "failed"]
    if params["report"] == "all":
        shown_rows = rows
    elif params["report"] == "failed":
        shown_rows = failed
    else:
        shown_rows = [row for row in rows if row["actions"] or row["outcome"] == "failed"]
    result = module.result(
        changed,
        {row["serial_number"]: row["before"] for row in rows if row["actions"]},
        {row["serial_number"]: row["after"] for row in rows if row["actions"]},
        counts=counts(row["outcome"] for row in rows),
        tokens=shown_rows,
        failed_tokens=[row["serial_number"] for row in failed],
        estimate=expected,
        pacing=module.pacing(),
    )
    if failed:
        reasons = "; ".join(f"{row['serial_number']}: {row['error']}" for row in failed[:20])
        more = f" (and {len(failed) - 20} more)" if len(failed) > 20 else ""
        raise ModuleFailure(
            f"{len(failed)} of {len(rows)} tokens failed; the others converged. {reasons}{more}",
            changed=changed,
            result={k: v for k, v in result.items() if k != "changed"},
        )
    return result


def main() -> None:
    token_options = token_argument_spec()
    token_options.update(
        {
            "state": {"type": "str", "choices": list(STATES), "default": "activated"},
            "user": {"type": "str"},
            "verification_code": {"type": "str", "no_log": True},
        }
    )
    module = GraphModule(
        argument_spec={
            # The secrets are the suboptions secret_key and verification_code (no_log); the list itself is not one.
            "tokens": {"type": "list", "elements": "dict", "required": True, "options": token_options, "no_log": False},
            "prune": {
                "type": "dict",
                "options": {
                    "action": {"type": "str", "choices": list(PRUNE_ACTIONS), "required": True},
                    "serial_number_prefix": {"type": "str"},
                    "manufacturer": {"type": "str"},
                    "model": {"type": "str"},
                },
                "required_one_of": [("serial_number_prefix", "manufacturer", "model")],
            },
            "force_unassign": {"type": "bool", "default": False},
            "concurrency": {"type": "int", "default": 8},
            "progress_file": {"type": "path"},
            "report": {"type": "str", "choices": list(REPORTS), "default": "changes"},
        },
        supports_check_mode=True,
        long_lists=("tokens",),
    )
    module.run(run, exclusive=True)


if __name__ == "__main__":
    main()
