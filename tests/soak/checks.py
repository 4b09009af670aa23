"""The soak's checks, from the simulator's own state and request log, never from the module's word alone.

The log entries of a phase, in the order the tenant handled them, tell what each module process (``session``)
asked and what took effect (``targets``, ``effects``, ``verification``: docs/simulator.md). From them:

- end state: every declared token as declared (status, holder, fields; the absent ones gone);
- replayed codes: activations refused as a replay of a code already accepted (the log's ``verification``, cross-checked
  with the tenant's own count);
- harmful effects: at any moment, not only at the end: a token deleted that is declared to stay (lost), given to a
  user other than its declared one (wrong holder), or taken from its declared holder while declared held;
- writes sent twice: a write request that asks for what a write of another session already did, with no change to
  that token in between (the same creation, update, deletion, assignment, activation or unassignment for the same
  user). A write took effect when its entry holds effects (or, for an activation, an accepted code); the repeat is
  counted whether it took effect again or was refused (409, 404, a replayed code). Repeats within one session are
  counted apart: the module's own retries of a lost answer, which it must judge from a re-read;
- side by side: two sessions whose writes interleave (one wrote between the first and the last write of another);
- every outcome reported: a finished run's result holds a row for every declared token, and none failed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import unquote

from world import World

METHODS = re.compile(r"/users/([^/]+)/authentication/hardwareOathMethods(?:/([^/]+))?(?:/([^/]+))?$")
DEVICES = re.compile(r"/directory/authenticationMethodDevices/hardwareOathDevices(?:/([^/]+))?$")
ACTIVATIONS = ("activate", "assignAndActivate", "assignAndActivateBySerialNumber")


def operation(entry: dict) -> tuple[str, str | None] | None:
    """What a write asks for: (kind, the user of a method's write) or None for a request of no token."""
    path = entry["path"]
    method = entry["method"]
    found = METHODS.search(path)
    if found:
        user, first, second = found.groups()
        if method == "POST" and first is None:
            return "assign", user
        if method == "POST" and (first in ACTIVATIONS[1:] or second == "activate"):
            return "activate", user
        if method == "POST" and second == "deactivate":
            return "deactivate", user
        if method == "DELETE" and first is not None and second is None:
            return "unassign", user
        return None
    found = DEVICES.search(path)
    if found:
        if found.group(1) is None and method in ("POST", "PATCH"):
            return "create", None  # a bulk delta may update too: told apart by its targets' tokens
        if method == "PATCH":
            return "update", None
        if method == "DELETE":
            return "delete", None
    return None


def ordered(log: list[dict]) -> list[dict]:
    """Graph requests in the order the tenant handled them: its writes' effects apply in that order."""
    graph = [e for e in log if e.get("kind") == "graph"]
    return sorted(graph, key=lambda e: (e.get("handled") or 0, e["seq"]))


class Ledger:
    """Walks a phase's log once and keeps what each check needs."""

    def __init__(self, world: World, users: dict[str, str]) -> None:
        self.world = world
        self.declared = world.by_serial()
        self.users = users  # UPN (lower case) or id -> id
        self.serial_of: dict[str, str] = {}  # token id -> serial number (lower case)
        self.replays: list[dict] = []
        self.harmful: list[dict] = []
        self.twice: list[dict] = []
        self.twice_same_session: list[dict] = []
        self.writes: dict[str, list[int]] = {}  # session -> the handled order of its writes
        self.effective: Counter = Counter()

    def user_id(self, ref: str | None) -> str | None:
        """A user's id from a path's segment (an id or a user principal name, percent-encoded)."""
        if ref is None:
            return None
        ref = unquote(ref).lower()
        return self.users.get(ref, ref)

    def walk(self, log: list[dict]) -> Ledger:
        last_effect: dict[str, dict] = {}  # serial -> {"op", "user", "session", "seq"} of its last effective write
        for index, entry in enumerate(ordered(log)):
            session = entry.get("session")
            for effect in entry.get("effects") or []:
                self.serial_of[effect["token"]] = effect["serial_number"].lower()
            if not entry.get("write"):
                continue
            if session:
                self.writes.setdefault(session, []).append(index)
            if entry.get("verification") == "replayed":
                self.replays.append(entry)
            op = operation(entry)
            if op is None:
                continue
            kind, user = op
            user = self.user_id(user)
            for serial in self._serials(entry):
                prior = last_effect.get(serial)
                this = "update" if kind == "create" and self._is_update(entry, serial) else kind
                if prior and prior["op"] == this and prior["user"] == user:
                    found = {
                        "serial_number": serial,
                        "op": this,
                        "status": entry.get("status"),
                        "committed_status": entry.get("committed_status"),
                        "verification": entry.get("verification"),
                        "seq": entry["seq"],
                        "session": session,
                        "done_by": prior["session"],
                        "done_seq": prior["seq"],
                    }
                    (self.twice_same_session if prior["session"] == session else self.twice).append(found)
            took_effect = bool(entry.get("effects")) or entry.get("verification") == "accepted"
            if took_effect:
                self.effective[kind] += 1
                touched = {e["serial_number"].lower() for e in entry.get("effects") or []}
                touched |= set(self._serials(entry)) if entry.get("verification") == "accepted" else set()
                for serial in touched:
                    this = "update" if kind == "create" and self._is_update(entry, serial) else kind
                    last_effect[serial] = {"op": this, "user": user, "session": session, "seq": entry["seq"]}
            for effect in entry.get("effects") or []:
                self._judge(effect, entry)
        return self

    def _serials(self, entry: dict) -> list[str]:
        out = []
        for target in entry.get("targets") or []:
            serial = target.get("serial_number") or self.serial_of.get(target.get("token") or "")
            if serial:
                out.append(serial.lower())
        return out

    @staticmethod
    def _is_update(entry: dict, serial: str) -> bool:
        return any(
            t.get("token") and (t.get("serial_number") or "").lower() == serial for t in entry.get("targets") or []
        )

    def _judge(self, effect: dict, entry: dict) -> None:
        """A change that must never happen, whatever the moment: a declared token lost, a wrong holder, a declared
        holder's token taken away."""
        token = self.declared.get(effect["serial_number"].lower())
        if token is None:
            return
        declared_user = self.user_id(token.user)
        before, after = effect["before"], effect["after"]
        problem = None
        if after is None and token.declared != "absent":
            problem = "lost: deleted, declared to stay"
        elif after is not None and after["holder"] is not None and after["holder"] != declared_user:
            if before is None or before["holder"] != after["holder"]:
                problem = "wrong holder: given to a user it is not declared for"
        elif (
            before is not None
            and after is not None
            and before["holder"] == declared_user
            and declared_user is not None
            and after["holder"] is None
        ):
            problem = "taken from its declared holder"
        if problem:
            self.harmful.append(
                {
                    "serial_number": effect["serial_number"],
                    "problem": problem,
                    "seq": entry["seq"],
                    "session": entry.get("session"),
                }
            )

    def side_by_side(self) -> list[dict]:
        """Pairs of sessions whose writes interleave."""
        spans = sorted((min(v), max(v), s) for s, v in self.writes.items() if v)
        out = []
        for i, (first_a, last_a, a) in enumerate(spans):
            for first_b, _last_b, b in spans[i + 1 :]:
                if first_b < last_a:
                    inside = sum(1 for n in self.writes[b] if first_a <= n <= last_a)
                    out.append({"sessions": [a, b], "writes_of_second_within_first": inside})
        return out


def end_state(world: World, tokens: dict[str, dict], users: dict[str, str]) -> dict[str, Any]:
    """Every declared token as declared, from the simulator's state (``GET /_admin/state``, by lower-case serial)."""
    problems: dict[str, list[str]] = {
        "missing (declared to stay, not in the tenant)": [],
        "not deleted (declared absent)": [],
        "wrong holder": [],
        "unassigned, declared held": [],
        "held, declared available": [],
        "wrong status": [],
        "wrong fields": [],
    }
    for token in world.tokens:
        state = tokens.get(token.serial_number.lower())
        serial = token.serial_number
        if token.declared == "absent":
            if state is not None:
                problems["not deleted (declared absent)"].append(serial)
            continue
        if state is None:
            problems["missing (declared to stay, not in the tenant)"].append(serial)
            continue
        holder = (state.get("assigned_to") or {}).get("id")
        wanted = users.get(token.user.lower()) if token.user else None
        if wanted is not None and holder is None:
            problems["unassigned, declared held"].append(serial)
        elif wanted is not None and holder != wanted:
            problems["wrong holder"].append(serial)
        elif wanted is None and holder is not None:
            problems["held, declared available"].append(serial)
        elif state["status"] != token.declared:
            problems["wrong status"].append(serial)
        entry = token.entry
        if (state["manufacturer"], state["model"]) != (entry["manufacturer"], entry["model"]):
            problems["wrong fields"].append(serial)
    wrong = sorted({serial for serials in problems.values() for serial in serials})
    return {
        "declared": len(world.tokens),
        "as_declared": len(world.tokens) - len(wrong),
        "problems": {name: serials for name, serials in problems.items() if serials},
    }


def outcomes(world: World, result: dict | None) -> dict[str, Any]:
    """A finished run's rows: one for every declared token, and how many failed (and why, by Graph's code)."""
    if result is None:
        return {"rows": 0, "missing": len(world.tokens), "failed": 0, "outcomes": {}}
    rows = result.get("tokens") or []
    reported = {str(row.get("serial_number", "")).lower() for row in rows}
    missing = [t.serial_number for t in world.tokens if t.serial_number.lower() not in reported]
    failed = [row for row in rows if row.get("outcome") == "failed"]
    reasons = Counter(_reason(row.get("error") or "") for row in failed)
    return {
        "rows": len(rows),
        "missing": len(missing),
        "missing_examples": missing[:5],
        "failed": len(failed),
        "failed_reasons": dict(reasons.most_common(5)),
        "failed_examples": [row.get("serial_number") for row in failed[:5]],
        "outcomes": dict(Counter(str(row.get("outcome")) for row in rows)),
        "msg": result.get("msg"),
    }


def _reason(error: str) -> str:
    """A failed row's error by Graph's status and error code when it names them, else its first words."""
    found = re.search(r"Graph answered (\d{3}) (\w+)", error)
    if found:
        return f"{found.group(1)} {found.group(2)}"
    found = re.search(r"Graph refused it in a bulk creation: (\w+)", error)
    if found:
        return f"bulk creation: {found.group(1)}"
    if "the connection failed after the request was sent" in error:
        return "answer lost (the connection failed after the request was sent)"
    return " ".join(re.sub(r"https?://\S+", "", error).split()[:8])
