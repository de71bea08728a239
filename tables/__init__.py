"""Tables: store -> table (loader, readiness) -> changes -> indexes (-> versions, later).

Public API is re-exported here; the modules behind it are implementation.
"""

from tables.changes import ChangeFeed
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
)

__all__ = [
    "Change",
    "ChangeFeed",
    "ChangeListener",
    "HashIndex",
    "Key",
    "MemoryTable",
    "Op",
    "SecondaryIndex",
    "Table",
    "TableStats",
    "Value",
]
