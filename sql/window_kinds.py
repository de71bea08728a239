"""The kinds of window of the WINDOW clause — TUMBLING, HOPPING, SESSION — one entry each.

An entry is all a kind of window needs: its keyword, the durations it takes (in the order of the
compact form: ``HOPPING(10s, 2s)`` is size, then advance) and the operator that assigns records
to windows and closes them. Everything else reads this registry: the WINDOW clause parser
(:mod:`sql.window`: which words start a window, which arguments a kind takes, its errors), EXPLAIN
(:meth:`sql.window.WindowSpec.describe`), the compiler (:mod:`sql.compile.window`: the operator, the
default retention) and the typo hints of parse errors (:mod:`sql.parse_errors`). So a new kind of
window is one :func:`register_window_kind` call (docs/SQL.md, "Adding a window kind").
"""

from __future__ import annotations

from dataclasses import dataclass

from sql.operators.window import WindowedAggregate
from sql.operators.window_session import SessionWindowAggregate
from sql.operators.window_time import TimeWindowAggregate

#: The durations a kind may take, each with how an error names it when missing. ``size`` and
#: ``advance`` can also be given by name (``SIZE 10 SECONDS``, ``ADVANCE BY 2 SECONDS``); a
#: missing ``advance`` is the size (tumbling). The WINDOW clause stores them in
#: :class:`sql.window.WindowSpec` (``size_ms``, ``advance_ms``, ``gap_ms``).
DURATIONS = {"size": "a SIZE", "advance": "ADVANCE BY", "gap": "an inactivity gap"}


@dataclass(frozen=True, slots=True)
class WindowKind:
    """One kind of window: ``WINDOW <name>(<durations>...)`` run by ``operator``."""

    #: The keyword (upper case).
    name: str
    #: The durations it takes, all required, in positional order (keys of :data:`DURATIONS`).
    durations: tuple[str, ...]
    #: Assigns each record to its windows and closes them
    #: (:class:`~sql.operators.window.WindowedAggregate`: the watermark, state and emission are
    #: shared; a subclass implements ``assign``, ``close_due``, ``insert`` and ``remove``).
    operator: type[WindowedAggregate]
    #: How long a closed window keeps taking late records under ``late='update'`` when the
    #: clause gives no RETENTION: this duration's value (default: the first one).
    retention: str = ""

    @property
    def default_retention(self) -> str:
        return self.retention or self.durations[0]


#: Keyword → kind.
WINDOW_KINDS: dict[str, WindowKind] = {}


def register_window_kind(kind: WindowKind) -> WindowKind:
    """Add ``kind``; a second kind of the same name is a programming error."""
    name = kind.name.upper()
    if name in WINDOW_KINDS:
        raise ValueError(f"window kind {name} registered twice")
    unknown = [d for d in kind.durations if d not in DURATIONS]
    if unknown or not kind.durations or kind.default_retention not in kind.durations:
        raise ValueError(
            f"window kind {name}: durations {kind.durations} (known: {', '.join(DURATIONS)})"
        )
    WINDOW_KINDS[name] = kind
    return kind


def window_kind(name: str) -> WindowKind | None:
    """The kind named ``name`` (any case), if registered."""
    return WINDOW_KINDS.get(name.upper())


def kinds_text() -> str:
    """The registered keywords as an error lists them: ``TUMBLING, HOPPING or SESSION``."""
    names = list(WINDOW_KINDS)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


#: Epoch-aligned, half-open ``[k·S, (k+1)·S)``: each record in exactly one window.
register_window_kind(WindowKind("TUMBLING", ("size",), TimeWindowAggregate))
#: ``[k·A, k·A + S)``: a record in every window containing it.
register_window_kind(WindowKind("HOPPING", ("size", "advance"), TimeWindowAggregate))
#: Per group, activity separated by more than the gap (:mod:`sql.operators.window_session`).
register_window_kind(WindowKind("SESSION", ("gap",), SessionWindowAggregate))
