"""Builds the faust App of a worker from one :class:`~app.settings.Settings`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from agents.agent import AgentConfig
from agents.pipeline import load_pipeline
from agents.service import PipelineService
from app.cli import register_commands
from app.settings import Settings
from app.web import register_query_views, register_views
from tables.registry import TableRegistry


@dataclass(frozen=True)
class Runtime:
    """What a running worker is made of; reachable as ``app.runtime`` from CLI commands."""

    settings: Settings
    tables: TableRegistry
    pipelines: PipelineService | None = None


def create_app(settings: Settings) -> faust.App:
    """A faust App with the reference tables and the pipelines started as services and the web
    views mounted. Pipeline files are read and checked here: an error stops the worker at start,
    naming file, line and column."""
    logging.getLogger("tables").setLevel(settings.log_level.upper())
    logging.getLogger("agents").setLevel(settings.log_level.upper())
    pipeline = load_pipeline(settings.pipeline, settings.tables) if settings.pipeline else None
    specs = tuple(pipeline.tables.values()) if pipeline is not None else settings.tables
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
        specs,
        data_dir=settings.data_dir,
        bootstrap_servers=settings.bootstrap_servers,
        dead_letter_topic=settings.dead_letter_topic,
        default_partitions=settings.default_partitions,
        fetch_max_records=settings.fetch_max_records,
        client_id=settings.app_id,
        read_committed=settings.exactly_once,
        beacon=app.beacon,
    )
    app.service(registry)  # type: ignore[arg-type]  # faust takes instances too
    register_views(app, registry)
    pipelines = None
    if pipeline is not None:
        config = AgentConfig(
            bootstrap_servers=settings.bootstrap_servers,
            app_id=settings.app_id,
            dead_letter_topic=settings.dead_letter_topic,
            data_dir=settings.data_dir,
            session_timeout=settings.session_timeout,
            max_records=settings.query_max_records,
            max_inflight=settings.query_max_inflight,
            log_interval=settings.query_log_interval,
            fetch_max_wait_ms=settings.query_fetch_wait_ms,
            exactly_once=settings.exactly_once,
        )
        pipelines = PipelineService(
            pipeline, registry, config, settings.default_partitions, beacon=app.beacon
        )
        app.service(pipelines)  # type: ignore[arg-type]
    register_query_views(app, pipelines)
    register_commands(app, settings)
    app.runtime = Runtime(settings, registry, pipelines)  # type: ignore[attr-defined]
    return app
