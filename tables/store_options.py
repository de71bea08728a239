"""rocksdict tuning of a table's store (:class:`StoreOptions`, one frozen object turned into
rocksdict ``Options`` for the rows and for the ``versions`` column family)."""

from __future__ import annotations

from dataclasses import dataclass

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """rocksdict tuning; point lookups dominate, so bloom filters and a block cache."""

    block_cache_mb: int = 128
    write_buffer_mb: int = 64
    #: The ``versions`` column family (filled only by versioned tables): as-of reads are seeks,
    #: which bloom filters do not spare; small LZ4 blocks in their own cache keep a seek's block
    #: read short (500k keys x 10 versions, same process: seek p50 ~16 -> ~6 µs against 4 KB
    #: snappy blocks with a 128 MB cache; see docs/BENCHMARKS.md for the noisy 1M figures).
    history_cache_mb: int = 256
    history_block_bytes: int = 1024

    def to_options(self) -> Options:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.optimize_for_point_lookup(self.block_cache_mb)
        opts.set_write_buffer_size(self.write_buffer_mb * 1024 * 1024)
        return opts

    def history_options(self) -> Options:
        table = BlockBasedOptions()
        table.set_block_cache(Cache(self.history_cache_mb * 1024 * 1024))
        table.set_block_size(self.history_block_bytes)
        opts = Options(raw_mode=True)
        opts.set_block_based_table_factory(table)
        opts.set_compression_type(DBCompressionType.lz4())
        opts.set_write_buffer_size(self.write_buffer_mb * 1024 * 1024)
        return opts
