"""``ProcessorContext``: the reference tables a processor's queries can read, by name.

The Kafka side (creating and loading a table from a topic) belongs to the tables layer; it is
injected here as ``loader`` so SQL stays free of Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping

from sql.catalog import Catalog, TableLoader
from sql.errors import SqlError
from sql.query import CompiledQuery, compile_query
from sql.table_api import Queryable
from sql.types import SqlType
from tables import Table

E_NO_LOADER = "cannot load table {name!r} from topic {topic!r}: no table loader configured"


class ProcessorContext:
    def __init__(
        self, tables: Mapping[str, Table] | None = None, loader: TableLoader | None = None
    ) -> None:
        self.state_tables: dict[str, Table] = dict(tables or {})
        self.loader = loader
        self._queryables: dict[str, Queryable] = {}

    def get_table(self, name: str) -> Table | None:
        return self.state_tables.get(name)

    def load_reference_table(
        self, name: str, topic: str, config: Mapping[str, str] | None = None
    ) -> Table:
        """Create (through the injected loader) and register the table ``name`` over ``topic``."""
        if self.loader is None:
            raise SqlError(E_NO_LOADER.format(name=name, topic=topic), table=name, topic=topic)
        table = self.loader(name, topic, dict(config or {}))
        self.state_tables[name] = table
        return table

    def queryable(self, name: str) -> Queryable | None:
        table = self.get_table(name)
        if table is None:
            return None
        q = self._queryables.get(name)
        if q is None or q.table is not table:
            q = self._queryables[name] = Queryable(table)
        return q

    def catalog(self, **streams: Mapping[str, SqlType] | None) -> Catalog:
        cat = Catalog.of(self.state_tables, **streams)
        cat.loader = self._load_for_catalog
        return cat

    def _load_for_catalog(self, name: str, topic: str, config: Mapping[str, str]) -> Table:
        return self.load_reference_table(name, topic, config)

    def compile(self, sql: str, **streams: Mapping[str, SqlType] | None) -> CompiledQuery:
        """Compile a query over this context's tables (tables declared in ``sql`` get loaded)."""
        return compile_query(sql, self.catalog(**streams))
