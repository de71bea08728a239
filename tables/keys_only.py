"""The bulk path of applying a batch (a cold restore): parse only each value's key field, store
the bytes as received.

:class:`~tables.apply.Applier` takes it when nobody wants the rows decoded now (no change
listeners, no row check, no history) and the table's decoder is one whose numbers a msgspec
key-only decoder reproduces. Whatever that parse does not take plainly (not ASCII, possibly nested
too deep, no key, not an object, malformed) goes through the applier's full path, so dead letters
and their reasons are the same on both paths.

A key written more than once in a batch is written once, with its last value (what the topic says
after the batch; Kafka Streams' KTable cache coalesces per commit interval the same way): a result
table updated per input record (an aggregate's EMIT CHANGES) holds each group several times per
batch. Listeners that keep only the last few changes get the batch's last ones (:mod:`tables.tail`).
The keys it wrote are remembered (a bounded set), so a key updated batch after batch is not read
back from RocksDB each time to tell an update from an insert.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, cast

import msgspec

from core import codec
from tables.records import BatchResult, Parts, RawRecord, malformed, progress
from tables.store import StoreBatch, TableStore
from tables.tail import last_changes

#: The applier's full path for one record: (store key, decoded value or None for a tombstone),
#: or the reason it is malformed.
RowOf = Callable[[RawRecord], tuple[bytes, Any] | str]

#: What the key-only parse of a table keyed by message key gives for a valid JSON object.
_VALID: Any = object()
_RESERVED = "@tablestream.valid"
#: A number whose exponent may overflow a double: the key-only parse skips fields without
#: reading their numbers, but orjson (``codec.loads``) refuses such a value (``1e400``).
_big_exponent = re.compile(rb"\d[eE][+-]?\d\d\d").search
#: Every digit to "0" and "E" to "e": ``b"0e" in raw.translate(_DIGITS)`` is the cheap test
#: (~0.1 µs) that spares most values the regex (~1 µs, a third of a record's restore).
_DIGITS = bytes.maketrans(b"0123456789E", b"0000000000e")
#: Row keys the bulk path remembers writing (~100 bytes each); the set starts over when fuller.
KNOWN_MAX = 65_536
#: What a key known to be stored holds, for the diff (only None or not is read there).
_STORED = b""


def _key_decoder(key_field: str | None, decode: Callable[[bytes], Any]) -> Any:
    """A msgspec decoder of ``{key_field: ...}`` alone (other fields are skipped unbuilt), for
    the table decoders whose numbers it reproduces; None otherwise. Without a key field (keyed by
    message key: an aggregate's sink table) one that only checks the value is a JSON object,
    building nothing (``.k`` is :data:`_VALID`); anything else takes the full path."""
    if decode not in (codec.loads, codec.loads_exact):
        return None
    float_hook = Decimal if decode is codec.loads_exact else None
    if key_field is None:
        # A value holding this (otherwise unused) field takes the full path: ``.k`` is not _VALID.
        valid = msgspec.defstruct("Valid", [("k", Any, _VALID)], rename={"k": _RESERVED})
        return msgspec.json.Decoder(valid, float_hook=float_hook).decode
    struct = msgspec.defstruct("KeyOnly", [("k", Any, None)], rename={"k": key_field})
    return msgspec.json.Decoder(struct, float_hook=float_hook).decode


class KeysOnly:
    """The key-only path of one table (``key_field`` None keys by message key)."""

    def __init__(
        self, key_field: str | None, decode: Callable[[bytes], Any], key_only: Any
    ) -> None:
        self._key_only = key_only
        self._by_message = key_field is None
        self._exact = decode is codec.loads_exact
        #: Row keys this path wrote and did not delete since: in the store, no read needed.
        self._known: set[bytes] = set()
        #: The store's (opening, last batch committed, version) the set describes: any other write
        #: (a batch of the full path, one not committed, a rebuild) makes it stale, and it starts
        #: over. The batch's serial, not the version alone: a dropped batch and the next one
        #: committed instead can end on the same version (hypothesis found it).
        self._known_at = (-1, -1, -1)

    @classmethod
    def of(cls, key_field: str | None, decode: Callable[[bytes], Any]) -> KeysOnly | None:
        """The path for a table decoding with ``decode``; None when ``decode`` has no key-only
        counterpart (the full path then takes every batch)."""
        key_only = _key_decoder(key_field, decode)
        return None if key_only is None else cls(key_field, decode, key_only)

    def apply_parts(
        self,
        parts: Parts,
        store: TableStore,
        batch: StoreBatch,
        row_of: RowOf,
        tail: int = 0,
        decode: Callable[[bytes], Any] | None = None,
    ) -> BatchResult:
        """:meth:`tables.apply.Applier.apply_parts` for the bulk case; ``row_of`` is the
        applier's full path, for what the key-only parse does not take plainly. ``tail`` > 0:
        the batch's last ``tail`` changes (values decoded by ``decode``) in ``result.changes``."""
        if tail:
            parts = list(parts)  # read twice: for the rows, then for the last changes' records
        result, keys, vals = self._apply(parts, store, batch, row_of)
        if tail and keys:
            assert decode is not None
            result.changes = last_changes(
                parts, keys, vals, result.malformed, store, batch.version, tail, decode
            )
        return result

    def _apply(
        self, parts: Parts, store: TableStore, batch: StoreBatch, row_of: RowOf
    ) -> tuple[BatchResult, list[bytes], list[bytes | None]]:
        """The rows of ``parts`` into ``batch``; with the row keys and values in record order."""
        key_only = self._key_only
        by_message = self._by_message
        exact = self._exact
        limit = codec.max_depth()
        result = BatchResult()
        # Row keys and values (None: a tombstone) in record order: two flat lists, no tuple each.
        keys: list[bytes] = []
        vals: list[bytes | None] = []
        add_key, add_val = keys.append, vals.append
        tombstones = False
        for topic, partition, recs in parts:
            if not recs:
                continue
            result.records += len(recs)
            values = [rec.value for rec in recs]
            # The per-value checks below made once over the whole part when it passes them (the
            # common case: ~0.4 µs a record saved, a fifth of a restore's CPU): all ASCII, and no
            # digit right before an "e" anywhere (a false hit only sends values to their own
            # checks; none is missed, each value being a substring of the joined bytes).
            try:
                joined = b"".join(values)  # type: ignore[arg-type]
            except TypeError:  # a tombstone (None)
                joined = b"".join([v for v in values if v is not None])
            ascii_part = joined.isascii()
            exponents = not exact and b"0e" in joined.translate(_DIGITS)
            del joined
            for rec, raw in zip(recs, values, strict=True):
                k: Any = None
                if (
                    raw is not None
                    and (ascii_part or raw.isascii())
                    # At most `limit` brackets cannot nest deeper than `limit` (the decoders'
                    # own first check; beyond it the full path measures the depth).
                    and (len(raw) <= limit or raw.count(b"[") + raw.count(b"{") <= limit)
                    # A digit right before an "e" is rare outside exponents: only then the regex.
                    and (
                        not exponents
                        or b"0e" not in raw.translate(_DIGITS)
                        or not _big_exponent(raw)
                    )
                ):
                    try:
                        k = key_only(raw).k
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        k = None
                    if by_message:
                        # Keyed by the message key: the value is only validated (a JSON object,
                        # parsed without being built); a plain ASCII key is taken as it is.
                        mk = rec.key
                        if k is _VALID and mk is not None and mk.isascii():
                            add_key(mk)
                            add_val(raw)
                            continue
                        k = None
                tk = type(k)
                if tk is str:
                    add_key(k.encode())
                    add_val(raw)
                    continue
                if tk is int:
                    add_key(str(k).encode())
                    add_val(raw)
                    continue
                row = row_of(rec)
                if isinstance(row, str):
                    result.malformed.append(malformed(topic, partition, rec, row))
                    continue
                add_key(row[0])
                if row[1] is None:
                    tombstones = True
                    add_val(None)
                else:
                    add_val(raw)
            progress(batch, partition, recs[-1])
        if not keys:
            batch.restored = True  # no row written: a restore's set of keys still holds
            return result, keys, vals
        seen = store.restored_keys
        if seen is not None:
            self._write_restored(keys, vals, tombstones, seen, batch, result)
            return result, keys, vals
        # Each key's last value, keys in first-seen order (one C-level pass).
        last = dict(zip(keys, vals, strict=True))
        unique = list(last)
        known = self._known_in(store)
        unread = [k for k in unique if k not in known] if known else unique
        olds = store.multi_get(unread) if unread else []
        if not tombstones:
            # The bulk case proper (a compacted topic read from the start, or a result table's
            # updates): every record a row, a key's first an insert when the store lacks it.
            # Each key written once, by a C-level loop; counted from the multi-get at once.
            inserts = olds.count(None)
            put = batch.raw_writes()[0]
            if len(unique) == len(keys):
                any(map(put, keys, cast(list[bytes], vals)))  # put returns None: reads all
            else:
                any(map(put, unique, cast(list[bytes], last.values())))
            batch.count += inserts
            batch.version += len(keys)
            result.inserts, result.updates = inserts, len(keys) - inserts
            known.update(unique)
        else:
            current: dict[bytes, bytes | None] = dict.fromkeys(unique, _STORED)
            current.update(zip(unread, olds, strict=True))
            self._write_diff(keys, vals, current, batch, result)
            _track(known, current)
        if len(known) > KNOWN_MAX:
            known.clear()
        self._known_at = (store.openings, batch.serial, batch.version)
        if batch.written is not None:
            if batch.values is not None:  # every record's bytes, in order: the last one wins
                batch.written.extend(keys)
                batch.values.extend(vals)
            else:
                batch.written.extend(unique)
        return result, keys, vals

    def _known_in(self, store: TableStore) -> set[bytes]:
        """The keys known to be in ``store`` (emptied when it was written otherwise since)."""
        if self._known_at != (store.openings, store.committed, store.version):
            self._known.clear()
        return self._known

    def _write_restored(
        self,
        keys: list[bytes],
        vals: list[bytes | None],
        tombstones: bool,
        seen: set[bytes],
        batch: StoreBatch,
        result: BatchResult,
    ) -> None:
        """The writes of a restore into an empty store: ``seen`` holds every key written so far
        (:attr:`TableStore.restored_keys`), so a key is new when it is not in it."""
        if tombstones:
            unique = list(dict.fromkeys(keys))
            current = {k: (k if k in seen else None) for k in unique}
            self._write_diff(keys, vals, current, batch, result)
            _track(seen, current)
        else:
            before = len(seen)
            seen.update(keys)
            inserts = len(seen) - before  # a key new to the table, however often in the batch
            put = batch.raw_writes()[0]
            # In key order: RocksDB's memtable inserts a run of ascending keys next to each
            # other instead of searching its skip list for each (random keys: the write took
            # 2.5x as long; a stable sort keeps a key's last record last). Keys already in
            # order (a topic produced in key order) cost the sort one pass.
            order = sorted(range(len(keys)), key=keys.__getitem__)
            values = cast(list[bytes], vals)
            any(map(put, map(keys.__getitem__, order), map(values.__getitem__, order)))
            batch.count += inserts
            batch.version += len(keys)
            result.inserts, result.updates = inserts, len(keys) - inserts
        if batch.written is not None:
            batch.written.extend(keys)
            if batch.values is not None:
                batch.values.extend(vals)
        batch.restored = True

    @staticmethod
    def _write_diff(
        keys: list[bytes],
        vals: list[bytes | None],
        current: dict[bytes, bytes | None],
        batch: StoreBatch,
        result: BatchResult,
    ) -> None:
        """Rows in record order against what the store held (``current``, updated): later
        records of a key see the earlier ones; deleting what is not there changes nothing. Each
        key is written once, with its last value."""
        count, version = batch.count, batch.version
        inserts = updates = deletes = 0
        before = dict(current)
        for skey, raw in zip(keys, vals, strict=True):
            old = current[skey]
            if raw is None:
                if old is None:
                    continue
                count -= 1
                deletes += 1
            elif old is None:
                count += 1
                inserts += 1
            else:
                updates += 1
            current[skey] = raw
            version += 1
        put, delete = batch.raw_writes()
        for skey, raw in current.items():
            if raw is not None:
                put(skey, raw)
            elif before[skey] is not None:
                delete(skey)
        batch.count, batch.version = count, version
        result.inserts, result.updates, result.deletes = inserts, updates, deletes


def _track(present: set[bytes], current: Mapping[bytes, bytes | None]) -> None:
    """``present`` (keys known to be in the store) after the writes of ``current`` (each key's
    last value, :meth:`KeysOnly._write_diff`): a key written None is gone."""
    for k, v in current.items():
        if v is None:
            present.discard(k)
        else:
            present.add(k)
