"""A throwaway ClickHouse server on 127.0.0.1 for the tests, and the customer rows in ClickHouse.

The server is Debian's ``clickhouse-server`` (18.16; ``scripts/ensure_clickhouse.sh`` installs
it when missing) or an official ``clickhouse`` binary on PATH (``clickhouse server``): a
temporary config (HTTP and TCP on free ports, data in a temporary directory, zone UTC, a
``reader`` user with a password), run as the ``clickhouse`` user when the tests run as root,
stopped by its pid.

The embedded engine (chdb) holds one session path per process (see
:mod:`sources.clickhouse_client`): :func:`chdb_table` writes through the same shared session the
tables use, so a test's path must be the one its tables name.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sources.clickhouse_client import EmbeddedClient
from sources.clickhouse_types import quote_string

ROOT = Path(__file__).resolve().parents[2]
E_NO_CLICKHOUSE = (
    "no ClickHouse server binary (clickhouse-server or clickhouse on PATH, /usr/sbin): "
    "scripts/ensure_clickhouse.sh installs Debian's"
)
READER_PASSWORD = "ch-s3cret"
CH_DDL = (
    "id Int64, tier Nullable(String), credit Nullable(Decimal(12, 2)), country Nullable(String)"
)

_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/error.log</errorlog>
    <console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <mark_cache_size>67108864</mark_cache_size>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>{tls}
</yandex>
"""
#: HTTPS beside HTTP, with a self-signed certificate for 127.0.0.1 (:func:`self_signed`).
_TLS = """
  <https_port>{https}</https_port>
  <openSSL><server><certificateFile>{root}/cert.pem</certificateFile>
    <privateKeyFile>{root}/key.pem</privateKeyFile><verificationMode>none</verificationMode>
    <loadDefaultCAFile>false</loadDefaultCAFile><disableProtocols>sslv2,sslv3</disableProtocols>
  </server></openSSL>"""
_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default>
    <readonly><readonly>1</readonly></readonly></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <reader><password>{password}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></reader>
    <ro><password>{password}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>readonly</profile><quota>default</quota></ro>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path) -> Path | None:
    """``cert.pem`` and ``key.pem`` for 127.0.0.1 in ``directory`` (the certificate is its own
    CA: a client verifies with ``ca_file=<cert.pem>``); None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "cert.pem"


def server_command() -> list[str] | None:
    """How to run a server here: an official ``clickhouse`` binary, or Debian's."""
    official = shutil.which("clickhouse")
    if official is not None:
        return [official, "server"]
    debian = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
    return [debian] if os.access(debian, os.X_OK) else None


def ensure_installed() -> None:
    """Installs Debian's server when none is here (root only; CI runs as root)."""
    if server_command() is None:
        subprocess.run([str(ROOT / "scripts" / "ensure_clickhouse.sh")], check=True, timeout=900)


_running: set[ClickHouseServer] = set()


@atexit.register
def _stop_all() -> None:
    """A test session that ends without its fixtures' teardown leaves no server behind."""
    for server in list(_running):
        server.stop(kill=True)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the server when the thread that started it ends
    (a pytest killed by a timeout): set after the switch of user (which would clear it). Only
    from the main thread: a worker thread can end long before the process does."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


class ClickHouseServer:
    """One server; :meth:`stop` and :meth:`start` again keep its data and ports."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tablestream-ch-"))
        self.http_port = _free_port()
        self.tcp_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = ""
        #: The self-signed certificate HTTPS serves (None: no openssl here, no HTTPS).
        self.certificate = self_signed(self.root)
        self.https_port = _free_port() if self.certificate else None
        tls = _TLS.format(root=self.root, https=self.https_port) if self.certificate else ""
        (self.root / "config.xml").write_text(
            _CONFIG.format(root=self.root, http=self.http_port, tcp=self.tcp_port, tls=tls)
        )
        (self.root / "users.xml").write_text(_USERS.format(password=READER_PASSWORD))

    def _user(self) -> dict[str, Any]:
        """Run as ``clickhouse`` (or ``nobody``) when we are root: a server as root is wrong."""
        if os.geteuid() != 0:
            return {}
        for name in ("clickhouse", "nobody"):
            with contextlib.suppress(KeyError):
                pw = pwd.getpwnam(name)
                for p in [self.root, *self.root.rglob("*")]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
                return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        return {}

    def start(self, timeout: float = 60) -> None:
        cmd = server_command()
        if cmd is None:
            raise RuntimeError(E_NO_CLICKHOUSE)
        self.proc = subprocess.Popen(
            [*cmd, f"--config-file={self.root / 'config.xml'}"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "ab"),  # noqa: SIM115 (the child owns it)
            start_new_session=True,
            preexec_fn=_die_with_parent(),
            **self._user(),
        )
        _running.add(self)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.version = self.execute("SELECT version()").strip()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None:
                    log = (self.root / "stderr.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"clickhouse-server exited: {log}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a server waits up to seconds for open keep-alive connections), or SIGKILL:
        a crash, at once (the tests' outages)."""
        proc, self.proc = self.proc, None
        _running.discard(self)
        if proc is None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(
        self,
        user: str = "default",
        password: str | None = None,
        db: str = "default",
        https: bool = False,
    ) -> str:
        auth = user if password is None else f"{user}:{password}"
        if https:
            assert self.https_port is not None, "no openssl here: the server has no HTTPS"
            return f"https://{auth}@127.0.0.1:{self.https_port}/{db}"
        return f"http://{auth}@127.0.0.1:{self.http_port}/{db}"

    def execute(self, sql: str, settings: str = "") -> str:
        """Runs ``sql`` as ``default``; ``settings`` (``name=value&...``) for this query."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/?{settings}", data=sql.encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            text: str = resp.read().decode()
            return text


@contextlib.contextmanager
def clickhouse_server() -> Iterator[ClickHouseServer]:
    server = ClickHouseServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


# -- the customer rows ----------------------------------------------------------------------
def sql_value(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return quote_string(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def insert_sql(name: str, data: Mapping[int, tuple[Any, ...]]) -> str:
    rows = ", ".join(
        "(" + ", ".join(sql_value(v) for v in (k, *vals)) + ")" for k, vals in sorted(data.items())
    )
    return f"INSERT INTO {name} VALUES {rows}"


def server_table(
    server: ClickHouseServer, name: str, data: Mapping[int, tuple[Any, ...]], ddl: str = CH_DDL
) -> None:
    server.execute(f"CREATE TABLE {name} ({ddl}) ENGINE = MergeTree ORDER BY id")
    if data:
        server.execute(insert_sql(name, data))


def chdb_run(path: Path, *statements: str) -> None:
    """``statements`` run in order in the chdb session at ``path``."""
    client = EmbeddedClient(str(path))
    client.open()
    try:
        for sql in statements:
            client.run(sql)
    finally:
        client.close()


def chdb_table(
    path: Path, name: str, data: Mapping[int, tuple[Any, ...]], ddl: str = CH_DDL
) -> None:
    """``name`` (``db.table``) with ``data`` in the chdb session at ``path``."""
    db = name.rpartition(".")[0]
    chdb_run(
        path,
        *([f"CREATE DATABASE IF NOT EXISTS {db}"] if db else []),
        f"CREATE TABLE {name} ({ddl}) ENGINE = MergeTree ORDER BY id",
        *([insert_sql(name, data)] if data else []),
    )
