"""Consumer-group membership: static where the broker rewards it, dynamic where it does not.

Static membership (KIP-345, a stable ``group.instance.id``) lets a restarted worker take its old
member's place at once on Apache Kafka. Tansu (the embedded broker) holds every JoinGroup *and*
SyncGroup of a static member for at least 3 s, on top of holding a join until half the session
timeout (tansu-broker ``coordinator/group/administrator.rs``; measured in docs/BENCHMARKS.md,
Restart): a static restart costs 8 s of group protocol there (session 10 s), a dynamic one 5 s.

A dynamic member's restart would wait for its dead predecessor's session to time out; so each
dynamic member's id is kept in ``DATA_DIR/members/<group>`` once it is assigned, and the next
start of the same worker (the same data dir: never two workers at once) sends a LeaveGroup for
that id before it joins. The dead member's partitions are revoked at once; it can commit nothing
any more (it is dead, and a fenced generation's commits fail), so at-least-once holds: what it
processed without committing is read again.

``auto`` (:func:`static_pays`): static on a broker whose ApiVersions answer finalizes
``metadata.version`` — every KRaft Apache Kafka (3.3 and later) does; Tansu advertises no feature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from pathlib import Path
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

logger = logging.getLogger(__name__)

I_CHOSEN = "group membership: %s (%s)"
W_LEAVE = (
    "group %s: LeaveGroup for the previous member %s failed (%s): the join waits for its session"
)

_API_VERSIONS = 18
_CORRELATION = 11
_FINALIZED_FEATURES_TAG = 2


def api_versions_request() -> bytes:
    """ApiVersions v3 (header v2): the first version that answers with the broker's features."""
    client = b"tablestream-probe"
    body = struct.pack(">hhih", _API_VERSIONS, 3, _CORRELATION, len(client)) + client + b"\x00"
    for text in (b"tablestream", b"1"):
        body += bytes([len(text) + 1]) + text  # compact strings
    body += b"\x00"  # no tagged fields
    return struct.pack(">i", len(body)) + body


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def finalized_features(payload: bytes) -> list[str]:
    """The names of the finalized features of an ApiVersions v3 response (after its size)."""
    _correlation, error = struct.unpack(">ih", payload[:6])
    if error:
        return []
    count, at = _uvarint(payload, 6)
    for _ in range(max(count - 1, 0)):  # api_key, min, max, tagged fields (none)
        _tags, at = _uvarint(payload, at + 6)
    at += 4  # throttle_time_ms
    tags, at = _uvarint(payload, at)
    names: list[str] = []
    for _ in range(tags):
        tag, at = _uvarint(payload, at)
        size, at = _uvarint(payload, at)
        if tag == _FINALIZED_FEATURES_TAG:
            features, inner = _uvarint(payload, at)
            for _ in range(max(features - 1, 0)):
                length, inner = _uvarint(payload, inner)
                names.append(payload[inner : inner + length - 1].decode())
                inner += length - 1 + 4 + 1  # name, max and min version levels, tagged fields
        at += size
    return names


async def _features(host: str, port: int, timeout: float) -> list[str]:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(api_versions_request())
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            return finalized_features(await reader.readexactly(size))
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def static_pays(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """True unless the first broker that answers finalizes no ``metadata.version`` (Tansu).

    A broker that cannot be reached gets static membership (Kafka's way; the consumers wait
    for the broker either way)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            names = await _features(host, int(port), timeout)
        except (OSError, TimeoutError, ValueError, IndexError, struct.error):
            continue
        static = "metadata.version" in names
        logger.info(
            I_CHOSEN,
            "static" if static else "dynamic",
            "the broker finalizes metadata.version"
            if static
            else "the broker finalizes no feature (Tansu): it holds a static member's joins",
        )
        return static
    return True


class MemberFile:
    """Where a dynamic member of ``group`` keeps its id: ``DATA_DIR/members/<group>``."""

    def __init__(self, data_dir: Path, group: str) -> None:
        self.group = group
        self.path = data_dir / "members" / group

    def remember(self, consumer: Any) -> None:
        """After an assignment: the member id the broker gave this consumer (aiokafka keeps it
        on its coordinator; no public accessor)."""
        member_id = getattr(getattr(consumer, "_coordinator", None), "member_id", "")
        if member_id and self._read() != member_id:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(member_id)

    def _read(self) -> str:
        try:
            return self.path.read_text().strip()
        except FileNotFoundError:
            return ""

    async def leave_previous(self, bootstrap_servers: str, client_id: str) -> None:
        """Before joining: the previous run's member leaves (it is dead: this worker owns the data
        dir). A member that is gone already answers UNKNOWN_MEMBER_ID: nothing to do."""
        member_id = self._read()
        if not member_id:
            return
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
        try:
            await client.bootstrap()
            node = await client.coordinator_lookup(0, self.group)
            await client.send(node, LeaveGroupRequest(self.group, member_id))
        except (KafkaError, OSError) as exc:
            logger.warning(W_LEAVE, self.group, member_id, exc)
        finally:
            await client.close()
        self.path.unlink(missing_ok=True)
