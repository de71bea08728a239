"""sqlglot's parse errors, said so a person can act on them.

sqlglot reports where it gave up: often the token *after* the mistake (``SELECT a FORM orders``
parses ``FORM`` as an alias and fails at ``orders``). Here the error names the unexpected token at
its own line and column; a word close to a keyword earlier in the statement (``FORM``, ``WHRE``,
``SELEC``) is the likelier culprit and is reported instead, with the keyword suggested; an
unclosed parenthesis is reported at the parenthesis; an argument count sqlglot checks is said the
way the function registry says it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from sql.errors import E_ARITY, ParseError
from sql.functions import BY_NODE, REGISTRY
from sql.window_kinds import WINDOW_KINDS

#: The clause keywords a typo is checked against (the ones a misspelling breaks the parse at),
#: with the kinds of window (:data:`sql.window_kinds.WINDOW_KINDS`, read at each error).
KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "JOIN", "LEFT", "INNER", "ON", "ORDER",
    "LIMIT", "WINDOW", "EMIT", "AND", "OR", "NOT", "IN", "EXISTS", "AS", "CASE", "WHEN", "THEN",
    "ELSE", "END", "DISTINCT", "BETWEEN", "LIKE", "IS", "NULL", "INTERVAL", "CAST", "CREATE",
    "TABLE", "STREAM", "WITH", "CHANGES", "FINAL",
)  # fmt: skip
E_UNEXPECTED = "unexpected {token!r}"
E_UNCLOSED = "'(' is never closed"
E_UNOPENED = "')' closes no '('"
E_TYPO = "unexpected {token!r}"

_TOKEN_RE = re.compile(r"<Token token_type: [^,]*, text: (.*?), line: .*?>")
_MISSING_ARG = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")
_TOO_MANY_ARGS = re.compile(
    r"The number of provided arguments \((\d+)\) is greater than the maximum number of "
    r"supported arguments \((\d+)\)"
)


def parse_error(
    sql: str,
    tokens: list[Token],
    err: dict[str, Any],
    fallback: int,
    names: frozenset[str] = frozenset(),
) -> ParseError:
    """The error to raise for sqlglot's ``err`` while parsing ``tokens`` (absolute positions).

    ``names``: the tables, streams and columns the script declares (upper case): a word among
    them is no misspelt keyword, however close (``orders`` is not ``ORDER``).
    """
    line, col = int(err.get("line") or 0), int(err.get("col") or 0)
    at = next((t for t in tokens if t.line == line and t.col == col), None)
    offset = at.start if at is not None else fallback
    description = str(err.get("description") or "")
    reason = _TOKEN_RE.sub(r"'\1'", description.split(". Line")[0])
    reason = reason.replace("'SENTINEL'", "the end of the query")
    arity = _arity_reason(reason, sql, offset)
    if arity is not None:
        return ParseError(arity, sql=sql, offset=offset)
    paren = _unbalanced(tokens)
    if paren is not None:
        return paren_error(sql, paren)
    typo = _typo(tokens, at, names)
    if typo is not None:
        tok, keyword = typo
        return ParseError(
            E_TYPO.format(token=tok.text), sql=sql, offset=tok.start, suggestion=keyword
        )
    if reason.startswith("Invalid expression / Unexpected token") and at is not None:
        reason = E_UNEXPECTED.format(token=at.text)
    elif at is not None and reason and "'" not in reason:
        reason = f"{reason} (at {at.text!r})"
    return ParseError(reason or E_UNEXPECTED.format(token="?"), sql=sql, offset=offset)


def paren_error(sql: str, tok: Token) -> ParseError:
    message = E_UNCLOSED if tok.token_type == TokenType.L_PAREN else E_UNOPENED
    return ParseError(message, sql=sql, offset=tok.start)


def _typo(tokens: list[Token], at: Token | None, names: frozenset[str]) -> tuple[Token, str] | None:
    """The last plain word up to the error that is not a keyword but is spelt like one."""
    upto = tokens if at is None else tokens[: tokens.index(at) + 1]
    keywords = (*KEYWORDS, *WINDOW_KINDS)
    for tok in reversed(upto):
        if tok.token_type != TokenType.VAR:
            continue
        word = tok.text.upper()
        if word in keywords or word in names or len(word) < 3:
            continue
        match = difflib.get_close_matches(word, keywords, n=1, cutoff=0.75)
        # A keyword with letters added (ORDERS, ENDS) is a name far more often than a typo.
        if match and not (word.startswith(match[0]) and len(word) > len(match[0])):
            return tok, match[0]
    return None


def _unbalanced(tokens: list[Token]) -> Token | None:
    """The first ``(`` never closed or ``)`` closing nothing, if any."""
    stack: list[Token] = []
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            stack.append(tok)
        elif tok.token_type == TokenType.R_PAREN:
            if not stack:
                return tok
            stack.pop()
    return stack[0] if stack else None


def _arity_reason(reason: str, sql: str, offset: int) -> str | None:
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
        return None
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
    return None


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
