"""Filling a reference table's row cache once the table is ready (``TABLESTREAM_TABLE_CACHE_
PRELOAD``, :meth:`tables.reference.ReferenceTable.preload_cache`).

A budgeted cache (:meth:`RowCache.budgeted`, the worker's default) is sized from the table first
(:meth:`RowCache.size_for`: the store knows its row count, a sample of decoded rows their size):

- a table whose rows all fit the budget decoded is decoded whole: from the bytes a cold
  restore kept (:attr:`RowCache.fill`), freeing them (~0.35 s of CPU per 300k rows after ready),
  else (a warm restart) from its bytes read whole from the store first (:data:`BYTES_FIRST`);
  reads meanwhile decode from those bytes and keep nothing
  (:attr:`RowCache.decoding`: p99 ~3 µs, docs/BENCHMARKS.md "getcold"); every ``get()`` is
  then one dict probe (p99 within ~1 µs of a bare ``dict.get``, "getdefault");
- a larger one gives its bytes level what the table's bytes need (up to all but
  :data:`~tables.rowcache.DECODED_SHARE` of the budget), fills it from the store, and keeps the
  rest for decoded rows (the oldest leave).

A cache of fixed bounds fills its bytes level, then decodes a table within both bounds.

Every step works in chunks of :data:`CHUNK` rows between awaits; a chunk reads the store (or
the bytes level) as it is then and keeps its rows before any await, so a batch committed
meanwhile drops its keys as usual.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from operator import countOf
from typing import Any

from tables.rowcache import RowCache
from tables.rowsize import SIZE_SAMPLE
from tables.state import TableState
from tables.store import TableStore

#: Rows a step of the preload handles between awaits. A step holds the event loop (~0.3 ms
#: here) and leaves the CPU's caches to the next reads: with 2,000 (~3 ms), reads interleaved
#: with it had p99 4.4-7.9 µs, with 256 3.3-4.3 µs (docs/BENCHMARKS.md "getcold").
CHUNK = 256
#: After a warm restart (nothing kept in memory), a table that fits decoded is first read
#: whole into the bytes level (~0.55 µs a row, :func:`hold_store`), then decoded from there as
#: after a cold restore: a read meets memory (p99 ~3 µs) ~0.2 s per 300k rows after ready, not
#: when the decode ends (~0.9 s; a RocksDB read with a cold block cache meanwhile, p99 ~7 µs).
#: docs/BENCHMARKS.md "warmget". False: decoded straight from the store (main before it).
BYTES_FIRST = True
#: Rows a step of that read of bytes handles (~0.55 µs a row: ~0.3 ms, as a decoding step).
BYTES_CHUNK = 2 * CHUNK


def _rows_after(store: TableStore, after: bytes | None, chunk: int) -> list[tuple[bytes, bytes]]:
    """The next ``chunk`` stored rows in key order after the key ``after`` (None: the first)."""
    part = list(itertools.islice(store.items(from_key=after), chunk + 1))
    if part and part[0][0] == after:
        del part[0]
    else:
        del part[chunk:]
    return part


def _held(raw: dict[bytes, bytes | None]) -> int:
    """Stored rows the bytes level holds (its None entries are known misses)."""
    return len(raw) - countOf(raw.values(), None)


async def preload(state: TableState, chunk: int = CHUNK) -> int:
    """Once ``state`` is ready, fill its row cache; returns rows added (either level)."""
    await state.wait_ready()
    cache, store = state.rows, state.store
    if cache.budget:
        if not cache.row_size:
            cache.measure(itertools.islice(store.items(), SIZE_SAMPLE), state.decode_stored)
        # Until the table is decoded, reads keep nothing (RowCache.decoding).
        cache.decoding = True
        if cache.size_for(store.count):
            try:
                return await decode_store(state, chunk)
            finally:
                cache.decoding = False
                cache.size_for(store.count)  # the bytes level's bound, now its rows are decoded
        cache.decoding = False
        trimmed = cache.trim(chunk)
        while not trimmed:  # rows read before the sizing, above the bounds of a larger table
            await asyncio.sleep(0)
            trimmed = cache.trim(chunk)
    added = await fill_bytes(state, chunk)
    held = cache.raw
    store_rows = store.count
    # Decoded too only for a table within both fixed bounds: a row decoded costs ~2.5x its
    # bytes in memory, worth it when every get() then is one probe (a larger table read
    # uniformly keeps missing the decoded level whatever it holds).
    if not cache.budget and store_rows <= cache.max_rows and _held(held) >= store_rows:
        await decode_held(cache, state.decode_stored, chunk)
    return added


async def decode_store(state: TableState, chunk: int = CHUNK) -> int:
    """Decode every stored row into the decoded rows (a table within the budget), chunk by
    chunk: from the bytes level when it holds every row (a cold restore kept them), freeing
    them, else from the store in key order. Returns rows decoded."""
    cache, store = state.rows, state.store
    decode = state.decode_stored
    if cache.raw and _held(cache.raw) >= store.count:
        return await _decode_raw(cache, decode, chunk)
    if BYTES_FIRST:
        # Rows a batch writes meanwhile leave the bytes level or replace theirs (fill);
        # a key dropped is decoded by no step, read from the store when asked.
        await hold_store(state, BYTES_CHUNK * chunk // CHUNK)
        return await _decode_raw(cache, decode, chunk)
    after: bytes | None = None
    added = 0
    while True:
        part = _rows_after(store, after, chunk)
        if not part or len(cache.rows) + len(part) > cache.max_rows:
            return added
        skeys, values = map(list, zip(*part, strict=True))
        cache.keep_decoded(skeys, values, decode)
        added += len(part)
        after = skeys[-1]
        await asyncio.sleep(0)


async def hold_store(state: TableState, chunk: int = BYTES_CHUNK) -> int:
    """Read every stored row into the bytes level, beyond its bound (:meth:`RowCache.hold_raw`;
    the caller decodes and frees them next), ``chunk`` rows a step (a step of bytes costs ~1/4
    of a decoded one). Returns rows read."""
    cache, store = state.rows, state.store
    after: bytes | None = None
    read = 0
    while True:
        part = _rows_after(store, after, chunk)
        if not part:
            return read
        cache.hold_raw(part)
        read += len(part)
        after = part[-1][0]
        await asyncio.sleep(0)


async def _decode_raw(cache: RowCache, decode: Callable[[bytes], Any], chunk: int) -> int:
    skeys = list(cache.raw)
    added = 0
    for start in range(0, len(skeys), chunk):
        part = skeys[start : start + chunk]
        if len(cache.rows) + len(part) > cache.max_rows:
            break
        added += cache.decode_raw(part, decode)
        await asyncio.sleep(0)
    return added


async def fill_bytes(state: TableState, chunk: int = CHUNK) -> int:
    """Read the stored rows in key order into the bytes level while they fit without evicting
    anything. Returns rows added."""
    cache, store = state.rows, state.store
    held = cache.raw
    after: bytes | None = None
    added = 0
    # Filled from the batches of a live load (RowCache.fill): every stored row already held.
    complete = _held(held) >= store.count
    while not complete:
        n = 0
        for skey, raw in store.items(from_key=after):
            if skey == after:
                continue
            if skey not in held:
                if not cache.fill_raw(skey, raw):
                    complete = True
                    break
                added += 1
            after = skey
            n += 1
            if n >= chunk:
                break
        if n == 0:
            break
        await asyncio.sleep(0)
    return added


async def decode_held(cache: RowCache, decode: Callable[[bytes], Any], chunk: int = CHUNK) -> int:
    """Decode what the bytes level holds into the decoded rows while they have room (nothing
    evicted for it), keyed by key text: a table within both bounds then answers every ``get()``
    by text with one dict probe, with no decode or allocation on a first read (a first read
    from the bytes level, p99 ~6-8 µs here, is mostly the page faults of the new row's memory).
    A chunk decodes the bytes held then (a batch committed meanwhile changed or dropped them).
    Returns rows added."""
    rows, raw = cache.rows, cache.raw
    added = 0
    skeys = list(raw)
    for start in range(0, len(skeys), chunk):
        room = cache.max_rows - len(rows)
        if room <= 0:
            break
        for skey in skeys[start : start + min(chunk, room)]:
            value = raw.get(skey)
            if value is None:  # dropped since, or a known miss
                continue
            text = skey.decode()
            if text not in rows:
                cache.put(text, decode(value))
                added += 1
        await asyncio.sleep(0)
    return added
