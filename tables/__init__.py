"""Tables: store -> table (loader, readiness) -> changes -> indexes (-> versions, later).

Public API is re-exported here; the modules behind it are implementation.
"""

from tables.changes import ChangeFeed, ChangeStream, ChangeStreamOverflowError
from tables.indexes import HashIndex
from tables.memory import MemoryTable
from tables.protocol import (
    Change,
    ChangeListener,
    Key,
    Op,
    SecondaryIndex,
    Table,
    TableStats,
    Value,
    VersionedTable,
    VersionRecord,
)

__all__ = [
    "Change",
    "ChangeFeed",
    "ChangeListener",
    "ChangeStream",
    "ChangeStreamOverflowError",
    "HashIndex",
    "Key",
    "MemoryTable",
    "Op",
    "SecondaryIndex",
    "Table",
    "TableStats",
    "Value",
    "VersionRecord",
    "VersionedTable",
]
