# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The conformance fixtures (``fixtures/graph-operations.yml``) and what is checked against them, pure: an answer's
status, headers and body against an operation's documented answer, a request body against its documented request,
the examples the fixtures make, and the shape of a value (its keys and types, never its values) for the report.
The fixture file's header explains the shape language."""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "graph-operations.yml"
TYPES = frozenset({"string", "integer", "number", "boolean", "null", "object", "array", "any"})
BASES = ("documented", "metadata", "assumed")
NO_BODY = "none"
ARRAY_ITEMS_CHECKED = 50  # elements of an array checked against its items' shape (a page may hold 999)
SHOWN_VALUE = 80  # longest value (of a const or enum key) a difference shows


def type_name(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _shown(value: t.Any) -> str:
    """A value of a const or enum key (an enum word, a type name), as a difference shows it."""
    text = json.dumps(value)
    if len(text) > SHOWN_VALUE or any(ord(c) < 32 for c in text):
        return f"a {type_name(value)} of another value"
    return text


@dataclass(frozen=True)
class Difference:
    """One way an answer differs from its operation's fixture."""

    operation: str
    where: str  # "status", "header Retry-After", "body.value[].device", ...
    basis: str  # documented, metadata or assumed
    documented: str
    actual: str

    def line(self) -> str:
        said = "assumed" if self.basis == "assumed" else "documented"
        return f"{self.operation}: {self.where}: {said}: {self.documented}; your tenant: {self.actual}"


Mismatch = t.Tuple[str, str, str]  # where, what the fixture says, what the answer has


class Fixtures:
    """The fixture file: named shapes and operations."""

    def __init__(self, data: dict[str, t.Any]) -> None:
        self.data = data
        self.shapes: dict[str, t.Any] = data.get("shapes") or {}
        self.operations: dict[str, dict[str, t.Any]] = {op["name"]: op for op in data.get("operations") or []}

    @classmethod
    def load(cls, path: Path = FIXTURES) -> Fixtures:
        with open(path, encoding="utf-8") as handle:
            return cls(yaml.safe_load(handle))

    def operation(self, name: str) -> dict[str, t.Any]:
        return self.operations[name]

    def request_spec(self, name: str) -> t.Any:
        """The request body an operation documents (NO_BODY for none); ``request_like`` borrows another's."""
        op = self.operations[name]
        if "request_like" in op:
            return self.request_spec(op["request_like"])
        return op.get("request", NO_BODY)

    # ------------------------------------------------------------------ shapes
    def resolve(self, spec: t.Any) -> dict[str, t.Any]:
        """A shape as a mapping: a type name becomes ``{"type": name}``; a ``ref`` brings in the named shape, which
        the keys beside it override (``keys`` too, as a whole)."""
        if isinstance(spec, str):
            return {"type": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"not a shape: {spec!r}")
        if "ref" in spec:
            base = self.resolve(self.shapes[spec["ref"]])
            return {**base, **{key: value for key, value in spec.items() if key != "ref"}}
        return spec

    def types(self, spec: t.Any) -> list[str]:
        return str(self.resolve(spec).get("type", "any")).split("|")

    def describe(self, spec: t.Any) -> str:
        """What a shape asks for, in a few words."""
        spec = self.resolve(spec)
        if "const" in spec:
            return _shown(spec["const"])
        if "enum" in spec:
            return "one of " + ", ".join(_shown(value) for value in spec["enum"])
        if "pattern_text" in spec:
            return str(spec["pattern_text"])
        return " or ".join(self.types(spec))

    def check(self, spec: t.Any, value: t.Any, where: str, *, strict: bool = False) -> list[Mismatch]:
        """How ``value`` differs from ``spec``. Keys a shape does not name are allowed unless ``strict`` (for the
        requests the modules send: nothing undocumented)."""
        spec = self.resolve(spec)
        types = self.types(spec)
        actual = type_name(value)
        if "any" not in types and actual not in types and not (actual == "integer" and "number" in types):
            return [(where, self.describe({"type": spec.get("type", "any")}), actual)]
        if value is None:
            return []
        found: list[Mismatch] = []
        if "const" in spec and value != spec["const"]:
            found.append((where, _shown(spec["const"]), _shown(value)))
        if "enum" in spec and value not in spec["enum"]:
            found.append((where, self.describe(spec), _shown(value)))
        if "pattern" in spec and isinstance(value, str) and not re.search(spec["pattern"], value):
            found.append((where, str(spec.get("pattern_text", "text of the documented form")), "text of another form"))
        if isinstance(value, dict) and "keys" in spec:
            keys = spec["keys"]
            for key, sub in keys.items():
                if key in value:
                    found += self.check(sub, value[key], f"{where}.{key}", strict=strict)
                elif not self.resolve(sub).get("optional"):
                    found.append((f"{where}.{key}", self.describe(sub), "missing"))
            if strict:
                found += [(f"{where}.{key}", "no such key", "sent") for key in value if key not in keys]
        if isinstance(value, list) and "items" in spec:
            for item in value[:ARRAY_ITEMS_CHECKED]:
                for mismatch in self.check(spec["items"], item, f"{where}[]", strict=strict):
                    if mismatch not in found:
                        found.append(mismatch)
        return found

    # ------------------------------------------------------------------ answers and requests
    def check_answer(
        self, name: str, status: int, headers: t.Mapping[str, str], body: t.Any, *, has_body: bool
    ) -> list[Difference]:
        """How one answer to operation ``name`` differs from what its fixture says. The body is compared only when
        the status is of the documented class (a success's body against a success's shape)."""
        op = self.operations[name]
        answer = op["answer"]
        found: list[Mismatch] = []
        documented_status = answer["status"]
        if isinstance(documented_status, int):
            same_class = status // 100 == documented_status // 100
            if status != documented_status:
                found.append(("status", str(documented_status), str(status)))
        else:  # "4xx"
            same_class = str(status)[0] == str(documented_status)[0]
            if not same_class:
                found.append(("status", f"a {documented_status} status", str(status)))
        lower = {key.lower(): value for key, value in headers.items()}
        for header, spec in (answer.get("headers") or {}).items():
            if header.lower() not in lower:
                found.append((f"header {header}", "sent", "not sent"))
            else:
                found += self.check(spec, lower[header.lower()], f"header {header}")
        spec = answer.get("body", NO_BODY)
        if same_class:
            if spec == NO_BODY:
                if has_body:
                    found.append(("body", "no body", type_name(body)))
            elif not has_body:
                found.append(("body", self.describe(spec), "no body"))
            else:
                found += self.check(spec, body, "body")
        return [Difference(name, where, op["basis"], said, actual) for where, said, actual in found]

    def check_request(self, name: str, body: t.Any) -> list[str]:
        """How a request body the modules send for operation ``name`` differs from the documented one (keys it does
        not document included), as lines."""
        spec = self.request_spec(name)
        if spec == NO_BODY:
            return [] if body is None else ["body: documented: no body; sent: a body"]
        if body is None:
            return [f"body: documented: {self.describe(spec)}; sent: no body"]
        return [
            f"{where}: documented: {said}; sent: {actual}"
            for where, said, actual in self.check(spec, body, "body", strict=True)
        ]

    # ------------------------------------------------------------------ examples
    def example(self, spec: t.Any, *, optional: bool = False) -> t.Any:
        """A value of the shape: its ``example``, const or first enum value, else one built by type (an object with
        every key that is not optional, or every key with ``optional``; an array of one element)."""
        spec = self.resolve(spec)
        for key in ("example", "const"):
            if key in spec:
                return spec[key]
        if "enum" in spec:
            return spec["enum"][0]
        kinds = [kind for kind in self.types(spec) if kind != "null"] or ["null"]
        kind = kinds[0]
        if kind == "object":
            keys = spec.get("keys") or {}
            return {
                key: self.example(sub, optional=optional)
                for key, sub in keys.items()
                if optional or not self.resolve(sub).get("optional")
            }
        if kind == "array":
            return [self.example(spec["items"], optional=optional)] if "items" in spec else []
        return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None, "any": None}[kind]

    def example_answer(self, name: str) -> tuple[int, dict[str, str], t.Any]:
        """An operation's documented answer, built from its fixture: status ("4xx": 404), headers, body (None)."""
        answer = self.operations[name]["answer"]
        status = answer["status"] if isinstance(answer["status"], int) else 404
        headers = {name: str(self.example(spec)) for name, spec in (answer.get("headers") or {}).items()}
        spec = answer.get("body", NO_BODY)
        return status, headers, None if spec == NO_BODY else self.example(spec)

    def example_request(self, name: str) -> t.Any:
        spec = self.request_spec(name)
        return None if spec == NO_BODY else self.example(spec)


# ---------------------------------------------------------------------- shapes for the report
def shape_of(value: t.Any) -> t.Any:
    """The keys and types of a value, never its values: an object gives its keys' shapes, an array the merged shape
    of its elements (``[]`` when empty), anything else its type name."""
    if isinstance(value, dict):
        return {str(key): shape_of(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        merged: t.Any = None
        for item in value[:ARRAY_ITEMS_CHECKED]:
            merged = _merge(merged, shape_of(item))
        return [] if merged is None else [merged]
    return type_name(value)


def _merge(first: t.Any, second: t.Any) -> t.Any:
    if first is None or first == second:
        return second
    if isinstance(first, dict) and isinstance(second, dict):
        return {key: _merge(first.get(key), second.get(key)) for key in sorted(set(first) | set(second))}
    names = {_name_of(first), _name_of(second)}
    return "|".join(sorted(name for part in names for name in part.split("|")))


def _name_of(shape: t.Any) -> str:
    if isinstance(shape, dict):
        return "object"
    if isinstance(shape, list):
        return "array"
    return str(shape)
