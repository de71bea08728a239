"""What every agent of a worker is configured with (built once by app/factory.py from settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.membership import MemberFile
from agents.transaction import COMMIT_INTERVAL

#: Seconds between two state writes of a stateful task, at-least-once, by default (the
#: ``state_write_interval`` setting): the windows and groups a second of batches changed are
#: written once, with the offset of the last record applied.
STATE_WRITE_INTERVAL = 1.0
#: Waits until the named tables are loaded (the PipelineService's readiness, given to each agent).
TablesReady = Callable[[Sequence[str]], Any]


@dataclass(frozen=True, slots=True)
class AgentConfig:
    bootstrap_servers: str
    app_id: str
    dead_letter_topic: str
    data_dir: Path
    session_timeout: float = 10.0
    max_records: int = 10_000
    max_inflight: int = 4
    log_interval: float = 10.0
    fetch_max_wait_ms: int = 5
    #: At-least-once stateful queries: seconds between two state writes of a task (0: every
    #: batch; :attr:`agents.tasks.AggregateTask.write_interval`).
    state_write_interval: float = STATE_WRITE_INTERVAL
    #: Outputs, state and offsets of each task in one Kafka transaction (:mod:`agents.transaction`).
    exactly_once: bool = False
    #: Exactly-once: seconds a task's transaction stays open (``Transactions.commit_interval``).
    commit_interval: float = COMMIT_INTERVAL
    #: Windowed queries: seconds after which a source partition read to its end that brings no
    #: record is idle (left out of the watermark), and how far (event-time ms) one partition may
    #: run ahead of the slowest before its fetching pauses (:mod:`agents.watermarks`).
    watermark_idle_timeout: float = 30.0
    watermark_max_skew_ms: int = 300_000
    #: False: each task's own stream time instead (no markers; see app/settings.py).
    watermark_per_source: bool = True
    #: Static group membership (KIP-345): this worker's stable id in every consumer group
    #: (``<id>-<group>``); a restart rejoins at once instead of waiting for its old member's
    #: session to time out. None: dynamic membership.
    group_instance_id: str | None = None
    #: Static only if the broker rewards it (:func:`agents.membership.static_pays`, asked once
    #: by the PipelineService, which drops ``group_instance_id`` otherwise).
    membership_auto: bool = False
    #: Stateless queries as one generated function per batch (:mod:`sql.codegen`).
    codegen: bool = True

    def instance_of(self, group: str) -> dict[str, Any]:
        """The consumer arguments that make this worker a static member of ``group``."""
        if self.group_instance_id is None:
            return {}
        return {"group_instance_id": f"{self.group_instance_id}-{group}"}

    def member_file(self, group: str) -> MemberFile | None:
        """Where a dynamic member of ``group`` keeps its id (None for a static member)."""
        return None if self.group_instance_id is not None else MemberFile(self.data_dir, group)

    @property
    def isolation_level(self) -> str:
        """Under exactly-once, no consumer of the app reads what an aborted transaction wrote."""
        return "read_committed" if self.exactly_once else "read_uncommitted"
