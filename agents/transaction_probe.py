"""Does the broker support transactions? Asked once before ``exactly_once`` is used
(:mod:`agents.transaction`): some brokers list the transaction APIs and fail them, so the check
starts a transactional producer instead of trusting the API versions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from core.errors import TablestreamError

logger = logging.getLogger(__name__)

#: Seconds the start-up check waits for the broker to hand out a transactional producer id.
PROBE_TIMEOUT = 15.0
E_NO_TRANSACTIONS = (
    "processing_guarantee=exactly_once: the broker at {servers} does not support transactions"
    " (InitProducerId for a transactional producer failed: {error})"
)
W_PROBE = "cannot reach %s to check for transactions (%s); checked again when queries start"


class TransactionsUnsupportedError(TablestreamError):
    """``exactly_once`` asked of a broker without transactions."""


async def check_transactions(servers: str, transactional_id: str) -> None:
    """Raise :class:`TransactionsUnsupportedError` unless the broker hands a transactional
    producer its id (some brokers list the transaction APIs and fail them: try, do not trust)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, transactional_id=transactional_id)
    try:
        # start() waits for InitProducerId when a transactional id is set.
        await asyncio.wait_for(producer.start(), PROBE_TIMEOUT)
    except KafkaConnectionError:
        raise  # no broker to ask: not a verdict on its transactions
    except (KafkaError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise TransactionsUnsupportedError(
            E_NO_TRANSACTIONS.format(servers=servers, error=error), broker=servers
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


def probe_transactions(servers: str, transactional_id: str) -> None:
    """:func:`check_transactions` before the worker's event loop exists (a thread and a loop of
    its own), so a broker without transactions stops the worker with one line, as a bad setting
    does. A broker that cannot be reached is not judged here: the pipelines check again when
    they start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, check_transactions(servers, transactional_id)).result()
        except KafkaConnectionError as exc:
            logger.warning(W_PROBE, servers, exc)
