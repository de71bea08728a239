"""The text of one generated function and the namespace it runs in.

Values never enter the text: every object the code uses (closures, tables' ``get``, constants,
column names beyond plain literals) is bound as a global of the generated module under a made-up
name; only local names, ``repr`` of strings and the literals None/True/False are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: A line kept only when the function calls closures (they read the env list): see
#: :meth:`Writer.env_line`.
ENV_MARK = "\0env\0"


class Writer:
    """Lines at an indentation, temporaries, bound globals and the values already computed on
    the current path (common subexpressions: one layer per nested block, dropped when the block
    ends, so a value is reused only where the code computing it surely ran)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.namespace: dict[str, Any] = {}
        self._bound: dict[tuple[str, int], str] = {}
        self._n = 0
        self._known: list[dict[Any, str]] = [{}]
        #: Set when the code calls a closure: the env lines are then kept.
        self.uses_env = False

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def env_line(self, text: str) -> None:
        """A line setting env slots, kept only if some closure reads them."""
        self.lines.append(ENV_MARK + "    " * self.depth + text)

    def temp(self, prefix: str = "t") -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def bind(self, obj: Any, prefix: str = "g") -> str:
        """The global name of ``obj`` (the same name for the same object)."""
        key = (prefix, id(obj))
        name = self._bound.get(key)
        if name is None:
            name = self._bound[key] = f"{prefix}{len(self._bound)}"
            self.namespace[name] = obj
        return name

    def const(self, value: Any) -> str:
        if value is None or value is True or value is False:
            return repr(value)
        return self.bind(value, "K")

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self.depth += 1
        self._known.append({})
        try:
            yield
        finally:
            self._known.pop()
            self.depth -= 1

    def known(self, key: Any) -> str | None:
        for layer in reversed(self._known):
            name: str | None = layer.get(key)
            if name is not None:
                return name
        return None

    def remember(self, key: Any, name: str) -> None:
        self._known[-1][key] = name

    def forget_all(self) -> None:
        """A new pass over the records: nothing computed before is in scope."""
        self._known = [{}]

    def source(self) -> str:
        keep = self.uses_env
        out = []
        for text in self.lines:
            if text.startswith(ENV_MARK):
                if not keep:
                    continue
                text = text[len(ENV_MARK) :]
            out.append(text)
        return "\n".join(out) + "\n"
