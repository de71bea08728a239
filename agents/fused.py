"""A stateless query's batches through its generated function (:mod:`sql.codegen`): one call
per fetched partition instead of a chain of closures per record.

The same outputs and dead letters as :class:`agents.process.BatchProcessor` (the reference,
still used for the queries the generator leaves to closures): the generated code runs the
query's own decoder, its compiled plan and the same encoder, and each failed record comes back
with its exception, turned here into the dead-letter reason the closures' driver would give.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents.codec import E_ENCODE, DecodeError, Decoder, encode_row, fast_encoder, make_key
from agents.process import (
    REASON_UNAVAILABLE,
    BatchCounts,
    BatchProcessor,
    OutputLike,
    RawRecord,
    internal_error,
    reason_of,
)
from agents.structdecode import struct_decoding
from sql import (
    CompiledQuery,
    EmitSink,
    Encoding,
    Generated,
    RecordSink,
    SqlRuntimeError,
    SqlType,
    Unsupported,
    generate,
)
from tables.protocol import TableUnavailableError


class EncodeFailure(Exception):
    """An output row (or its key) that cannot be encoded: the record's dead letter."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def refusing(fn: Callable[[Any], Any], message: str = E_ENCODE) -> Callable[[Any], Any]:
    """``fn`` with its TypeError/ValueError turned into the record's EncodeFailure (``message``
    formatted with the error: the general path's ``_EncodeError`` reason)."""

    def call(row: Any) -> Any:
        try:
            return fn(row)
        except (TypeError, ValueError) as exc:
            raise EncodeFailure(message.format(error=exc)) from exc

    return call


class FusedProcessor(BatchProcessor):
    """:class:`BatchProcessor` whose :meth:`run_partition` is the query's generated function."""

    def __init__(
        self,
        query: CompiledQuery,
        decode: Decoder,
        *,
        name: str,
        sink_topic: str,
        key_columns: Sequence[str],
        dead_letter_topic: str,
        batch_lookups: bool = False,
        columns: Mapping[str, SqlType] | None = None,
        project: bool = True,
    ) -> None:
        super().__init__(
            query,
            decode,
            name=name,
            sink_topic=sink_topic,
            key_columns=key_columns,
            dead_letter_topic=dead_letter_topic,
        )
        fast = fast_encoder(query.output_types)
        encoding = Encoding(
            refusing(encode_row),
            fast,
            scan_nonfinite=fast is not None
            and any(t.name == "DECIMAL" for t in query.output_types),
        )
        key_of = make_key(key_columns)
        #: Raises :class:`sql.codegen.Unsupported` for a query it does not generate.
        self.generated: Generated = generate(
            query,
            decode,
            encoding,
            None if key_of is None else refusing(key_of),
            batch_lookups=batch_lookups,
            # A declared stream's records as msgspec structs where the code allows it.
            struct=struct_decoding(columns, decode),
            # Lookups reading a column or two through a map of those values (sql.codegen).
            project=project,
        )
        self._batch = self.generated.fn

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
        sink: RecordSink
        if self.keep_partition and self.key_of is None:
            # The output's C record builder, called by the generated code itself.
            make = getattr(output, "record_sink", None)
            sink = (
                make(self.sink_topic, partition)
                if make is not None
                else EmitSink(output.appender(self.sink_topic, partition))
            )
        else:
            sink = EmitSink(functools.partial(output.append, self.sink_topic))
        fails: list[tuple[RawRecord, Exception]] = []
        n_out, tombstones = self._batch(records, partition, sink, fails)
        for rec, err in fails:
            self._dead_letter(
                topic, partition, rec, self._reason(topic, partition, rec, err), output, counts
            )
        counts.tombstones += tombstones
        counts.last[partition] = records[-1]
        counts.records_in += len(records)
        counts.records_out += n_out

    def _reason(self, topic: str, partition: int, rec: RawRecord, err: Exception) -> str:
        if isinstance(err, DecodeError):
            return err.reason
        if isinstance(err, TableUnavailableError):
            return REASON_UNAVAILABLE.format(table=err.table)
        if isinstance(err, SqlRuntimeError):
            return reason_of(err)
        if isinstance(err, EncodeFailure):
            return err.message
        # A bug must not stop the stream: logged, the record kept (as the closures' driver).
        return internal_error(self.name, topic, partition, rec.offset, err)


def fused_processor(
    query: CompiledQuery,
    decode: Decoder,
    *,
    name: str,
    sink_topic: str,
    key_columns: Sequence[str],
    dead_letter_topic: str,
    columns: Mapping[str, SqlType] | None = None,
) -> FusedProcessor | None:
    """The query's generated processor, or None when the closures run it (see
    :func:`sql.codegen.explain_line` for why). ``columns``: the stream's declared columns
    (``decode`` is their dict decoder)."""
    try:
        return FusedProcessor(
            query,
            decode,
            name=name,
            sink_topic=sink_topic,
            key_columns=key_columns,
            dead_letter_topic=dead_letter_topic,
            columns=columns,
        )
    except Unsupported:
        return None
