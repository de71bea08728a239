"""The generated fold of a co-partitioned aggregate (:mod:`agents.fold`,
:mod:`sql.codegen.fold_batch`) against the general path it replaces (``fold=False``: the key
check, then the query's closures record by record): over hypothesis batches — records with and
without event time, late ones, malformed ones, keys that are not their column or sit in another
partition, tombstones, values of the wrong JSON type — both must give the same output records
in the same order, the same dead letters (topic, partition, offset, reason), the same counts and
the same state after every batch.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codec import make_decoder, make_encoder
from agents.copartition import CheckedProcessor, KeyCheck
from agents.pipeline import key_columns
from agents.process import BatchCounts, BatchProcessor
from core import codec
from sql import compile_query, parse_script
from tables.deadletter import H_OFFSET, H_REASON
from tests.support.records import Collect, Rec
from tests.unit.sql.support import IN_CI

PARTS = 2
STREAM = (
    "CREATE STREAM ev (k VARCHAR, u BIGINT, ts BIGINT, v BIGINT, d DECIMAL(10,2)) "
    "WITH (topic='ev', timestamp='ts', key='{key}', out_of_orderness='{ooo}'{late});\n"
)
QUERIES = [
    # The peers' window job, and variations of it.
    "CREATE STREAM o AS SELECT {key}, COUNT(*) AS n, SUM(d) AS total FROM ev "
    "WINDOW TUMBLING(10s) GROUP BY {key} EMIT CHANGES",
    "CREATE STREAM o AS SELECT {key}, COUNT(v) AS nv, SUM(v) AS sv, MIN(d) AS lo, AVG(d) AS ad "
    "FROM ev WINDOW TUMBLING(5s, GRACE 2s) WHERE v IS NULL OR v > -2 GROUP BY {key} EMIT CHANGES",
    "CREATE STREAM o AS SELECT window_end AS e, {key}, SUM(d) * 2 AS twice FROM ev "
    "WINDOW TUMBLING(10s) GROUP BY {key} EMIT CHANGES",
    "CREATE STREAM o AS SELECT {key}, COUNT(*) AS n FROM ev WINDOW TUMBLING(10s) "
    "GROUP BY {key} HAVING COUNT(*) > 1 EMIT CHANGES",
    "CREATE STREAM o AS SELECT {key}, COUNT(*) AS n, SUM(d) AS sd FROM ev "
    "WINDOW TUMBLING(10s) GROUP BY {key} EMIT FINAL",
    # bench.pipeline_aggregate's SUM(price * qty): a DECIMAL times a BIGINT (-0.00 products).
    "CREATE STREAM o AS SELECT {key}, COUNT(*) AS n, SUM(d * v) AS notional FROM ev "
    "WINDOW TUMBLING(10s) GROUP BY {key} EMIT CHANGES",
    # Plain GROUP BY.
    "CREATE TABLE o AS SELECT {key}, COUNT(*) AS n, SUM(d) AS sd, SUM(v) AS sv FROM ev "
    "WHERE d IS NOT NULL GROUP BY {key} EMIT CHANGES",
    "CREATE TABLE o AS SELECT {key}, SUM(d * v) - SUM(d) AS x, SUM(v * 2) AS w FROM ev "
    "GROUP BY {key} EMIT CHANGES",
    "CREATE TABLE o AS SELECT {key}, SUM(v / (v - 1)) AS q FROM ev GROUP BY {key} EMIT CHANGES",
]


def home(key: bytes) -> int:
    return int((murmur2(key) & 0x7FFFFFFF) % PARTS)


#: Column values whose key is placed in the task's partition 0, and one placed in partition 1
#: (its records are dead letters: misplaced). As VARCHAR ``k`` and as BIGINT ``u``.
TEXTS = [t for t in map(str, range(40)) if home(t.encode()) == 0][:5]
TEXTS.append(next(t for t in map(str, range(40)) if home(t.encode()) == 1))
KEYS = ["", *TEXTS]


def build(sql: str, key: str, fold: bool) -> tuple[Any, CheckedProcessor]:
    decl = parse_script(sql).declarations["ev"]
    decode = make_decoder(decl.columns)
    query = compile_query(sql, {}, typed_streams=True)
    inner = BatchProcessor(
        query,
        decode,
        name="o",
        sink_topic="out",
        key_columns=key_columns(query),
        dead_letter_topic="dlq",
        encode=make_encoder(query.output_columns, query.output_types),
    )
    check = KeyCheck("ev", "ev", PARTS, key, decode)
    return query, CheckedProcessor(inner, check, "o", fold=fold)


record_st = st.tuples(
    st.sampled_from([*KEYS, None]),  # the column's value (k, or u as text)
    st.sampled_from(["same", "same", "same", "same", "other", "none"]),  # the record key
    st.one_of(st.none(), st.integers(0, 40_000), st.just("12")),  # ts
    st.one_of(st.none(), st.integers(-3, 3)),  # v
    st.one_of(st.none(), st.decimals(-1000, 1000, places=2, allow_nan=False), st.just("x")),
    st.sampled_from(["json"] * 8 + ["broken", "tombstone", "extra"]),
)
#: Batches of the task's partition 0, some of partition 1 (one processor, as a task of a
#: worker whose partitions changed: keys checked in one partition are not in the other).
batches_st = st.lists(
    st.tuples(st.sampled_from([0, 0, 1]), st.lists(record_st, max_size=12)), min_size=1, max_size=6
)


def encode(r: tuple[Any, ...], key: str, offset: int, partition: int) -> Rec:
    """The fetched record of one drawn tuple."""
    value, keyed, ts, v, d, shape = r
    column: Any = value
    if key == "u" and value is not None:
        column = None if value == "" else int(value)
    text = "" if column is None else str(column)
    rec_key = {"same": text.encode(), "other": b"zz" + text.encode(), "none": None}[keyed]
    doc: dict[str, Any] = {key: column, "ts": ts, "v": v, "d": d}
    raw: bytes | None = codec.dumps(doc)
    if shape == "broken":
        raw = b'{"k": '
    elif shape == "tombstone":
        raw = None
    elif shape == "extra":
        raw = codec.dumps({**doc, "zz": [1]})
    return Rec(partition, offset, rec_key, raw, topic="ev", timestamp=1_000 + offset)


def run(proc: CheckedProcessor, batch: list[Rec]) -> tuple[BatchCounts, Collect]:
    out, counts = Collect(), BatchCounts()
    proc.run_partition("ev", batch[0].partition, batch, out, counts)
    return counts, out


def split(out: Collect) -> tuple[list[Any], list[Any]]:
    rows = [(k, v) for t, k, v, _ in out.records if t == "out"]
    dead = sorted((h[H_OFFSET], h[H_REASON], k, v) for t, k, v, h in out.records if t == "dlq")
    return rows, dead


@pytest.mark.parametrize("key", ["k", "u"])
@pytest.mark.parametrize("n", range(len(QUERIES)))
@settings(max_examples=15 if IN_CI else 30, deadline=None)
@given(batches=batches_st, ooo=st.sampled_from([0, 3000]), late=st.booleans())
def test_the_fold_is_the_general_path(
    key: str, n: int, batches: list[tuple[int, list[tuple[Any, ...]]]], ooo: int, late: bool
) -> None:
    stream = STREAM.format(key=key, ooo=f"{ooo}ms", late=", late='update'" if late else "")
    sql = stream + QUERIES[n].format(key=key)
    fq, fast = build(sql, key, True)
    gq, general = build(sql, key, False)
    assert fast.folded is not None, "the fold is generated for every query here"
    assert general.folded is None
    offset = 0
    for partition, records in batches:
        batch = []
        for r in records:
            batch.append(encode(r, key, offset, partition))
            offset += 1
        if not batch:
            continue
        fc, fo = run(fast, batch)
        gc, go = run(general, batch)
        assert split(fo) == split(go)
        assert fc == gc
        assert fq.dirty_state() == gq.dirty_state()
        assert fq.watermark == gq.watermark
    assert fq.finish() == gq.finish()


def same_as_general_path(sql: str, key: str, batches: list[list[Rec]]) -> None:
    """Both paths over ``batches``: the same outputs, dead letters, counts and state."""
    fq, fast = build(sql, key, True)
    gq, general = build(sql, key, False)
    for batch in batches:
        fc, fo = run(fast, batch)
        gc, go = run(general, batch)
        assert split(fo) == split(go)
        assert fc == gc
        assert fq.dirty_state() == gq.dirty_state()
    assert fq.finish() == gq.finish()


def _ev(offset: int, text: str, u: int, ts: int, d: str = "1.50", partition: int = 0) -> Rec:
    raw = codec.dumps({"u": u, "ts": ts, "d": d})
    return Rec(partition, offset, text.encode(), raw, topic="ev")


@pytest.mark.parametrize("ooo", ["0ms", "3000ms"])
@pytest.mark.parametrize("late", ["", ", late='update', retention='5s'"])
@pytest.mark.parametrize("n", [0, 6])  # a window, a GROUP BY
def test_slots_follow_windows_groups_and_key_values(n: int, late: str, ooo: str) -> None:
    """A record key's slot (sql.codegen.fold_slots) across what makes it stale: the key's next
    window (the watermark closing the slot's window on the general path), a late record for
    the closed window, a record whose key column is another value (a dead letter), then the
    right value again; and the same key in the other partition (a key placed there fails).
    With an out-of-orderness, the key's next window opens while the slot's is still open."""
    sql = STREAM.format(key="u", ooo=ooo, late=late) + QUERIES[n].format(key="u")
    a, b = TEXTS[0], TEXTS[1]
    batches = [
        [_ev(0, a, int(a), 1_000), _ev(1, b, int(b), 2_000), _ev(2, a, int(a), 3_000)],
        [_ev(20, a, int(a), 9_000), _ev(21, a, int(a), 10_500), _ev(22, a, int(a), 9_500)],
        [_ev(3, a, int(a), 12_000), _ev(4, a, int(a), 4_000), _ev(5, a, int(a), 13_000)],
        [_ev(6, a, int(b), 14_000), _ev(7, a, int(a), 15_000, "-2.25"), _ev(8, b, int(b), 9_000)],
        [_ev(9, a, int(a), 31_000), _ev(10, a, int(a), 32_000), _ev(11, a, int(a), 16_000)],
        [_ev(12, a, int(a), 33_000, partition=1), _ev(13, a, int(a), 34_000)],
    ]
    same_as_general_path(sql, "u", batches)


def test_slots_forgotten_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SLOTS_KEPT record keys a partition's slots start over: the same results."""
    from sql.codegen import fold_slots

    monkeypatch.setattr(fold_slots, "SLOTS_KEPT", 2)
    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[0].format(key="u")
    texts = TEXTS[:5]
    batches = [
        [_ev(i * 10 + j, t, int(t), i * 3_000 + j) for j, t in enumerate(texts * 2)]
        for i in range(4)
    ]
    same_as_general_path(sql, "u", batches)


def test_explain_shows_the_generated_fold() -> None:
    from sql import explain_code, explain_line

    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[0].format(key="u")
    query = compile_query(sql, {}, typed_streams=True)
    assert explain_line(query).startswith("Codegen: one generated fold per batch")
    code = explain_code(query)
    assert code.startswith("def fold(records, partition, fails, slow, append, sinks):")
    assert "raise SLOW" in code


def test_decimal_sums_stay_exact() -> None:
    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[0].format(key="u")
    _, fast = build(sql, "u", True)
    batch = [
        Rec(0, i, t.encode(), codec.dumps({"u": int(t), "ts": 5, "d": Decimal(x)}), topic="ev")
        for i, x in enumerate(["0.10", "0.20", "99999999.99"])
        for t in TEXTS[:1]
    ]
    _, out = run(fast, batch)
    totals = [v.split(b'"total":')[1].split(b",")[0] for _, _, v, _ in out.records if v]
    assert totals == [b"0.10", b"0.30", b"100000000.29"]


def test_the_fold_keeps_the_callers_decimal_context() -> None:
    """The fold runs with the exact context as the thread's and puts the caller's back, also
    when a record takes the general path (which runs in the caller's context)."""
    import decimal

    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[5].format(key="u")
    _, fast = build(sql, "u", True)
    assert fast.folded is not None
    seen: list[decimal.Context] = []
    general = fast.folded.inner.run_partition

    def spy(*args: Any) -> Any:
        seen.append(decimal.getcontext())
        return general(*args)

    fast.folded.inner.run_partition = spy  # type: ignore[method-assign,assignment]
    t = TEXTS[0]
    mine = decimal.Context(prec=9)
    # The second record's watermark closes the first's window: the general path runs it.
    batch = [_ev(0, t, int(t), 5, "2.50"), _ev(1, t, int(t), 25_000), _ev(2, t, int(t), 25_001)]
    with decimal.localcontext(mine) as ctx:
        _, out = run(fast, batch)
        assert decimal.getcontext() is ctx
    assert seen == [ctx]
    assert len(out.records) == 3


def _sent(out: Any, topic: str) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
    """Every record of ``topic`` in an Output's batches, by partition (offsets checked)."""
    from aiokafka.record.default_records import DefaultRecordBatch

    got: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    batches = [(p, b) for t, p, b in out._full if t == topic]
    batches += [(p, b) for (t, p), b in out._open.items() if t == topic]
    for p, batch in batches:
        records = list(DefaultRecordBatch(bytearray(batch._build())))
        assert [r.offset for r in records] == list(range(len(records)))
        got.setdefault(p, []).extend((r.key, r.value) for r in records)
    return got


async def test_outputs_through_the_record_builders_are_the_general_paths() -> None:
    """With a real Output, the fold appends through each partition's C record builder (full
    batches rolled over) and closes them before the general path appends: the same records in
    the same order per partition, offsets without gaps, the same record count."""
    from aiokafka import AIOKafkaProducer

    from agents.sink import Output

    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[0].format(key="u")
    outs = []
    for fold in (True, False):
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
        out = Output(producer)
        out.set_partitions("out", [0, 1, 2])
        out.set_partitions("dlq", [0])
        _, proc = build(sql, "u", fold)
        offset = 0
        for b in range(4):
            batch = []
            for i in range(60):
                t = TEXTS[i % len(TEXTS)] if i % 7 else "nope"  # not a key column: dead letter
                doc = {"u": int(t) if t != "nope" else 1, "ts": b * 4_000 + i * 10, "d": "1.25"}
                raw = codec.dumps(doc) if i % 11 else b"{"  # malformed: the general path
                batch.append(Rec(0, offset, t.encode(), raw, topic="ev"))
                offset += 1
            proc.run_partition("ev", 0, batch, out, BatchCounts())
        outs.append(out)
        await producer.stop()
    fast, general = outs
    assert _sent(fast, "out") == _sent(general, "out")
    assert sum(len(v) for v in _sent(fast, "out").values()) > 150
    assert sorted(_sent(fast, "dlq")[0]) == sorted(_sent(general, "dlq")[0])
    assert fast.records == general.records


class _BrokenSink(Collect):
    """An output whose query topic fails with a bug (no SQL error) on its first append."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def append(self, topic: str, key: Any, value: Any, headers: Any = None, p: Any = None) -> None:
        if topic == "out" and self.broken:
            self.broken = False
            raise RuntimeError("bug appending")
        super().append(topic, key, value, headers, p)


def test_a_bug_in_the_fold_dead_letters_the_record_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug met by one folded record: logged with its place through the one
    :func:`agents.process.internal_error` (as the general paths do) and dead-lettered; the
    next record goes on."""
    import logging

    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[6].format(key="u")
    _, fast = build(sql, "u", True)
    a = TEXTS[0]
    out, counts = _BrokenSink(), BatchCounts()
    with caplog.at_level(logging.ERROR, logger="agents"):
        fast.run_partition("ev", 0, [_ev(41, a, int(a), 1), _ev(42, a, int(a), 2)], out, counts)
    rows, dead = split(out)
    assert [(o, r) for o, r, _, _ in dead] == [
        (b"41", b"internal error RuntimeError: bug appending")
    ]
    assert len(rows) == 1
    assert b'"n":2' in rows[0][1]
    [logged] = caplog.records
    assert logged.name == "agents.process"
    assert logged.getMessage() == "query o: ev[0]@41"
    assert logged.exc_info is not None
    assert logged.exc_info[0] is RuntimeError


async def test_slots_start_over_when_the_outputs_partitions_change() -> None:
    """A slot keeps its output key's partition: when the sink's partitions change between
    batches (a new partition cache), the fold places the next outputs by the new count, as
    the general path does."""
    from aiokafka import AIOKafkaProducer

    from agents.sink import Output

    sql = STREAM.format(key="u", ooo="0ms", late="") + QUERIES[0].format(key="u")
    outs = []
    for fold in (True, False):
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024 * 1024)
        out = Output(producer)
        out.set_partitions("dlq", [0])
        _, proc = build(sql, "u", fold)
        for b, parts in enumerate(([0, 1], [0, 1, 2, 3, 4])):
            out.set_partitions("out", parts)
            batch = [_ev(b * 100 + i, t, int(t), 1_000 + i) for i, t in enumerate(TEXTS[:5] * 3)]
            proc.run_partition("ev", 0, batch, out, BatchCounts())
        outs.append(out)
        await producer.stop()
    fast, general = (_sent(o, "out") for o in outs)
    assert fast == general
    assert max(fast) > 1, "the second batch's outputs spread over the new partitions"
