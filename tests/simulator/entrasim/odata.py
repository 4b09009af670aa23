"""The OData query options Graph supports on these collections: ``$filter`` (what each collection supports is a
:class:`Support`; the inventory's depends on the filter_mode setting, see graph.py), ``$select``, ``$top`` and
server-driven paging with an opaque ``$skiptoken``."""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import quote

from .errors import bad_request, odata_bad_request
from .settings import MAX_PAGE_SIZE
from .tenant import b64url, b64url_decode

MAX_TOP = MAX_PAGE_SIZE
MAX_FILTER_EXPRESSIONS = 15  # directory queries: comparisons and functions, each value of an in (...) list counting one
SUPPORTED_OPTIONS = {"$filter", "$select", "$top", "$skiptoken"}
UNSUPPORTED_OPTIONS = {"$orderby", "$search", "$skip", "$expand", "$count", "$format", "$apply"}

_TOKEN_RE = re.compile(
    r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)


@dataclass
class Property:
    """A property a $filter may name: its JSON path and type ("string", "int", "enum:<a,b>")."""

    path: str
    kind: str = "string"
    filterable: bool = True


@dataclass
class Comparison:
    """``path eq|ne|gt|ge|lt|le literal`` or ``path in (literal, ...)``."""

    prop: Property
    operator: str
    values: list  # one value, or the values of an in (...) list

    def matches(self, item: dict) -> bool:
        found = any(_equal(resolve(item, self.prop.path), v) for v in self.values)
        return not found if self.operator == "ne" else found


@dataclass
class Call:
    """A function of a property and a literal, such as ``startswith(displayName, 'Amy')``."""

    function: str
    prop: Property
    value: Any

    def matches(self, item: dict) -> bool:
        actual = resolve(item, self.prop.path)  # only startswith passes check_supported
        return isinstance(actual, str) and isinstance(self.value, str) and actual.lower().startswith(self.value.lower())


@dataclass
class Not:
    operand: Node

    def matches(self, item: dict) -> bool:
        return not self.operand.matches(item)


@dataclass
class Junction:
    operator: str  # "and" or "or"
    operands: list[Node]

    def matches(self, item: dict) -> bool:
        results = (operand.matches(item) for operand in self.operands)
        return all(results) if self.operator == "and" else any(results)


Node = Comparison | Call | Not | Junction


@dataclass
class Filter:
    """A parsed ``$filter``: its expression tree, and whether it groups a sub-expression in parentheses."""

    root: Node
    grouped: bool = False

    def matches(self, item: dict) -> bool:
        return self.root.matches(item)


@dataclass(frozen=True)
class Support:
    """What a collection's ``$filter`` supports beyond syntax; the rest is 400 "Unsupported query: ..."."""

    operators: frozenset = frozenset({"eq", "in"})
    functions: frozenset = frozenset()
    negation: bool = False


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
        kind = match.lastgroup if match else None
        if not match or match.end() == pos or kind is None:
            raise odata_bad_request(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class FilterParser:
    """The OData filter syntax Graph's directory understands, checked against the properties of the collection:

    ``expr := conj ('or' conj)*``; ``conj := unary ('and' unary)*``; ``unary := 'not' unary | term``;
    ``term := '(' expr ')' | function '(' path ',' literal ')' | path op literal | path 'in' '(' literal, ... ')'``.

    Syntax errors, unknown properties and literals of the wrong type are 400 here; what a collection supports is
    decided afterwards (:func:`check_supported`, or the inventory's filter_mode)."""

    def __init__(self, text: str, properties: dict[str, Property], type_name: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.properties = properties
        self.type_name = type_name
        self.grouped = False

    def parse(self) -> Filter:
        if not self.tokens:
            raise odata_bad_request("Invalid filter clause: the expression is empty.")
        root = self._junction("or", self._conjunction)
        if self.pos != len(self.tokens):
            raise odata_bad_request(f"Invalid filter clause: unexpected '{self.tokens[self.pos][1]}'.")
        return Filter(root, self.grouped)

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

    def _at(self, kind: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == kind

    def _at_word(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == "word" and token[1] in words

    def _junction(self, operator: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self._at_word(operator):
            self._next()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Junction(operator, operands)

    def _conjunction(self) -> Node:
        return self._junction("and", self._unary)

    def _unary(self) -> Node:
        if self._at_word("not"):
            self._next()
            return Not(self._unary())
        return self._term()

    def _term(self) -> Node:
        if self._at("lparen"):
            self._next()
            self.grouped = True
            inner = self._junction("or", self._conjunction)
            self._next("rparen")
            return inner
        kind, name = self._next()
        if kind != "word":
            raise odata_bad_request(f"Invalid filter clause: expected a property name but found '{name}'.")
        if self._at("lparen"):
            self._next()
            prop = self._property(self._next("word")[1])
            self._next("comma")
            value = self._literal(prop)
            self._next("rparen")
            return Call(name, prop, value)
        prop = self._property(name)
        operator = self._next("word")[1]
        if operator == "in":
            self._next("lparen")
            values = [self._literal(prop)]
            while self._at("comma"):
                self._next()
                values.append(self._literal(prop))
            self._next("rparen")
            return Comparison(prop, "in", values)
        if operator in ("eq", "ne", "gt", "ge", "lt", "le"):
            return Comparison(prop, operator, [self._literal(prop)])
        raise odata_bad_request(f"Invalid filter clause: '{operator}' is not an operator.")

    def _property(self, name: str) -> Property:
        prop = self.properties.get(name)
        if prop is None:
            raise odata_bad_request(
                f"Could not find a property named '{name.split('/', maxsplit=1)[0]}' on type '{self.type_name}'."
            )
        return prop

    def _literal(self, prop: Property) -> Any:
        kind, text = self._next()
        if kind == "word" and text == "null":
            return None
        if prop.kind == "int":
            if kind != "number":
                raise odata_bad_request(
                    f"A binary operator with incompatible types was detected. Found operand types "
                    f"'Edm.Int32' and 'Edm.String' for operator kind 'Equal' on '{prop.path}'."
                )
            return int(text)
        if kind != "string":
            raise odata_bad_request(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'Edm.String' and 'Edm.Int32' for operator kind 'Equal' on '{prop.path}'."
            )
        value = text[1:-1].replace("''", "'")
        if prop.kind.startswith("enum:"):
            allowed = prop.kind[5:].split(",")
            if value not in allowed:
                raise odata_bad_request(f"The string '{value}' is not a valid enumeration type constant.")
        return value


def parse_filter(text: str, properties: dict[str, Property], type_name: str, support: Support) -> Filter:
    """A collection's ``$filter``: parsed, limited to what the collection supports and to 15 expressions."""
    parsed = FilterParser(text, properties, type_name).parse()
    check_supported(parsed.root, support)
    check_expression_count(parsed.root)
    return parsed


def equality_terms(parsed: Filter) -> list[tuple[str, list]]:
    """The ``eq`` and ``in (...)`` comparisons an item must pass to match ``parsed`` (the whole filter, or operands
    of its top-level ``and``): ``(property path, values)``, for answering from an index."""
    root = parsed.root
    nodes = root.operands if isinstance(root, Junction) and root.operator == "and" else [root]
    return [(n.prop.path, n.values) for n in nodes if isinstance(n, Comparison) and n.operator in ("eq", "in")]


def check_supported(node: Node, support: Support) -> None:
    """400 "Unsupported query" for the first operator, function or property the collection does not support."""
    if isinstance(node, Junction):
        if node.operator == "or":
            raise odata_bad_request("Unsupported query: the 'or' operator is not supported on this resource.")
        for operand in node.operands:
            check_supported(operand, support)
        return
    if isinstance(node, Not):
        if not support.negation:
            raise odata_bad_request("Unsupported query: the 'not' operator is not supported on this resource.")
        check_supported(node.operand, support)
        return
    if isinstance(node, Call) and node.function not in support.functions:
        raise odata_bad_request(f"Unsupported query: the function '{node.function}' is not supported on this resource.")
    if not node.prop.filterable:
        raise odata_bad_request(f"Unsupported query: filtering on '{node.prop.path}' is not supported.")
    if isinstance(node, Comparison) and node.operator not in support.operators:
        raise odata_bad_request(f"Unsupported query: the '{node.operator}' operator is not supported on this resource.")


def _expressions(node: Node) -> int:
    if isinstance(node, Junction):
        return sum(_expressions(operand) for operand in node.operands)
    if isinstance(node, Not):
        return _expressions(node.operand)
    return len(node.values) if isinstance(node, Comparison) else 1


def check_expression_count(node: Node) -> None:
    """One expression per comparison or function and one per value of each ``in (...)`` list, at most 15 in the
    whole filter."""
    count = _expressions(node)
    if count > MAX_FILTER_EXPRESSIONS:
        raise bad_request(
            f"Too many child clauses specified in search filter expression containing 'OR' operators: "
            f"{count}. Max allowed: {MAX_FILTER_EXPRESSIONS}.",
            code="Request_UnsupportedQuery",
        )


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
    """``item`` with ``id``, its annotations and the selected properties it has (a method without its device inline
    has no ``device`` to select)."""
    if fields is None:
        return item
    out = {k: v for k, v in item.items() if k.startswith("@odata.")}
    out["id"] = item.get("id")
    for name in fields:
        if name in item:
            out[name] = item[name]
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


def paginate(
    items: list[Any],
    key: Callable[[Any], Any],
    query: dict,
    default_page_size: int,
    *,
    max_page_size: int = MAX_TOP,
    top_above_max: str = "cap",
) -> tuple[list[Any], dict | None]:
    """Keyset paging over ``items`` sorted by ``key``: stable while items are added or removed between pages.

    A page holds ``$top`` (or the default page size) items, never more than ``max_page_size``; ``$top`` stays in
    the next link, so every page is capped the same way. With ``top_above_max="reject"`` a ``$top`` above
    ``max_page_size`` is a 400 naming the maximum instead."""
    top = page_size(query, default_page_size, max_page_size, top_above_max)
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


def page_size(query: dict, default_page_size: int, max_page_size: int, top_above_max: str) -> int:
    """The size of a page: ``$top`` or the default, capped at (or, with ``top_above_max="reject"``, a 400 above)
    ``max_page_size``."""
    top = parse_top(query.get("$top"), default_page_size)
    if top > max_page_size and top_above_max == "reject" and "$top" in query:
        raise odata_bad_request(
            f"Invalid page size specified: '{query['$top']}'. Must be between 1 and {max_page_size} inclusive."
        )
    return min(top, max_page_size)


def paginate_sorted(
    items: Sequence[Any],
    key: Callable[[Any], Any],
    key_type: type,
    query: dict,
    default_page_size: int,
    *,
    max_page_size: int = MAX_TOP,
    top_above_max: str = "cap",
    render: Callable[[Any], Any] | None = None,
) -> tuple[list[Any], dict | None]:
    """:func:`paginate` of the items ``render`` accepts, over ``items`` already sorted by ``key`` (unique, of
    ``key_type``), looking only at what the page needs: from the ``$skiptoken`` on (found by bisection) until the
    page and one more item are found. ``render(item)`` is the item as the page holds it, None to leave it out (a
    ``$filter``); no ``render``: the items as they are.

    The same pages and the same next links as :func:`paginate`; a ``$skiptoken`` that is not of ``key_type``
    (only a forged one) is compared with every accepted item as :func:`paginate` does."""
    top = page_size(query, default_page_size, max_page_size, top_above_max)
    start, compare = 0, False
    after: Any = None
    if "$skiptoken" in query:
        after = decode_skiptoken(query["$skiptoken"])
        compare = not isinstance(after, key_type)
        if not compare:
            start = bisect.bisect_right(items, after, key=key)
    found: list[tuple[Any, Any]] = []
    for index in range(start, len(items)):
        item = items[index]
        value = item if render is None else render(item)
        if value is None or (compare and not key(item) > after):
            continue
        found.append((key(item), value))
        if len(found) > top:
            break
    next_query = None
    if len(found) > top:
        next_query = {k: v for k, v in query.items() if k != "$skiptoken"}
        next_query["$skiptoken"] = encode_skiptoken(found[top - 1][0])
    return [value for _key, value in found[:top]], next_query


def build_query_string(query: dict) -> str:
    return "&".join(f"{k}={quote(str(v), safe='$,()/@')}" for k, v in query.items())
