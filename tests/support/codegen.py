"""Batch processors run into a plain collector: outputs and dead letters as lists, for tests that
compare the generated code (:mod:`agents.fused`) with the closures (:mod:`agents.process`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.codec import make_decoder, make_encoder
from agents.fused import FusedProcessor
from agents.process import BatchProcessor
from sql import CompiledQuery
from sql.types import SqlType
from tables.apply import Malformed
from tests.support.brokers import IN_CI
from tests.support.rocks import Record

#: Hypothesis examples of each test comparing the generated code with the closures and DuckDB.
EXAMPLES = int(os.environ.get("SQL_CODEGEN_EXAMPLES", "100"))

Test = Callable[..., None]


def codegen_examples(**strategies: st.SearchStrategy[Any]) -> Callable[[Test], Test]:
    """``@given(**strategies)`` under the settings of those tests: :data:`EXAMPLES` examples, no
    deadline (DuckDB's first query is slow), derandomized in CI."""
    examples = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=IN_CI,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def decorate(test: Test) -> Test:
        return examples(given(**strategies)(test))

    return decorate


class Collect:
    def __init__(self) -> None:
        self.out: list[tuple[Any, ...]] = []
        self.dead: list[tuple[int, str]] = []

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        self.out.append((topic, key, value, partition))

    def appender(self, topic: str, partition: int) -> Any:
        return lambda key, value: self.append(topic, key, value, None, partition)

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        self.dead.append((item.offset, item.reason))


def run_collected(processor: BatchProcessor, records: list[Record]) -> Collect:
    out = Collect()
    counts = processor.run(records, out)
    assert counts.records_in == len(records)
    assert counts.records_out == len(out.out)
    assert counts.dead_letters == len(out.dead)
    return out


def _mostly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """NULL one time in four."""
    return st.one_of(st.none(), values, values, values)


# Few distinct values, so comparisons are often equal (and DECIMALs equal to integers).
ints = _mostly(st.integers(-2, 2))
decs = _mostly(st.sampled_from(["-1.00", "0.00", "1.00", "1.50", "2.50", "-0.25"]).map(Decimal))
strs = _mostly(st.sampled_from(["a", "b", "c"]))
#: A table's DECIMAL(6,2) column as rows may hold it: read into the column's scale.
table_decs = st.one_of(decs, st.sampled_from([Decimal("1.5"), 2, "1.50", Decimal("-0.250")]))


@st.composite
def table_rows(draw: st.DrawFn, name: str) -> list[dict[str, Any]]:
    """Most keys the stream's ``x`` (-3..3) can probe have a row: joins mostly match."""
    keys = [k for k in range(-3, 5) if draw(st.integers(0, 4))]
    if name == "r":
        return [{"id": k, "a": draw(ints), "d": draw(table_decs), "s": draw(strs)} for k in keys]
    return [{"k": k, "a": draw(ints), "d": draw(table_decs)} for k in keys]


def engine(
    q: CompiledQuery,
    columns: Mapping[str, SqlType] | None,
    fused: bool,
    *,
    struct: bool = True,
    **common: Any,
) -> BatchProcessor:
    """The query's batch processor: the generated function (``fused``; ``struct``: decoding
    into the stream's struct) or the closures, on the stream's typed decoder."""
    if fused:
        if struct:
            return FusedProcessor(q, make_decoder(columns), columns=columns, **common)
        return FusedProcessor(q, make_decoder(columns), **common)
    encode = make_encoder(q.output_columns, q.output_types)
    return BatchProcessor(q, make_decoder(columns), encode=encode, **common)
