"""Which brokers this machine can run, decided once for the whole test session."""

from __future__ import annotations

import functools
import os
import shutil

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@functools.cache
def kafka_missing() -> str | None:
    """Why Apache Kafka cannot be launched here (None when Java and Maven are on PATH)."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return None
    return (
        f"Apache Kafka half skipped: {' and '.join(missing)} not on PATH "
        "(install OpenJDK 17+ and Maven to run it; CI=true makes this a failure)"
    )
