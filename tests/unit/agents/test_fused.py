"""The generated stateless path (:class:`agents.fused.FusedProcessor`) on a bug met by one record:
logged naming the record and dead-lettered, as the closures' driver does
(``test_process.py``'s case), through the one :func:`agents.process.internal_error`."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agents.codec import make_decoder
from agents.fused import FusedProcessor
from sql import compile_query
from sql.parse import parse_script
from tables.deadletter import H_REASON
from tables.memory import MemoryTable
from tests.support.records import Collect, Rec

SQL = (
    "CREATE STREAM orders (id BIGINT, user_id BIGINT);"
    "SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id"
)


class BrokenTable(MemoryTable):
    """A table whose reads fail with a bug (no SQL error), one key at a time or many."""

    def get(self, key: Any, default: Any = None) -> Any:
        raise RuntimeError(f"bug reading {key!r}")

    def get_many(self, keys: Any) -> Any:
        raise RuntimeError("bug reading many")


def fused(batch_lookups: bool) -> FusedProcessor:
    users = BrokenTable("users", key_field="id")
    columns = parse_script(SQL).declarations["orders"].columns
    assert columns is not None
    return FusedProcessor(
        compile_query(SQL, {"users": users}, typed_streams=True),
        make_decoder(columns),
        name="q",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        batch_lookups=batch_lookups,
        project=False,  # a projected lookup reads its map of the table's values, not get
    )


@pytest.mark.parametrize("batch_lookups", [False, True], ids=["get", "get_many"])
def test_a_bug_on_one_record_dead_letters_it_naming_the_record(
    caplog: pytest.LogCaptureFixture, batch_lookups: bool
) -> None:
    proc = fused(batch_lookups)
    out = Collect()
    records = [Rec(2, 41, b"k", b'{"id": 1, "user_id": 7}'), Rec(2, 42, b"j", None)]
    with caplog.at_level(logging.ERROR, logger="agents"):
        counts = proc.run(records, out)
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (2, 0, 1)
    assert counts.tombstones == 1
    [(topic, key, _, headers)] = out.records
    assert (topic, key) == ("dlq", b"k")
    assert headers[H_REASON] == b"internal error RuntimeError: bug reading 7"
    [logged] = caplog.records
    assert logged.name == "agents.process"  # the one helper's log, not a copy of it
    assert logged.getMessage() == "query q: orders[2]@41"
    assert logged.exc_info is not None  # with its traceback
    assert logged.exc_info[0] is RuntimeError
