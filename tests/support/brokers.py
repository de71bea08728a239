"""Which brokers the test session runs on, decided once: Tansu always, Apache Kafka when it can.

Apache Kafka is launched from its jars (Java 17+ and Maven needed), unless ``TABLESTREAM_BROKER``
names an existing cluster when the session starts: then the ``kafka`` half runs against it, and
the tests that need a broker of their own (empty, or to restart) skip.
"""

from __future__ import annotations

import functools
import os
import shutil

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Read before the ``broker`` fixture removes it from the environment of the workers tests start.
EXTERNAL = os.environ.get("TABLESTREAM_BROKER", "").removeprefix("kafka://") or None
SKIP_EXTERNAL = "needs a Kafka broker of its own; TABLESTREAM_BROKER points at a shared cluster"


@functools.cache
def kafka_missing() -> str | None:
    """Why Apache Kafka cannot be launched here (None when it can, or a cluster is given)."""
    if EXTERNAL:
        return None
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return None
    return (
        f"Apache Kafka half skipped: {' and '.join(missing)} not on PATH "
        "(install OpenJDK 17+ and Maven, or set TABLESTREAM_BROKER; under CI=true this fails)"
    )


class ExternalBroker:
    """A cluster the session was pointed at: used as it is, never started, stopped or restarted."""

    kind = "kafka"
    pid = None

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = int(url.split(",")[0].rsplit(":", 1)[1])

    def stop(self, timeout: float = 0.0) -> None:
        pass

    def close(self) -> None:
        pass
