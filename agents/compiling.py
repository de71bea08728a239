"""Compiling one pipeline query for an agent, as often as the agent needs it (one instance per
task, again after a rebuild): the tables read through caches the compiles share, the stream's
decoder, the batch processor."""

from __future__ import annotations

from collections.abc import Mapping

from agents.cache import CachedTable
from agents.codec import Decoder, make_decoder, make_encoder
from agents.fused import fused_processor
from agents.pipeline import Pipeline, QueryDef, catalog_for, compile_error, key_columns
from agents.process import BatchProcessor
from sql import CompiledQuery, SqlCompileError, SqlType, compile_query, parse_script
from tables.protocol import LocalTable, Table


class QueryBuilder:
    """Compiles ``qdef`` against the worker's tables; :meth:`close` releases the caches."""

    def __init__(
        self,
        qdef: QueryDef,
        pipeline: Pipeline,
        tables: dict[str, Table],
        dead_letter_topic: str,
        sink_topic: str | None = None,
        *,
        codegen: bool = True,
    ) -> None:
        self.qdef = qdef
        self.pipeline = pipeline
        self.tables = tables
        self.dead_letter_topic = dead_letter_topic
        self.sink_topic = sink_topic or qdef.sink_topic
        self._cached: list[CachedTable] | None = None
        self._decoder: Decoder | None = None
        #: Stateless queries run as one generated function per batch (:mod:`sql.codegen`) where
        #: the generator supports them; False: always the closures (the reference).
        self.codegen = codegen

    def _catalog_tables(self) -> dict[str, Table]:
        if self._cached is None:
            # Versioned tables answer as-of reads the cache knows nothing of: read directly.
            # External tables keep caches of their own (TTLs, no change feed); tables with their
            # own row cache (ReferenceTable) are not wrapped a second time.
            self._cached = [
                CachedTable(t)
                for n, t in self.tables.items()
                if n in self.qdef.reads
                and isinstance(t, LocalTable)
                and not getattr(t, "versioned", False)
                and not getattr(t, "caches_rows", False)
            ]
        tables: dict[str, Table] = dict(self.tables)
        tables.update({c.name.lower(): c for c in self._cached})
        return tables

    def query(self) -> CompiledQuery:
        try:
            # The schemas of undeclared tables are known only now, from their rows.
            return compile_query(
                self.qdef.sql,
                catalog_for(self._catalog_tables(), self.pipeline),
                # The decoder gives a declared stream's columns their types: reads skip it.
                typed_streams=self._declared_columns() is not None,
            )
        except SqlCompileError as exc:
            raise compile_error(self.qdef.path, exc) from exc

    def _declared_columns(self) -> Mapping[str, SqlType] | None:
        decl = parse_script(self.qdef.sql).declarations.get(self.qdef.source)
        return None if decl is None else decl.columns

    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = make_decoder(self._declared_columns())
        return self._decoder

    def processor(self, query: CompiledQuery) -> BatchProcessor:
        if self.codegen:
            fused = fused_processor(
                query,
                self.decoder(),
                name=self.qdef.name,
                sink_topic=self.sink_topic,
                key_columns=key_columns(query),
                dead_letter_topic=self.dead_letter_topic,
                columns=self._declared_columns(),
            )
            if fused is not None:
                return fused
        return BatchProcessor(
            query,
            self.decoder(),
            name=self.qdef.name,
            sink_topic=self.sink_topic,
            key_columns=key_columns(query),
            dead_letter_topic=self.dead_letter_topic,
            encode=make_encoder(query.output_columns, query.output_types),
        )

    def both(self) -> tuple[CompiledQuery, BatchProcessor]:
        query = self.query()
        return query, self.processor(query)

    def close(self) -> None:
        for cached in self._cached or []:
            cached.close()
        self._cached = None
