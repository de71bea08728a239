"""A windowed aggregate run by a worker: EMIT CHANGES and EMIT FINAL outputs for a fixed
event-time sequence with out-of-order and late records; late records become dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.deadletter import H_REASON, H_SOURCE
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import marked, processed, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SIZE, GRACE, OOO = 10_000, 2_000, 1_000
BASE = 1_700_000_000_000  # a multiple of SIZE: windows are aligned to the epoch
PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1s', partitions='1');

CREATE TABLE w_changes WITH (topic='{changes}') AS
SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total
FROM events WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;

CREATE TABLE w_final WITH (topic='{final}') AS
SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total
FROM events WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 2 SECONDS) GROUP BY k EMIT FINAL;
"""
# (key, value, event time in seconds after BASE): out of order within 1 s, then late ones.
EVENTS = [
    ("a", 1, 0.5),
    ("b", 2, 3.0),
    ("a", 3, 9.9),
    ("a", 4, 8.0),  # out of order, within the allowed second
    ("b", 5, 12.0),  # closes [0, 10) for EMIT CHANGES (no grace): watermark 11 >= 10
    ("a", 6, 15.0),  # watermark 14 >= 10 + 2: closes [0, 10) for EMIT FINAL
    ("a", 7, 5.0),  # late for both
    ("b", 8, 11.5),  # in [10, 20): still open
    ("a", 9, 25.0),  # closes [10, 20) for both
    ("b", 10, 21.0),
]


def model(grace: int, emit: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Tumbling windows by hand: rows emitted, and the indexes of late events."""
    windows: dict[tuple[str, int], list[int]] = {}
    closed: set[tuple[str, int]] = set()
    rows: list[dict[str, Any]] = []
    late: list[int] = []
    high = None

    def row(k: str, start: int) -> dict[str, Any]:
        n, total = windows[(k, start)]
        return {"k": k, "window_start": start, "window_end": start + SIZE, "n": n, "total": total}

    for i, (k, v, s) in enumerate(EVENTS):
        ts = BASE + int(s * 1000)
        high = ts if high is None else max(high, ts)
        watermark = high - OOO
        for key, start in sorted(windows, key=lambda w: w[1]):
            if (key, start) not in closed and start + SIZE + grace <= watermark:
                closed.add((key, start))
                if emit == "final":
                    rows.append(row(key, start))
        start = ts - ts % SIZE
        if start + SIZE + grace <= watermark:
            late.append(i)
            continue
        acc = windows.setdefault((k, start), [0, 0])
        acc[0] += 1
        acc[1] += v
        if emit == "changes":
            rows.append(row(k, start))
    return rows, late


@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
async def test_emit_changes_and_emit_final(
    broker: Broker, tmp_path: Path, workers: list[Worker], backlog: bool
) -> None:
    # backlog: the events are in the topic before the worker starts, so stage 1's first batch
    # holds them all — they reach stage 2 before any marker but the first-record one, and are
    # late or not exactly as when they arrive one by one.
    names = {n: unique(n) for n in ("events", "changes", "final", "dlq")}
    pipeline = tmp_path / "windows.sql"
    pipeline.write_text(PIPELINE.format(**names))
    msgs = [
        (k.encode(), codec.dumps({"k": k, "v": v, "ts": BASE + int(s * 1000)}))
        for k, v, s in EVENTS
    ]
    if backlog:
        await ensure_topics(broker.url, [TopicSpec(names["events"], 1)])
        await produce(broker.url, names["events"], msgs)
    worker = Worker(tmp_path / "w", worker_env(broker.url, pipeline, names)).start()
    workers.append(worker)
    if not backlog:
        for q in ("w_changes", "w_final"):
            await until(marked(worker, q), f"{q}'s stage 2 to know the partitions", worker)
        await produce(broker.url, names["events"], msgs)
    for q in ("w_changes", "w_final"):
        await until(processed(worker, q, len(EVENTS)), f"{q} to read every event", worker)

    for query, grace, emit in (("changes", 0, "changes"), ("final", GRACE, "final")):
        expected, late = model(grace, emit)
        assert expected, "the sequence must produce rows"
        got: list[Any] = []
        for _ in range(50):
            got = await read_all(broker.url, names[query])
            if len(got) >= len(expected):
                break
        # Keyed by (k, window_start), in emission order (one source partition).
        assert [codec.loads(r.value) for r in got] == expected
        assert [codec.loads(r.key) for r in got] == [[e["k"], e["window_start"]] for e in expected]
        assert late == [6]

    dead = await read_all(broker.url, names["dlq"])
    by_query = {dict(r.headers)[H_SOURCE].decode(): r for r in dead}
    assert sorted(by_query) == ["query:w_changes", "query:w_final"]
    for r in dead:
        assert dict(r.headers)[H_REASON] == b"late"
        assert r.value == msgs[6][1]
        assert r.key == b"a"
