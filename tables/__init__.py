"""Tables: store -> table (loader, readiness) -> changes -> indexes (-> versions, later).

Public API is re-exported here; the modules behind it are implementation.
"""

from tables.changes import ChangeFeed, ChangeStream, ChangeStreamOverflowError
from tables.indexes import HashIndex
from tables.keys import drop_key, int_alias
from tables.memory import MemoryTable
from tables.protocol import (
    AS_OF_TIMES,
    AT_VERSIONS,
    PREFETCH_BATCH,
    Change,
    ChangeFeedTable,
    ChangeListener,
    ConnectedTable,
    IndexedTable,
    Key,
    LocalTable,
    Op,
    PageTable,
    PrefetchTable,
    ScanTable,
    SecondaryIndex,
    SnapshotLogTable,
    StatsLike,
    Table,
    TableStats,
    TableUnavailableError,
    Unsubscribe,
    Value,
    VersionedTable,
    VersionRecord,
)

__all__ = [
    "AS_OF_TIMES",
    "AT_VERSIONS",
    "PREFETCH_BATCH",
    "Change",
    "ChangeFeed",
    "ChangeFeedTable",
    "ChangeListener",
    "ChangeStream",
    "ChangeStreamOverflowError",
    "ConnectedTable",
    "HashIndex",
    "IndexedTable",
    "Key",
    "LocalTable",
    "MemoryTable",
    "Op",
    "PageTable",
    "PrefetchTable",
    "ScanTable",
    "SecondaryIndex",
    "SnapshotLogTable",
    "StatsLike",
    "Table",
    "TableStats",
    "TableUnavailableError",
    "Unsubscribe",
    "Value",
    "VersionRecord",
    "VersionedTable",
    "drop_key",
    "int_alias",
]
