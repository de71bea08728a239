"""Batch processors run into a plain collector: outputs and dead letters as lists, for tests that
compare the generated code (:mod:`agents.fused`) with the closures (:mod:`agents.process`)."""

from __future__ import annotations

from typing import Any

from agents.process import BatchProcessor
from tables.apply import Malformed
from tests.support.rocks import Record


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
