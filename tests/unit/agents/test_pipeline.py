"""Pipeline files: several queries per file, declared topics, errors with file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.pipeline import load_pipeline
from agents.pipeline_model import COMPACT
from core.errors import ConfigError
from tables.spec import TableSpec
from tables.topics import TopicSpec

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR) WITH (topic='u-topic');
CREATE STREAM orders (id BIGINT, user_id BIGINT, amount DECIMAL(10,2))
  WITH (topic='o-topic', partitions='3', timestamp='id');

CREATE STREAM enriched WITH (topic='e-topic') AS
SELECT o.id, u.name, o.amount
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
EMIT CHANGES;

CREATE TABLE totals WITH (partitions='2') AS
SELECT user_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY user_id EMIT CHANGES;

-- reads the aggregate above as a table, and the first query's output as a stream
CREATE STREAM big WITH (topic='b-topic') AS
SELECT e.id, (SELECT t.n FROM totals t WHERE t.user_id = e.id) AS n FROM enriched e;
"""


def write(tmp_path: Path, text: str, name: str = "p.sql") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_query_of_a_file_is_wired(tmp_path: Path) -> None:
    p = load_pipeline([write(tmp_path, PIPELINE)])
    assert [(q.name, q.source, q.reads, q.stateful, q.sink_topic) for q in p.queries] == [
        ("enriched", "orders", ("users",), False, "e-topic"),
        ("totals", "orders", (), True, "totals"),
        ("big", "enriched", ("totals",), False, "b-topic"),
    ]
    assert [q.line for q in p.queries] == [5, 11, 15]
    assert p.tables["users"] == TableSpec("users", "u-topic", "id")
    # The aggregate is a table too, keyed by its group key, loaded from its own sink topic.
    assert p.tables["totals"] == TableSpec(
        "totals", "totals", "user_id", partitions=2, exact_decimals=True
    )
    assert p.source_topic(p.queries[2]) == "e-topic"
    topics = {t.name: t for t in p.topics(default_partitions=4)}
    assert topics == {
        "o-topic": TopicSpec("o-topic", 3),
        "e-topic": TopicSpec("e-topic", 4),
        "b-topic": TopicSpec("b-topic", 4),
        "totals": TopicSpec("totals", 2, configs=COMPACT),
    }


def test_each_query_keeps_positions_in_the_file(tmp_path: Path) -> None:
    # The other queries are blanked, not removed: line/column of an error are the file's.
    p = load_pipeline([write(tmp_path, PIPELINE)])
    for q in p.queries:
        assert len(q.sql) == len(PIPELINE)
        assert q.sql.count("\n") == PIPELINE.count("\n")
        assert q.sql.count("SELECT o.id, u.name") == (q.name == "enriched")


@pytest.mark.parametrize(
    ("old", "new", "where", "needle"),
    [
        ("u.name, o.amount", "u.nme, o.amount", ":6:14:", "unknown column 'u.nme'"),
        ("FROM orders GROUP", "FROM ordrs GROUP", ":12:58:", "unknown table or stream 'ordrs'"),
        (
            "SELECT e.id, (",
            "SELEC e.id, (",
            ":16:1:",
            "unexpected 'SELEC' (did you mean 'SELECT'?)",
        ),
        ("partitions='2'", "partitions='zero'", ":11:14:", "partitions='zero'"),
        ("WITH (topic='u-topic')", "WITH (topic='u-topic', colour='red')", ":1:14:", "colour"),
    ],
)
def test_errors_name_file_line_and_column(
    tmp_path: Path, old: str, new: str, where: str, needle: str
) -> None:
    assert old in PIPELINE
    path = write(tmp_path, PIPELINE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_pipeline([path])
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    assert needle in str(err.value)


def test_an_unterminated_string_is_placed_at_its_quote(tmp_path: Path) -> None:
    text = "CREATE STREAM s (a BIGINT) WITH (topic='s');\n"
    path = write(tmp_path, text + "CREATE STREAM x WITH (topic='x) AS SELECT a FROM s;\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2:29: unterminated '...'"):
        load_pipeline([path])


def test_a_query_without_a_sink_is_refused(tmp_path: Path) -> None:
    text = "CREATE STREAM s (a BIGINT) WITH (topic='s');\n\nSELECT a FROM s;\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}:3:1: a pipeline query must be CREATE"):
        load_pipeline([path])


def test_names_defined_twice_are_refused_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, PIPELINE, "a.sql")
    second = write(
        tmp_path,
        "CREATE STREAM orders (id BIGINT) WITH (topic='o-topic');\n"
        "CREATE STREAM totals WITH (topic='x') AS SELECT id FROM orders;\n",
        "b.sql",
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline([first, second])
    # Repeating a declaration (same topic) is fine; a second producer of `totals` is not.
    assert str(err.value).startswith(f"{second}:2:15: stream 'totals' is defined twice")
    assert f"{first}:11" in str(err.value)


def test_a_declared_table_may_repeat_one_from_settings(tmp_path: Path) -> None:
    p = load_pipeline([write(tmp_path, PIPELINE)], [TableSpec("users", "u-topic", "id")])
    assert p.tables["users"].key_field == "id"
    with pytest.raises(ConfigError, match="TABLESTREAM_TABLES"):
        load_pipeline([write(tmp_path, PIPELINE)], [TableSpec("users", "other-topic")])


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_pipeline([tmp_path / "missing.sql"])


def test_stateful_queries_are_repartitioned_unless_the_key_reads_a_table(tmp_path: Path) -> None:
    text = PIPELINE + (
        "\nCREATE TABLE by_tier AS SELECT u.tier, COUNT(*) AS n"
        " FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.tier EMIT CHANGES;\n"
    )
    pipeline = load_pipeline([write(tmp_path, text)])
    by_name = {q.name: q for q in pipeline.queries}
    assert by_name["totals"].repartition
    assert not by_name["enriched"].repartition  # stateless: its own consumer group
    tier = by_name["by_tier"]
    assert tier.stateful
    assert not tier.repartition
    assert "u.tier" in tier.not_repartitioned
    assert "'u'" in tier.not_repartitioned
    # Sized by the sink's partitions option (totals), else the source topic as it exists.
    topics = pipeline.repartition_topics("app", {"o-topic": 5}, 1)
    assert topics == [
        TopicSpec("app-totals-repartition", 2, configs={"retention.ms": "-1"}),
    ]
    only = load_pipeline([write(tmp_path, text.replace("WITH (partitions='2') ", ""), "q.sql")])
    assert [t.partitions for t in only.repartition_topics("app", {"o-topic": 5}, 1)] == [5]
    assert [t.partitions for t in only.repartition_topics("app", {}, 1)] == [3]  # declared
