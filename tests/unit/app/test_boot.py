"""app.boot: what a worker starts, in which order — no faust Kafka client, the web server before
anything that needs the broker."""

from __future__ import annotations

from pathlib import Path

from app.boot import BrokerGate, TablestreamApp
from app.broker import free_port
from app.factory import Runtime, create_app
from app.settings import Settings
from tables.registry import TableRegistry


def test_the_web_server_starts_before_the_gate_and_no_faust_kafka_client(tmp_path: Path) -> None:
    servers = f"127.0.0.1:{free_port()}"
    settings = Settings.from_env(
        {"TABLESTREAM_BROKER": servers, "TABLESTREAM_DATA_DIR": str(tmp_path)}
    )
    app = create_app(settings)
    assert isinstance(app, TablestreamApp)
    gate = BrokerGate(servers)
    registry = TableRegistry(
        (), data_dir=tmp_path, bootstrap_servers=servers, dead_letter_topic="dlq"
    )
    app.runtime = Runtime(settings, registry, services=(gate, registry))  # type: ignore[attr-defined]
    services = list(app.boot_strategy.server())
    assert services.index(app.web) < services.index(gate) < services.index(registry)
    kafka = [app.producer, app.consumer, app._leader_assignor, app.topics, app.tables]
    assert not any(s in services for s in kafka)
