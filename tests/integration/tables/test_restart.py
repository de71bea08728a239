"""Restarts: warm resume reads only the tail; cold restore and untrustworthy state rebuild."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from pathlib import Path

import pytest

from app.broker import Broker
from tables.loader import W_INTERRUPTED
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tables.store import TableStore
from tests.support.kafka import create_topic, final_state, produce, rows, unique

pytestmark = pytest.mark.broker


async def load(spec: TableSpec, data_dir: Path, servers: str) -> ReferenceTable:
    table = ReferenceTable(spec, data_dir, servers)
    await table.start()
    assert await table.wait_until_ready(60), table.stats().as_dict()
    return table


async def test_warm_restart_reads_only_the_tail_and_cold_restore_matches(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await create_topic(broker.url, unique("restart"), partitions=3)
    spec = TableSpec("restart", topic)
    first = rows((str(i), {"i": i}) for i in range(20_000))
    await produce(broker.url, topic, first)
    table = await load(spec, tmp_path, broker.url)
    assert table.stats().records_read == 20_000
    await table.stop()

    tail = rows((str(i), {"i": i, "again": True}) for i in range(15_000, 19_000))
    tail += rows((str(i), None) for i in range(0, 1_000))
    await produce(broker.url, topic, tail)
    expected = final_state(first + tail)

    table = await load(spec, tmp_path, broker.url)
    try:
        assert table.stats().records_read == 5_000  # the tail, and not one record more
        assert table.snapshot() == expected
        assert len(table) == 19_000
    finally:
        await table.stop()

    shutil.rmtree(tmp_path / "tables")
    table = await load(spec, tmp_path, broker.url)
    try:
        assert table.stats().records_read == 25_000
        assert table.snapshot() == expected
    finally:
        await table.stop()


@pytest.mark.parametrize(
    ("partitions", "stored", "there"),
    [(1, 1_000, 3_000), (2, 2_000, 10)],
    ids=["more-records-there", "topic-shorter-than-stored-offsets"],
)
async def test_state_from_another_broker_is_detected_and_rebuilt(
    broker: Broker,
    other_broker: Broker,
    tmp_path: Path,
    partitions: int,
    stored: int,
    there: int,
) -> None:
    """Same topic name, different contents (a new broker): stored offsets must not be trusted,
    whether the topic there has *more* records (offsets alone would look plausible) or fewer."""
    name = unique("moved")
    spec = TableSpec("moved", name)
    await create_topic(broker.url, name, partitions=partitions)
    await produce(broker.url, name, rows((f"a{i}", {"i": i}) for i in range(stored)))
    await (await load(spec, tmp_path, broker.url)).stop()

    await create_topic(other_broker.url, name, partitions=partitions)
    msgs = rows((f"b{i}", {"i": i}) for i in range(there))
    await produce(other_broker.url, name, msgs)
    table = await load(spec, tmp_path, other_broker.url)
    try:
        assert table.snapshot() == final_state(msgs)
        assert table.stats().records_read == there
    finally:
        await table.stop()


async def test_two_workers_each_hold_every_key(broker: Broker, tmp_path: Path) -> None:
    topic = await create_topic(broker.url, unique("global"), partitions=4)
    msgs = rows((str(i), {"i": i}) for i in range(8_000))
    await produce(broker.url, topic, msgs)
    spec = TableSpec("global", topic)
    a = await load(spec, tmp_path / "worker-a", broker.url)
    b = await load(spec, tmp_path / "worker-b", broker.url)
    try:
        assert a.snapshot() == b.snapshot() == final_state(msgs)
    finally:
        await a.stop()
        await b.stop()


ROOT = Path(__file__).resolve().parents[3]
#: Loads the table in a child process and dies by SIGKILL mid-restore (no close, no flush).
_CRASH_MID_RESTORE = """
import asyncio, os, signal, sys
from pathlib import Path
from tables.reference import ReferenceTable
from tables.spec import TableSpec

async def main() -> None:
    spec = TableSpec("crashed", sys.argv[2])
    table = ReferenceTable(spec, Path(sys.argv[3]), sys.argv[1], fetch_max_records=200)
    await table.start()
    assert await table.wait_for_keys(int(sys.argv[4]), 60)
    assert not table.is_ready, "loaded before the kill: nothing tested"
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_restore_killed_midway_is_detected_and_rebuilt(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cold restore writes without RocksDB's write-ahead log: a crash in the middle leaves
    files whose column families were flushed at different points. The mark written first is
    found on the next start, and the table is rebuilt from the topic."""
    topic = await create_topic(broker.url, unique("crashed"), partitions=2)
    msgs = rows((str(i % 6_000), {"i": i}) for i in range(12_000))  # updates too
    await produce(broker.url, topic, msgs, max_batch_size=4096)  # many small record batches
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASH_MID_RESTORE, broker.url, topic, str(tmp_path), "1000",
        cwd=ROOT,
    )  # fmt: skip
    assert await asyncio.wait_for(child.wait(), 90) == -signal.SIGKILL
    store = TableStore(tmp_path / "tables" / "crashed").open()
    try:
        assert store.restore_interrupted()
    finally:
        store.close()

    with caplog.at_level(logging.WARNING, logger="tables.loader"):
        table = await load(TableSpec("crashed", topic), tmp_path, broker.url)
    try:
        assert W_INTERRUPTED in caplog.text
        assert table.stats().records_read == 12_000  # from the beginning
        assert table.snapshot() == final_state(msgs)
        assert len(table) == 6_000
    finally:
        await table.stop()
    # Restored and flushed: the next start trusts the store and reads nothing.
    store = TableStore(tmp_path / "tables" / "crashed").open()
    try:
        assert not store.restore_interrupted()
        assert store.count == 6_000
    finally:
        store.close()
    table = await load(TableSpec("crashed", topic), tmp_path, broker.url)
    try:
        assert table.stats().records_read == 0
        assert len(table) == 6_000
    finally:
        await table.stop()
