"""Compaction by a real broker: the cleaner removes superseded records and, later, tombstones.

A cold restore from the compacted topic must equal the model, and a worker whose local state
predates a tombstone the cleaner has since removed must not keep the deleted key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.broker import Broker
from tables.spec import TableSpec
from tests.integration.kafka.support import (
    FILLER,
    compacting_topic,
    load,
    until_cleaned,
    without_filler,
)
from tests.support.kafka import final_state, produce, rows, unique

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]


def no_tombstones(records: list) -> bool:  # type: ignore[type-arg]
    return all(r.value is not None for r in records)


async def test_cold_restore_from_a_compacted_topic_equals_the_model(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await compacting_topic(broker.url, unique("compacted"))
    produced = []
    for r in range(4):  # four rounds of updates to the same 200 keys, each in its own segment
        msgs = rows((str(i), {"id": i, "round": r}) for i in range(200))
        await produce(broker.url, topic, msgs)
        produced += msgs
        await asyncio.sleep(0.15)
    tombstones = rows((str(i), None) for i in range(50))
    await produce(broker.url, topic, tombstones)
    produced += tombstones
    model = final_state(produced)

    # Cleaned: at most one record per live key left (and the fillers), no tombstone.
    records = await until_cleaned(
        broker.url,
        topic,
        lambda rs: no_tombstones(rs) and len([r for r in rs if r.key != FILLER]) == 150,
    )
    assert len(records) < len(produced) / 4
    assert min(r.offset for r in records) > 0  # the first records are gone

    table = await load(TableSpec("compacted", topic), tmp_path, broker.url)
    try:
        assert without_filler(table.snapshot()) == model
        assert all(table.get(str(i)) is None for i in range(50))
        assert table.stats().records_read < len(produced) / 4  # what compaction left
    finally:
        await table.stop()


async def test_a_delete_whose_tombstone_was_cleaned_away_is_not_missed(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await compacting_topic(broker.url, unique("tombstones"))
    first = rows((str(i), {"id": i, "v": 1}) for i in range(100))
    await produce(broker.url, topic, first)
    spec = TableSpec("tomb", topic)
    table = await load(spec, tmp_path, broker.url)
    assert len(table) == 100
    await table.stop()

    # While the worker is away: keys 0..9 deleted, 10..19 updated; the cleaner then removes the
    # tombstones themselves, so reading on from the stored offset would never see the deletes.
    await asyncio.sleep(0.15)
    later = rows((str(i), None) for i in range(10)) + rows(
        (str(i), {"id": i, "v": 2}) for i in range(10, 20)
    )
    await produce(broker.url, topic, later)
    model = final_state(first + later)
    gone = {str(i).encode() for i in range(10)}
    await until_cleaned(
        broker.url, topic, lambda rs: no_tombstones(rs) and not any(r.key in gone for r in rs)
    )

    table = await load(spec, tmp_path, broker.url)
    try:
        assert without_filler(table.snapshot()) == model
        # Rebuilt from the start (every live key read again), not resumed at the stored offset.
        assert table.stats().records_read >= len(model) > len(later)
    finally:
        await table.stop()
