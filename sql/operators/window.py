"""Windowed GROUP BY on event time: the watermark, closing, lateness; the window life cycle.

Time: a record's event time (epoch ms) comes from the query's time field or the record timestamp.
The watermark is the largest event time seen minus the allowed out-of-orderness; it advances on
every record of the stream (also those WHERE drops), before the record itself is aggregated.

A time window ``[start, end)`` closes when the watermark reaches ``end + grace``: EMIT FINAL
emits its row then (in close order, then creation order), and its state is dropped. A record all
of whose windows are closed is late: :class:`~sql.errors.LateRecordError` — or, with
``late='update'``, closed windows are kept ``retention`` longer, take the late record and emit
their corrected row again (both EMIT modes). A hopping record that is late for only some of its
windows updates the open ones (``late_drops`` counts the skipped window updates).

Which windows a record falls in is a subclass's :meth:`WindowedAggregate.assign`: tumbling and
hopping in :mod:`sql.operators.window_time`, sessions in :mod:`sql.operators.window_session`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.codec import dumps
from sql.errors import EventTimeError, LateRecordError, StateError
from sql.operators.aggregate import E_STATE_SHAPE, AggregateOperator, Row
from sql.runtime import Env, Fn
from sql.runtime.accumulators import Accumulator
from sql.runtime.parts import Aggregation
from sql.runtime.state import encode

if TYPE_CHECKING:  # sql.window reads the kinds of window (sql.window_kinds), which import this
    from sql.window import WindowSpec

E_LATE = (
    "late record: event time {event_time} falls in {window} which closed when the "
    "watermark reached {due} (watermark {watermark}, grace {grace} ms{retention})"
)
E_NO_EVENT_TIME = "no usable event time: {source} is {value!r}"
#: The watermark before any (a clock that does not know every source partition yet).
NO_WATERMARK = -(2**62)
#: State id of the stream time (max event time and watermark).
TIME_ID = "time"
#: A window's state entry: a list of these, in this order.
STATE_FIELDS = ("group key", "start", "end", "accumulators", "seq", "closed", "emitted")


@dataclass(frozen=True, slots=True)
class TimePolicy:
    """Query options about time: ``out_of_orderness`` and what late records do."""

    out_of_orderness_ms: int = 0
    late: str = "dlq"  # "dlq": LateRecordError | "update": closed windows take late records
    retention_ms: int = 0  # how long a closed window keeps taking late records ("update")


class Win:
    """One window (or session) of one group."""

    __slots__ = (
        "accs",
        "alive",
        "closed",
        "due",
        "emitted",
        "end",
        "gk",
        "ident",
        "queued",
        "saved_id",
        "seq",
        "start",
    )

    def __init__(
        self, gk: tuple[Any, ...], start: int, end: int, accs: list[Accumulator], seq: int
    ) -> None:
        self.gk, self.start, self.end, self.accs, self.seq = gk, start, end, accs, seq
        self.alive = True
        self.closed = False
        self.emitted = False  # a row for (gk, start) is out and not retracted
        self.due: int | None = None  # watermark at which it closes (or, closed, is dropped)
        self.queued: int | None = None  # due time of its one entry in the close heap
        self.saved_id: str | None = None  # the state id it was last reported under
        #: (start, state id, JSON-safe group key) as last computed: a time window's never
        #: change, a session's id does when its start moves.
        self.ident: tuple[int, str, Any] | None = None


class WindowedAggregate(AggregateOperator):
    """The watermark, the close schedule (a lazy heap) and state; subclasses assign windows."""

    is_windowed = True
    prefix = ""
    #: The stream column giving the event time (None: the record timestamp); set by the compiler
    #: for the generated fold (:mod:`sql.codegen.fold_batch`), which reads it itself.
    time_field: str | None = None

    def __init__(
        self,
        agg: Aggregation,
        outputs: list[Fn],
        names: list[str],
        emit: str,
        spec: WindowSpec,
        policy: TimePolicy,
        time: tuple[Fn, Callable[[Env], Any], str],
        slots: tuple[int, int],
    ) -> None:
        super().__init__(agg, outputs, names, emit)
        self.spec = spec
        self.policy = policy
        self.time_fn, self.raw_time, self.time_source = time
        self.time_slot, self.win_slot = slots
        self.ooo = policy.out_of_orderness_ms
        self.grace = spec.grace_ms
        self.retention = policy.retention_ms if policy.late == "update" else 0
        self.max_time: int | None = None
        self.watermark: int | None = None
        self.heap: list[tuple[int, int, int, Win]] = []
        self.seq = 0
        self.pushes = 0
        self.dirty: set[Win] = set()
        self.dropped: list[str] = []
        self.time_dirty = False
        self.late_drops = 0
        #: Set by a runner whose records come from several source partitions
        #: (:mod:`agents.watermarks`): given the record's env and event time, the event time
        #: every source partition has reached (None: unknown yet). The watermark is that minus
        #: the out-of-orderness — the minimum over the partitions, as in Flink — instead of the
        #: largest event time seen, so a partition read ahead of another makes no record late.
        self.clock: Callable[[Env, int], int | None] | None = None
        self.add = self._adder()  # type: ignore[method-assign,assignment]

    # -- subclass hooks -------------------------------------------------------------------------
    def close_due(self, win: Win) -> int:
        raise NotImplementedError

    def assign(
        self, env: Env, gk: tuple[Any, ...], t: int, vals: list[Any], out: list[Row]
    ) -> None:
        raise NotImplementedError

    def insert(self, win: Win) -> None:
        raise NotImplementedError

    def remove(self, win: Win) -> None:
        raise NotImplementedError

    # -- per record -----------------------------------------------------------------------------
    def observe(self, env: Env, out: list[Row]) -> None:
        """First stage of every record: its event time advances the watermark, closing windows."""
        t = self.time_fn(env)
        env[self.time_slot] = t
        if self.clock is not None:
            if t is not None:
                self._observe_clock(env, t, out)
            return
        if t is not None and (self.max_time is None or t > self.max_time):
            self.max_time = t
            w = self.watermark = t - self.ooo
            self.time_dirty = True
            if self.heap and self.heap[0][0] <= w:
                self._advance(env, w, out)

    def _observe_clock(self, env: Env, t: int, out: list[Row]) -> None:
        """The watermark from :attr:`clock`: the event time every source partition reached,
        minus the out-of-orderness; it never goes back."""
        if self.max_time is None or t > self.max_time:
            self.max_time = t
            self.time_dirty = True
        assert self.clock is not None
        top = self.clock(env, t)
        if top is None:
            # A source partition not heard of yet: the watermark holds (at the dawn of time).
            if self.watermark is None:
                self.watermark = NO_WATERMARK
            return
        w = top - self.ooo
        if self.watermark is None or w > self.watermark:
            self.watermark = w
            self.time_dirty = True
            if self.heap and self.heap[0][0] <= w:
                self._advance(env, w, out)

    def add(self, env: Env, out: list[Row]) -> None:
        t = env[self.time_slot]
        if t is None:
            raise EventTimeError(
                E_NO_EVENT_TIME.format(source=self.time_source, value=self.raw_time(env)),
                reason="no event time",
                source=self.time_source,
            )
        agg = self.agg
        gk = tuple([f(env) for f in agg.keys])
        vals = [1 if s.arg is None else s.arg(env) for s in agg.specs]
        self.assign(env, gk, t, vals, out)

    def _adder(self) -> Callable[[Env, list[Row]], None]:
        """:meth:`add` with the slot, keys and arguments bound once (its per record cost): the
        same steps, for one key and one or two aggregate calls — the common shapes."""
        keys, specs = tuple(self.agg.keys), self.agg.specs
        args = tuple((lambda env: 1) if s.arg is None else s.arg for s in specs)
        if len(keys) != 1 or len(args) > 2:
            return self.add
        (key,) = keys
        slot, assign, general = self.time_slot, self.assign, self.add
        a0 = args[0]
        a1 = args[1] if len(args) == 2 else None

        def add(env: Env, out: list[Row]) -> None:
            t = env[slot]
            if t is None:
                general(env, out)  # raises the EventTimeError
                return
            gk = (key(env),)
            vals = [a0(env)] if a1 is None else [a0(env), a1(env)]
            assign(env, gk, t, vals, out)

        return add

    def finish(self, env: Env) -> list[Row]:
        """End of input: close every window (EMIT FINAL emits them) and drop all state."""
        out: list[Row] = []
        self._advance(env, None, out)
        return out

    # -- shared mechanics -----------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1

    def update(self, env: Env, win: Win, vals: list[Any], out: list[Row]) -> None:
        for acc, v in zip(win.accs, vals, strict=False):  # same length by construction
            acc.add(v)
        self.dirty.add(win)
        if (self.emit == "changes" or win.closed) and self.row_of(env, win, out):
            win.emitted = True

    def row_of(self, env: Env, win: Win, out: list[Row], kind: type[Row] = dict) -> bool:
        env[self.win_slot] = (win.start, win.end)
        return self.row(env, win.gk, win.accs, out, kind)

    def schedule(self, win: Win, closed: bool) -> None:
        win.closed = closed
        due = win.due = self.close_due(win) + (self.retention if closed else 0)
        # One heap entry per window: a session growing on every record must not add one each
        # time; an entry that comes due early is pushed again at the window's current due.
        if win.queued is None or due < win.queued:
            self.push(win, due)

    def push(self, win: Win, due: int) -> None:
        win.queued = due
        self.pushes += 1
        heapq.heappush(self.heap, (due, win.seq, self.pushes, win))

    def bounds_text(self, start: int, end: int) -> str:
        """A window in a late record's error (half-open; a session says otherwise)."""
        return f"[{start}, {end})"

    def late(self, t: int, start: int, end: int, due: int) -> LateRecordError:
        retention = f", retention {self.retention} ms" if self.retention else ""
        bounds = self.bounds_text(start, end)
        return LateRecordError(
            E_LATE.format(
                event_time=t,
                window=bounds,
                due=due,
                watermark=self.watermark,
                grace=self.grace,
                retention=retention,
            ),
            reason="late",
            event_time=t,
            window={"start": start, "end": end},
            watermark=self.watermark,
            grace=self.grace,
        )

    def _advance(self, env: Env, w: int | None, out: list[Row]) -> None:
        heap = self.heap
        while heap and (w is None or heap[0][0] <= w):
            due, _, _, win = heapq.heappop(heap)
            if not win.alive or win.queued != due:
                continue  # superseded entry: the window went or was queued earlier
            win.queued = None
            assert win.due is not None
            if win.due > due:  # it grew since it was queued
                self.push(win, win.due)
                continue
            if not win.closed:
                win.closed = True
                self.dirty.add(win)
                if self.emit == "final" and self.row_of(env, win, out):
                    win.emitted = True
                if self.retention:
                    win.due = due + self.retention
                    self.push(win, win.due)
                    continue
            self.drop(win)

    def drop(self, win: Win) -> None:
        win.alive = False
        self.remove(win)
        self.dirty.discard(win)
        if win.saved_id is not None:
            self.dropped.append(win.saved_id)
            win.saved_id = None

    # -- state ----------------------------------------------------------------------------------
    def state_id(self, win: Win) -> str:
        return self._ident(win)[1]

    def _ident(self, win: Win) -> tuple[int, str, Any]:
        ident = win.ident
        if ident is None or ident[0] != win.start:
            key = encode(list(win.gk)) if ident is None else ident[2]  # a session moved: same key
            ident = win.ident = (win.start, f"{self.prefix}{win.start}:{dumps(key).decode()}", key)
        return ident

    def dirty_state(self) -> dict[str, Any | None]:
        out: dict[str, Any | None] = dict.fromkeys(self.dropped)
        self.dropped = []
        writes: dict[str, Any] = {}
        ident_of, accs_state = self._ident, self.accs_state
        for win in self.dirty:
            ident = win.ident
            if ident is None or ident[0] != win.start:
                ident = ident_of(win)
            wid = ident[1]
            saved = win.saved_id
            if saved != wid:
                if saved is not None:
                    out[saved] = None  # a session whose start moved
                win.saved_id = wid
            # A list in STATE_FIELDS order, not a dict of named fields: half the bytes to pickle
            # per dirty window per batch; restore also reads the dicts stores written before.
            writes[wid] = [
                ident[2],
                win.start,
                win.end,
                accs_state(win.accs),
                win.seq,
                win.closed,
                win.emitted,
            ]
        self.dirty.clear()
        out.update(writes)
        if self.time_dirty:
            out[TIME_ID] = {"max": self.max_time, "wm": self.watermark}
            self.time_dirty = False
        return out

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        for wid, value in items:
            if value is None:
                continue
            if wid == TIME_ID and isinstance(value, dict):
                self.max_time, self.watermark = value.get("max"), value.get("wm")
                continue
            if isinstance(value, dict):  # the layout before lists
                value = [value.get(f) for f in ("g", "s", "e", "a", "n", "c", "x")]
            if (
                not wid.startswith(self.prefix)
                or not isinstance(value, list)
                or len(value) != len(STATE_FIELDS)
            ):
                raise StateError(
                    E_STATE_SHAPE.format(id=wid, reason=f"not a {self.spec.kind} window"), id=wid
                )
            try:
                key, start, end, accs, seq, closed, emitted = value
                win = Win(self.load_key(wid, key), int(start), int(end), [], int(seq))
                win.accs = self.load_accs(wid, accs)
                win.emitted = bool(emitted)
                closed = bool(closed)
            except (KeyError, TypeError, ValueError) as exc:
                raise StateError(E_STATE_SHAPE.format(id=wid, reason=exc), id=wid) from exc
            win.saved_id = wid
            self.insert(win)
            self.schedule(win, closed)
            self.seq = max(self.seq, win.seq + 1)
