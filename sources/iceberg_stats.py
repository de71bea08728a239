"""What ``stats()`` shows for an Iceberg table (``/tables/``, ``/queries/`` → ``sources``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sources.iceberg import IcebergTable


class IcebergStats:
    def __init__(self, table: IcebergTable) -> None:
        self.table = table

    def as_dict(self) -> dict[str, Any]:
        t = self.table
        out: dict[str, Any] = {
            "name": t.name,
            "kind": t.kind,
            "source": t.describe(),
            "ready": t.is_ready,
            "snapshot": t.snapshot_id,
            "snapshots_in_log": len(t.snapshot_log),
            "cached_rows": len(t.current),
            "duplicate_keys": getattr(t.current, "duplicates", 0),
            "snapshot_caches": [t.snapshot_id, *t.older],
            "lookups": t.lookups,
            "as_of_lookups": t.as_of_lookups,
            "snapshot_loads": t.snapshot_loads,
            "snapshot_evictions": t.evictions,
            "refreshes": t.refreshes,
            "refresh_failures": t.refresh_failures,
            "switches": t.switches,
            "last_load_ms": t.last_load_ms,
            "schema_errors": t.schema_errors,
            "last_schema_error": t.last_schema_error,
            "stale_serves": t.stale_serves,
            "unavailable": t.unavailable,
            "waits": t.waits,
            "indexes": sorted(t.indexes),
            "index_builds": t.index_builds,
            "last_index_ms": t.last_index_ms,
            "breaker": t.breaker.as_dict(),
        }
        out.update(t.caller.stats.as_dict())
        return out
