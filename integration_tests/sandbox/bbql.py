"""A small BBQL (Bitbucket query language) parser/evaluator for the ``q`` parameter.

Supports ``field OP value`` with ``=, !=, ~, !~, >, >=, <, <=``, ``IN``/``NOT IN`` lists, ``AND``/``OR``
and parentheses. Values: double-quoted strings, numbers, ``null``/``true``/``false`` and unquoted
ISO-8601 datetimes (offset, fraction and time optional; no offset = UTC). A quoted string compared
with a date field is compared as a datetime too. Anything else raises :class:`BBQLError` (-> HTTP 400).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, List, Optional, Tuple

from .util import parse_iso

MISSING = object()
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?)(?![\w:.])
    | (?P<num>-?\d+(?:\.\d+)?)(?![\w:.\-])
    | (?P<op>>=|<=|!=|!~|=|>|<|~)
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.X,
)
Getter = Callable[[str], Any]
Predicate = Callable[[Getter], bool]


class BBQLError(ValueError):
    """A malformed or unsupported query; the message is shown in the 400 error body."""


def _tokens(text: str) -> List[Tuple[str, str]]:
    out, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise BBQLError(f"Invalid query: unexpected input at position {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str, fields: Optional[Iterable[str]]):
        self.toks = _tokens(text)
        self.i = 0
        self.fields = set(fields) if fields is not None else None

    def peek(self, offset: int = 0) -> Tuple[str, str]:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else ("end", "")

    def take(self) -> Tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def keyword(self, word: str, offset: int = 0) -> bool:
        kind, value = self.peek(offset)
        return kind == "word" and value.upper() == word

    def parse(self) -> Predicate:
        if not self.toks:
            raise BBQLError("Invalid query: empty query")
        pred = self.expr()
        if self.peek()[0] != "end":
            raise BBQLError(f"Invalid query: unexpected {self.peek()[1]!r}")
        return pred

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.keyword("OR"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda get, ps=parts: any(p(get) for p in ps))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.keyword("AND"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda get, ps=parts: all(p(get) for p in ps))

    def factor(self) -> Predicate:
        if self.peek()[0] == "lp":
            self.take()
            pred = self.expr()
            if self.take()[0] != "rp":
                raise BBQLError("Invalid query: missing ')'")
            return pred
        kind, field = self.take()
        if kind != "word" or field.upper() in ("AND", "OR", "NOT", "IN", "NULL", "TRUE", "FALSE"):
            raise BBQLError(f"Invalid query: expected a field name, got {field!r}")
        if self.fields is not None and field.split(".")[0] not in self.fields:
            raise BBQLError(f"Invalid query: '{field}' is not a valid field")
        negate = self.keyword("NOT") and self.keyword("IN", 1)
        if negate or self.keyword("IN"):
            self.i += 2 if negate else 1
            values = self.value_list()
            return lambda get: (any(_compare(get(field), "=", v) for v in values)) != negate
        kind, op = self.take()
        if kind != "op":
            raise BBQLError(f"Invalid query: expected an operator after {field!r}")
        value = self.value()
        return lambda get: _compare(get(field), op, value)

    def value_list(self) -> List[Tuple[str, Any]]:
        if self.take()[0] != "lp":
            raise BBQLError("Invalid query: expected '(' after IN")
        values = [self.value()]
        while self.peek()[0] == "comma":
            self.take()
            values.append(self.value())
        if self.take()[0] != "rp":
            raise BBQLError("Invalid query: missing ')'")
        return values

    def value(self) -> Tuple[str, Any]:
        kind, text = self.take()
        if kind == "str":
            return "str", re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "dt":
            try:
                return "dt", parse_iso(text)
            except ValueError as exc:
                raise BBQLError(f"Invalid query: bad datetime {text!r}") from exc
        if kind == "num":
            return "num", float(text)
        if kind == "word" and text.lower() in ("null", "true", "false"):
            return ("null", None) if text.lower() == "null" else ("bool", text.lower() == "true")
        raise BBQLError(f"Invalid query: expected a value, got {text or 'end of query'!r}")


def _as_datetime(value: Any) -> Optional[int]:
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _compare(actual: Any, op: str, literal: Tuple[str, Any]) -> bool:
    kind, want = literal
    if actual is MISSING:
        actual = None
    if kind == "null":
        return (actual is None) == (op == "=") if op in ("=", "!=") else False
    if actual is None:
        return op == "!="
    if kind in ("dt", "str") and isinstance(actual, str):
        left = _as_datetime(actual)
        right = want if kind == "dt" else _as_datetime(want)
        if kind == "dt" and left is None:
            return False
        if left is not None and right is not None:
            actual, want = left, right
    elif kind == "num" and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        actual = float(actual)
    if op in ("~", "!~"):
        found = str(want).lower() in str(actual).lower()
        return found if op == "~" else not found
    if op == "=":
        return actual == want
    if op == "!=":
        return actual != want
    try:
        return {">": actual > want, ">=": actual >= want, "<": actual < want, "<=": actual <= want}[op]
    except TypeError:
        return False


def compile_query(text: str, fields: Optional[Iterable[str]] = None) -> Predicate:
    """Compile ``q`` into ``predicate(getter) -> bool``; ``getter(dotted_path)`` reads the object.

    ``fields`` (optional) restricts the top-level field names that may be queried.
    """
    return _Parser(text, fields).parse()


def lookup(obj: Any, path: str) -> Any:
    """Follow a dotted path through nested dicts; :data:`MISSING` when absent."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj
