"""Streaming agents: SQL pipeline files run as continuous queries, topic → compiled SQL → topic.

Layout (data flows down):

- :mod:`agents.pipeline` — pipeline files → declared tables and streams, topics, queries; every
  query is compiled at start so errors stop the worker with ``file:line:column``;
- :mod:`agents.service` — :class:`~agents.service.PipelineService`, the faust app service that
  creates the topics, owns the output producer and runs the agents of every query;
- :mod:`agents.agent` — :class:`~agents.agent.QueryAgent`, the loop: fetch a batch, process it,
  send, commit once the broker acknowledged every output (at-least-once); :mod:`agents.source`
  — its consumer and rebalance listener; :mod:`agents.config` — what every agent is given;
- :mod:`agents.repartition` — stage 1 of a stateful query: source records to its repartition
  topic, placed by group key; :mod:`agents.stateful` — stage 2: one
  :class:`~agents.tasks.AggregateTask` (compiled query, RocksDB state, watermark) per
  repartition partition a worker is assigned (:mod:`agents.tasks`);
- :mod:`agents.compiling` — a query compiled per agent or task, sharing table caches;
- :mod:`agents.delivery` — in-flight batches: broker acks first, then state or offset commits;
- :mod:`agents.process` — one batch through one compiled query (no Kafka), dead letters;
- :mod:`agents.codec` — JSON in (exact decimals, declared column types); :mod:`agents.encode`
  — rows out, sink keys;
- :mod:`agents.sink` — outputs appended straight into aiokafka record batches;
- :mod:`agents.cache` — decoded table rows cached per agent, invalidated by change feeds;
- :mod:`agents.state` — RocksDB state of aggregates with the offsets it reflects, verified;
- :mod:`agents.metrics` — per-query counters for ``GET /queries/`` and the log.

Why the hot path is not a faust ``@app.agent``: faust keeps its role — the App, the worker and
its CLI, the web server, the services' lifecycle — but its per-event stream costs far more than
our whole query. Measured by ``bench/pipeline.py`` in one run on the embedded broker (200k JSON
orders; see docs/BENCHMARKS.md): a bare faust agent that only decodes and counts each event
spent 145 µs of CPU per event (4.9k events/s), where our agent — batch ``getmany``, orjson,
the compiled query with IN + EXISTS + a scalar subquery + a join, outputs appended to record
batches, one future per batch — spent about 20 µs (47k events/s, same run). Faust wraps every
record in an Event and a Message, runs it through its stream's iterator and per-event
acknowledgement machinery, and sends each output with one coroutine and one future per record.
"""
