"""The Kubernetes pod is scraped where the worker serves ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_pods_carry_scrape_annotations_for_the_web_port() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text()))
    (config,) = (
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tablestream"
    )
    settings = Settings.from_env(config["data"])
    (sts,) = (d for d in docs if d["kind"] == "StatefulSet")
    notes = sts["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/path"] == "/metrics"
    assert int(notes["prometheus.io/port"]) == settings.web_port
