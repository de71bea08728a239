"""Produce requests encoded with one copy of the record batches instead of about six.

aiokafka encodes a request by nesting ``b"".join`` calls, one per level of its schema (the
request, its topics, each topic, its partitions, each partition) and ``Int32 + value`` for
every record batch: each level copies everything below it, so a produce request of 1 MB of
record batches was copied six times before the socket saw it. That was ~0.1 µs per output
record of the pipeline's worker (docs/BENCHMARKS.md, pipe250), memory bandwidth and the page
faults of fresh megabyte buffers. Here the same schema walk collects the small encoded fields
and the record batch buffers themselves into one list, joined once: the same bytes
(``tests/unit/core/test_produce.py`` compares them with aiokafka's encoding for every version).

This reaches into aiokafka's sender (``Sender._send_produce_req``, the handler it creates), so
aiokafka is pinned to a minor version in pyproject.toml and :func:`supported` checks what it
uses; without it, the producer is left as it is.
"""

from __future__ import annotations

import functools
import types
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.producer import sender as _sender
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.types import Array, Bytes, Int32, Schema

_NULL = Int32.encode(-1)


def _parts(kind: Any, value: Any, out: list[Any]) -> None:
    """Append the encoding of ``value`` as ``kind`` (a field type of aiokafka's protocol
    schemas) to ``out``: record batches as they are, everything else as aiokafka encodes it."""
    if kind is Bytes:
        if value is None:
            out.append(_NULL)
        else:
            out.append(Int32.encode(len(value)))
            out.append(value)
    elif isinstance(kind, Schema):
        fields = kind.fields
        if len(value) != len(fields):
            raise ValueError("Item field count does not match Schema")
        for i, field in enumerate(fields):
            _parts(field, value[i], out)
    elif type(kind) is Array:
        if value is None:
            out.append(_NULL)
        else:
            out.append(Int32.encode(len(value)))
            of = kind.array_of
            for item in value:
                _parts(of, item, out)
    else:
        out.append(kind.encode(value))


def _encode(self: Any) -> bytes:
    out: list[Any] = []
    _parts(self.SCHEMA, [self.__dict__[name] for name in self.SCHEMA.names], out)
    return b"".join(out)


@functools.cache
def _lean(cls: type[Any]) -> type[Any]:
    """``cls`` (a ``ProduceRequest_vN``) with the one-copy :func:`_encode`."""
    return type(cls.__name__, (cls,), {"encode": _encode, "__module__": __name__})


class LeanProduceRequest(ProduceRequest):  # type: ignore[misc]
    """aiokafka's ``ProduceRequest`` whose versioned struct encodes with one copy."""

    def build(self, request_struct_class: Any) -> Any:
        return super().build(_lean(request_struct_class))


class _LeanHandler(_sender.SendProduceReqHandler):  # type: ignore[misc]
    def create_request(self) -> LeanProduceRequest:
        req = super().create_request()
        return LeanProduceRequest(
            req._transactional_id, req._required_acks, req._timeout, req._topics
        )


async def _send_produce_req(self: Any, node_id: int, batches: Any) -> None:
    # aiokafka 0.14's Sender._send_produce_req with the handler above.
    handler = _LeanHandler(self, batches)
    await handler.do(node_id)
    self._in_flight.remove(node_id)
    for tp in batches:
        self._muted_partitions.remove(tp)


def supported(producer: AIOKafkaProducer) -> bool:
    """Whether this aiokafka has the sender internals :func:`lean_produce` replaces."""
    sender = getattr(producer, "_sender", None)
    handler = getattr(_sender, "SendProduceReqHandler", None)
    return (
        sender is not None
        and hasattr(sender, "_send_produce_req")
        and hasattr(sender, "_in_flight")
        and hasattr(sender, "_muted_partitions")
        and handler is not None
        and hasattr(handler, "create_request")
        and all(hasattr(ProduceRequest, a) for a in ("build", "prepare"))
    )


def lean_produce(producer: AIOKafkaProducer) -> bool:
    """Make ``producer`` encode its produce requests with one copy; False (nothing changed)
    when this aiokafka lacks what that needs."""
    if not supported(producer):
        return False
    sender = producer._sender
    sender._send_produce_req = types.MethodType(_send_produce_req, sender)
    return True
