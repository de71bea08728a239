"""Text → statements: declarations and the one query, with errors pointing into the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as GlotParseError
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from sql.dialect import Declaration, Tablestream, split_statement
from sql.errors import E_ALREADY_DECLARED, E_ARITY, E_NO_QUERY, BindError, ParseError
from sql.functions import BY_NODE, REGISTRY
from sql.window import WindowSpec

_TOKEN_RE = re.compile(r"<Token token_type: [^,]*, text: (.*?), line: .*?>")
_MISSING_ARG = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")
_TOO_MANY_ARGS = re.compile(
    r"The number of provided arguments \((\d+)\) is greater than the maximum number of "
    r"supported arguments \((\d+)\)"
)
E_ONE_QUERY = "only one query statement is allowed, after the declarations"
E_NOT_SELECT = "expected a SELECT query"


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

    def require_query(self) -> exp.Select:
        if self.query is None:
            raise ParseError(E_NO_QUERY, sql=self.sql, offset=len(self.sql.rstrip()))
        return self.query


def _statements(sql: str) -> list[list[Token]]:
    try:
        tokens = Tablestream().tokenize(sql)
    except TokenError as exc:
        raise ParseError(str(exc), sql=sql, offset=0) from exc
    out: list[list[Token]] = [[]]
    for t in tokens:
        if t.token_type == TokenType.SEMICOLON:
            out.append([])
        else:
            out[-1].append(t)
    return [s for s in out if s]


def _blank(text: str) -> str:
    return "".join(c if c == "\n" else " " for c in text)


def parse_select(sql: str, start: int, end: int, cut: tuple[int, int] | None = None) -> exp.Select:
    """Parse ``sql[start:end]`` keeping absolute offsets (the rest is blanked, newlines kept).

    ``cut``: a span inside the SELECT blanked too (the streaming WINDOW clause).
    """
    body = sql[start:end]
    if cut is not None:
        a, b = cut[0] - start, cut[1] - start
        body = body[:a] + _blank(body[a:b]) + body[b:]
    text = _blank(sql[:start]) + body + _blank(sql[end:])
    try:
        tree = sqlglot.parse_one(text, read=Tablestream)
    except GlotParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line, col = int(err.get("line") or 1), int(err.get("col") or 1)
        highlight = str(err.get("highlight") or "")
        line_start = 0
        for _ in range(line - 1):
            line_start = sql.index("\n", line_start) + 1
        offset = max(line_start, line_start + col - max(len(highlight), 1))
        reason = _TOKEN_RE.sub(r"'\1'", str(err.get("description") or exc).split(". Line")[0])
        reason = _arity_reason(reason, sql, offset)
        raise ParseError(reason, sql=sql, offset=offset) from exc
    except TokenError as exc:
        raise ParseError(str(exc), sql=sql, offset=start) from exc
    if not isinstance(tree, exp.Select):
        raise ParseError(E_NOT_SELECT, sql=sql, offset=start)
    return tree


def _arity_reason(reason: str, sql: str, offset: int) -> str:
    """sqlglot checks the argument count of the functions it knows while parsing; say it the
    way the registry does, naming the function."""
    m = _MISSING_ARG.search(reason)
    if m is not None:
        node = getattr(exp, m.group(2), None)
        fn = BY_NODE.get(node) if isinstance(node, type) else None
        if fn is not None:
            return f"{fn.name} takes {fn.arity_text}"
        if isinstance(node, type) and issubclass(node, exp.Func):
            return f"{node.sql_names()[0]} is missing its argument {m.group(1)!r}"
        return reason
    m = _TOO_MANY_ARGS.search(reason)
    if m is not None:
        name = _called_name(sql, offset)
        fn = REGISTRY.get(name.upper()) if name else None
        if fn is not None:
            return E_ARITY.format(name=fn.name, expected=fn.arity_text, got=m.group(1))
        if name:
            return E_ARITY.format(
                name=name.upper(), expected=f"at most {m.group(2)}", got=m.group(1)
            )
    return reason


def _called_name(sql: str, offset: int) -> str:
    """The name before the innermost parenthesis still open at ``offset``."""
    depth = 0
    for i in range(min(offset, len(sql) - 1), -1, -1):
        ch = sql[i]
        if ch == ")" and i != offset:
            depth += 1
        elif ch == "(":
            if depth == 0:
                m = re.search(r"(\w+)\s*$", sql[:i])
                return m.group(1) if m else ""
            depth -= 1
    return ""


def parse_script(sql: str) -> Script:
    script = Script(sql)
    for tokens in _statements(sql):
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
        script.query = parse_select(sql, *env.select_span, cut=env.window_span)
        script.emit, script.emit_offset, script.sink = env.emit, env.emit_offset, decl
        script.window = env.window
    return script
