"""A co-partitioned aggregate's batches through its generated fold (:mod:`sql.codegen.fold_batch`):
one call per fetched partition instead of the key check, the closures and the encoder per record.

The general path stays the reference and runs every record the fold does not take: ``slow(rec)``
is exactly :class:`agents.copartition.CheckedProcessor`'s handling of one record (the key check,
its dead letter, or the query's :class:`~agents.process.BatchProcessor`), in the record's place
among the others, so outputs keep their order. A record key that passes the check is remembered
with its key column's value (:meth:`KeyCheck.passes`): later records with that key and an equal
value skip the check (the same text and the same partition, so the same answer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from agents.codec import DecodeError, encode_row, fast_encoder, make_encoder
from agents.copartition import KeyCheck
from agents.fused import EncodeFailure, refusing
from agents.process import (
    BatchCounts,
    BatchProcessor,
    OutputLike,
    PerPartition,
    RawRecord,
    internal_error,
    reason_of,
)
from agents.sink import NO_HEADERS
from agents.structdecode import struct_decoding
from sql import (
    CompiledQuery,
    Encoding,
    GeneratedFold,
    KeyGate,
    SqlRuntimeError,
    Unsupported,
    fold_operator,
    generate_fold,
)


def _encoding(encode: Callable[[Any], bytes], query: CompiledQuery, message: str) -> Encoding:
    """The general path's encoder as the fold's :class:`Encoding` (so the same bytes, its
    errors the record's): :func:`agents.encode.make_encoder`'s for the query's outputs written
    out (msgspec first; a non-finite DECIMAL or what msgspec refuses through ``encode_row``,
    which raises), any other encoder called as it is."""
    slow = refusing(encode, message)
    made = make_encoder(query.output_columns, query.output_types)
    fast = fast_encoder(query.output_types)
    if (
        fast is None
        or getattr(encode, "__code__", None) is not getattr(made, "__code__", False)
        or [c.cell_contents for c in encode.__closure__ or ()][:1]
        != [c.cell_contents for c in made.__closure__ or ()][:1]  # the same DECIMAL columns
    ):
        return Encoding(slow)
    decimal = any(t.name == "DECIMAL" for t in query.output_types)
    return Encoding(refusing(encode_row, message), fast, scan_nonfinite=decimal)


class Folded:
    """The generated fold of ``inner``'s query behind ``check``; :class:`Unsupported` when the
    query is not one the fold is generated for (see :mod:`sql.codegen.fold_batch`)."""

    def __init__(
        self,
        inner: BatchProcessor,
        check: KeyCheck,
        dead_letter: Callable[[str, int, RawRecord, str, OutputLike, BatchCounts], None],
    ) -> None:
        from agents.codec import E_ENCODE

        query = inner.query
        if not isinstance(query, CompiledQuery):
            raise Unsupported("not a compiled query")
        self.op = fold_operator(query)
        schema = query.plan.stream.schema
        # The stream's struct where its declared columns allow one, else its dict decoder.
        struct = struct_decoding(schema.columns if schema.closed else None, inner.decode)
        self.inner, self.check, self.name = inner, check, inner.name
        self._dead_letter = dead_letter
        key_of = inner.key_of
        self.generated: GeneratedFold = generate_fold(
            query,
            _encoding(inner.encode, query, E_ENCODE),
            None if key_of is None else refusing(key_of, E_ENCODE),
            inner.key_columns,
            struct if struct is not None else inner.decode,
            inner.sink_topic,
            KeyGate(check.column, check.checked, check.passes),
        )
        self._fold = self.generated.fn

    def run_partition(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: OutputLike,
        counts: BatchCounts,
    ) -> bool:
        """The batch through the fold; False (nothing done) when the general path must run it."""
        if getattr(self.op, "clock", None) is not None:
            return False  # a watermark over source partitions: not the fold's (never here)
        n0 = counts.records_in
        fails: list[tuple[RawRecord, Exception]] = []
        sinks = _Sinks(output, self.inner.sink_topic) if hasattr(output, "record_sink") else None
        slow = self._slow(topic, partition, output, counts, sinks)
        try:
            n_out = self._fold(records, partition, fails, slow, output.append, sinks)
        finally:
            if sinks is not None:
                sinks.close()
        for rec, err in fails:
            reason = self._reason(topic, partition, rec, err)
            self._dead_letter(topic, partition, rec, reason, output, counts)
        counts.records_out += n_out
        counts.records_in = n0 + len(records)
        counts.last[partition] = records[-1]
        return True

    def _slow(
        self,
        topic: str,
        partition: int,
        output: OutputLike,
        counts: BatchCounts,
        sinks: _Sinks | None,
    ) -> Callable[[RawRecord], None]:
        """:class:`agents.copartition.CheckedProcessor`'s way with one record (the fold's open
        record batches closed first: the general path appends through the output)."""
        check, inner = self.check, self.inner
        use_decoded = check.column is not None and inner.prefetch is None

        def slow(rec: RawRecord) -> None:
            if sinks is not None and sinks.open:
                sinks.close()
            decoded: dict[int, tuple[Any, Any]] | None = {} if use_decoded else None
            why = check.check(rec, partition, decoded)
            if why is not None:
                self._dead_letter(topic, partition, rec, why, output, counts)
                return
            if decoded:
                inner.use_decoded(decoded)
            inner.run_partition(topic, partition, [rec], output, counts)

        return slow

    def _reason(self, topic: str, partition: int, rec: RawRecord, err: Exception) -> str:
        if isinstance(err, DecodeError):
            return err.reason
        if isinstance(err, SqlRuntimeError):
            return reason_of(err)
        if isinstance(err, EncodeFailure):
            return err.message
        # A bug must not stop the stream; the record is kept (as the general path does).
        return internal_error(self.name, topic, partition, rec.offset, err)


class _Sinks:
    """:class:`sql.codegen.fold_batch.RecordSinks` over an :class:`agents.sink.Output`: the
    outputs of a fold go to the record batch of their key's partition through its C builder
    (``Output.append`` per record cost ~2 µs: a Python call, its header list, the builder's
    keyword wrapper)."""

    def __init__(self, output: Any, topic: str) -> None:
        self.output, self.topic = output, topic
        self.open: dict[int, list[Any]] = {}
        self.part = functools.partial(output.partition, topic)
        #: The output's partitions by key for ``topic`` (filled by ``partition``): read inline.
        self.known: dict[bytes, int] = getattr(output, "_cache", {}).get(topic, {})

    def start(self, partition: int) -> list[Any]:
        sink = self.output.record_sink(self.topic, partition)
        append, n = sink.open()
        return [append, n, sink]

    def roll(self, entry: list[Any], key: bytes | None, value: bytes) -> None:
        append, n = entry[2].roll(entry[1])
        entry[0], entry[1] = append, n
        if append(n, None, key, value, NO_HEADERS) is None:
            entry[2].too_large(key, value)

    def close(self) -> None:
        for _, n, sink in self.open.values():
            sink.close(n)
        self.open.clear()


def folded(
    inner: PerPartition[OutputLike],
    check: KeyCheck,
    dead_letter: Callable[[str, int, RawRecord, str, OutputLike, BatchCounts], None],
) -> Folded | None:
    """The fold of ``inner``'s query, or None when the general path runs it."""
    if not isinstance(inner, BatchProcessor) or inner.prefetch is not None:
        return None
    try:
        return Folded(inner, check, dead_letter)
    except Unsupported:
        return None
