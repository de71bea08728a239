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

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agents.codec import DecodeError
from agents.copartition import KeyCheck
from agents.fused import EncodeFailure
from agents.process import (
    E_INTERNAL,
    BatchCounts,
    BatchProcessor,
    OutputLike,
    PerPartition,
    RawRecord,
    reason_of,
)
from agents.structdecode import struct_decoding
from sql import CompiledQuery, Encoding, SqlRuntimeError, Unsupported
from sql.codegen.fold_batch import GeneratedFold, KeyGate, fold_operator, generate_fold

logger = logging.getLogger(__name__)


def _refusing(fn: Callable[[Any], Any], message: str) -> Callable[[Any], Any]:
    """``fn`` with its TypeError/ValueError turned into the record's EncodeFailure (the general
    path's ``_EncodeError``: the same reason)."""

    def call(row: Any) -> Any:
        try:
            return fn(row)
        except (TypeError, ValueError) as exc:
            raise EncodeFailure(message.format(error=exc)) from exc

    return call


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
            # The general path's own encoder (so the same bytes), its errors the record's.
            Encoding(_refusing(inner.encode, E_ENCODE)),
            None if key_of is None else _refusing(key_of, E_ENCODE),
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
        slow = self._slow(topic, partition, output, counts)
        n_out = self._fold(records, partition, fails, slow, output.append)
        for rec, err in fails:
            self._dead_letter(topic, partition, rec, self._reason(rec, err), output, counts)
        counts.records_out += n_out
        counts.records_in = n0 + len(records)
        counts.last[partition] = records[-1]
        return True

    def _slow(
        self, topic: str, partition: int, output: OutputLike, counts: BatchCounts
    ) -> Callable[[RawRecord], None]:
        """:class:`agents.copartition.CheckedProcessor`'s way with one record."""
        check, inner = self.check, self.inner
        use_decoded = check.column is not None and inner.prefetch is None

        def slow(rec: RawRecord) -> None:
            decoded: dict[int, tuple[Any, Any]] | None = {} if use_decoded else None
            why = check.check(rec, partition, decoded)
            if why is not None:
                self._dead_letter(topic, partition, rec, why, output, counts)
                return
            if decoded:
                inner.use_decoded(decoded)
            inner.run_partition(topic, partition, [rec], output, counts)

        return slow

    def _reason(self, rec: RawRecord, err: Exception) -> str:
        if isinstance(err, DecodeError):
            return err.reason
        if isinstance(err, SqlRuntimeError):
            return reason_of(err)
        if isinstance(err, EncodeFailure):
            return err.message
        # A bug must not stop the stream; the record is kept (as the general path does).
        logger.error("query %s: record @%d", self.name, rec.offset, exc_info=err)
        return E_INTERNAL.format(kind=type(err).__name__, error=err)


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
