"""Applying a fetched batch of records to a table's store: decode, key, diff, write, progress.

Pure with respect to Kafka: it takes records (anything with topic/partition/offset/timestamp/key/
value, :mod:`tables.records`) and a store, so it is tested without a broker and shared by every
loader. The bulk case (a cold restore, nobody wanting rows decoded) is :mod:`tables.keys_only`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tables.keys import key_bytes
from tables.keys_only import KeysOnly
from tables.protocol import Change, Op
from tables.records import BatchResult as BatchResult
from tables.records import Malformed as Malformed
from tables.records import Parts as Parts
from tables.records import RawRecord as RawRecord
from tables.records import RecordLike as RecordLike
from tables.records import by_partition as by_partition
from tables.records import malformed, progress
from tables.store import StoreBatch, TableStore
from tables.versions import Version, put_version
from tables.versions_store import Loaded, VersionStore, apply_history, loaded

E_NOT_JSON = "value is not valid JSON: {error}"
E_NOT_OBJECT = "value is a JSON {kind}, not an object with key field {field!r}"
E_NO_KEY_FIELD = "value has no key field {field!r}"
E_BAD_KEY_FIELD = "key field {field!r} is {error}"
E_NO_MESSAGE_KEY = "record has no message key"
E_KEY_NOT_UTF8 = "message key is not UTF-8"
E_UNREADABLE = "cannot read the record: {kind}: {error}"


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
        self._keys_only = KeysOnly.of(key_field, decode)

    def _fast(self, want_changes: bool) -> bool:
        """Whether a batch needs only keys: rows are stored as received, nobody wants them
        decoded now (no change listeners, no row check, no history)."""
        return (
            self._keys_only is not None
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
        tail: int = 0,
    ) -> BatchResult:
        """:meth:`apply_parts` for records that each say where they come from."""
        return self.apply_parts(by_partition(records), store, batch, want_changes, tail)

    def apply_parts(
        self,
        parts: Parts,
        store: TableStore,
        batch: StoreBatch,
        want_changes: bool,
        tail: int = 0,
    ) -> BatchResult:
        """Adds one batch of fetched records to ``batch``: rows, history, progress. Its changes
        (``result.changes``): every one with ``want_changes``, else at least the last ``tail``."""
        if self._keys_only is not None and self._fast(want_changes):
            return self._keys_only.apply_parts(parts, store, batch, self._row, tail, self.decode)
        want_changes = want_changes or tail > 0
        result = BatchResult()
        rows: list[tuple[str, int, RawRecord, bytes, Any]] = []
        for topic, partition, recs in parts:
            if not recs:
                continue
            result.records += len(recs)
            for rec in recs:
                row = self._row(rec)
                if isinstance(row, str):
                    result.malformed.append(malformed(topic, partition, rec, row))
                else:
                    rows.append((topic, partition, rec, row[0], row[1]))
            progress(batch, partition, recs[-1])
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
