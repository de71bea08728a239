"""Is the broker there? One metadata request, as Kafka's own clients would first ask.

``GET /ready`` asks it on every call: tables stay ready (their rows are served from local state)
while the broker is away, but a worker that cannot reach it is not ready to process anything.
The same request decides when a launched test broker is up (:mod:`app.broker.process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

CORRELATION = 7


def metadata_request(correlation_id: int = CORRELATION) -> bytes:
    """Metadata v4 (header v1) for no topics: every Kafka since 1.0 and Tansu answer it."""
    client = b"tablestream-probe"
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client)) + client
    body += struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    return struct.pack(">i", len(body)) + body


def names_a_broker(payload: bytes, correlation_id: int = CORRELATION) -> bool:
    """Whether a metadata response (after its size prefix) lists at least one broker."""
    if len(payload) < 12:
        return False
    correlation, _throttle, brokers = struct.unpack(">iii", payload[:12])
    return bool(correlation == correlation_id and brokers >= 1)


async def answers(host: str, port: int, timeout: float) -> bool:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(metadata_request())
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            return names_a_broker(await reader.readexactly(size))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, struct.error):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def broker_answers(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """True when one of ``host:port[,host:port]`` answers a metadata request within ``timeout``."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().removeprefix("kafka://").rpartition(":")
        if host and port.isdigit() and await answers(host, int(port), timeout):
            return True
    return False
