"""The subset of Gmail's search syntax that receipt sync uses, parsed into a matcher.

Matching is case-insensitive substring search over subject, sender, text body and
attachment filenames: looser than Gmail's word index, which only makes tests stricter
about what the client asks for, never about what Gmail would have found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

#: Operators accepted for compatibility and ignored: every simulated message matches them.
IGNORED = ("in", "category", "label", "is", "to", "cc", "bcc", "list", "deliveredto")
_TOKEN = re.compile(r'\s*(-)?(?:([{}()])|(?:([A-Za-z_]+):)?("[^"]*"|[^\s{}()"]+)?)')
_RELATIVE = re.compile(r"^(\d+)([dmy])$")
_UNIT_DAYS = {"d": 1, "m": 30, "y": 365}


class QueryError(ValueError):
    """A query Gmail would answer with 400 invalidArgument."""


class Document(Protocol):
    """What a search sees of a message (read-only, so frozen dataclasses qualify)."""

    @property
    def subject(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def date(self) -> datetime: ...
    @property
    def filenames(self) -> list[str]: ...


class Node(Protocol):
    def match(self, doc: Document) -> bool: ...


@dataclass(frozen=True)
class Text:
    """A bare word or a "quoted phrase", found anywhere searchable."""

    value: str

    def match(self, doc: Document) -> bool:
        haystack = " ".join([doc.subject, doc.sender, doc.text, *doc.filenames]).lower()
        return self.value.lower() in haystack


@dataclass(frozen=True)
class Field:
    name: str
    value: str

    def match(self, doc: Document) -> bool:
        value = self.value.lower()
        if self.name == "subject":
            return value in doc.subject.lower()
        if self.name == "from":
            return value in doc.sender.lower()
        if self.name == "has":
            return bool(doc.filenames)
        if self.name == "filename":
            return any(value in name.lower() for name in doc.filenames)
        return True  # IGNORED operators


@dataclass(frozen=True)
class DateBound:
    """after:/newer_than: when ``after`` is set, before:/older_than: otherwise."""

    at: datetime
    after: bool

    def match(self, doc: Document) -> bool:
        return doc.date >= self.at if self.after else doc.date < self.at


@dataclass(frozen=True)
class Not:
    node: Node

    def match(self, doc: Document) -> bool:
        return not self.node.match(doc)


@dataclass(frozen=True)
class AnyOf:
    nodes: tuple[Node, ...]

    def match(self, doc: Document) -> bool:
        return any(n.match(doc) for n in self.nodes)


@dataclass(frozen=True)
class AllOf:
    nodes: tuple[Node, ...]

    def match(self, doc: Document) -> bool:
        return all(n.match(doc) for n in self.nodes)


@dataclass(frozen=True)
class _Tok:
    bracket: str | None = None
    negated: bool = False
    field: str | None = None
    value: str | None = None


def _tokenize(query: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"cannot parse query at {query[pos:]!r}")
        pos = m.end()
        neg, bracket, field, value = m.groups()
        if bracket:
            if neg and bracket in "})":
                raise QueryError(f"nothing to negate before {bracket!r}")
            tokens.append(_Tok(bracket=bracket, negated=bool(neg)))
        elif neg or field or value:
            if value is None:
                raise QueryError(f"missing value after {query[m.start() : m.end()].strip()!r}")
            tokens.append(_Tok(negated=bool(neg), field=field and field.lower(), value=value))
    return tokens


def _date(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise QueryError(f"invalid date {value!r}")


def _field(name: str, value: str, now: datetime) -> Node:
    if name in ("after", "before"):
        return DateBound(_date(value), after=name == "after")
    if name in ("newer_than", "older_than"):
        m = _RELATIVE.match(value.lower())
        if m is None:
            raise QueryError(f"invalid {name} value {value!r}")
        delta = timedelta(days=int(m.group(1)) * _UNIT_DAYS[m.group(2)])
        return DateBound(now - delta, after=name == "newer_than")
    if name == "has" and value.lower() != "attachment":
        raise QueryError(f"unsupported has: value {value!r}")
    if name in ("subject", "from", "has", "filename", *IGNORED):
        return Field(name, value)
    return Text(f"{name}:{value}")  # Gmail searches unknown operators as plain text


class _Parser:
    def __init__(self, tokens: Sequence[_Tok], now: datetime) -> None:
        self.tokens, self.pos, self.now = tokens, 0, now

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def sequence(self, closer: str | None) -> list[Node]:
        """Terms up to ``closer`` (or the end), with OR binding tighter than the implicit AND."""
        nodes: list[Node] = []
        while (tok := self.peek()) is not None and not (closer and tok.bracket == closer):
            if tok.bracket in ("}", ")"):
                raise QueryError(f"unbalanced {tok.bracket!r}")
            if self._is_or(tok):
                if not nodes:
                    raise QueryError("OR needs a term on each side")
                self.pos += 1
                right = self.unary()
                left = nodes.pop()
                left_nodes = left.nodes if isinstance(left, AnyOf) else (left,)
                nodes.append(AnyOf((*left_nodes, right)))
            else:
                nodes.append(self.unary())
        if closer is not None:
            if self.peek() is None:
                raise QueryError(f"missing {closer!r}")
            self.pos += 1
        return nodes

    @staticmethod
    def _is_or(tok: _Tok) -> bool:
        return tok.value == "OR" and not tok.field and not tok.negated

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None or self._is_or(tok):
            raise QueryError("OR needs a term on each side")
        self.pos += 1
        node: Node
        if tok.bracket == "{":
            node = AnyOf(tuple(self.sequence("}")))
        elif tok.bracket == "(":
            node = AllOf(tuple(self.sequence(")")))
        else:
            assert tok.value is not None
            value = tok.value[1:-1] if tok.value.startswith('"') else tok.value
            node = _field(tok.field, value, self.now) if tok.field else Text(value)
        return Not(node) if tok.negated else node


def parse(query: str, now: datetime | None = None) -> Node:
    """Parse ``query``; an empty query matches everything. Raises QueryError."""
    if query.count('"') % 2:
        raise QueryError("unbalanced quote")
    parser = _Parser(_tokenize(query), now or datetime.now(UTC))
    return AllOf(tuple(parser.sequence(None)))
