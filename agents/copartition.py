"""A co-partitioned stateful query: its GROUP BY holds the source's record key, so each source
partition is aggregated in place — no repartition topic (:mod:`sql.compile.partitioning`).

The planner trusts the declaration (``WITH (key='user_id')``): the records of a group are in one
source partition only if every record's key is its group column's text and Kafka's default
partitioner placed it. A record that breaks either would silently land in another task's group,
so each is checked before it reaches the query, and one that fails is a dead letter (with its
topic, partition and offset) instead:

- GROUP BY the declared column ``c``: the record key must be the canonical text of the value's
  ``c`` (:func:`tables.keys.key_text`, as table keys: ``42`` and ``42.0`` both ``b"42"``; NULL:
  the empty key); the value is decoded for it with the stream's own decoder, and the query
  takes that decoded value (:meth:`agents.process.BatchProcessor.use_decoded`);
- GROUP BY ``_key``: the record must have a key (a record without one is spread round-robin);
- both: the partition must be the one murmur2 gives the key (the Java client's and aiokafka's
  default), computed once per distinct key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.codec import DecodeError, Decoder
from agents.process import BatchCounts, OutputLike, PerPartition, RawRecord
from core.murmur import murmur2
from sql import SqlRuntimeError
from tables.deadletter import source_of_query
from tables.keys import key_text

#: Distinct keys whose placement is remembered per task (then forgotten at once and relearned).
PLACEMENT_CACHE = 100_000

E_NO_KEY = (
    "record without a key: stream {stream} is co-partitioned by its key (GROUP BY {by}),"
    " a record without one cannot be placed"
)
E_KEY_MISMATCH = (
    "record key {key!r} is not the key column {column} of stream {stream} ({value!r}):"
    " its group may be in another partition"
)
E_MISPLACED = (
    "record key {key!r} belongs in partition {want} of {topic} (Kafka's default partitioner),"
    " not {got}: stream {stream} is not partitioned by its key"
)


class KeyCheck:
    """Why a record of one source partition breaks co-partitioning (None: it does not)."""

    def __init__(
        self,
        stream: str,
        topic: str,
        partitions: int,
        column: str | None,
        decode: Decoder,
    ) -> None:
        self.stream = stream
        self.topic = topic
        self.partitions = partitions
        self.column = column
        self.decode = decode
        self._placed: dict[bytes, int] = {}
        #: Per partition, keys that passed :meth:`passes` with the key column's value they
        #: passed with (a task reads one partition; a key is placed in one of them).
        self._checked: dict[int, dict[bytes, Any]] = {}

    def __call__(self, rec: RawRecord, partition: int) -> str | None:
        return self.check(rec, partition, None)

    def check(
        self, rec: RawRecord, partition: int, decoded: dict[int, tuple[Any, Any]] | None
    ) -> str | None:
        """Why ``rec`` breaks co-partitioning, or None; the value it decoded goes to
        ``decoded`` (by ``id`` of the raw value, see :meth:`BatchProcessor.use_decoded`)."""
        key = rec.key
        column = self.column
        if key is None:
            return E_NO_KEY.format(stream=self.stream, by=column or "_key")
        raw = rec.value
        if column is not None and raw is not None:
            try:
                row = self.decode(raw)
            except (DecodeError, SqlRuntimeError):
                # The query's own decoding makes it a dead letter, with its reason (a value
                # that does not fit its column is the decoder's CastError).
                return None
            if decoded is not None:
                decoded[id(raw)] = (raw, row)
            if not isinstance(row, dict):
                return None  # not a row: the query's dead letter
            value = row.get(column)
            try:
                # NULL as the empty key, as the repartition stage places a NULL group.
                text = "" if value is None else key_text(value)
            except TypeError:
                text = None
            if text is None or text.encode("utf-8") != key:
                return E_KEY_MISMATCH.format(
                    key=key_str(key), column=column, stream=self.stream, value=value
                )
        want = self._placed.get(key)
        if want is None:
            want = self._place(key)
        if want != partition:
            return E_MISPLACED.format(
                key=key_str(key), want=want, topic=self.topic, got=partition, stream=self.stream
            )
        return None

    def _place(self, key: bytes) -> int:
        """The partition the producer's default partitioner gives ``key`` (murmur2), cached."""
        want: int = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        if len(self._placed) >= PLACEMENT_CACHE:
            self._placed.clear()
        self._placed[key] = want
        return want

    def passes(self, key: bytes | None, partition: int, value: Any) -> bool:
        """The check of a record whose value decoded, given its key column's ``value`` (any
        value for GROUP BY ``_key``): True when it passes — then ``checked`` remembers the key
        with that value (the generated fold's gate, :class:`sql.codegen.fold_batch.KeyGate`)."""
        if key is None:
            return False
        if self.column is not None:
            try:
                text = "" if value is None else key_text(value)
            except TypeError:
                return False
            if text.encode("utf-8") != key:
                return False
        want = self._placed.get(key)
        if want is None:
            want = self._place(key)
        if want != partition:
            return False
        checked = self.checked(partition)
        if len(checked) >= PLACEMENT_CACHE:
            checked.clear()
        checked[key] = True if self.column is None else value
        return True

    def checked(self, partition: int) -> dict[bytes, Any]:
        """The keys of ``partition`` that passed :meth:`passes` -> the value they passed with."""
        found = self._checked.get(partition)
        if found is None:
            found = self._checked[partition] = {}
        return found


def key_str(key: bytes) -> str:
    return key.decode("utf-8", "replace")


class CheckedProcessor(PerPartition[OutputLike]):
    """``inner`` (the task's batch processor) behind :class:`KeyCheck`: a record that fails the
    check is a dead letter and never reaches the query; the batch's last record and count stay
    those of the whole batch (its offset is what the task reflects)."""

    def __init__(
        self, inner: PerPartition[OutputLike], check: KeyCheck, name: str, *, fold: bool = True
    ) -> None:
        self.inner = inner
        self.check = check
        self.dead_letter_topic = inner.dead_letter_topic
        self.source = source_of_query(name)
        #: External tables' prefetch (:func:`agents.hold.prefetch_batch`), as the inner one's.
        self.prefetch: Any = getattr(inner, "prefetch", None)
        #: The inner processor's :meth:`~agents.process.BatchProcessor.use_decoded` (a query
        #: reading external tables prefetches, which decodes on its own: not handed then).
        self._use_decoded = (
            getattr(inner, "use_decoded", None) if self.prefetch is None and check.column else None
        )
        # Imported here: agents.fold builds on this module's check.
        from agents.fold import folded

        #: The query's generated fold (:mod:`agents.fold`), None where the general path runs
        #: every record (or ``fold`` is off: ``TABLESTREAM_CODEGEN=false``).
        self.folded = folded(inner, check, self._dead_letter) if fold else None

    def run_partition(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: OutputLike,
        counts: BatchCounts,
    ) -> None:
        if not records:
            return
        fold = self.folded
        if fold is not None and fold.run_partition(topic, partition, records, output, counts):
            return
        check = self.check.check
        # The values the check decoded are not decoded again by the query (GC is paused while a
        # task runs its batch: keeping them alive that long costs no collection).
        decoded: dict[int, tuple[Any, Any]] | None = {} if self._use_decoded is not None else None
        good: list[RawRecord] | None = None  # None: every record so far passed
        for i, rec in enumerate(records):
            why = check(rec, partition, decoded)
            if why is None:
                if good is not None:
                    good.append(rec)
                continue
            if good is None:
                good = list(records[:i])
            self._dead_letter(topic, partition, rec, why, output, counts)
        run = records if good is None else good
        if run:
            if decoded and self._use_decoded is not None:
                self._use_decoded(decoded)
            self.inner.run_partition(topic, partition, run, output, counts)
        counts.last[partition] = records[-1]
        counts.records_in += len(records) - len(run)
