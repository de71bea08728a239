"""Builds the faust App of a worker from one :class:`~app.settings.Settings`.

Two steps, so that a command line that runs no worker never reads a pipeline file (a broken one
must not break ``faust -A app --help`` or ``sql explain`` of another file):

- :func:`create_app` builds the faust App and our commands: cheap, reads no file;
- :func:`wire` reads the pipeline files and adds the tables, the queries and the web views. The
  worker class (:class:`TablestreamWorker`, faust's ``Worker`` setting) calls it before it starts,
  so a bad pipeline stops ``faust -A app worker`` with one line naming file, line and column.
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from mode import Service

from agents.config import AgentConfig
from agents.pipeline import load_pipeline
from agents.service import PipelineService
from agents.transaction_probe import probe_transactions
from agents.transactional import check_queries
from app.boot import BrokerGate, TablestreamApp
from app.cli import register_commands
from app.health import register_health
from app.settings import Settings, env_name
from app.web import register_home, register_web
from core import codec
from core.errors import ConfigError, TablestreamError
from tables.cache_settings import CacheSettings
from tables.registry import TableRegistry

#: Exit status of a worker or command stopped by a bad setting or pipeline (as click's usage).
EXIT_CONFIG = 2
E_DATA_DIR = "{variable}='{path}': the data directory cannot be created ({error.strerror})"


@dataclass(frozen=True)
class Runtime:
    """What a running worker is made of; reachable as ``app.runtime`` once wired."""

    settings: Settings
    tables: TableRegistry
    pipelines: PipelineService | None = None
    #: Started in this order after faust's web server (app.boot.TablestreamBoot).
    services: tuple[Service, ...] = ()


def instance_id(data_dir: Path) -> str:
    """This worker's stable id (static group membership): made once, kept in its data dir — two
    workers never share a data dir, and a restarted worker finds its own."""
    path = data_dir / "instance-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        made = f"w-{uuid.uuid4().hex[:12]}"
        path.write_text(made)
        return made


def create_app(settings: Settings) -> faust.App:
    """A faust App configured from ``settings`` alone, with our commands; :func:`wire` adds the
    tables and queries when a worker starts."""
    app = TablestreamApp(
        settings.app_id,
        # faust reads its own variables (WEB_PORT, BROKER_URL, ...) over these arguments; an
        # empty environment makes ``settings`` the whole configuration (app.settings warns).
        env={},
        Worker=TablestreamWorker,
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
    app.tablestream_settings = settings  # type: ignore[attr-defined]
    register_home(app)
    register_commands(app, settings)
    return app


def wire(app: faust.App, settings: Settings) -> Runtime:
    """Reads and checks the pipeline files, then adds the reference tables and the pipelines as
    services and mounts the web views. Raises :class:`TablestreamError` naming what is wrong."""
    logging.getLogger("tables").setLevel(settings.log_level.upper())
    logging.getLogger("agents").setLevel(settings.log_level.upper())
    codec.set_max_depth(settings.json_max_depth)  # before any decoder is made
    pipeline = (
        load_pipeline(settings.pipeline, settings.tables, settings.secrets)
        if settings.pipeline
        else None
    )
    specs = tuple(pipeline.tables.values()) if pipeline is not None else settings.tables
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            E_DATA_DIR.format(variable=env_name("data_dir"), path=settings.data_dir, error=exc),
            variable=env_name("data_dir"),
        ) from exc
    registry = TableRegistry(
        specs,
        data_dir=settings.data_dir,
        bootstrap_servers=settings.bootstrap_servers,
        dead_letter_topic=settings.dead_letter_topic,
        default_partitions=settings.default_partitions,
        fetch_max_records=settings.fetch_max_records,
        row_cache=CacheSettings(
            settings.table_cache_rows, settings.table_cache_mb, settings.table_cache_preload
        ),
        client_id=settings.app_id,
        read_committed=settings.exactly_once,
        max_skew_ms=settings.watermark_max_skew_ms,
        beacon=app.beacon,
        secrets=settings.secrets,
    )
    # Started with the app (app.boot.TablestreamBoot), not as faust "extra services" (those
    # would wait for faust's table recovery): tables load as soon as the broker answers.
    services: list[Service] = [BrokerGate(settings.bootstrap_servers, beacon=app.beacon), registry]
    pipelines = None
    if pipeline is not None and settings.exactly_once:
        check_queries(pipeline.queries)
        probe_transactions(settings.bootstrap_servers, f"{settings.app_id}-probe")
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
            state_write_interval=settings.state_write_interval,
            exactly_once=settings.exactly_once,
            commit_interval=settings.commit_interval_ms / 1000,
            codegen=settings.codegen,
            watermark_idle_timeout=settings.watermark_idle_timeout,
            watermark_max_skew_ms=settings.watermark_max_skew_ms,
            watermark_per_source=settings.watermark_per_source,
            group_instance_id=instance_id(settings.data_dir)
            if settings.static_membership.lower() != "false"
            else None,
            membership_auto=settings.static_membership.lower() == "auto",
        )
        pipelines = PipelineService(
            pipeline, registry, config, settings.default_partitions, beacon=app.beacon
        )
        services.append(pipelines)
    register_health(app, registry, pipelines, max_age=settings.live_max_age)
    register_web(
        app,
        registry,
        pipelines,
        bootstrap_servers=settings.bootstrap_servers,
        dead_letter_topic=settings.dead_letter_topic,
    )
    runtime = Runtime(settings, registry, pipelines, tuple(services))
    app.runtime = runtime  # type: ignore[attr-defined]
    return runtime


def exit_config_error(exc: TablestreamError) -> None:
    """One line on stderr and exit status 2: what a user sees of a bad setting or pipeline."""
    print(f"error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


class TablestreamWorker(faust.Worker):
    """faust's worker, wiring the app's tables and queries (:func:`wire`) before it starts."""

    def __init__(self, app: faust.App, *services: Any, **kwargs: Any) -> None:
        if getattr(app, "runtime", None) is None:
            try:
                wire(app, app.tablestream_settings)  # type: ignore[attr-defined]
            except TablestreamError as exc:
                exit_config_error(exc)
        super().__init__(app, *services, **kwargs)
