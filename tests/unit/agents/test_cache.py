"""The agents' row cache: hits are the table's rows, every change invalidates its key."""

from __future__ import annotations

from agents.cache import CachedTable
from tables.memory import MemoryTable


def test_reads_through_and_follows_changes() -> None:
    table = MemoryTable("users", key_field="id")
    table.put(1, {"id": 1, "tier": "gold"})
    cached = CachedTable(table, max_rows=3)
    assert cached.get(1) == {"id": 1, "tier": "gold"}
    assert cached.get("1") is cached.get(1.0)  # one key, whatever its spelling
    assert cached.misses == 2  # the int and the text spelling each read the table once
    assert cached.get(1) is cached.get("1")
    assert cached.misses == 2
    assert cached.get(2) is None  # a miss is cached too ...
    table.put(2, {"id": 2, "tier": "basic"})
    assert cached.get(2) == {"id": 2, "tier": "basic"}  # ... and an insert invalidates it
    table.put(1, {"id": 1, "tier": "basic"})
    assert cached.get(1) == {"id": 1, "tier": "basic"}
    table.put(1, None)
    assert cached.get(1, "gone") == "gone"
    assert cached.get({"not": "a key"}) is None
    table.put(3, {"id": 3, "tier": "gold"})
    assert cached.get(3)["tier"] == "gold"  # type: ignore[index]
    table.put("3", {"id": 3, "tier": "basic"})  # a change by text invalidates the int probe
    assert cached.get(3)["tier"] == "basic"  # type: ignore[index]
    table.put(3, None)
    assert cached.get(3) is None
    for k in range(10):  # full: starts over, still right
        assert cached.get(k) == table.get(k)
    assert not cached.contains_key(1)
    assert cached.contains_key(2)
    cached.close()
    table.put(2, {"id": 2, "tier": "gold"})  # after close it no longer listens
    assert len(cached._rows) == 0
    assert (cached.name, cached.key_field, len(cached)) == ("users", "id", 1)
