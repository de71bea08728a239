"""The WINDOW clause: ``WINDOW TUMBLING|HOPPING|SESSION (...)`` read from sqlglot tokens.

The kinds of window and the durations each takes come from :mod:`sql.window_kinds`.

DuckDB has no such clause, so the dialect cuts it out of the SELECT's text (blanked, offsets
kept) and this module reads it, with errors pointing into the user's text. Both spellings:

* ksqlDB: ``TUMBLING (SIZE 5 SECONDS)``, ``HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS)``,
  ``SESSION (30 SECONDS)``, each with optional ``GRACE PERIOD 1 SECOND`` and ``RETENTION ...``;
* compact: ``TUMBLING(5s)``, ``HOPPING(10s, 2s)``, ``SESSION(30s)``,
  ``TUMBLING(INTERVAL '1' SECOND, ts_field)`` (a trailing name is the event-time field).

All durations are integral milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.tokenizer_core import Token, TokenType

from sql.errors import ParseError
from sql.window_kinds import DURATIONS, WindowKind, kinds_text, window_kind

E_WINDOW_EXPECTED = "expected {what} in the WINDOW clause, got {got!r}"
E_WINDOW_KIND = "unknown window type {got!r} (expected {kinds})"
E_WINDOW_MISSING = "{kind} window needs {what}"
E_WINDOW_EXTRA = "unexpected {what} in a {kind} window"
E_WINDOW_TWICE = "only one WINDOW clause is allowed"
E_WINDOW_PLACE = "the WINDOW clause must come after FROM"
E_DURATION_UNIT = "unknown duration unit {got!r} (use ms, s, m, h, d or MILLISECONDS ... DAYS)"
E_DURATION_VALUE = "a duration must be a whole number of milliseconds, got {got!r}"
E_DURATION_POSITIVE = "{what} must be positive, got {ms} ms"
E_ADVANCE = "ADVANCE BY ({advance} ms) must not exceed SIZE ({size} ms)"
E_BAD_DURATION_TEXT = "{what}: expected a duration like '2s' or '500 milliseconds', got {got!r}"

_UNITS = {
    "MS": 1,
    "MILLISECOND": 1,
    "MILLISECONDS": 1,
    "S": 1000,
    "SEC": 1000,
    "SECS": 1000,
    "SECOND": 1000,
    "SECONDS": 1000,
    "M": 60_000,
    "MIN": 60_000,
    "MINS": 60_000,
    "MINUTE": 60_000,
    "MINUTES": 60_000,
    "H": 3_600_000,
    "HOUR": 3_600_000,
    "HOURS": 3_600_000,
    "D": 86_400_000,
    "DAY": 86_400_000,
    "DAYS": 86_400_000,
}
_NOT_A_NAME = frozenset(
    {TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.STRING, TokenType.NUMBER}
)
_TEXT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A parsed WINDOW clause; ``advance_ms == size_ms`` for tumbling, ``gap_ms`` for sessions."""

    kind: str  # the lower-case name of its sql.window_kinds entry: "tumbling", ...
    size_ms: int = 0
    advance_ms: int = 0
    gap_ms: int = 0
    grace_ms: int = 0
    retention_ms: int | None = None
    time_field: str | None = None
    offset: int = 0  # of the WINDOW keyword in the SQL text
    field_offset: int = 0  # of the time field argument, if any

    @property
    def kind_entry(self) -> WindowKind:
        """Its :data:`sql.window_kinds.WINDOW_KINDS` entry."""
        kind = window_kind(self.kind)
        assert kind is not None, self.kind  # specs are read by the parser, which checks
        return kind

    def duration(self, name: str) -> int:
        """One of :data:`sql.window_kinds.DURATIONS` in milliseconds."""
        return {"size": self.size_ms, "advance": self.advance_ms, "gap": self.gap_ms}[name]

    def describe(self, time_field: str | None) -> str:
        """The canonical (compact) spelling, for EXPLAIN: both syntaxes print the same."""
        args = [format_duration(self.duration(d)) for d in self.kind_entry.durations]
        text = f"{self.kind.upper()}({', '.join(args)})"
        text += f" GRACE {format_duration(self.grace_ms)}"
        if self.retention_ms is not None:
            text += f" RETENTION {format_duration(self.retention_ms)}"
        return text + f" ON {time_field or '_timestamp'}"


def format_duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_duration_text(text: str, what: str) -> int:
    """A duration option value: ``'2s'``, ``'500 milliseconds'``, ``'1500'`` (milliseconds)."""
    m = _TEXT_DURATION.match(text)
    if m is None:
        raise ValueError(E_BAD_DURATION_TEXT.format(what=what, got=text))
    unit = m.group(2).upper() or "MS"
    if unit not in _UNITS:
        raise ValueError(E_DURATION_UNIT.format(got=m.group(2)))
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value):
        raise ValueError(E_DURATION_VALUE.format(got=text))
    return int(value)


def find_window(sql: str, tokens: list[Token]) -> tuple[WindowSpec | None, tuple[int, int] | None]:
    """The WINDOW clause among a SELECT's ``tokens`` (top level only) and its [start, end) span.

    ``WINDOW name AS (...)`` (SQL named windows) is left alone for the SELECT parser.
    """
    depth = 0
    seen_from = False
    found: tuple[WindowSpec, tuple[int, int]] | None = None
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.token_type == TokenType.L_PAREN:
            depth += 1
        elif t.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and t.token_type == TokenType.FROM:
            seen_from = True
        elif depth == 0 and t.text.upper() == "WINDOW" and _is_streaming_window(tokens, i):
            if found is not None:
                raise ParseError(E_WINDOW_TWICE, sql=sql, offset=t.start)
            if not seen_from:
                raise ParseError(E_WINDOW_PLACE, sql=sql, offset=t.start)
            spec, end = _WindowReader(sql, tokens, i).read()
            found = (spec, (t.start, tokens[end - 1].end + 1))
            i = end
            continue
        i += 1
    return (found[0], found[1]) if found else (None, None)


def _is_streaming_window(tokens: list[Token], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    after = tokens[i + 2] if i + 2 < len(tokens) else None
    if nxt is None:
        return True  # a dangling WINDOW: let the reader report what is missing
    if window_kind(nxt.text) is not None:
        return True
    # An unknown kind followed by "(" is a misspelt streaming window, not a named window.
    return after is not None and after.token_type == TokenType.L_PAREN


class _WindowReader:
    def __init__(self, sql: str, tokens: list[Token], i: int) -> None:
        self.sql, self.tokens, self.i = sql, tokens, i + 1  # past WINDOW
        self.start = tokens[i]

    def _peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _fail(self, what: str, t: Token | None) -> ParseError:
        if t is None:
            end = self.tokens[-1].end + 1
            return ParseError(
                E_WINDOW_EXPECTED.format(what=what, got="end of query"), sql=self.sql, offset=end
            )
        return ParseError(
            E_WINDOW_EXPECTED.format(what=what, got=t.text), sql=self.sql, offset=t.start
        )

    def _next(self, what: str) -> Token:
        t = self._peek()
        if t is None:
            raise self._fail(what, None)
        self.i += 1
        return t

    def _word(self, *words: str) -> bool:
        t = self._peek()
        if t is not None and t.token_type != TokenType.STRING and t.text.upper() in words:
            self.i += 1
            return True
        return False

    def read(self) -> tuple[WindowSpec, int]:
        kind_tok = self._next(kinds_text())
        kind = window_kind(kind_tok.text)
        if kind is None:
            raise ParseError(
                E_WINDOW_KIND.format(got=kind_tok.text, kinds=kinds_text()),
                sql=self.sql,
                offset=kind_tok.start,
            )
        if (t := self._next("(")).token_type != TokenType.L_PAREN:
            raise self._fail("(", t)
        named: dict[str, tuple[int, Token]] = {}
        positional: list[tuple[int, Token]] = []
        field: tuple[str, Token] | None = None
        while True:
            first = self._peek()
            if first is None:
                raise self._fail("a duration or )", None)
            if self._word("SIZE"):
                named["size"] = (self._duration(), first)
            elif self._word("ADVANCE"):
                if not self._word("BY"):
                    raise self._fail("BY", self._peek())
                named["advance"] = (self._duration(), first)
            elif self._word("GRACE"):
                self._word("PERIOD")
                named["grace"] = (self._duration(), first)
            elif self._word("RETENTION"):
                named["retention"] = (self._duration(), first)
            elif first.token_type in (TokenType.NUMBER, TokenType.INTERVAL):
                if field is not None:
                    raise self._fail(")", first)
                positional.append((self._duration(), first))
            elif first.token_type not in _NOT_A_NAME:
                self.i += 1
                field = (first.text, first)
            else:
                raise self._fail("SIZE, ADVANCE BY, GRACE PERIOD, a duration or a field", first)
            sep = self._next(", or )")
            if sep.token_type == TokenType.R_PAREN:
                break
            if sep.token_type != TokenType.COMMA:
                raise self._fail(", or )", sep)
        spec = self._build(kind, kind_tok, named, positional, field)
        return spec, self.i

    def _build(
        self,
        window: WindowKind,
        kind_tok: Token,
        named: dict[str, tuple[int, Token]],
        positional: list[tuple[int, Token]],
        field: tuple[str, Token] | None,
    ) -> WindowSpec:
        kind, slots = window.name, window.durations
        values: dict[str, tuple[int, Token]] = {}
        free = [s for s in slots if s not in named]
        if len(positional) > len(free):
            raise ParseError(
                E_WINDOW_EXTRA.format(what="duration", kind=kind),
                sql=self.sql,
                offset=positional[len(free)][1].start,
            )
        values.update(zip(free, positional, strict=False))
        for name, v in named.items():
            if name in ("size", "advance") and name not in slots:
                raise ParseError(
                    E_WINDOW_EXTRA.format(what=name.upper(), kind=kind),
                    sql=self.sql,
                    offset=v[1].start,
                )
            values[name] = v
        for name in slots:
            if name not in values:
                raise ParseError(
                    E_WINDOW_MISSING.format(kind=kind, what=DURATIONS[name]),
                    sql=self.sql,
                    offset=kind_tok.start,
                )
        for name in slots:
            ms, tok = values[name]
            if ms <= 0:
                raise ParseError(
                    E_DURATION_POSITIVE.format(what=name.upper(), ms=ms),
                    sql=self.sql,
                    offset=tok.start,
                )
        size = values["size"][0] if "size" in values else 0
        advance = values["advance"][0] if "advance" in values else size
        if advance > size:
            raise ParseError(
                E_ADVANCE.format(advance=advance, size=size),
                sql=self.sql,
                offset=values["advance"][1].start,
            )
        return WindowSpec(
            kind.lower(),
            size_ms=size,
            advance_ms=advance,
            gap_ms=values["gap"][0] if "gap" in values else 0,
            grace_ms=values["grace"][0] if "grace" in values else 0,
            retention_ms=values["retention"][0] if "retention" in values else None,
            time_field=field[0] if field else None,
            offset=self.start.start,
            field_offset=field[1].start if field else 0,
        )

    def _duration(self) -> int:
        """``5s`` | ``5 SECONDS`` | ``INTERVAL '5' SECOND`` | ``INTERVAL '5 seconds'``."""
        t = self._next("a duration")
        if t.token_type == TokenType.INTERVAL:
            v = self._next("a number")
            if v.token_type == TokenType.STRING:
                m = _TEXT_DURATION.match(v.text)
                if m is None:
                    raise self._fail("a number", v)
                if m.group(2):
                    return self._scale(m.group(1), m.group(2), v)
                return self._scale(m.group(1), self._unit_token().text, v)
            if v.token_type != TokenType.NUMBER:
                raise self._fail("a number", v)
            return self._scale(v.text, self._unit_token().text, v)
        if t.token_type != TokenType.NUMBER:
            raise self._fail("a duration", t)
        return self._scale(t.text, self._unit_token().text, t)

    def _unit_token(self) -> Token:
        u = self._next("a unit (ms, s, m, h, d, SECONDS, ...)")
        if (
            u.token_type not in (TokenType.VAR, TokenType.IDENTIFIER)
            and u.text.upper() not in _UNITS
        ):
            raise self._fail("a unit (ms, s, m, h, d, SECONDS, ...)", u)
        if u.text.upper() not in _UNITS:
            raise ParseError(E_DURATION_UNIT.format(got=u.text), sql=self.sql, offset=u.start)
        return u

    def _scale(self, number: str, unit: str, at: Token) -> int:
        factor = _UNITS.get(unit.upper())
        if factor is None:
            raise ParseError(E_DURATION_UNIT.format(got=unit), sql=self.sql, offset=at.start)
        value = float(number) * factor
        if value != int(value):
            raise ParseError(E_DURATION_VALUE.format(got=number), sql=self.sql, offset=at.start)
        return int(value)
