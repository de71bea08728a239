"""docker-compose.yml, the Dockerfile and the Kubernetes manifests stay valid and in step with
Settings (no Docker engine runs here, so this is as close to tested as they get)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from agents.pipeline import load_pipeline
from app.broker.kafka import kafka_version
from app.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}


def check_env(env: dict[str, Any]) -> Settings:
    ours = {k for k in env if k.startswith(ENV_PREFIX)}
    assert ours <= FIELDS, f"unknown settings: {ours - FIELDS}"
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.web_host == "0.0.0.0"  # inside a container the port must be reachable
    assert settings.pipeline
    return settings


def test_compose_runs_the_worker_against_apache_kafka() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # The same Kafka line the tests launch from its jars.
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    worker = compose["services"]["worker"]
    settings = check_env(worker["environment"])
    assert worker["environment"]["TABLESTREAM_BROKER"].startswith("kafka:")
    for port in compose["services"]["worker"]["ports"] + compose["services"]["kafka"]["ports"]:
        assert port.startswith("127.0.0.1:")
    # The image's working directory is the repository's layout: the pipeline path resolves there.
    pipeline = load_pipeline([ROOT / p for p in settings.pipeline])
    assert {q.name for q in pipeline.queries} >= {"checked_orders", "volume_by_symbol"}
    generator = compose["services"]["generator"]["command"]
    assert generator[:3] == ["python", "-m", "examples.orders.generate"]
    assert (ROOT / "examples/orders/generate.py").exists()


def test_dockerfile_copies_every_package_and_runs_the_worker() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) ", text, re.M))
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "examples"}
    assert packages <= copied
    assert 'CMD ["faust", "-A", "app", "worker"' in text


def test_kubernetes_manifests(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Service", "StatefulSet"}
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    settings = check_env(maps["tablestream"])
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:4] == ["faust", "-A", "app", "worker"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == str(settings.data_dir)
    # The pipeline file is the ConfigMap's pipeline.sql, mounted where TABLESTREAM_PIPELINE points.
    (volume,) = (v for v in pod["volumes"] if v["name"] == "pipeline")
    (path,) = settings.pipeline
    assert str(path.parent) == mounts["pipeline"]
    sql = maps[volume["configMap"]["name"]][path.name]
    copy = tmp_path / path.name
    copy.write_text(sql)
    assert {q.name for q in load_pipeline([copy]).queries} >= {"checked_orders"}
