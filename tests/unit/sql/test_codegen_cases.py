"""The generated batch functions (:mod:`sql.codegen`) on fixed cases: EXPLAIN's codegen line and
``--code``, keyed outputs and partitions, table decimals through the memo, and outputs appended
into the worker's record batches — each against the closures. The hypothesis differential test
is in ``test_codegen.py``."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.cache import CachedTable
from sql import compile_query, explain_code, explain_line, parse_script
from sql.runner import main
from tables.memory import MemoryTable
from tests.support.codegen import engine, run_collected
from tests.support.rocks import Record
from tests.unit.sql.support import declarations, make_tables

# -- EXPLAIN --------------------------------------------------------------------------------------
ENRICH = "SELECT st.x, r.s, st.y FROM st JOIN r ON r.id = st.x WHERE r.s = 'a' AND st.y > 1"


def test_explain_prints_the_generated_function() -> None:
    q = compile_query(declarations() + ENRICH, dict(make_tables()), typed_streams=True)
    assert explain_line(q).splitlines() == [
        "Codegen: one generated function per batch (--code prints it)",
        "  Projected lookup: r by key → (r.s = 'a', s), a map kept from its change feed;"
        " a row failing r.s = 'a' (the only WHERE term) is none",
    ]
    code = explain_code(q)
    assert code.startswith("def batch(records, partition, sink, fails):")
    # Nothing calls a closure: no env is set, the filter before the join reads the record.
    assert "env[" not in code
    assert "(env)" not in code
    assert code.index("get('y')") < code.index("get('s')")
    q.close()


def test_explain_says_why_closures_run_a_query() -> None:
    cases = {
        "SELECT st.x, COUNT(*) AS n FROM st GROUP BY st.x": "aggregates",
        "SELECT DISTINCT st.x FROM st": "DISTINCT",
        "SELECT st.x FROM st JOIN r ON r.a = st.x": "not a key lookup",
    }
    for sql, reason in cases.items():
        q = compile_query(declarations() + sql, dict(make_tables()), typed_streams=True)
        line = explain_line(q)
        assert line.startswith("Codegen: closures ("), line
        assert reason in line, line
        assert explain_code(q).startswith("# closures (not generated): ")
        q.close()


def test_runner_explain_code(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text(declarations() + ENRICH)
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", str(sql), "--stream", "st", "--explain", "--code"], out, err) == 0
    text = out.getvalue()
    assert "Codegen: one generated function per batch" in text
    assert "def batch(records, partition, sink, fails):" in text


def test_keyed_outputs_partitions_and_encode_failures_as_the_closures() -> None:
    """A sink with a PRIMARY KEY (the output key made from the row), outputs kept in the source
    partition, and an output that cannot be encoded (a non-finite DECIMAL read from a table
    column without a declared type): the same records, keys, partitions and dead letters."""
    tables = {"r": MemoryTable("r", key_field="id")}
    tables["r"].put_row({"id": 1, "w": Decimal("NaN")})
    tables["r"].put_row({"id": 2, "w": Decimal("2.50")})
    sql = (
        "CREATE TABLE r WITH (topic='r');\n"
        "CREATE STREAM st (x BIGINT, z VARCHAR) WITH (topic='st');\n"
        "CREATE STREAM o (z VARCHAR PRIMARY KEY, x BIGINT) WITH (topic='o') AS\n"
        "SELECT st.z, st.x, r.w FROM st LEFT JOIN r ON r.id = st.x"
    )
    values = [b'{"x": 1, "z": "a"}', b'{"x": 2, "z": "b"}', b'{"x": 3}', b"[1]"]
    for keep, keys in ((True, ()), (False, ()), (False, ("z",))):
        results = []
        for fused in (False, True):
            q = compile_query(sql, dict(tables), typed_streams=True)
            assert explain_line(q).startswith("Codegen: one generated"), explain_line(q)
            columns = parse_script(sql).declarations["st"].columns
            common: dict[str, Any] = dict(
                name="q", sink_topic="out", key_columns=keys, dead_letter_topic="dlq"
            )
            p = engine(q, columns, fused, struct=False, **common)
            p.keep_partition = keep
            records = [Record("st", 1, i, 0, b"k%d" % i, v) for i, v in enumerate(values)]
            out = run_collected(p, records)
            results.append((out.out, sorted(out.dead)))
            q.close()
        assert results[0] == results[1]
        outs, dead = results[1]
        assert [o[2] for o in outs] == [b'{"z":"b","x":2,"w":2.50}', b'{"z":null,"x":3,"w":null}']
        assert [o[1] for o in outs] == ([b"b", None] if keys else [b"k1", b"k2"])
        assert [o[3] for o in outs] == ([1, 1] if keep else [None, None])
        assert [d[0] for d in dead] == [0, 3]
        assert dead[0][1].startswith("cannot encode the output row")


def test_table_decimals_read_through_the_memo_as_the_closures() -> None:
    """A table's DECIMAL(6,2) column read by generated code (quantized values remembered by
    value): equal values of other scales, zeros of both signs (equal keys, different results),
    other types and a value too wide give what the closures give, in every order."""
    values: list[Any] = [Decimal("0.5"), Decimal("0.50"), Decimal("-0.0"), Decimal("0.000")]
    values.append(Decimal("0.0"))
    values += [Decimal("-0.00"), 1, "2.5", Decimal("1.005"), Decimal("12345.678"), Decimal("0.5")]
    sql = declarations() + "SELECT st.x, q.d FROM st JOIN q ON q.k = st.x"
    columns = parse_script(sql).declarations["st"].columns
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    results = []
    for fused in (False, True):
        tables = make_tables()
        for k, d in enumerate(values):
            tables["q"].put_row({"k": k, "a": 1, "d": d})
        q = compile_query(sql, dict(tables), typed_streams=True)
        p = engine(q, columns, fused, **common)
        order = [*range(len(values)), *reversed(range(len(values)))]
        records = [Record("st", 0, i, 0, b"k", b'{"x": %d}' % k) for i, k in enumerate(order)]
        out = run_collected(p, records)
        results.append(([o[2] for o in out.out], sorted(out.dead)))
        q.close()
    assert results[0] == results[1]
    outs, dead = results[1]
    assert outs[:6] == [
        b'{"x":%d,"d":%s}' % (k, d)
        for k, d in enumerate([b"0.50", b"0.50", b"-0.00", b"0.00", b"0.00", b"-0.00"])
    ]
    assert [offset for offset, _ in dead] == [9, 12]  # 12345.678: beyond DECIMAL(6,2)


async def test_outputs_into_record_batches_as_the_closures() -> None:
    """Generated code appends to the worker's output through its C record builder (the sink's
    ``append`` inline, rolling over full batches: 1 kB here): the record batches hold the same
    records, in the same order, as the closures' appends, with the dead letters alike."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.record.default_records import DefaultRecordBatch

    from agents.sink import Output

    tables = make_tables()
    for k in range(-3, 5):
        tables["r"].put_row({"id": k, "a": k, "d": Decimal("1.50"), "s": "abc"[k % 3]})
    sql = declarations() + "SELECT st.x, r.s, st.y * r.d AS m FROM st JOIN r ON r.id = st.x"
    columns = parse_script(sql).declarations["st"].columns
    values = [b'{"x": %d, "y": %d.25, "z": "b"}' % (i % 9 - 4, i) for i in range(300)]
    values[7] = b"not json"
    values[11] = b'{"x": 1, "y": 123456.5}'  # beyond DECIMAL(6,2)
    records = [Record("st", 1, i, 0, b"k%d" % i, v) for i, v in enumerate(values)]
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    results = []
    for fused in (False, True):
        q = compile_query(sql, {n: CachedTable(t) for n, t in tables.items()}, typed_streams=True)
        p = engine(q, columns, fused, **common)
        p.keep_partition = True
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
        out = Output(producer)
        out.set_partitions("out", [0, 1])
        out.set_partitions("dlq", [0])
        half = len(records) // 2  # two batches: the second continues the open record batch
        counts = [p.run(records[:half], out), p.run(records[half:], out)]
        batches = [(t, part, b) for t, part, b in out._full] + [
            (t, part, b) for (t, part), b in out._open.items()
        ]
        got: dict[str, list[tuple[Any, ...]]] = {"out": [], "dlq": []}
        for topic, part, batch in batches:  # in order per topic (batches roll independently)
            rows = list(DefaultRecordBatch(bytearray(batch._build())))
            assert [r.offset for r in rows] == list(range(len(rows)))
            got[topic] += [(part, r.key, r.value if topic == "out" else None) for r in rows]
        assert len([b for t, _, b in batches if t == "out"]) > 3  # batches rolled over
        assert sum(c.records_out for c in counts) == len(got["out"])
        assert [k for _, k, _ in got["dlq"]] == [b"k7", b"k11"]
        results.append(got)
        await producer.stop()
        q.close()
    assert results[0] == results[1]


def test_decimal_operators_run_in_the_exact_context_and_leave_the_callers() -> None:
    """DECIMAL arithmetic is written as Python operators with the exact context made the
    thread's for the batch: a product of 31 digits is exact whatever context the caller has
    (one of 5 digits here), and the caller's context is its own again after the batch."""
    import decimal

    sql = declarations() + "SELECT st.x, st.y * st.y * st.x AS p FROM st"
    columns = parse_script(sql).declarations["st"].columns
    rec = Record("st", 0, 0, 0, b"k", b'{"x": 9223372036854775807, "y": 9999.99}')
    wide = decimal.Context(prec=60)
    exact = wide.multiply(wide.multiply(Decimal("9999.99"), Decimal("9999.99")), 2**63 - 1)
    caller = decimal.Context(prec=5)
    outs = []
    for fused in (False, True):
        q = compile_query(sql, dict(make_tables()), typed_streams=True)
        p = engine(
            q, columns, fused, name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
        )
        with decimal.localcontext(caller) as ctx:
            got = run_collected(p, [rec])
            assert decimal.getcontext() is ctx
        outs.append(got.out[0][2])
        if fused:
            source = p.generated.source  # type: ignore[attr-defined]
            assert "def batch_in_context(" in source
            assert "DECIMAL_CONTEXT.multiply" not in source
        q.close()
    assert outs[0] == outs[1] == b'{"x":9223372036854775807,"p":%s}' % str(exact).encode()
