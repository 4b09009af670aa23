"""The OData query options Graph supports on these collections: ``$filter`` (``eq``, ``in``, ``and``),
``$select``, ``$top`` and server-driven paging with an opaque ``$skiptoken``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

from .errors import bad_request, odata_bad_request
from .tenant import b64url, b64url_decode

MAX_TOP = 999
MAX_FILTER_EXPRESSIONS = 15  # directory queries: eq comparisons plus values of in (...) lists
SUPPORTED_OPTIONS = {"$filter", "$select", "$top", "$skiptoken"}
UNSUPPORTED_OPTIONS = {"$orderby", "$search", "$skip", "$expand", "$count", "$format", "$apply"}

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""", re.VERBOSE)


@dataclass
class Property:
    """A filterable property: its JSON path and type ("string", "int", "enum:<a,b>")."""

    path: str
    kind: str = "string"
    filterable: bool = True


@dataclass
class Comparison:
    path: str
    values: list  # eq: one value; in: several

    def matches(self, item: dict) -> bool:
        actual = resolve(item, self.path)
        return any(_equal(actual, v) for v in self.values)


def resolve(item: dict, path: str) -> Any:
    value: Any = item
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _equal(actual: Any, expected: Any) -> bool:
    # Directory string comparisons are case-insensitive.
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return actual == expected


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise odata_bad_request(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class FilterParser:
    """``expr := term ('and' term)*``; ``term := path 'eq' literal | path 'in' '(' literal, ... ')' | '(' expr ')'``."""

    def __init__(self, text: str, properties: dict[str, Property], type_name: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.properties = properties
        self.type_name = type_name

    def parse(self) -> list[Comparison]:
        if not self.tokens:
            raise odata_bad_request("Invalid filter clause: the expression is empty.")
        result = self._expr()
        if self.pos != len(self.tokens):
            raise odata_bad_request(f"Invalid filter clause: unexpected '{self.tokens[self.pos][1]}'.")
        check_expression_count(result)
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self, expected: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise odata_bad_request("Invalid filter clause: the expression ends unexpectedly.")
        if expected and token[0] != expected:
            raise odata_bad_request(f"Invalid filter clause: expected {expected} but found '{token[1]}'.")
        self.pos += 1
        return token

    def _expr(self) -> list[Comparison]:
        terms = self._term()
        while self._peek() is not None and self._peek()[0] == "word" and self._peek()[1] in ("and", "or"):
            operator = self._next()[1]
            if operator == "or":
                raise odata_bad_request("Unsupported query: the 'or' operator is not supported on this resource.")
            terms += self._term()
        return terms

    def _term(self) -> list[Comparison]:
        token = self._peek()
        if token is not None and token[0] == "lparen":
            self._next()
            inner = self._expr()
            self._next("rparen")
            return inner
        kind, name = self._next()
        if kind != "word":
            raise odata_bad_request(f"Invalid filter clause: expected a property name but found '{name}'.")
        if "(" in name or (self._peek() is not None and self._peek()[0] == "lparen"):
            raise odata_bad_request(f"Unsupported query: the function '{name}' is not supported on this resource.")
        prop = self.properties.get(name)
        if prop is None:
            raise odata_bad_request(f"Could not find a property named '{name.split('/')[0]}' on type '{self.type_name}'.")
        if not prop.filterable:
            raise odata_bad_request(f"Unsupported query: filtering on '{name}' is not supported.")
        operator = self._next("word")[1]
        if operator == "eq":
            return [Comparison(prop.path, [self._literal(prop)])]
        if operator == "in":
            self._next("lparen")
            values = [self._literal(prop)]
            while self._peek() is not None and self._peek()[0] == "comma":
                self._next()
                values.append(self._literal(prop))
            self._next("rparen")
            return [Comparison(prop.path, values)]
        raise odata_bad_request(f"Unsupported query: the '{operator}' operator is not supported on this resource.")

    def _literal(self, prop: Property) -> Any:
        kind, text = self._next()
        if kind == "word" and text == "null":
            return None
        if prop.kind == "int":
            if kind != "number":
                raise odata_bad_request(f"A binary operator with incompatible types was detected. Found operand types "
                                        f"'Edm.Int32' and 'Edm.String' for operator kind 'Equal' on '{prop.path}'.")
            return int(text)
        if kind != "string":
            raise odata_bad_request(f"A binary operator with incompatible types was detected. Found operand types "
                                    f"'Edm.String' and 'Edm.Int32' for operator kind 'Equal' on '{prop.path}'.")
        value = text[1:-1].replace("''", "'")
        if prop.kind.startswith("enum:"):
            allowed = prop.kind[5:].split(",")
            if value not in allowed:
                raise odata_bad_request(f"The string '{value}' is not a valid enumeration type constant.")
        return value


def check_expression_count(comparisons: list[Comparison]) -> None:
    """One expression per ``eq`` and one per value of each ``in (...)`` list, at most 15 in the whole filter."""
    count = sum(len(c.values) for c in comparisons)
    if count > MAX_FILTER_EXPRESSIONS:
        raise bad_request(f"Too many child clauses specified in search filter expression containing 'OR' operators: "
                          f"{count}. Max allowed: {MAX_FILTER_EXPRESSIONS}.", code="Request_UnsupportedQuery")


def parse_select(text: str | None, allowed: set[str], type_name: str) -> list[str] | None:
    if text is None:
        return None
    fields = [f.strip() for f in text.split(",") if f.strip()]
    if not fields:
        raise odata_bad_request("Invalid $select: the value is empty.")
    for name in fields:
        if name not in allowed:
            raise odata_bad_request(f"Could not find a property named '{name}' on type '{type_name}'.")
    return fields


def apply_select(item: dict, fields: list[str] | None) -> dict:
    if fields is None:
        return item
    out = {k: v for k, v in item.items() if k.startswith("@odata.")}
    out["id"] = item.get("id")
    for name in fields:
        out[name] = item.get(name)
    return out


def parse_top(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"\d+", text.strip()):
        raise odata_bad_request(f"Invalid page size specified: '{text}'. Must be between 1 and {MAX_TOP} inclusive.")
    top = int(text)
    if not 1 <= top <= MAX_TOP:
        raise odata_bad_request(f"Invalid page size specified: '{text}'. Must be between 1 and {MAX_TOP} inclusive.")
    return top


def check_options(query: dict) -> None:
    for key in query:
        if key in UNSUPPORTED_OPTIONS:
            raise odata_bad_request(f"Query option '{key}' is not supported on this resource.")
        if key.startswith("$") and key not in SUPPORTED_OPTIONS:
            raise odata_bad_request(f"The query parameter '{key}' is not supported.")


def check_entity_options(query: dict) -> None:
    """Reading one entity takes ``$select`` only."""
    for key in query:
        if key.startswith("$") and key != "$select":
            raise odata_bad_request(f"Query option '{key}' is not allowed when reading a single entity.")


def encode_skiptoken(last_key: Any) -> str:
    return b64url(json.dumps({"after": last_key}).encode())


def decode_skiptoken(token: str) -> Any:
    try:
        return json.loads(b64url_decode(token))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise odata_bad_request("The $skiptoken is invalid or has expired.") from exc


def paginate(items: list[Any], key: Callable[[Any], Any], query: dict, default_page_size: int,
             max_page_size: int = MAX_TOP) -> tuple[list[Any], dict | None]:
    """Keyset paging over ``items`` sorted by ``key``: stable while items are added or removed between pages.

    A page holds ``$top`` (or the default page size) items, never more than ``max_page_size``; ``$top`` stays in
    the next link, so every page is capped the same way."""
    top = min(parse_top(query.get("$top"), default_page_size), max_page_size)
    items = sorted(items, key=key)
    if "$skiptoken" in query:
        after = decode_skiptoken(query["$skiptoken"])
        items = [i for i in items if key(i) > after]
    page = items[:top]
    next_query = None
    if len(items) > top:
        next_query = {k: v for k, v in query.items() if k != "$skiptoken"}
        next_query["$skiptoken"] = encode_skiptoken(key(page[-1]))
    return page, next_query


def build_query_string(query: dict) -> str:
    return "&".join(f"{k}={quote(str(v), safe='$,()/@')}" for k, v in query.items())
