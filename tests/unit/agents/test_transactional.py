"""What exactly-once refuses at start: a stateful query every worker computes whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.pipeline import load_pipeline
from agents.transactional import check_queries
from core.errors import ConfigError

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR) WITH (topic='u-topic');
CREATE STREAM orders (id BIGINT, user_id BIGINT) WITH (topic='o-topic', partitions='3');

CREATE STREAM gold WITH (topic='g-topic') AS
SELECT o.id FROM orders o WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold');

CREATE TABLE totals AS SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id EMIT CHANGES;
"""
BY_TIER = """
CREATE TABLE by_tier AS SELECT u.tier, COUNT(*) AS n
FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.tier EMIT CHANGES;
"""


def test_stateless_and_repartitioned_queries_run(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    check_queries(load_pipeline([path]).queries)


def test_a_query_not_repartitioned_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE + BY_TIER)
    with pytest.raises(ConfigError) as err:
        check_queries(load_pipeline([path]).queries)
    assert str(err.value).startswith(
        "processing_guarantee=exactly_once: query 'by_tier' is stateful and not repartitioned ("
    )
    assert err.value.fields == {"field": "processing_guarantee", "query": "by_tier"}
