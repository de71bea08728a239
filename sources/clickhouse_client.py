"""The two ways to reach ClickHouse: a server's HTTP interface, and the embedded engine (chdb).

Both take a query's text and give the bytes of its ``FORMAT JSONCompact`` answer (every
server version since 1.1 writes it, and :mod:`sources.clickhouse` reads it exactly).

The HTTP client is the standard library's ``http.client``, one keep-alive connection per
calling thread, Basic authentication. Not clickhouse-connect: its client reads
``system.settings.readonly`` when it connects, which the servers that run here (Debian's 18.16)
do not have ("Unknown identifier: readonly"), and the plain interface is the one every version
speaks.

chdb runs ClickHouse inside this process. It holds one session path per process (a second
path is refused while the first is open: "EmbeddedServer already initialized with path"), so
the sessions are shared by path and counted: every table of one path shares its session, the
last one to close closes it, and a table naming another path while one is open gets a clear
error instead of chdb's. Queries on a session are serialised (chdb's sessions are not
documented as thread-safe; the batches of one worker call it from up to ``max_inflight``
threads).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from core.errors import ConfigError

E_ONE_PATH = (
    "chdb holds one session path per process: {path!r} is asked for while {open!r} is open"
    " (put the embedded ClickHouse tables of a pipeline in one path)"
)
#: inf and nan as "inf" / "nan" (JSON has no such numbers; without it ClickHouse writes null).
QUOTE_DENORMALS = "output_format_json_quote_denormals"
E_TIMEOUT = "chdb query did not answer within timeout={timeout:g}s ({how})"
E_BUSY = "chdb session busy for timeout={timeout:g}s (an earlier query still runs)"
TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
#: Seconds past ``timeout`` before a query the engine did not cancel is abandoned.
ABANDON_GRACE = 0.5
E_URL = "not an http(s) URL: {url!r} (http://[user[:password]@]host:port[/database])"


def tls_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """For an https:// server: verified against ``ca_file`` (else the system's CAs), or not at
    all (``verify='false'``: encrypted, but any certificate is taken)."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClickHouseError(Exception):
    """The server or the engine refused a query (its message, first line)."""


class HttpClient:
    """A ClickHouse server over its HTTP interface."""

    def __init__(
        self,
        url: str,
        password: Callable[[], str | None],
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(E_URL.format(url=_without_password(url)), option="url")
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (8443 if self.https else 8123)
        self.database = (
            unquote(u.path.strip("/")) or parse_qs(u.query).get("database", ["default"])[0]
        )
        self._user = unquote(u.username) if u.username else "default"
        self._url_password = unquote(u.password or "")
        self._password = password
        self._headers: dict[str, str] = {}
        self.timeout = timeout
        self.tls = tls  # None: the system CAs (an https URL), or plain http
        #: Settings sent with every query (dropped for a ``readonly=1`` user, who may set none).
        self.settings = {QUOTE_DENORMALS: "1"}
        self.label = f"{u.scheme}://{self.host}:{self.port}/{self.database}"
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        """Reads the password (from ``password_env``, else the URL's) now, at the edge."""
        secret = self._password()
        if secret is None:
            secret = self._url_password
        token = base64.b64encode(f"{self._user}:{secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "text/plain"}

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.tls
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)

    def run(self, sql: str) -> bytes:
        path = "/?" + urlencode({"database": self.database, **self.settings})
        body = (sql + "\nFORMAT JSONCompact").encode()
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request("POST", path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except Exception as exc:
                # A failed connection is not used again (http.client would refuse the next
                # request on it); one the server closed while idle is tried once more, anew.
                self._drop(conn)
                idle = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                if attempt or not isinstance(exc, idle):
                    raise
        if resp.status != 200:
            raise ClickHouseError(_first_line(data))
        return data


class EmbeddedClient:
    """chdb: a session path (its databases and tables), or files read by ``file()``.

    chdb runs in this process, so a query that hangs would hang the worker's thread (and, holding
    the session, every later query). Each query runs in a thread of its own, with the table's
    ``timeout`` set as the engine's ``max_execution_time`` (ClickHouse cancels the query itself
    and frees the session); the caller waits ``timeout`` + :data:`ABANDON_GRACE` at most and
    then abandons the thread (a query the engine does not cancel): either way a
    :class:`ClickHouseError` the breaker and ``on_error`` count like any failed call.
    """

    _sessions: dict[str, list[Any]] = {}  # path → [session, users, lock, max_execution_time]
    _registry_lock = threading.Lock()

    def __init__(self, path: str | None, timeout: float = 5.0) -> None:
        #: None: a table over a file, happy with whichever session is open (else a temporary one).
        self.path = None if path is None else str(Path(path).resolve())
        self.label = "chdb (embedded)" if path is None else f"chdb path={path}"
        self.timeout = timeout
        self.timeouts = 0  # queries the engine cancelled or this client abandoned
        self._entry: list[Any] | None = None

    def open(self) -> None:
        try:
            from chdb import session
        except ImportError as exc:
            raise ConfigError(
                "the embedded ClickHouse needs chdb: pip install 'tablestream[clickhouse]'",
                option="connector",
            ) from exc
        cls = EmbeddedClient
        with cls._registry_lock:
            if self.path is None and cls._sessions:
                key = next(iter(cls._sessions))
            else:
                key = self.path or ":temporary:"
                if cls._sessions and key not in cls._sessions:
                    message = E_ONE_PATH.format(path=key, open=next(iter(cls._sessions)))
                    raise ConfigError(message, option="path")
            entry = cls._sessions.get(key)
            if entry is None:
                if key != ":temporary:":
                    Path(key).mkdir(parents=True, exist_ok=True)
                s = session.Session(key) if key != ":temporary:" else session.Session()
                s.query(f"SET {QUOTE_DENORMALS} = 1")
                entry = cls._sessions[key] = [s, 0, threading.Lock(), None]
            entry[1] += 1
            self._entry = entry

    def close(self) -> None:
        entry, self._entry = self._entry, None
        if entry is None:
            return
        cls = EmbeddedClient
        with cls._registry_lock:
            entry[1] -= 1
            if entry[1] == 0:
                for key, e in list(cls._sessions.items()):
                    if e is entry:
                        del cls._sessions[key]
                with entry[2]:
                    entry[0].close()

    def run(self, sql: str) -> bytes:
        entry = self._entry
        if entry is None:
            raise RuntimeError("not connected")
        answer: list[bytes | ClickHouseError] = []
        done = threading.Event()
        timeout = self.timeout
        threading.Thread(
            target=self._query, args=(entry, sql, answer, done), name="chdb-query", daemon=True
        ).start()
        if not done.wait(timeout + ABANDON_GRACE):
            self.timeouts += 1
            raise ClickHouseError(E_TIMEOUT.format(timeout=timeout, how="abandoned"))
        result = answer[0]
        if isinstance(result, ClickHouseError):
            if TIMEOUT_EXCEEDED in str(result):
                self.timeouts += 1
                raise ClickHouseError(E_TIMEOUT.format(timeout=timeout, how="cancelled by chdb"))
            raise result
        return result

    def _query(
        self, entry: list[Any], sql: str, answer: list[bytes | ClickHouseError], done: Any
    ) -> None:
        """One query in its own thread: the session lock (a query the engine did not cancel
        holds it: give up at the deadline), the engine's time limit, the query."""
        session, lock = entry[0], entry[2]
        try:
            if not lock.acquire(timeout=self.timeout):
                answer.append(ClickHouseError(E_BUSY.format(timeout=self.timeout)))
                return
            try:
                if entry[3] != self.timeout:  # per session; tables may differ: set when it does
                    session.query(f"SET max_execution_time = {self.timeout:g}")
                    entry[3] = self.timeout
                answer.append(session.query(sql, "JSONCompact").bytes())
            except Exception as exc:  # chdb's ChdbError / RuntimeError
                answer.append(ClickHouseError(_first_line(str(exc).encode())))
            finally:
                lock.release()
        finally:
            done.set()


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:500] if text else "(empty answer)"


def _without_password(url: str) -> str:
    from sources.config import redact

    return redact(url)
