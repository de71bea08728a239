"""One fetched batch through one compiled query: decode → process → encode → append to output.

No Kafka here beyond the record shape, so it is unit-tested without a broker. Every per-record
cost counts at 100k records/s: locals are bound once per batch, the loop body is one try block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from agents.codec import E_ENCODE, DecodeError, Decoder, encode_row, make_key
from agents.metrics import reason_label
from core.fetch import RawRecord as RawRecord
from sql import LateRecordError, Retraction, SqlRuntimeError
from tables.apply import Malformed, RecordLike
from tables.deadletter import malformed, source_of_query
from tables.protocol import TableUnavailableError

logger = logging.getLogger(__name__)

E_INTERNAL = "internal error {kind}: {error}"
#: Dead-letter reason of a record behind the watermark (``sql.errors.LateRecordError``).
REASON_LATE = "late"
#: Dead-letter reason of a record whose external table's source is down (policy dead_letter,
#: or stale without a cached row): :class:`tables.protocol.TableUnavailableError`.
REASON_UNAVAILABLE = "source unavailable: {table}"


class DeadLetters(Protocol):
    """Where records that cannot be processed go (:meth:`agents.sink.Output.dead_letter`)."""

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None: ...


class OutputLike(DeadLetters, Protocol):
    """Where a batch's records go (:class:`agents.sink.Output`; a list in unit tests)."""

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None: ...

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        """A function appending (key, value) records to one topic-partition."""
        ...


class QueryLike(Protocol):
    def record_fn(
        self,
    ) -> Callable[[Mapping[str, Any], Any, int | None, int, int], list[dict[str, Any]]]: ...

    def process(
        self,
        value: Mapping[str, Any],
        *,
        key: Any = None,
        timestamp: int | None = None,
        partition: int = -1,
        offset: int = -1,
    ) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class BatchCounts:
    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    #: Dead letters by :func:`agents.metrics.reason_label`.
    reasons: dict[str, int] = field(default_factory=dict)
    #: Records with a null value: a stream has no row to delete, so they are skipped (counted).
    tombstones: int = 0
    #: Per partition, the last record of the batch (offsets to commit, fingerprints to store).
    last: dict[int, RawRecord] = field(default_factory=dict)


Out = TypeVar("Out", bound="DeadLetters")


def reason_of(err: Exception) -> str:
    if isinstance(err, LateRecordError):
        return REASON_LATE
    if isinstance(err, SqlRuntimeError):
        return f"{type(err).__name__}: {err.message}"
    return str(err)


def internal_error(name: str, topic: str, partition: int, offset: int, err: Exception) -> str:
    """A bug met on one record must not stop the stream: logged with its traceback and the
    record's place, the record kept as a dead letter with this reason."""
    logger.error("query %s: %s[%d]@%d", name, topic, partition, offset, exc_info=err)
    return E_INTERNAL.format(kind=type(err).__name__, error=err)


class PerPartition(Generic[Out]):
    """A batch processor's two entry points over its :meth:`run_partition`, and its dead
    letters (the original bytes, with the source topic, partition, offset and reason)."""

    dead_letter_topic: str
    #: The ``tablestream.source`` header of its dead letters (``query:<name>``).
    source: str

    def run(self, records: Sequence[RecordLike], output: Out) -> BatchCounts:
        """``records`` of any topic-partitions (each with ``topic`` and ``partition``), in order."""
        parts: dict[tuple[str, int], list[RecordLike]] = {}
        for rec in records:
            parts.setdefault((rec.topic, rec.partition), []).append(rec)
        counts = BatchCounts()
        for (topic, partition), recs in parts.items():
            self.run_partition(topic, partition, recs, output, counts)
        return counts

    def run_fetched(self, fetched: Mapping[Any, Sequence[RawRecord]], output: Out) -> BatchCounts:
        """Records grouped by topic-partition (``.topic``, ``.partition`` keys), as fetched."""
        counts = BatchCounts()
        for tp, recs in fetched.items():
            self.run_partition(tp.topic, tp.partition, recs, output, counts)
        return counts

    def run_partition(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: Out,
        counts: BatchCounts,
    ) -> None:
        """The records of one source partition, in offset order, added to ``counts``."""
        raise NotImplementedError

    def _dead_letter(
        self,
        topic: str,
        partition: int,
        rec: RawRecord,
        reason: str,
        output: Out,
        counts: BatchCounts,
    ) -> None:
        output.dead_letter(
            self.dead_letter_topic, malformed(topic, partition, rec, reason), self.source
        )
        counts.dead_letters += 1
        label = reason_label(reason)
        counts.reasons[label] = counts.reasons.get(label, 0) + 1


class BatchProcessor(PerPartition[OutputLike]):
    """Runs records of one source topic through ``query`` into ``output``."""

    def __init__(
        self,
        query: QueryLike,
        decode: Decoder,
        *,
        name: str,
        sink_topic: str,
        key_columns: Sequence[str],
        dead_letter_topic: str,
        encode: Callable[[Any], bytes] = encode_row,
    ) -> None:
        self.query = query
        self.decode = decode
        self.encode = encode
        self.name = name
        self.sink_topic = sink_topic
        self.key_columns = tuple(key_columns)
        self.key_of = make_key(key_columns)
        self.dead_letter_topic = dead_letter_topic
        self.source = source_of_query(name)
        prefetcher = getattr(query, "prefetcher", None)
        self._prefetcher = prefetcher
        #: ``await prefetch(fetched)`` before :meth:`run_fetched` when the query reads external
        #: tables (their probes fetched for the whole batch at once); None otherwise, so the
        #: batches of queries over Kafka tables pay nothing for it.
        self.prefetch = self._prefetch if prefetcher is not None else None
        #: Values the last prefetch decoded, by ``id`` of the raw value: (raw value, value).
        self._decoded: dict[int, tuple[Any, Any]] = {}
        #: Outputs keyed by the source key go to the source record's partition (set by the agent
        #: when the sink has as many partitions as the source): the partition Kafka's default
        #: partitioner gave that key, without hashing it again.
        self.keep_partition = False

    async def _prefetch(self, fetched: Mapping[Any, Sequence[RawRecord]]) -> None:
        """Fetch ahead what the batch's records will look up in external tables. A record that
        does not decode is skipped here (it goes to the dead letters when the batch runs)."""
        decode = self.decode
        # The batch's records decoded here are not decoded again when it runs (half a record's
        # cost in a lookup join: bench/federation.py): by the raw value's identity, the value
        # kept alive with it so that identity cannot be another's.
        decoded = self._decoded = {}

        def records() -> Iterator[tuple[Any, Any, int]]:
            for recs in fetched.values():
                for rec in recs:
                    raw = rec.value
                    if raw is None:
                        continue
                    try:
                        value = decode(raw)
                    except DecodeError:
                        continue
                    decoded[id(raw)] = (raw, value)
                    yield value, rec.key, rec.timestamp

        assert self._prefetcher is not None
        await self._prefetcher.fetch(records())

    def use_decoded(self, decoded: dict[int, tuple[Any, Any]]) -> None:
        """Values the next run need not decode again, by ``id`` of the raw value: (raw value,
        value) — decoded with this processor's ``decode`` by whoever looked at the batch first
        (:class:`agents.copartition.CheckedProcessor`), as a prefetch keeps them."""
        self._decoded = decoded

    def _decoder(self) -> Decoder:
        """``decode``, or — after a prefetch — the values it decoded, taken once each."""
        decoded, plain = self._decoded, self.decode
        if not decoded:
            return plain
        take = decoded.pop

        def decode(raw: Any) -> Any:
            kept = take(id(raw), None)
            return kept[1] if kept is not None and kept[0] is raw else plain(raw)

        return decode

    def run_partition(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: OutputLike,
        counts: BatchCounts,
    ) -> None:
        """The records of one source partition, in offset order, added to ``counts``."""
        if not records:
            return
        process = self.query.record_fn()
        decode = self._decoder()
        key_of = self.key_of
        append = output.append
        sink = self.sink_topic
        encode = self.encode
        n_out = 0
        keep = self.keep_partition and key_of is None
        # The common case — one row keyed by the source key — appends straight to the record
        # batch of the sink partition; otherwise the output picks the partition per key.
        add = output.appender(sink, partition) if keep else None
        part = partition if keep else None
        for rec in records:
            value = rec.value
            if value is None:
                counts.tombstones += 1
                continue
            try:
                key = rec.key
                # The key as bytes: the query decodes it only if it reads _key.
                rows = process(decode(value), key, rec.timestamp, partition, rec.offset)
                if len(rows) == 1 and key_of is None and type(rows[0]) is not Retraction:
                    try:
                        out = encode(rows[0])
                    except (TypeError, ValueError) as exc:
                        raise _EncodeError(E_ENCODE.format(error=exc)) from exc
                    if add is not None:
                        add(key, out)
                    else:
                        append(sink, key, out, None, None)
                    n_out += 1
                elif rows:
                    encoded = self._encode(rows, key, key_of, encode)
                    for k, v in encoded:
                        append(sink, k, v, None, part)
                    n_out += len(encoded)
            except DecodeError as err:
                self._dead_letter(topic, partition, rec, err.reason, output, counts)
            except TableUnavailableError as err:  # the table's on_error policy says: dead letter
                reason = REASON_UNAVAILABLE.format(table=err.table)
                self._dead_letter(topic, partition, rec, reason, output, counts)
            except SqlRuntimeError as err:
                # Windows the record's event time closed before it failed are still results.
                if err.rows:
                    try:
                        for k, v in self._encode(err.rows, rec.key, key_of, encode):
                            append(sink, k, v)
                            n_out += 1
                    except _EncodeError:
                        pass
                self._dead_letter(topic, partition, rec, reason_of(err), output, counts)
            except _EncodeError as err:
                self._dead_letter(topic, partition, rec, reason_of(err), output, counts)
            except Exception as err:
                reason = internal_error(self.name, topic, partition, rec.offset, err)
                self._dead_letter(topic, partition, rec, reason, output, counts)
        counts.last[partition] = records[-1]
        counts.records_in += len(records)
        counts.records_out += n_out

    @staticmethod
    def _encode(
        rows: list[dict[str, Any]],
        source_key: bytes | None,
        key_of: Callable[[Mapping[str, Any]], bytes | None] | None,
        encode: Callable[[Any], bytes],
    ) -> list[tuple[bytes | None, bytes | None]]:
        # All rows of a record are encoded before any is appended: a record either has all its
        # outputs or goes to the dead letters, never half of each. A retraction (a session
        # window merged away) is a tombstone for its key.
        try:
            if key_of is None:
                return [(source_key, None if type(r) is Retraction else encode(r)) for r in rows]
            return [(key_of(r), None if type(r) is Retraction else encode(r)) for r in rows]
        except (TypeError, ValueError) as exc:
            raise _EncodeError(E_ENCODE.format(error=exc)) from exc


class _EncodeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
