"""The tablestream SQL dialect: DuckDB's expression grammar plus streaming statement envelopes.

sqlglot parses every SELECT (subqueries, joins, ``FOR SYSTEM_TIME AS OF``) with the DuckDB
grammar. The streaming statements around it — ``CREATE TABLE|STREAM name (cols) WITH (...)
[AS SELECT ...] [EMIT CHANGES|FINAL]`` and the SELECT's ``WINDOW TUMBLING|HOPPING|SESSION (...)``
clause (:mod:`sql.window`) — are read here from sqlglot's tokens, so the SELECT keeps its absolute
offsets (it is parsed from the full text with the envelope blanked out) and every error points
into the user's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokenizer_core import Token, TokenType

from sql.errors import ParseError
from sql.types import SqlType, from_datatype
from sql.window import WindowSpec, find_window

#: Record metadata readable as columns of any stream (``_key`` also on tables).
PSEUDO_COLUMNS = ("_key", "_timestamp", "_event_time", "_partition", "_offset")

E_EXPECTED = "expected {what}, got {got!r}"
E_UNKNOWN_TYPE = "unknown or unsupported type {text!r}"
E_UNCLOSED = "unclosed parenthesis"


class Tablestream(DuckDB):
    """DuckDB's grammar; the streaming envelope is handled by :func:`split_statement`."""

    class Parser(DuckDBParser):
        # Time travel: sqlglot reads ``FOR SYSTEM_TIME AS OF`` and ``FOR VERSION AS OF`` into
        # ``exp.Version``; the SQL:2011 spelling ``FOR SYSTEM_VERSION AS OF n`` and Iceberg's
        # ``AT SNAPSHOT n`` become the same node (``this`` VERSION / SNAPSHOT).
        VERSION_PHRASES = {
            **DuckDBParser.VERSION_PHRASES,
            ("FOR", "SYSTEM_VERSION"): "VERSION",
            ("AT", "SNAPSHOT"): "SNAPSHOT",
        }


@dataclass(slots=True)
class Declaration:
    """``CREATE TABLE|STREAM name (cols) WITH (options)``; also the sink of ``... AS SELECT``.
    ``CREATE CATALOG name WITH (connector=..., ...)`` is one too (kind ``catalog``): its tables
    are named ``name.schema.table`` in queries."""

    kind: str  # "table" | "stream"
    name: str
    offset: int
    columns: dict[str, SqlType] | None = None
    primary_key: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Envelope:
    """What surrounds one statement's SELECT (if any): its span and the streaming clauses."""

    declaration: Declaration | None
    select_span: tuple[int, int] | None  # [start, end) offsets of the SELECT text
    emit: str | None  # "changes" | "final" | None
    emit_offset: int = 0
    window: WindowSpec | None = None
    window_span: tuple[int, int] | None = None  # blanked out of the SELECT text


class _Tokens:
    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def word(self, ahead: int = 0) -> str:
        t = self.peek(ahead)
        return t.text.upper() if t is not None and t.token_type != TokenType.STRING else ""

    def next(self) -> Token:
        t = self.peek()
        if t is None:
            end = self.tokens[-1].end + 1 if self.tokens else len(self.sql)
            raise ParseError(E_EXPECTED.format(what="more input", got=""), sql=self.sql, offset=end)
        self.i += 1
        return t

    def expect_name(self, what: str) -> Token:
        t = self.next()
        if not _is_name(t):
            raise ParseError(E_EXPECTED.format(what=what, got=t.text), sql=self.sql, offset=t.start)
        return t

    def expect(self, what: str, *types: TokenType) -> Token:
        t = self.next()
        if types and t.token_type not in types:
            raise ParseError(E_EXPECTED.format(what=what, got=t.text), sql=self.sql, offset=t.start)
        return t

    def expect_word(self, *words: str) -> Token:
        t = self.next()
        if t.text.upper() not in words:
            what = " or ".join(words)
            raise ParseError(E_EXPECTED.format(what=what, got=t.text), sql=self.sql, offset=t.start)
        return t


_PUNCTUATION = frozenset(
    {TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA, TokenType.EQ, TokenType.STRING}
)


def _is_name(t: Token) -> bool:
    return t.token_type not in _PUNCTUATION or t.token_type == TokenType.IDENTIFIER


def split_statement(sql: str, tokens: list[Token]) -> Envelope:
    """Read the envelope of one statement given as its tokens (no trailing semicolon)."""
    ts = _Tokens(sql, tokens)
    emit, emit_offset = None, 0
    if len(tokens) >= 2 and tokens[-2].text.upper() == "EMIT":
        mode = tokens[-1].text.upper()
        if mode not in ("CHANGES", "FINAL"):
            raise ParseError(
                E_EXPECTED.format(what="CHANGES or FINAL", got=tokens[-1].text),
                sql=sql,
                offset=tokens[-1].start,
            )
        emit, emit_offset = mode.lower(), tokens[-2].start
        ts.tokens = tokens = tokens[:-2]
    if not tokens:
        return Envelope(None, None, emit, emit_offset)
    if ts.word() != "CREATE":
        window, span = find_window(sql, tokens)
        return Envelope(
            None, (tokens[0].start, tokens[-1].end + 1), emit, emit_offset, window, span
        )
    ts.next()
    if ts.word() == "OR" and ts.word(1) == "REPLACE":
        ts.i += 2
    kind_tok = ts.expect_word("TABLE", "STREAM", "CATALOG")
    name_tok = ts.expect_name("a name")
    decl = Declaration(kind_tok.text.lower(), name_tok.text, name_tok.start)
    if ts.peek() is not None and ts.peek().token_type == TokenType.L_PAREN:  # type: ignore[union-attr]
        _columns(ts, decl)
    if ts.word() == "WITH":
        ts.next()
        _options(ts, decl)
    select_span = None
    window, window_span = None, None
    if ts.word() == "AS":
        ts.next()
        start = ts.peek()
        if start is None:
            raise ParseError(E_EXPECTED.format(what="SELECT", got=""), sql=sql, offset=len(sql))
        select_span = (start.start, tokens[-1].end + 1)
        window, window_span = find_window(sql, tokens[ts.i :])
        ts.i = len(tokens)
    if ts.peek() is not None:
        t = ts.next()
        raise ParseError(
            E_EXPECTED.format(what="WITH, AS or ;", got=t.text), sql=sql, offset=t.start
        )
    return Envelope(decl, select_span, emit, emit_offset, window, window_span)


def _columns(ts: _Tokens, decl: Declaration) -> None:
    ts.next()  # (
    columns: dict[str, SqlType] = {}
    while True:
        if ts.word() in ("PRIMARY KEY", "PRIMARY"):
            if ts.next().text.upper() == "PRIMARY":
                ts.expect_word("KEY")
            ts.expect("(", TokenType.L_PAREN)
            decl.primary_key = ts.expect_name("a column name").text
            ts.expect(")", TokenType.R_PAREN)
        else:
            name = ts.expect_name("a column name")
            type_tokens: list[Token] = []
            depth = 0
            while True:
                t = ts.peek()
                if t is None:
                    raise ParseError(E_UNCLOSED, sql=ts.sql, offset=name.start)
                if depth == 0 and t.token_type in (TokenType.COMMA, TokenType.R_PAREN):
                    break
                if depth == 0 and t.text.upper() in (
                    "PRIMARY KEY",
                    "PRIMARY",
                    "KEY",
                    "NOT",
                    "NULL",
                ):
                    # ``col TYPE PRIMARY KEY`` (tables) or ksqlDB's ``col TYPE KEY`` (a stream's
                    # record key holds this column: sql.compile.partitioning).
                    if t.text.upper() in ("PRIMARY KEY", "PRIMARY", "KEY"):
                        decl.primary_key = name.text
                    ts.next()
                    continue
                depth += t.token_type == TokenType.L_PAREN
                depth -= t.token_type == TokenType.R_PAREN
                type_tokens.append(ts.next())
            columns[name.text] = _type(ts.sql, name, type_tokens)
        sep = ts.expect(", or )", TokenType.COMMA, TokenType.R_PAREN)
        if sep.token_type == TokenType.R_PAREN:
            break
    decl.columns = columns


def _type(sql: str, name: Token, type_tokens: list[Token]) -> SqlType:
    type_tokens = [t for t in type_tokens if t.text.upper() != "KEY"]
    if not type_tokens:
        raise ParseError(E_EXPECTED.format(what="a type", got=""), sql=sql, offset=name.end + 1)
    text = sql[type_tokens[0].start : type_tokens[-1].end + 1]
    try:
        parsed = exp.DataType.build(text, dialect="duckdb")
    except Exception as exc:
        raise ParseError(
            E_UNKNOWN_TYPE.format(text=text), sql=sql, offset=type_tokens[0].start
        ) from exc
    t = from_datatype(parsed)
    if t is None:
        raise ParseError(E_UNKNOWN_TYPE.format(text=text), sql=sql, offset=type_tokens[0].start)
    return t


def _options(ts: _Tokens, decl: Declaration) -> None:
    ts.expect("(", TokenType.L_PAREN)
    while True:
        key = ts.next()
        ts.expect("=", TokenType.EQ)
        value = ts.next()
        decl.options[key.text.lower()] = value.text
        sep = ts.expect(", or )", TokenType.COMMA, TokenType.R_PAREN)
        if sep.token_type == TokenType.R_PAREN:
            return


def from_of(select: exp.Expr) -> exp.From | None:
    """The FROM clause of ``select`` (sqlglot 30 keys it ``from_``; older versions ``from``)."""
    from_ = select.args.get("from_") or select.args.get("from")
    return from_ if isinstance(from_, exp.From) else None


def sql_text(node: exp.Expr) -> str:
    """``node`` as EXPLAIN prints it (DuckDB spelling), without copying the tree first: the
    copy costs more than the printing on large expressions (a 20,000-item IN list)."""
    return node.sql(dialect="duckdb", copy=False)


def conjunction_text(terms: list[exp.Expr]) -> str:
    """AND-terms joined back as the query has them: an OR term keeps its brackets
    (``a = 1 AND (b = 2 OR b = 3)``, not ``a = 1 AND b = 2 OR b = 3``)."""
    return " AND ".join(
        f"({sql_text(t)})" if isinstance(t, (exp.Or, exp.Xor)) else sql_text(t) for t in terms
    )
