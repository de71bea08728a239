"""External databases as tables (see docs/TABLES.md): one module per database, sharing the
cache, the circuit breaker and the batched, retried calls."""
