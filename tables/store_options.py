"""rocksdict tuning of a table's store (:class:`StoreOptions`, one frozen object turned into
rocksdict ``Options`` for the rows and for the ``versions`` column family)."""

from __future__ import annotations

from dataclasses import dataclass

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options

#: The memtable bloom filter ``optimize_for_point_lookup`` sets, as ``Rdict.set_options`` takes it
#: (both options are mutable: they apply to the memtables made after the call).
MEMTABLE_BLOOM = {
    "memtable_prefix_bloom_size_ratio": "0.02",
    "memtable_whole_key_filtering": "true",
}


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

    def to_options(self, bulk: bool = False) -> Options:
        """The rows' options; ``bulk`` for a database a cold restore fills: its memtables
        without the bloom filter (each insert set bits at random in a 1.3 MB filter: a third of
        a restore's write, 0.7 -> 0.5 µs a row), :data:`MEMTABLE_BLOOM` set back once loaded."""
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.optimize_for_point_lookup(self.block_cache_mb)
        opts.set_write_buffer_size(self.write_buffer_mb * 1024 * 1024)
        if bulk:
            opts.set_memtable_prefix_bloom_ratio(0.0)
            opts.set_memtable_whole_key_filtering(False)
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
