"""Text → statements: declarations and the one query, with errors pointing into the text.

Every input either parses or raises :class:`~sql.errors.ParseError` with a line and column, in
bounded time: the text's size and its nesting are checked on the tokens (the tokenizer is a
loop) before sqlglot's recursive parser sees them, and the parsed tree's depth before the
compiler (recursive too) walks it. The limits are far above hand-written SQL; see docs/SQL.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import ParseError as GlotParseError
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from sql.dialect import Declaration, Tablestream, split_statement
from sql.errors import E_ALREADY_DECLARED, E_NO_QUERY, BindError, ParseError
from sql.parse_errors import parse_error
from sql.time_travel import check_versions
from sql.window import WindowSpec

E_ONE_QUERY = "only one query statement is allowed, after the declarations"
E_NOT_SELECT = "expected a SELECT query"
E_TOO_LONG = (
    "the SQL text is {size:,} characters long; the limit is {limit:,} "
    "(put long value lists in a table and use IN (SELECT ...))"
)
E_CONTROL = "control character U+{code:04X} in the SQL text"
E_TOO_DEEP = "nesting deeper than {limit} levels (parentheses or subqueries)"
E_EXPRESSION_DEEP = "expression nested deeper than {limit} levels (operators or function calls)"
E_TOO_COMPLEX = "the query is nested too deeply to compile"
E_TOKENS = "cannot read the SQL text here"
E_UNCLOSED_COMMENT = "unterminated /* comment: the text ends before its */"
E_UNTERMINATED = "unterminated {quote}...{quote}: the text ends before its closing {quote}"

#: Python frames a compile may use: enough for the nesting limits below (sqlglot's parser takes
#: ~20 frames per parenthesis), far below what the C stack holds on Python 3.11.
RECURSION_LIMIT = 8000
#: Longest SQL text accepted, in characters (parsing is linear, but not fast: ~20 µs a token).
MAX_SQL_CHARS = 262_144
#: Deepest parenthesis nesting accepted (subqueries count one per parenthesis).
MAX_NESTING = 40
#: Deepest parsed expression tree accepted (``1 + 1 + ...`` is one level per ``+``; a chain of
#: ANDs or of ORs is one level).
MAX_EXPRESSION_DEPTH = 150
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(slots=True)
class Script:
    """A parsed script: declarations first, then (optionally) the query."""

    sql: str
    declarations: dict[str, Declaration] = field(default_factory=dict)
    query: exp.Select | None = None
    emit: str | None = None
    emit_offset: int = 0
    sink: Declaration | None = None
    window: WindowSpec | None = None
    #: Where the query statement starts (errors without a position of their own point there).
    query_offset: int = 0

    def require_query(self) -> exp.Select:
        if self.query is None:
            raise ParseError(E_NO_QUERY, sql=self.sql, offset=len(self.sql.rstrip()))
        return self.query


@contextmanager
def recursion_headroom(sql: str) -> Iterator[None]:
    """Parse and compile with :data:`RECURSION_LIMIT` frames; a RecursionError left anyway
    becomes a ParseError (at the first token) instead of escaping as a Python error."""
    old = sys.getrecursionlimit()
    if old < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    try:
        yield
    except RecursionError:
        first = len(sql) - len(sql.lstrip())
        raise ParseError(E_TOO_COMPLEX, sql=sql, offset=first) from None
    finally:
        if old < RECURSION_LIMIT:
            sys.setrecursionlimit(old)


def tokenize(sql: str) -> list[Token]:
    """All tokens of ``sql`` after the size and character checks, or a positioned ParseError."""
    if len(sql) > MAX_SQL_CHARS:
        raise ParseError(
            E_TOO_LONG.format(size=len(sql), limit=MAX_SQL_CHARS), sql=sql, offset=MAX_SQL_CHARS
        )
    bad = _CONTROL.search(sql)
    if bad is not None:
        raise ParseError(E_CONTROL.format(code=ord(bad.group())), sql=sql, offset=bad.start())
    tokenizer = Tablestream().tokenizer()
    try:
        tokens = tokenizer.tokenize(sql)
    except TokenError:
        at = _token_error_offset(sql, tokenizer.tokens)
        quoted = at < len(sql) and sql[at] in "'\"`"
        message = E_UNTERMINATED.format(quote=sql[at]) if quoted else E_TOKENS
        if sql.startswith("/*", at):
            message = E_UNCLOSED_COMMENT
        raise ParseError(message, sql=sql, offset=at) from None
    depth = 0
    for t in tokens:
        if t.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise ParseError(E_TOO_DEEP.format(limit=MAX_NESTING), sql=sql, offset=t.start)
        elif t.token_type == TokenType.R_PAREN:
            depth -= 1
    return tokens


def _token_error_offset(sql: str, read: list[Token]) -> int:
    """Where the token the tokenizer failed on starts: after the last token it read, past
    blanks and comments (an unterminated string: its opening quote)."""
    pos = read[-1].end + 1 if read else 0
    while pos < len(sql):
        if sql[pos].isspace():
            pos += 1
        elif sql.startswith("--", pos):
            end = sql.find("\n", pos)
            pos = len(sql) if end < 0 else end + 1
        elif sql.startswith("/*", pos):
            end = sql.find("*/", pos + 2)
            if end < 0:
                return pos
            pos = end + 2
        else:
            return pos
    return min(pos, max(len(sql) - 1, 0))


def statements(sql: str) -> list[list[Token]]:
    """The script's tokens, one list per statement (split at semicolons)."""
    out: list[list[Token]] = [[]]
    for t in tokenize(sql):
        if t.token_type == TokenType.SEMICOLON:
            out.append([])
        else:
            out[-1].append(t)
    return [s for s in out if s]


def parse_select(sql: str, start: int, end: int, cut: tuple[int, int] | None = None) -> exp.Select:
    """Parse the SELECT at ``sql[start:end]`` (``cut``: a span inside it to skip, the streaming
    WINDOW clause). Positions stay absolute in ``sql``."""
    tokens = [t for t in tokenize(sql) if start <= t.start < end]
    return _parse_tokens(sql, tokens, start, cut)


def _parse_tokens(
    sql: str,
    tokens: list[Token],
    start: int,
    cut: tuple[int, int] | None,
    names: frozenset[str] = frozenset(),
) -> exp.Select:
    if cut is not None:
        tokens = [t for t in tokens if not cut[0] <= t.start < cut[1]]
    try:
        trees = Tablestream().parser().parse(tokens, sql)
    except GlotParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        raise parse_error(sql, tokens, err, start, names) from exc
    except TokenError as exc:
        raise ParseError(str(exc), sql=sql, offset=start) from exc
    tree = trees[0] if len(trees) == 1 else None
    if not isinstance(tree, exp.Select):
        raise ParseError(E_NOT_SELECT, sql=sql, offset=start)
    _check_depth(sql, tree)
    check_versions(sql, tree)
    return tree


def _check_depth(sql: str, tree: exp.Expr) -> None:
    """Reject trees deeper than the compiler's recursion can take (walked with a stack)."""
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            from sql.bind.scope import offset_of

            raise ParseError(
                E_EXPRESSION_DEEP.format(limit=MAX_EXPRESSION_DEPTH),
                sql=sql,
                offset=offset_of(node),
            )
        for child in node.iter_expressions():
            # AND/OR chains are flattened by the compiler (and sqlglot prints them with a
            # loop): a long chain of one connective is one level, not one per term.
            same_chain = isinstance(child, exp.Connector) and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


def parse_script(sql: str) -> Script:
    script = Script(sql)
    for tokens in statements(sql):
        env = split_statement(sql, tokens)
        decl = env.declaration
        if env.select_span is None:
            if decl is None:
                continue
            if decl.name.lower() in script.declarations:
                raise BindError(
                    E_ALREADY_DECLARED.format(name=decl.name), sql=sql, offset=decl.offset
                )
            script.declarations[decl.name.lower()] = decl
            continue
        if script.query is not None:
            raise ParseError(E_ONE_QUERY, sql=sql, offset=tokens[0].start)
        start, end = env.select_span
        select_tokens = [t for t in tokens if start <= t.start < end]
        names = frozenset(
            n.upper()
            for d in script.declarations.values()
            for n in (d.name, *(c for c in (d.columns or {})))
        )
        script.query = _parse_tokens(sql, select_tokens, start, env.window_span, names)
        script.emit, script.emit_offset, script.sink = env.emit, env.emit_offset, decl
        script.query_offset = tokens[0].start
        script.window = env.window
    return script


def query_scripts(sql: str, spans: Sequence[tuple[int, int]]) -> list[Script]:
    """Each query of a file of several (their statements' ``[start, end)`` spans) as a script:
    the whole file with the *other* queries blanked out, newlines kept — so every script holds
    all the file's declarations and its positions are positions in the file (the worker's
    pipeline files and the offline runner read a file of queries this way)."""
    return [
        parse_script(_blank(sql, [s for j, s in enumerate(spans) if j != i]))
        for i in range(len(spans))
    ]


def _blank(sql: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(sql)
    for start, end in spans:
        for i in range(start, min(end, len(chars))):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)
