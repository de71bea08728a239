"""Rows of one table kept in front of its store for ``get()``: decoded, and as stored bytes.

A ``get()`` on RocksDB is a point read through rocksdict (p50 ~2.3 µs, p99 ~4-5 µs on a quiet
machine, whatever the block options: docs/BENCHMARKS.md) plus a decode (~0.45 µs). Two levels
answer most of them without RocksDB:

- ``rows``: decoded rows (and misses, as None) of recent lookups, keyed by what the reader
  probed with (a str, or an int whose text is the table key). A hit is one dict probe; generated
  code probes this dict inline (:meth:`tables.reference.ReferenceTable.row_cache`), so it stays
  a plain dict, the same one for the table's life, that a hit never writes to.
- ``raw``: the stored bytes of recent lookups (None: absent), keyed by the store key, bounded by
  bytes. A decoded row costs ~3x its JSON in memory, so the same memory holds ~3x as many rows
  this way; a hit here costs a decode (~0.5 µs), not a RocksDB read.

Both evict first in, first out (a deque of the keys in insertion order), 1% of their bound at
once: a full level keeps 99% of what it holds. (Starting over when full, as before, halved a
uniform reader's hit rate, and freeing 100k rows at once stopped one ``get()`` for 10-20 ms;
one entry per entry added put a cold row's freeing, ~1 µs, on every miss.) CLOCK or LRU would
need a hit to write a bit or move the key: the hit path is a bare dict probe, also in generated
code. A full bytes level admits one RocksDB read in :data:`FULL_ADMIT` (see :meth:`put_raw`).

The loader drops every key it writes (:meth:`invalidate`, from :meth:`TableState.commit`) before
it publishes the batch's changes, with no await in between, so a reader never sees a row the
table no longer holds. Rows are shared, never copied: callers treat a returned row as read-only.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from tables.rowsize import SIZE_SAMPLE, row_sizes

#: A table's row cache by default (:class:`tables.cache_settings.CacheSettings`, the worker's
#: ``TABLESTREAM_TABLE_CACHE_MB``): MB for both levels together, decoded rows counted at their
#: measured size (:mod:`tables.rowsize`); a cache of fixed bounds given no MB: its bytes level.
DEFAULT_BUDGET_MB = 256
#: A table larger than its budget decoded keeps at least this share of the budget in decoded
#: rows (its recently read keys), the rest in stored bytes (:meth:`RowCache.size_for`).
DECODED_SHARE = 0.1
#: What one ``raw`` entry costs beyond its key and value bytes: two bytes objects' headers, the
#: dict's entry and index slots, the deque's slot (measured with tracemalloc: a 300k-entry
#: dict of 5-byte keys and 92-byte values, with its deque, takes ~207 bytes an entry).
RAW_ENTRY_OVERHEAD = 112
#: A full bytes level keeps the bytes of one RocksDB read in this many (see put_raw).
FULL_ADMIT = 16
#: When full, a level evicts this share of its bound at once (its oldest entries).
EVICT_SHARE = 100
MISS: Any = object()
Decode = Callable[[bytes], Any]


class RowCache:
    """Bounded maps ``probe key -> decoded row or None`` and ``store key -> bytes or None``."""

    __slots__ = (
        "_evict_rows",
        "_order",
        "_raw_low",
        "_raw_order",
        "_refused",
        "_sized",
        "budget",
        "decoding",
        "fill",
        "max_raw_bytes",
        "max_rows",
        "raw",
        "raw_bytes",
        "raw_size",
        "row_size",
        "rows",
    )

    def __init__(self, max_rows: int, max_raw_mb: float = DEFAULT_BUDGET_MB) -> None:
        self.max_rows = self._evict_rows = self.max_raw_bytes = self._raw_low = 0
        self._bound(max_rows, int(max_raw_mb * 1024 * 1024))
        self._refused = 0
        # The row count the bounds were last sized for (size_for).
        self._sized = 0
        #: Bytes both levels may hold together, the decoded rows counted at :attr:`row_size`
        #: (:meth:`budgeted`); 0: the fixed bounds given.
        self.budget = 0
        #: What a decoded row costs, bytes (:meth:`measure` on a sample; 0: not measured).
        self.row_size = 0.0
        #: What a row's stored bytes cost in the bytes level (:data:`RAW_ENTRY_OVERHEAD` too).
        self.raw_size = 0.0
        #: Keep what committed batches write (a cold restore's too) in the bytes level while it
        #: has room (the preload, ``CacheSettings.preload``); off: a write drops the key's bytes.
        self.fill = False
        #: The preload decodes the whole table (tables.preload): reads keep nothing (:meth:`put`).
        self.decoding = False
        #: Read directly by the table's ``get()`` (one dict lookup on a hit).
        self.rows: dict[Any, Any] = {}
        #: Read by the table's ``get()`` when ``rows`` misses.
        self.raw: dict[bytes, bytes | None] = {}
        #: What ``raw`` holds, in bytes (keys, values and :data:`RAW_ENTRY_OVERHEAD` each).
        self.raw_bytes = 0
        # Keys in insertion order; may still name keys dropped since (see _evict_row).
        self._order: deque[Any] = deque()
        self._raw_order: deque[bytes] = deque()

    @classmethod
    def budgeted(cls, mb: float) -> RowCache:
        """A cache of ``mb`` MB for both levels, sized from its table once ready
        (:meth:`size_for`); until then the split of a table larger than the budget."""
        budget = int(mb * 1024 * 1024)
        guess = 600  # bytes a decoded row, until measured
        cache = cls(int(budget * DECODED_SHARE / guess), mb * (1 - DECODED_SHARE))
        cache.budget = budget
        return cache

    def _bound(self, max_rows: int, max_raw_bytes: int) -> None:
        self.max_rows = max(0, max_rows)
        self.max_raw_bytes = max(0, max_raw_bytes)
        # Evicting a share at once, not one entry per entry added: freeing a decoded row costs
        # ~1 µs of cache misses (its dict and strings are cold), which one entry per miss put
        # on every miss's time (uniform reads, load 6: p50 3.6 -> 2.5 µs, p99 7.1 -> 5.9 µs);
        # 1% of 100k rows at once is a ~0.3-1 ms call every 1,000 misses (p99.9 territory).
        self._evict_rows = max(1, self.max_rows // EVICT_SHARE)
        self._raw_low = self.max_raw_bytes - self.max_raw_bytes // EVICT_SHARE

    def measure(self, stored: Iterable[tuple[bytes, bytes]], decode: Decode) -> None:
        """Sets :attr:`row_size` and :attr:`raw_size` from a sample of the table's stored rows."""
        sizes = row_sizes(stored, decode, RAW_ENTRY_OVERHEAD)
        if sizes is not None:
            self.row_size, self.raw_size = sizes

    def follow(
        self,
        count: int,
        written: Iterable[tuple[bytes, bytes | None]] | None,
        decode: Decode,
    ) -> None:
        """After a commit, in a budgeted cache: sized once the table has rows (one empty when
        ready was not; measured on the rows ``written``, when the commit kept them), and again
        once its row count moved by a tenth since (a table sized to fit decoded that outgrew
        its budget gives its decoded rows' memory to its bytes, read by read)."""
        if not self.row_size:
            if not count or written is None:
                return
            rows = ((k, v) for k, v in written if v is not None)
            self.measure(itertools.islice(rows, SIZE_SAMPLE), decode)
            if self.row_size:
                self.size_for(count)
        elif abs(count - self._sized) * 10 > self._sized:
            self.size_for(count)

    def size_for(self, count: int) -> bool:
        """Bounds for a table of ``count`` rows within :attr:`budget` (a measured
        :attr:`row_size` needed); True when every row fits decoded.

        Then the decoded rows may take the whole budget (room for the table to grow, and for
        the int probes' aliases of its rows, ~70 bytes each), and the bytes level half of what
        the rows leave (what writes keep, read again decoded). A larger table: the bytes level
        takes what the whole table's bytes need and 10% more (growth), up to all but
        :data:`DECODED_SHARE` of the budget, and the decoded rows the rest, oldest first: a
        read that misses both levels is a RocksDB read, the p99 as soon as 1% of reads do
        (docs/BENCHMARKS.md). Returns False, bounds unchanged, for a cache of fixed bounds."""
        size = self.row_size
        if not self.budget or size <= 0:
            return False
        self._sized = count
        spare = self.budget - count * size
        if spare >= 0:
            self._bound(2 * count + int(spare / 2 / size), int(spare / 2))
        else:
            raw = min(count * self.raw_size * 1.1, self.budget * (1 - DECODED_SHARE))
            self._bound(int((self.budget - raw) / size), int(raw))
        # Not while the preload decodes a table that fits: the bytes it frees make the room.
        if self.raw_bytes > self.max_raw_bytes and not (self.decoding and spare >= 0):
            self._evict_raw(self.max_raw_bytes)
        return spare >= 0

    def trim(self, most: int) -> bool:
        """Evict up to ``most`` of the oldest decoded rows above :attr:`max_rows` (the bounds
        shrank); True once within them."""
        rows, order = self.rows, self._order
        pop = rows.pop
        while len(rows) > self.max_rows and order and most > 0:
            if pop(order.popleft(), MISS) is not MISS:
                most -= 1
        return len(rows) <= self.max_rows or not order

    def keep_decoded(self, skeys: list[bytes], values: list[bytes], decode: Decode) -> None:
        """Decode stored rows read from the store just now (keys in key order, their bytes)
        into ``rows`` by key text, at C level (~2 µs a row here, most of it the new memory's
        page faults, against ~4 µs through :meth:`put`); nothing is evicted for them: the
        caller keeps within :attr:`max_rows`. A row already held is the same row (writes drop
        their keys), so it is replaced by an equal one."""
        texts = list(map(bytes.decode, skeys))
        self.rows.update(zip(texts, map(decode, values), strict=True))
        self._order.extend(texts)

    def hold_raw(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Keep stored rows read from the store just now in the bytes level, beyond its bound:
        the preload of a table that fits decoded, after a warm restart, which decodes them
        next and frees them (:meth:`decode_raw`). A key held already keeps its bytes (the
        same: writes replace or drop them)."""
        raw = self.raw
        if raw:
            pairs = [p for p in pairs if p[0] not in raw]
        raw.update(pairs)
        self.raw_bytes += sum(len(k) + len(v) for k, v in pairs) + len(pairs) * RAW_ENTRY_OVERHEAD
        self._raw_order.extend(k for k, _ in pairs)

    def decode_raw(self, skeys: list[bytes], decode: Decode) -> int:
        """Move the stored rows of ``skeys`` from the bytes level into ``rows``, decoded (the
        preload of a table whose bytes a restore kept); keys no longer held are skipped."""
        raw = self.raw
        values: list[Any] = list(map(raw.pop, skeys, itertools.repeat(MISS, len(skeys))))
        if MISS in values or None in values:
            pairs = [(k, v) for k, v in zip(skeys, values, strict=True) if v is not MISS]
            self.raw_bytes -= sum(len(k) + RAW_ENTRY_OVERHEAD + len(v or b"") for k, v in pairs)
            skeys = [k for k, v in pairs if v is not None]
            values = [v for _, v in pairs if v is not None]
        else:
            self.raw_bytes -= sum(map(len, skeys)) + sum(map(len, values))
            self.raw_bytes -= len(skeys) * RAW_ENTRY_OVERHEAD
        self.keep_decoded(skeys, values, decode)
        if len(self._raw_order) > 2 * len(raw) + 1024:  # its keys would stay alive
            self._raw_order = deque(raw)
        return len(skeys)

    def __len__(self) -> int:
        """Decoded rows held."""
        return len(self.rows)

    def __bool__(self) -> bool:
        """Anything held at all (a writer must then tell which keys it wrote)."""
        return bool(self.rows) or bool(self.raw)

    def put(self, key: Any, value: Any) -> None:
        rows = self.rows
        if self.max_rows <= 0 or self.decoding:
            # The preload's row comes soon; a read's new row put the new memory's page faults
            # (~5 µs, one a ~7 rows) on the first reads after a cold restore (BENCHMARKS getcold).
            return
        if len(rows) >= self.max_rows:
            self._evict_row()
        rows[key] = value
        order = self._order
        order.append(key)
        if len(order) > 2 * self.max_rows + 1024:
            # Keys dropped by invalidation pile up in the deque; the dict's own order is the
            # insertion order of what it still holds.
            self._order = deque(rows)

    def _evict_row(self) -> None:
        rows, order = self.rows, self._order
        pop = rows.pop
        # A deque entry may name a key invalidated since (gone, or put again later: then it
        # leaves early, which only costs a read). Stop once enough were there; the order
        # covers every row held (each put appends), so it runs out only when rows is empty.
        left = self._evict_rows
        while order:
            if pop(order.popleft(), MISS) is not MISS:
                left -= 1
                if not left:
                    return

    def put_raw(self, skey: bytes, raw: bytes | None) -> bool:
        """Keep ``raw`` (None: no such key) for ``skey``, which ``raw`` does not hold; False
        when it does not fit at all, or was not admitted into a full level."""
        if self.decoding:  # the bytes level may hold more than its bound then (size_for)
            return False
        size = len(skey) + RAW_ENTRY_OVERHEAD
        if raw is not None:
            size += len(raw)
        if self.raw_bytes + size > self.max_raw_bytes:
            if size > self.max_raw_bytes:
                return False
            # Full: one miss in FULL_ADMIT takes a place. A table larger than the level, read
            # uniformly, gains nothing from replacing one held key by another (the hit rate
            # is the share held either way) and paid an insert and an eviction per miss (1M
            # keys: get() p50 +2 µs on first reads); the level still follows a changing
            # working set, that much slower.
            self._refused += 1
            if self._refused % FULL_ADMIT:
                return False
        self.raw[skey] = raw
        self.raw_bytes += size
        order = self._raw_order
        order.append(skey)
        if self.raw_bytes > self.max_raw_bytes:
            self._evict_raw()
        if len(order) > 2 * len(self.raw) + 1024:
            self._raw_order = deque(self.raw)
        return True

    def fill_raw(self, skey: bytes, raw: bytes) -> bool:
        """Keep ``raw`` for ``skey`` (not held) only if it fits without evicting anything."""
        size = len(skey) + RAW_ENTRY_OVERHEAD + len(raw)
        if self.raw_bytes + size > self.max_raw_bytes:
            return False
        self.raw[skey] = raw
        self.raw_bytes += size
        self._raw_order.append(skey)
        return True

    def _evict_raw(self, limit: int | None = None) -> None:
        raw, order = self.raw, self._raw_order
        pop = raw.pop
        if limit is None:
            limit = self._raw_low
        while self.raw_bytes > limit and order:
            skey = order.popleft()
            value = pop(skey, MISS)
            if value is not MISS:
                self.raw_bytes -= len(skey) + RAW_ENTRY_OVERHEAD + (len(value) if value else 0)

    def clear(self) -> None:
        self.rows.clear()
        self.raw.clear()
        self.raw_bytes = 0
        self._order.clear()
        self._raw_order.clear()

    @property
    def wants_values(self) -> bool:
        """Whether a writer should hand :meth:`written` its bytes (filling, 1% of room left)."""
        return self.fill and self.raw_bytes < self._raw_low

    def written(self, skeys: list[bytes], values: list[bytes | None] | None) -> None:
        """A committed batch wrote ``skeys`` (in write order; ``values`` their bytes, None a
        delete, or None when not kept): the bytes level takes the new bytes of what it holds and,
        while they fit, of the rest (:attr:`fill`); the decoded rows drop the keys."""
        if values is not None and self.fill:
            self._keep(skeys, values)
            self._drop_rows(skeys)
        else:
            self.invalidate(skeys)

    def _keep(self, skeys: list[bytes], values: list[bytes | None]) -> None:
        raw = self.raw
        n = len(skeys)
        size = sum(map(len, skeys)) + sum(map(len, filter(None, values))) + n * RAW_ENTRY_OVERHEAD
        if self.raw_bytes + size <= self.max_raw_bytes and (
            not raw or raw.keys().isdisjoint(skeys)
        ):
            # The restore's case: new keys, the batch fits whole. C-level loops only (a restore
            # runs at ~2 µs a record; this adds ~0.25 µs, most of it the growing dict's inserts).
            held = len(raw)
            raw.update(zip(skeys, values, strict=True))
            self._raw_order.extend(skeys)
            if len(raw) - held == n:
                self.raw_bytes += size
                return
            # A key written twice in the batch: held once, with its last bytes.
            self.raw_bytes += sum(
                len(k) + RAW_ENTRY_OVERHEAD + len(raw[k] or b"") for k in dict.fromkeys(skeys)
            )
            return
        pop = raw.pop
        limit = self.max_raw_bytes
        for skey, value in zip(skeys, values, strict=True):
            old = pop(skey, MISS)
            if old is not MISS:
                self.raw_bytes -= len(skey) + RAW_ENTRY_OVERHEAD + (len(old) if old else 0)
            add = len(skey) + RAW_ENTRY_OVERHEAD + (len(value) if value else 0)
            if self.raw_bytes + add <= limit:  # never evicts for a write
                raw[skey] = value
                self.raw_bytes += add
                self._raw_order.append(skey)
        if len(self._raw_order) > 2 * len(raw) + 1024:
            self._raw_order = deque(raw)

    def invalidate(self, skeys: Iterable[bytes]) -> None:
        """Drop what is kept for written store keys (text; an int probe for a decimal text)."""
        if not isinstance(skeys, list):
            skeys = list(skeys)  # read twice
        raw = self.raw
        # Disjoint: new keys (a cold restore's once the level is full), nothing held to drop.
        if raw and not raw.keys().isdisjoint(skeys):
            pop_raw = raw.pop
            dropped = 0
            for skey in skeys:
                value = pop_raw(skey, MISS)
                if value is not MISS:
                    dropped += len(skey) + RAW_ENTRY_OVERHEAD + (len(value) if value else 0)
            self.raw_bytes -= dropped
        self._drop_rows(skeys)

    def _drop_rows(self, skeys: list[bytes]) -> None:
        rows = self.rows
        if not rows:
            return
        if len(skeys) >= len(rows):
            # As many keys as rows held: starting over costs no more than dropping them one by
            # one. Below that, key by key: clearing a large level (every key of a table within
            # the budget) for a batch of a few thousand keys stopped readers for 10-100 ms and
            # sent every later read back through a decode.
            rows.clear()
            self._order.clear()
            return
        pop = rows.pop
        for skey in skeys:
            text = skey.decode()
            pop(text, None)
            # Integer keys are cached under the int the readers probe with, too.
            if text[-1:].isdigit():
                try:
                    as_int = int(text)
                except ValueError:
                    continue
                if str(as_int) == text:
                    pop(as_int, None)
