"""Builds the faust App of a worker from one :class:`~app.settings.Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from app.settings import Settings
from app.web import register_views
from tables.registry import TableRegistry


@dataclass(frozen=True)
class Runtime:
    """What a running worker is made of; reachable as ``app.runtime`` from CLI commands."""

    settings: Settings
    tables: TableRegistry


def create_app(settings: Settings) -> faust.App:
    """A faust App with the reference tables started as a service and the web views mounted."""
    logging.getLogger("tables").setLevel(settings.log_level.upper())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        datadir=str(settings.data_dir / "faust"),
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.default_partitions,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(1.0, settings.session_timeout / 10),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        store="memory://",
        autodiscover=False,
    )
    registry = TableRegistry(
        settings.tables,
        data_dir=settings.data_dir,
        bootstrap_servers=settings.bootstrap_servers,
        dead_letter_topic=settings.dead_letter_topic,
        default_partitions=settings.default_partitions,
        fetch_max_records=settings.fetch_max_records,
        client_id=settings.app_id,
        beacon=app.beacon,
    )
    app.service(registry)  # type: ignore[arg-type]  # faust takes instances too
    register_views(app, registry)
    app.runtime = Runtime(settings, registry)  # type: ignore[attr-defined]
    return app
