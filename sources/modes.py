"""The external table class of a cache mode."""

from __future__ import annotations

from sources.config import SourceConfig
from sources.lookup import LookupTable
from sources.snapshot import SnapshotTable
from sources.table import Database, ExternalTable


def create(config: SourceConfig, db: Database) -> ExternalTable:
    """The table class of the config's cache mode."""
    if config.cache == "full":
        return SnapshotTable(config, db)
    return LookupTable(config, db)
