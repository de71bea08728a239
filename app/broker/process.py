"""What both broker launchers share: the error, free ports, the process group, the readiness probe,
and :class:`LaunchedBroker`, the lifecycle both launchers build on.

A broker runs in a session (process group) of its own, so a Ctrl-C meant for the caller does not
reach it and it can be stopped with its children by its own id. Every running broker is listed
here so that :func:`stop_all` (run at exit, and by :func:`stop_all_on_signals`' handlers) leaves
nothing behind. On Linux a broker started from the main thread also gets ``PR_SET_PDEATHSIG``, so
it dies with its parent even when that parent is killed with SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

from app.probe import metadata_request, names_a_broker
from core.errors import TablestreamError

E_EXITED = "{what} exited with {code} before it answered on 127.0.0.1:{port}{log}"
E_NOT_READY = "{what} did not answer a metadata request on 127.0.0.1:{port} within {timeout}s{log}"


class BrokerError(TablestreamError):
    """A broker could not be found, resolved or started."""


def free_port(avoid: Collection[int] = ()) -> int:
    """A free 127.0.0.1 port, none of ``avoid`` (the kernel may hand out a port just released
    again: a broker's two listeners once got the same one, and Kafka refused to format)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


_running: set[BrokerProcess] = set()
_handled: set[int] = set()
_lock = threading.Lock()


def stop_all() -> None:
    """Stop every broker this process started and has not stopped yet."""
    with _lock:
        procs = list(_running)
    for p in procs:
        p.stop(timeout=3.0)


atexit.register(stop_all)


def stop_all_on_signals(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> None:
    """On these signals stop every broker first, then let the signal do what it did before.

    Call from the main thread (a test session, a benchmark). SIGINT needs nothing: Python turns it
    into KeyboardInterrupt, context managers and fixtures unwind and the atexit hook runs.
    """
    for sig in signals:
        if sig in _handled:
            continue  # installed already: once is enough
        _handled.add(sig)
        previous = signal.getsignal(sig)

        def handler(
            signum: int, frame: FrameType | None, previous: object = previous, sig: int = sig
        ) -> None:
            stop_all()
            if callable(previous):
                previous(signum, frame)
                return
            if previous == signal.SIG_IGN:
                return
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)

        signal.signal(sig, handler)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the thread that forked it ends.

    Only from the main thread: a worker thread (asyncio.to_thread, an executor) can end long
    before the process does and would take the broker with it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


class BrokerProcess:
    """One broker process in its own session, stopped with its whole process group."""

    def __init__(
        self, what: str, argv: Sequence[str], log_path: Path | None, cwd: Path | None = None
    ) -> None:
        self.what = what
        out: IO[bytes] | int = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.log_path = log_path
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # prctl only: safe between fork and exec
            )
        finally:
            if not isinstance(out, int):
                out.close()
        with _lock:
            _running.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_hint(self) -> str:
        return f" (log: {self.log_path})" if self.log_path else ""

    def wait_ready(self, port: int, timeout: float) -> None:
        """Until the broker answers a metadata request listing itself; stop it and raise if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise BrokerError(
                    E_EXITED.format(what=self.what, code=code, port=port, log=self.log_hint()),
                    port=port,
                )
            if answers_metadata(port):
                return
            time.sleep(0.1)
        self.stop()
        raise BrokerError(
            E_NOT_READY.format(what=self.what, port=port, timeout=timeout, log=self.log_hint()),
            port=port,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after ``timeout``; then SIGKILL whatever is left in it."""
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
        with _lock:
            _running.discard(self)


class LaunchedBroker(ABC):
    """A broker on 127.0.0.1:``port`` run as one :class:`BrokerProcess` at a time, with its output
    in ``log_path``. Subclasses say how to start it (:meth:`start`, through :meth:`launch`) and
    how long a clean stop may take. Use as a context manager, or start()/stop()/close()."""

    kind: str
    #: Seconds a clean shutdown may take before SIGKILL.
    stop_timeout = 10.0

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

    @abstractmethod
    def start(self, timeout: float = 20.0) -> Self: ...

    @abstractmethod
    def restart(self, timeout: float = 20.0) -> Self: ...

    def launch(
        self, what: str, argv: Sequence[str], timeout: float, cwd: Path | None = None
    ) -> None:
        """Run ``argv`` as this broker's process; return once it answers, else raise."""
        self._proc = BrokerProcess(what, argv, self.log_path, cwd)
        self._proc.wait_ready(self.port, timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the process (SIGKILL after ``timeout``, default :attr:`stop_timeout`)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(self.stop_timeout if timeout is None else timeout)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def answers_metadata(port: int, timeout: float = 1.0) -> bool:
    """True when 127.0.0.1:``port`` answers a metadata request naming at least one broker."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(metadata_request())
            (size,) = struct.unpack(">i", _recv(s, 4))
            return names_a_broker(_recv(s, size))
    except OSError:
        return False


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf
