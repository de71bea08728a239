"""Applying a fetched batch of records to a table's store: decode, key, diff, write, progress.

Pure with respect to Kafka: it takes records (anything with topic/partition/offset/timestamp/key/
value) and a store, so it is tested without a broker and shared by every loader.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, cast

import msgspec

from core import codec
from tables.keys import key_bytes
from tables.protocol import Change, Op
from tables.store import Fingerprint, StoreBatch, TableStore
from tables.versions import Version, put_version
from tables.versions_store import Loaded, VersionStore, apply_history, loaded

E_NOT_JSON = "value is not valid JSON: {error}"
E_NOT_OBJECT = "value is a JSON {kind}, not an object with key field {field!r}"
E_NO_KEY_FIELD = "value has no key field {field!r}"
E_BAD_KEY_FIELD = "key field {field!r} is {error}"
E_NO_MESSAGE_KEY = "record has no message key"
E_KEY_NOT_UTF8 = "message key is not UTF-8"
E_UNREADABLE = "cannot read the record: {kind}: {error}"


class RawRecord(Protocol):
    """A fetched record of a known partition (aiokafka's own C record, as
    :func:`core.fetch.getmany_raw` returns them; anything with these attributes)."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class RecordLike(RawRecord, Protocol):
    """A record that says where it comes from (aiokafka's ``ConsumerRecord``, a test's)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


#: Fetched records grouped by where they come from: (topic, partition, records in offset order).
Parts = Iterable[tuple[str, int, Sequence[RawRecord]]]


def by_partition(records: Iterable[RecordLike]) -> list[tuple[str, int, list[RawRecord]]]:
    """``records`` as :data:`Parts`, in their order (each run of one partition a part)."""
    parts: list[tuple[str, int, list[RawRecord]]] = []
    run: list[RawRecord] | None = None
    where: tuple[str, int] | None = None
    for rec in records:
        if (rec.topic, rec.partition) != where:
            where = (rec.topic, rec.partition)
            run = []
            parts.append((rec.topic, rec.partition, run))
        assert run is not None
        run.append(rec)
    return parts


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that cannot be applied or processed, with where it came from and why: what a
    dead letter is made of (:mod:`tables.deadletter`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    reason: str
    #: The original record's headers (kept on its dead letter).
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class BatchResult:
    changes: list[Change] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    records: int = 0


_MISSING = object()


class Applier:
    """Turns records into row writes for one table. ``key_field`` None keys by message key.

    With ``versions`` (a versioned table) every record also becomes a version of its key, placed
    by event time; only a record at least as new as the key's latest version changes the row.
    """

    def __init__(
        self,
        key_field: str | None,
        decode: Callable[[bytes], Any],
        versions: VersionStore | None = None,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.key_field = key_field
        self.decode = decode
        self.versions = versions
        #: A declared table's row check (:attr:`tables.spec.TableSpec.check`): a row it gives a
        #: reason for is malformed — not stored, so the key keeps its previous row.
        self.check = check
        self._key_only = _key_decoder(key_field, decode)

    def _fast(self, want_changes: bool) -> bool:
        """Whether a batch needs only keys: rows are stored as received, nobody wants them
        decoded now (no change listeners, no row check, no history)."""
        return (
            self._key_only is not None
            and not want_changes
            and self.check is None
            and self.versions is None
        )

    def _row(self, rec: RawRecord) -> tuple[bytes, Any] | str:
        """(store key, decoded value or None for a tombstone), or the reason it is malformed."""
        try:
            return self._parse(rec)
        except UnicodeDecodeError:
            return E_KEY_NOT_UTF8
        except Exception as exc:
            return E_UNREADABLE.format(kind=type(exc).__name__, error=exc)

    def _parse(self, rec: RawRecord) -> tuple[bytes, Any] | str:
        raw = rec.value
        if raw is None:
            if rec.key is None:
                return E_NO_MESSAGE_KEY
            return self._message_key(rec.key), None
        try:
            value = self.decode(raw)
        except Exception as exc:  # any failure of one record is that record's, never the loader's
            return E_NOT_JSON.format(error=exc)
        if self.check is not None:
            reason = self.check(value)
            if reason is not None:
                return reason
        if self.key_field is None:
            if rec.key is None:
                return E_NO_MESSAGE_KEY
            return self._message_key(rec.key), value
        if not isinstance(value, dict):
            return E_NOT_OBJECT.format(kind=type(value).__name__, field=self.key_field)
        k = value.get(self.key_field)
        if k is None:
            return E_NO_KEY_FIELD.format(field=self.key_field)
        try:
            return key_bytes(k), value
        except Exception as exc:
            return E_BAD_KEY_FIELD.format(field=self.key_field, error=exc)

    @staticmethod
    def _message_key(key: bytes) -> bytes:
        key.decode("utf-8")  # validates: raises UnicodeDecodeError, caught as malformed upstream
        return key

    def apply(
        self,
        records: Iterable[RecordLike],
        store: TableStore,
        batch: StoreBatch,
        want_changes: bool,
    ) -> BatchResult:
        """:meth:`apply_parts` for records that each say where they come from."""
        return self.apply_parts(by_partition(records), store, batch, want_changes)

    def apply_parts(
        self,
        parts: Parts,
        store: TableStore,
        batch: StoreBatch,
        want_changes: bool,
    ) -> BatchResult:
        """Adds one batch of fetched records to ``batch``: rows, history, progress."""
        if self._fast(want_changes):
            return self._apply_keys_only(parts, store, batch)
        result = BatchResult()
        rows: list[tuple[str, int, RawRecord, bytes, Any]] = []
        for topic, partition, recs in parts:
            if not recs:
                continue
            result.records += len(recs)
            for rec in recs:
                row = self._row(rec)
                if isinstance(row, str):
                    result.malformed.append(_malformed(topic, partition, rec, row))
                else:
                    rows.append((topic, partition, rec, row[0], row[1]))
            _progress(batch, partition, recs[-1])
        if not rows:
            return result

        # One multi-get for the batch; later records of the same key see earlier ones via `current`.
        unique = list(dict.fromkeys(row[3] for row in rows))
        current: dict[bytes, bytes | None] = dict(zip(unique, store.multi_get(unique), strict=True))
        versions = self.versions
        histories: dict[bytes, Loaded] = {}
        # A key written twice in a batch takes the general path: the fast one reads the store only.
        repeated = {k for k, n in Counter(row[3] for row in rows).items() if n > 1}
        decode = self.decode
        count = batch.count
        for topic, partition, rec, skey, value in rows:
            seq = batch.version + 1
            if versions is not None:
                batch.stream_time = max(batch.stream_time, rec.timestamp)
                stored = None if value is None else rec.value
                batch.version = seq
                history = histories.get(skey)
                if history is None and (
                    skey in repeated or not versions.append(batch, skey, rec.timestamp, seq, stored)
                ):
                    history = histories[skey] = loaded(versions, skey)
                if history is not None:
                    _, latest = put_version(history[1], Version(rec.timestamp, seq, stored))
                    if not latest:
                        continue  # an out-of-order record: it changes the past only
            old_raw = current[skey]
            if value is None:
                if old_raw is None:
                    continue  # deleting what is not there changes nothing
                batch.delete(skey)
                current[skey] = None
                count -= 1
                result.deletes += 1
                op = Op.DELETE
            else:
                new_raw = rec.value
                assert new_raw is not None
                batch.put(skey, new_raw)
                current[skey] = new_raw
                if old_raw is None:
                    count += 1
                    result.inserts += 1
                    op = Op.INSERT
                else:
                    result.updates += 1
                    op = Op.UPDATE
            batch.version = seq
            if want_changes:
                old_value = None if old_raw is None else decode(old_raw)
                result.changes.append(
                    Change(
                        skey.decode(),
                        op,
                        value,
                        old_value,
                        rec.timestamp,
                        partition,
                        rec.offset,
                        seq,
                        topic,
                    )
                )
        batch.count = count
        if versions is not None:
            apply_history(versions, batch, histories)
        return result

    def _apply_keys_only(self, parts: Parts, store: TableStore, batch: StoreBatch) -> BatchResult:
        """:meth:`apply_parts` for the bulk case (a cold restore): parse only each value's key
        field, store the bytes as received. Whatever the key-only parse does not take plainly
        (not ASCII, possibly nested too deep, no key, not an object, malformed) goes through
        :meth:`_row`, so dead letters and their reasons are those of the full path."""
        key_only = self._key_only
        assert key_only is not None
        by_message = self.key_field is None
        exact = self.decode is codec.loads_exact
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
            for rec in recs:
                raw = rec.value
                k: Any = None
                if (
                    raw is not None
                    and raw.isascii()
                    # At most `limit` brackets cannot nest deeper than `limit` (the decoders'
                    # own first check; beyond it the full path measures the depth).
                    and (len(raw) <= limit or raw.count(b"[") + raw.count(b"{") <= limit)
                    # A digit right before an "e" is rare outside exponents: only then the regex.
                    and (exact or b"0e" not in raw.translate(_DIGITS) or not _big_exponent(raw))
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
                row = self._row(rec)
                if isinstance(row, str):
                    result.malformed.append(_malformed(topic, partition, rec, row))
                    continue
                add_key(row[0])
                if row[1] is None:
                    tombstones = True
                    add_val(None)
                else:
                    add_val(raw)
            _progress(batch, partition, recs[-1])
        if not keys:
            batch.restored = True  # no row written: a restore's set of keys still holds
            return result
        seen = store.restored_keys
        if seen is not None:
            self._write_restored(keys, vals, tombstones, seen, batch, result)
            return result
        unique = list(dict.fromkeys(keys))
        olds = store.multi_get(unique)
        if not tombstones and len(unique) == len(keys):
            # The bulk case proper (a compacted topic read from the start): every key once, every
            # record a row. Written by a C-level loop; counted from the multi-get at once.
            inserts = olds.count(None)
            put = batch.raw_writes()[0]
            any(map(put, keys, cast(list[bytes], vals)))  # put returns None: reads all
            batch.count += inserts
            batch.version += len(keys)
            result.inserts, result.updates = inserts, len(keys) - inserts
        else:
            self._write_diff(keys, vals, dict(zip(unique, olds, strict=True)), batch, result)
        if batch.written is not None:
            batch.written.extend(unique)
        return result

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
            for k, v in current.items():
                if v is None:
                    seen.discard(k)
                else:
                    seen.add(k)
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
        batch.restored = True

    @staticmethod
    def _write_diff(
        keys: list[bytes],
        vals: list[bytes | None],
        current: dict[bytes, bytes | None],
        batch: StoreBatch,
        result: BatchResult,
    ) -> None:
        """Rows in record order against what the store held: later records of a key see the
        earlier ones; deleting what is not there changes nothing."""
        count, version = batch.count, batch.version
        inserts = updates = deletes = 0
        put, delete = batch.raw_writes()
        for skey, raw in zip(keys, vals, strict=True):
            old = current[skey]
            if raw is None:
                if old is None:
                    continue
                delete(skey)
                count -= 1
                deletes += 1
            else:
                put(skey, raw)
                if old is None:
                    count += 1
                    inserts += 1
                else:
                    updates += 1
            current[skey] = raw
            version += 1
        batch.count, batch.version = count, version
        result.inserts, result.updates, result.deletes = inserts, updates, deletes


def _progress(batch: StoreBatch, partition: int, last: RawRecord) -> None:
    """The partition's next offset and the fingerprint of its last record, into ``batch``."""
    batch.positions[partition] = last.offset + 1
    batch.fingerprints[partition] = Fingerprint.of(last.offset, last.key, last.value)


def _malformed(topic: str, partition: int, rec: RawRecord, reason: str) -> Malformed:
    headers = tuple(getattr(rec, "headers", None) or ())
    return Malformed(
        topic, partition, rec.offset, rec.timestamp, rec.key, rec.value, reason, headers
    )


#: What the key-only parse of a table keyed by message key gives for a valid JSON object.
_VALID: Any = object()
_RESERVED = "@tablestream.valid"
#: A number whose exponent may overflow a double: the key-only parse skips fields without
#: reading their numbers, but orjson (``codec.loads``) refuses such a value (``1e400``).
_big_exponent = re.compile(rb"\d[eE][+-]?\d\d\d").search
#: Every digit to "0" and "E" to "e": ``b"0e" in raw.translate(_DIGITS)`` is the cheap test
#: (~0.1 µs) that spares most values the regex (~1 µs, a third of a record's restore).
_DIGITS = bytes.maketrans(b"0123456789E", b"0000000000e")


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
