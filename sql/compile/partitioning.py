"""How a stateful query's records reach the task that owns their group: a pure rule.

Every record of a group must be aggregated by one task (one compiled query, one state). Three
answers, as in Kafka Streams / ksqlDB:

- **co-partitioned**: the GROUP BY holds the stream's record key — ``_key`` itself, or the column
  the stream declares its key holds (``CREATE STREAM s (...) WITH (key='user_id')`` or
  ``user_id BIGINT KEY``). Kafka's producers place a record by its key, so the records of a group
  are already in one source partition: one task per source partition aggregates them, with no
  repartition topic (Kafka Streams does not repartition when the grouping key is the record key;
  ksqlDB not for a GROUP BY on the KEY column). The agents check each record's key against the
  declared column and its placement (:mod:`agents.copartition`);
- **repartitioned**: the group key is a function of the record alone, but not its key: a first
  stage writes each record to an internal topic partitioned by the group key;
- **every partition**: the group key reads a joined table (or holds a subquery): no stage can
  compute it before the aggregation, so one query reads every source partition.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlglot import exp

COPARTITIONED = "co-partitioned"
REPARTITIONED = "repartitioned"
EVERY_PARTITION = "every partition"

R_BY_KEY = "GROUP BY {expr} is the record key of stream {stream}"
R_BY_COLUMN = "GROUP BY {expr} is the key of stream {stream} (key='{column}')"
R_NO_KEY = "stream {stream} declares no key (WITH (key='column') or a KEY column)"
R_OTHER_KEY = "GROUP BY ({exprs}) does not hold the key of stream {stream} ({column})"
R_NO_GROUP = "an aggregate without GROUP BY: one group, in one partition"


@dataclass(frozen=True, slots=True)
class Partitioning:
    """Where a stateful query's records are aggregated, and why (EXPLAIN prints both)."""

    mode: str
    reason: str
    #: Co-partitioned by a declared key column: the column whose text each record's key must be
    #: (None: the GROUP BY is ``_key`` itself, or not co-partitioned).
    key_column: str | None = None

    @property
    def copartitioned(self) -> bool:
        return self.mode == COPARTITIONED

    def explain(self) -> str:
        return f"Partitioning {self.mode}: {self.reason}"


def _column_of(
    node: exp.Expr, stream_names: Sequence[str], shadowed: Collection[str]
) -> str | None:
    """The stream column ``node`` reads bare (``user_id``, ``o.user_id``), lower case; else None.
    An unqualified name in ``shadowed`` may be a SELECT alias (they win over an open stream's
    columns): not taken for the column."""
    if not isinstance(node, exp.Column):
        return None
    table = node.table
    name = str(node.name).lower()
    if table and table.lower() not in stream_names:
        return None
    if not table and name in shadowed:
        return None
    return name


def partitioning(
    group: Sequence[exp.Expr],
    stream: str,
    alias: str,
    key_column: str | None,
    *,
    whole: str | None = None,
    shadowed: Collection[str] = (),
) -> Partitioning:
    """The rule. ``group``: the GROUP BY expressions; ``stream`` / ``alias``: the stream's name
    and its alias in the query; ``key_column``: the column its declaration says the record key
    holds; ``whole``: why the group key cannot be computed from the record alone (None: it can);
    ``shadowed``: SELECT aliases (lower case) naming something else than the column itself."""
    if whole is not None:
        return Partitioning(EVERY_PARTITION, whole)
    if not group:
        return Partitioning(REPARTITIONED, R_NO_GROUP)
    names = [stream.lower(), alias.lower()]
    key = key_column.lower() if key_column else None
    for g in group:
        column = _column_of(g, names, shadowed)
        text = g.sql(dialect="duckdb")
        if column == "_key":
            return Partitioning(COPARTITIONED, R_BY_KEY.format(expr=text, stream=stream))
        if key is not None and column == key:
            reason = R_BY_COLUMN.format(expr=text, stream=stream, column=key_column)
            return Partitioning(COPARTITIONED, reason, key_column)
    if key is None:
        return Partitioning(REPARTITIONED, R_NO_KEY.format(stream=stream))
    exprs = ", ".join(g.sql(dialect="duckdb") for g in group)
    return Partitioning(
        REPARTITIONED, R_OTHER_KEY.format(exprs=exprs, stream=stream, column=key_column)
    )
