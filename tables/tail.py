"""The last changes of a batch applied on the bulk path, for listeners that keep only the last few.

A table whose only listeners keep the last ``n`` changes (the worker's "latest changes" list:
``ChangeFeed.subscribe(listener, last=n)``) is loaded without decoding its rows
(:mod:`tables.keys_only`); only the batch's last ``n`` changes are made here, from the row keys and
values the bulk path collected and from what the store held before the batch (it is not committed
yet). They are the changes the full path makes for the same records, versions included: the
batch's changes are numbered in order, so the last one carries the version the batch ends at.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from tables.protocol import Change, Op
from tables.records import Malformed, Parts, RawRecord
from tables.store import TableStore


def last_changes(
    parts: Parts,
    keys: Sequence[bytes],
    vals: Sequence[bytes | None],
    malformed: Sequence[Malformed],
    store: TableStore,
    version: int,
    n: int,
    decode: Callable[[bytes], Any],
) -> list[Change]:
    """The last ``n`` changes of a batch: ``keys``/``vals`` are its rows in record order (None a
    tombstone), one per record of ``parts`` that is not ``malformed``; ``store`` holds the rows
    as they were before it; ``version`` is the table's version after it."""
    total = len(keys)
    width = min(n, total)
    while True:
        start = total - width
        found = _changed(keys, vals, start, store)
        # Deleting what is not there changes nothing: a window short of changes widens.
        if len(found) >= n or start == 0:
            break
        width = min(total, width * 2)
    found = found[-n:]
    if not found:
        return []
    records = _last_records(parts, malformed, total - found[0][0])
    first = total - len(records)
    changes = []
    seq = version - len(found)
    for i, old in found:
        seq += 1
        topic, partition, rec = records[i - first]
        raw = vals[i]
        op = Op.DELETE if raw is None else Op.INSERT if old is None else Op.UPDATE
        changes.append(
            Change(
                keys[i].decode(),
                op,
                None if raw is None else decode(raw),
                None if old is None else decode(old),
                rec.timestamp,
                partition,
                rec.offset,
                seq,
                topic,
            )
        )
    return changes


def _changed(
    keys: Sequence[bytes], vals: Sequence[bytes | None], start: int, store: TableStore
) -> list[tuple[int, bytes | None]]:
    """(row index, the key's value before it) of each row from ``start`` on that changes the
    table."""
    # Each key's last value before the window (one C-level pass), else what the store holds.
    before = dict(zip(islice(keys, start), islice(vals, start), strict=True))
    window = keys[start:]
    unread = [k for k in dict.fromkeys(window) if k not in before]
    current = dict(zip(unread, store.multi_get(unread), strict=True)) if unread else {}
    for k in window:
        if k not in current:
            current[k] = before[k]
    found = []
    for i in range(start, len(keys)):
        k, raw = keys[i], vals[i]
        old = current[k]
        if raw is None and old is None:
            continue
        current[k] = raw
        found.append((i, old))
    return found


def _last_records(
    parts: Parts, malformed: Sequence[Malformed], count: int
) -> list[tuple[str, int, RawRecord]]:
    """The last ``count`` records of ``parts`` that are not ``malformed``, in order."""
    bad = {(m.topic, m.partition, m.offset) for m in malformed}
    out: list[tuple[str, int, RawRecord]] = []
    for topic, partition, recs in reversed(list(parts)):
        for rec in reversed(recs):
            if bad and (topic, partition, rec.offset) in bad:
                continue
            out.append((topic, partition, rec))
            if len(out) == count:
                out.reverse()
                return out
    out.reverse()
    return out


def retractions(
    rows: Iterable[tuple[bytes, bytes]], n: int | None, decode: Callable[[bytes], Any]
) -> list[Change]:
    """The deletes a rebuild publishes for the stored ``rows`` (key order) before they go: all of
    them, or with ``n`` only the last ``n`` (nobody wants more: no row decoded but those)."""
    kept = list(rows) if n is None else deque(rows, maxlen=n)
    return [Change(k.decode(), Op.DELETE, None, decode(v)) for k, v in kept]
