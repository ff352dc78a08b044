"""A small, safe condition language over profile (and later event) fields.

    tier in [gold, diamond] and affinity.category.electronics >= 0.3
    lifecycle == at_risk and rfm.m >= 4
    not (cart.value < 50) or counts.order_completed >= 3

Operators: ``== != > >= < <=``, ``in [..]``, ``not in [..]``, ``contains``, ``and``,
``or``, ``not`` and parentheses. Values are numbers, quoted strings, bare words, ``true``,
``false`` and ``null``. Fields are checked against a schema when the condition is
compiled, and every error carries the character position where it was found.

>>> condition = compile_condition("tier in [gold, diamond] and rfm.m >= 4", PROFILE_FIELDS)
>>> condition({"tier": "gold", "rfm": {"m": 5}}), condition({"tier": "basic", "rfm": {"m": 5}})
(True, False)
>>> try:
...     compile_condition("tier == platinum", PROFILE_FIELDS)
... except ExpressionError as error:
...     print(error.position, error.message)
8 'platinum' is not a tier; expected one of basic, silver, gold, diamond
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from profiles.rules import (
    CHANNEL_PREFERENCES,
    LIFECYCLE_STAGES,
    PRICE_BANDS,
    TIERS,
    TRAIT_WHITELIST,
)
from schemas.events import EVENT_TYPES

Condition = Callable[[Mapping[str, Any]], bool]


class ExpressionError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"position {position}: {message}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # "number", "string", "bool", "list"
    choices: tuple[str, ...] | None = None
    label: str = ""


_NUMBER = FieldSpec("number")
_STRING = FieldSpec("string")

# Exact paths, and prefixes whose last segment is free (or checked against a set).
PROFILE_FIELDS: dict[str, FieldSpec] = {
    "sessions": _NUMBER,
    "points": _NUMBER,
    "tier": FieldSpec("string", TIERS, "tier"),
    "lifecycle": FieldSpec("string", LIFECYCLE_STAGES, "lifecycle stage"),
    "channel_preference": FieldSpec("string", CHANNEL_PREFERENCES, "channel preference"),
    "spending.avg_price": _NUMBER,
    "spending.median_price": _NUMBER,
    "spending.price_band": FieldSpec("string", PRICE_BANDS, "price band"),
    "rfm.recency_days": _NUMBER,
    "rfm.frequency": _NUMBER,
    "rfm.monetary": _NUMBER,
    "rfm.r": _NUMBER,
    "rfm.f": _NUMBER,
    "rfm.m": _NUMBER,
    "cart.value": _NUMBER,
    "cart.count": _NUMBER,
    "segments": FieldSpec("list"),
}
PROFILE_PREFIXES: dict[str, tuple[FieldSpec, frozenset[str] | None]] = {
    "counts.": (_NUMBER, frozenset(EVENT_TYPES)),
    "affinity.category.": (_NUMBER, None),
    "affinity.brand.": (_NUMBER, None),
    "traits.": (_STRING, TRAIT_WHITELIST),
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<op>==|!=|>=|<=|>|<|\(|\)|\[|\]|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "contains", "true", "false", "null"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            start = len(text) - len(text[position:].lstrip())
            raise ExpressionError(f"unexpected character {text[start]!r}", start)
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind)
        if kind == "word" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append(Token(kind, value, start))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(
        self,
        text: str,
        fields: Mapping[str, FieldSpec],
        prefixes: Mapping[str, tuple[FieldSpec, frozenset[str] | None]],
    ) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.fields = fields
        self.prefixes = prefixes

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def take(self, text: str | None = None, kind: str | None = None) -> Token | None:
        token = self.token
        if (text is None or token.text == text) and (kind is None or token.kind == kind):
            if text is not None and token.kind not in {"keyword", "op"}:
                return None
            self.index += 1
            return token
        return None

    def expect(self, text: str) -> Token:
        token = self.take(text)
        if token is None:
            found = self.token.text or "end of condition"
            raise ExpressionError(f"expected {text!r}, found {found!r}", self.token.position)
        return token

    def parse(self) -> Condition:
        if self.token.kind == "end":
            raise ExpressionError("empty condition", 0)
        condition = self.parse_or()
        if self.token.kind != "end":
            raise ExpressionError(f"unexpected {self.token.text!r}", self.token.position)
        return condition

    def parse_or(self) -> Condition:
        parts = [self.parse_and()]
        while self.take("or"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda ctx: any(p(ctx) for p in parts))

    def parse_and(self) -> Condition:
        parts = [self.parse_not()]
        while self.take("and"):
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else (lambda ctx: all(p(ctx) for p in parts))

    def parse_not(self) -> Condition:
        if self.take("not"):
            inner = self.parse_not()
            return lambda ctx: not inner(ctx)
        if self.take("("):
            inner = self.parse_or()
            self.expect(")")
            return inner
        return self.parse_comparison()

    def field(self) -> tuple[str, FieldSpec, int]:
        token = self.token
        if token.kind != "word":
            found = token.text or "end of condition"
            raise ExpressionError(f"expected a field name, found {found!r}", token.position)
        self.index += 1
        path = token.text
        if path in self.fields:
            return path, self.fields[path], token.position
        for prefix, (spec, allowed) in self.prefixes.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                tail = path[len(prefix) :]
                if allowed is not None and tail not in allowed:
                    raise ExpressionError(
                        f"unknown field {path!r}: {tail!r} is not one of "
                        + ", ".join(sorted(allowed)),
                        token.position,
                    )
                return path, spec, token.position
        known = ", ".join(sorted([*self.fields, *(p + "<name>" for p in self.prefixes)]))
        raise ExpressionError(f"unknown field {path!r}; known fields: {known}", token.position)

    def value(self, spec: FieldSpec) -> Any:
        token = self.token
        self.index += 1
        if token.kind == "number":
            value: Any = float(token.text) if "." in token.text else int(token.text)
        elif token.kind == "string":
            value = token.text[1:-1]
        elif token.kind == "keyword" and token.text in {"true", "false", "null"}:
            value = {"true": True, "false": False, "null": None}[token.text]
        elif token.kind == "word":
            value = token.text
        else:
            found = token.text or "end of condition"
            raise ExpressionError(f"expected a value, found {found!r}", token.position)
        if spec.choices is not None and value is not None and value not in spec.choices:
            raise ExpressionError(
                f"{value!r} is not a {spec.label}; expected one of {', '.join(spec.choices)}",
                token.position,
            )
        if spec.kind == "number" and isinstance(value, str):
            raise ExpressionError(f"{value!r} is not a number", token.position)
        return value

    def parse_comparison(self) -> Condition:
        path, spec, position = self.field()
        parts = path.split(".")
        get = _getter(
            parts,
            default=0 if spec.kind == "number" and parts[0] in {"counts", "affinity"} else None,
        )
        token = self.token
        if self.take("in") or (self.take("not") and self.expect("in")):
            negate = token.text == "not"
            self.expect("[")
            values = [self.value(spec)]
            while self.take(","):
                values.append(self.value(spec))
            self.expect("]")
            members = frozenset(values)
            if negate:
                return lambda ctx: get(ctx) not in members
            return lambda ctx: get(ctx) in members
        if self.take("contains"):
            wanted = self.value(FieldSpec("string"))
            return lambda ctx: wanted in (get(ctx) or ())
        op = self.token
        if op.kind != "op" or op.text not in _COMPARE:
            found = op.text or "end of condition"
            raise ExpressionError(
                f"expected an operator (==, !=, >, >=, <, <=, in, not in, contains) after "
                f"{path!r}, found {found!r}",
                op.position,
            )
        self.index += 1
        if spec.kind == "list":
            raise ExpressionError(f"{path!r} is a list: use 'contains'", op.position)
        value = self.value(spec)
        compare = _COMPARE[op.text]
        if op.text in {"==", "!="}:
            return lambda ctx: compare(get(ctx), value)
        if not isinstance(value, int | float):
            raise ExpressionError(f"{op.text} needs a number", op.position)
        del position
        return lambda ctx: (lambda got: got is not None and compare(got, value))(get(ctx))


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _getter(parts: list[str], default: Any) -> Callable[[Mapping[str, Any]], Any]:
    def get(ctx: Mapping[str, Any]) -> Any:
        node: Any = ctx
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return default if node is None and default is not None else node

    return get


def compile_condition(
    text: str,
    fields: Mapping[str, FieldSpec] = PROFILE_FIELDS,
    prefixes: Mapping[str, tuple[FieldSpec, frozenset[str] | None]] = PROFILE_PREFIXES,
) -> Condition:
    """Parse and check ``text``; raise :class:`ExpressionError` with the position."""
    if len(text) > 4096:
        raise ExpressionError("condition longer than 4096 characters", 4096)
    return _Parser(text, fields, prefixes).parse()
