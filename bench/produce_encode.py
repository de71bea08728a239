"""A produce request's encoding, aiokafka's against ``core.produce``'s one-copy encoding
(docs/BENCHMARKS.md, pipe250): two record batches of ``--records`` JSON orders each (~460 KB at
the default), as the queries' producer sends them; CPU per output record, rounds alternating.

    .venv/bin/python -m bench.produce_encode [--records 6000] [--rounds 3] [--repeat 50]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.protocol.produce import ProduceRequest

from core.produce import LeanProduceRequest

VERSION = 7


def _batch(records: int, partition: int) -> bytes:
    b = BatchBuilder(16 * 1024 * 1024, 0)
    for i in range(records):
        value = b'{"order_id":%d,"user_id":%d,"amount":"512.25","tier":"gold"}' % (i, i % 10_000)
        assert b.append(timestamp=1_700_000_000_000 + i, key=str(i).encode(), value=value)
    return bytes(b._build())


def _per_record(cls: Any, topics: Any, records: int, repeat: int) -> float:
    """µs of CPU per output record to encode the request ``repeat`` times."""
    request = cls(None, -1, 30_000, topics).prepare({0: (VERSION, VERSION)})
    start = time.process_time()
    for _ in range(repeat):
        request.encode()
    return (time.process_time() - start) / repeat / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6_000, help="orders per record batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=50, help="encodings per round")
    args = parser.parse_args()
    topics = [("orders_out", [(0, _batch(args.records, 0)), (1, _batch(args.records, 1))])]
    size = sum(len(b) for _, b in topics[0][1])
    ours = LeanProduceRequest(None, -1, 30_000, topics).prepare({0: (VERSION, VERSION)})
    theirs = ProduceRequest(None, -1, 30_000, topics).prepare({0: (VERSION, VERSION)})
    assert ours.encode() == theirs.encode()  # the same bytes, or the figure means nothing
    n = 2 * args.records
    print(f"produce request v{VERSION}: 2 record batches, {n:,} records, {size / 1024:,.0f} KB")
    for r in range(1, args.rounds + 1):
        a = _per_record(ProduceRequest, topics, n, args.repeat)
        b = _per_record(LeanProduceRequest, topics, n, args.repeat)
        print(f"round {r}: aiokafka {a:.3f} µs per record, one copy {b:.3f} ({b / a:.2f} x)")


if __name__ == "__main__":
    main()
