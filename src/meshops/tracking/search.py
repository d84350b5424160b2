"""The run filter and order-by language: tokenizer and recursive-descent parser (pure).

    filter   := or_expr
    or_expr  := and_expr ("or" and_expr)*
    and_expr := atom ("and" atom)*
    atom     := "(" or_expr ")" | field op value
    field    := (metrics|params|tags|attributes) "." key  |  attribute
    op       := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value    := 'string' | "string" | number | "(" value ("," value)* ")"

Keys with unusual characters are quoted with backticks: metrics.`val loss`. The parser
builds a small tree (`Comparison`, `BoolOp`); `store`/`service` compile it to SQLAlchemy
expressions with bound parameters. Every error names the offending token and its position.

The text is the caller's, so its size is bounded before anything recurses or reaches the
database: its length, the nesting of parentheses (the parser recurses per level), the
number of conditions and of IN values (each becomes SQL; SQLite refuses expression trees
deeper than 1000) and of order-by keys; an integer beyond 64 bits is compared as a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from meshops.kernel.errors import InvalidInput

Kind = Literal["metric", "param", "tag", "attribute"]

ATTRIBUTES = {
    "status": "status",
    "name": "name",
    "run_name": "name",
    "start_time": "start_time",
    "end_time": "end_time",
    "user": "user",
    "run_id": "id",
    "id": "id",
    "experiment_id": "experiment_id",
    "parent_run_id": "parent_run_id",
    "user_id": "user",  # MLflow's names
    "created": "start_time",
    "lifecycle_stage": "lifecycle_stage",
}
TIME_ATTRIBUTES = {"start_time", "end_time"}
PREFIXES: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
NUMERIC_OPS = {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"}
STRING_OPS = {"=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-:/]*)
    """,
    re.VERBOSE,
)
KEYWORDS = {"AND", "OR", "IN", "NOT", "LIKE", "ILIKE", "ASC", "DESC"}
MAX_LENGTH = 20_000  # characters of one filter or order-by clause
MAX_NESTING = 32  # levels of parentheses
MAX_CONDITIONS = 200  # comparisons in one filter
MAX_IN_VALUES = 1_000  # values of one IN list
MAX_ORDER_KEYS = 16
MAX_INT = 2**63 - 1  # a larger integer literal is compared as a float


@dataclass(frozen=True)
class Token:
    kind: str  # string | backtick | number | op | punct | word | keyword | end
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class Field:
    kind: Kind
    key: str  # metric/param/tag key, or the column name of an attribute


Value = str | float | int


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Expr, ...]


Expr = Comparison | BoolOp


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


def _error(source: str, token: Token, problem: str, fix: str) -> InvalidInput:
    shown = token.text if token.kind != "end" else "<end of input>"
    return InvalidInput(
        f"{problem} at position {token.pos}: {shown!r} in {source!r}",
        {"field": "filter", "token": shown, "position": token.pos, "fix": fix},
    )


def tokenize(source: str, what: str = "filter") -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            bad = Token("bad", source[pos], pos)
            raise InvalidInput(
                f"unexpected character at position {pos}: {source[pos]!r} in {source!r}",
                {
                    "field": what,
                    "token": bad.text,
                    "position": pos,
                    "fix": "quote text values with single quotes, e.g. params.model = 'rf'",
                },
            )
        kind = match.lastgroup or "ws"
        text = match.group()
        if kind != "ws":
            if kind == "word" and text.upper() in KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, text, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _too_big(what: str, problem: str, fix: str) -> InvalidInput:
    return InvalidInput(f"the {what} is too large: {problem}", {"field": what, "fix": fix})


class _Parser:
    def __init__(self, source: str, what: str) -> None:
        if len(source) > MAX_LENGTH:
            raise _too_big(
                what, f"{len(source)} characters, the limit is {MAX_LENGTH}", "shorten it"
            )
        self.source = source
        self.what = what
        self.tokens = tokenize(source, what)
        self.index = 0
        self.depth = 0  # open parentheses around the current token
        self.conditions = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def fail(self, problem: str, fix: str) -> InvalidInput:
        return _error(self.source, self.current, problem, fix)

    def is_keyword(self, word: str) -> bool:
        return self.current.kind == "keyword" and self.current.upper == word

    # filter --------------------------------------------------------------------------
    def parse_filter(self) -> Expr | None:
        if self.current.kind == "end":
            return None
        expr = self.or_expr()
        if self.current.kind != "end":
            raise self.fail("expected 'and', 'or' or the end", "join conditions with and/or")
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.is_keyword("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Expr:
        items = [self.atom()]
        while self.is_keyword("AND"):
            self.advance()
            items.append(self.atom())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def atom(self) -> Expr:
        if self.current.kind == "punct" and self.current.text == "(":
            return self.parenthesized()
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _too_big(
                self.what,
                f"more than {MAX_CONDITIONS} conditions",
                "use IN (...) for many values of one field, or split the search",
            )
        field = self.field()
        op = self.operator()
        allowed = NUMERIC_OPS if field.kind == "metric" else STRING_OPS
        if op not in allowed:
            raise _error(
                self.source,
                self.tokens[self.index - 1],
                f"operator {op} does not apply to {field.kind}s",
                f"use one of {', '.join(sorted(allowed))}",
            )
        value = self.value_list(field) if op in ("IN", "NOT IN") else self.value(field)
        return Comparison(field, op, value)

    def parenthesized(self) -> Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _too_big(
                self.what,
                f"parentheses nest deeper than {MAX_NESTING} levels",
                "drop redundant parentheses",
            )
        self.advance()
        expr = self.or_expr()
        if not (self.current.kind == "punct" and self.current.text == ")"):
            raise self.fail("expected ')'", "close every '(' with ')'")
        self.advance()
        self.depth -= 1
        return expr

    def field(self) -> Field:
        token = self.current
        if token.kind == "backtick":
            self.advance()
            return self.attribute(token, token.text[1:-1])
        if token.kind != "word":
            raise self.fail(
                "expected a field like metrics.rmse, params.model, tags.team or status",
                "start each condition with a field name",
            )
        self.advance()
        lowered = token.text.lower()
        if lowered in PREFIXES and self.current.kind == "punct" and self.current.text == ".":
            self.advance()
            key_token = self.current
            if key_token.kind in ("word", "keyword", "number"):
                key = key_token.text
            elif key_token.kind in ("backtick", "string"):
                key = key_token.text[1:-1]
            else:
                raise self.fail(f"expected a key after '{token.text}.'", "e.g. metrics.rmse")
            self.advance()
            # keys may contain dots: metrics.val.loss
            while self.current.kind == "punct" and self.current.text == ".":
                self.advance()
                if self.current.kind not in ("word", "keyword", "number"):
                    raise self.fail("expected a key part after '.'", "e.g. metrics.val.loss")
                key += "." + self.advance().text
            kind = PREFIXES[lowered]
            if kind == "attribute":
                return self.attribute(key_token, key)
            if not key:
                raise _error(self.source, key_token, "empty key", "name the key")
            return Field(kind, key)
        return self.attribute(token, token.text)

    def attribute(self, token: Token, name: str) -> Field:
        column = ATTRIBUTES.get(name.lower())
        if column is None:
            raise _error(
                self.source,
                token,
                f"unknown attribute {name!r}",
                "use metrics.<key>, params.<key>, tags.<key> or one of "
                + ", ".join(sorted(ATTRIBUTES)),
            )
        return Field("attribute", column)

    def operator(self) -> str:
        token = self.current
        if token.kind == "op":
            self.advance()
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        if token.kind == "keyword" and token.upper in ("LIKE", "ILIKE", "IN"):
            self.advance()
            return token.upper
        if token.kind == "keyword" and token.upper == "NOT":
            self.advance()
            if self.is_keyword("IN"):
                self.advance()
                return "NOT IN"
            raise self.fail("expected IN after NOT", "write NOT IN ('a', 'b')")
        raise self.fail("expected an operator", "use = != < <= > >= LIKE ILIKE IN or NOT IN")

    def value(self, field: Field) -> Value:
        token = self.current
        if token.kind == "number":
            self.advance()
            if field.kind in ("param", "tag") or (
                field.kind == "attribute" and field.key not in TIME_ATTRIBUTES
            ):
                raise _error(
                    self.source,
                    token,
                    f"{field.kind} values are text",
                    f"quote the value: '{token.text}'",
                )
            return _number(token.text)
        if token.kind == "string":
            self.advance()
            if field.kind == "metric":
                raise _error(self.source, token, "metric values are numbers", "drop the quotes")
            return _unquote(token.text)
        raise self.fail("expected a value", "write a number (metrics) or a quoted string ('rf')")

    def value_list(self, field: Field) -> tuple[Value, ...]:
        if not (self.current.kind == "punct" and self.current.text == "("):
            raise self.fail("expected '(' after IN", "write IN ('a', 'b')")
        self.advance()
        values = [self.value(field)]
        while self.current.kind == "punct" and self.current.text == ",":
            self.advance()
            values.append(self.value(field))
            if len(values) > MAX_IN_VALUES:
                raise _too_big(
                    self.what, f"more than {MAX_IN_VALUES} IN values", "split the search"
                )
        if not (self.current.kind == "punct" and self.current.text == ")"):
            raise self.fail("expected ',' or ')' in the IN list", "write IN ('a', 'b')")
        self.advance()
        return tuple(values)

    # order by ------------------------------------------------------------------------
    def parse_order(self) -> OrderKey:
        field = self.field()
        descending = False
        if self.is_keyword("DESC") or self.is_keyword("ASC"):
            descending = self.advance().upper == "DESC"
        if self.current.kind != "end":
            raise self.fail("expected ASC, DESC or the end", "e.g. metrics.rmse DESC")
        return OrderKey(field, descending)


def _number(text: str) -> float | int:
    """An integer literal stays exact while it fits 64 bits; anything else is a float
    (1e400 is infinity, which compares as it should)."""
    if re.fullmatch(r"[-+]?\d+", text) and abs(int(text)) <= MAX_INT:
        return int(text)
    number = float(text)
    if number.is_integer() and abs(number) <= MAX_INT and "." not in text:
        return int(number)
    return number


def parse_filter(source: str) -> Expr | None:
    """Parse a filter; an empty filter is None (all runs)."""
    return _Parser(source, "filter").parse_filter()


def parse_order_by(clauses: list[str]) -> list[OrderKey]:
    if len(clauses) > MAX_ORDER_KEYS:
        raise _too_big(
            "order_by", f"{len(clauses)} keys, the limit is {MAX_ORDER_KEYS}", "order by fewer keys"
        )
    keys = []
    for clause in clauses:
        try:
            keys.append(_Parser(clause, "order_by").parse_order())
        except InvalidInput as exc:
            exc.detail["field"] = "order_by"
            raise
    return keys
