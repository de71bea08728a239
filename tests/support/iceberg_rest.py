"""A real Apache Iceberg REST catalog on 127.0.0.1 for the tests, stopped by its own pid.

``deploy/iceberg-rest/pom.xml`` names Iceberg's REST adapter and servlet (iceberg-core's tests
jar: the server Iceberg's REST compatibility kit runs), Jetty and sqlite-jdbc; they are resolved
once with Maven into the cache the Kafka broker's jars use (:func:`app.broker.kafka.maven_libs`:
atomic, shared by xdist workers and runs). ``RestCatalogServer.java`` beside it (run by Java's
source launcher) serves a JDBC catalog in a sqlite file with a local warehouse, on a port it
picks itself (no free-port race) on 127.0.0.1 only, and requires a bearer token.

:class:`RestLake` is the REST twin of :class:`tests.support.iceberg.Lake`: the same helpers
(``market_stats``, ``append``) write through pyiceberg's REST catalog.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from app.broker.kafka import maven_libs
from app.broker.process import BrokerError, BrokerProcess

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "deploy" / "iceberg-rest" / "pom.xml"
SERVER = ROOT / "deploy" / "iceberg-rest" / "RestCatalogServer.java"
#: The variable the tables' ``token_env`` names in the tests (passed as a secret, never set).
TOKEN_ENV = "TABLESTREAM_TEST_ICEBERG_TOKEN"
_LISTENING = re.compile(rb"^listening (\d+)$", re.MULTILINE)


def missing() -> str | None:
    """Why the REST catalog cannot run here (None when it can)."""
    tools = [t for t in ("java", "mvn") if shutil.which(t) is None]
    if tools:
        return f"Iceberg REST catalog needs {' and '.join(tools)} on PATH (OpenJDK 17+, Maven)"
    return None


class IcebergRestServer:
    """One REST catalog process; a context manager (start on enter, stop and clean on exit)."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.port = 0
        self._proc: BrokerProcess | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.root / "rest-catalog.log"

    def start(self, timeout: float = 90.0) -> Self:
        libs = maven_libs(POM, "iceberg-rest")
        java = shutil.which("java")
        if java is None:
            raise BrokerError("the Iceberg REST catalog needs java on PATH", tool="java")
        (self.root / "warehouse").mkdir(parents=True, exist_ok=True)
        argv = [
            java, "-XX:TieredStopAtLevel=1", "-Xmx256m", "-cp", f"{libs}/*", str(SERVER),
            "catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog",
            f"uri=jdbc:sqlite:{self.root / 'catalog.db'}",
            "jdbc.schema-version=V1",
            f"warehouse={self.root / 'warehouse'}",
            "io-impl=org.apache.iceberg.TestTables$LocalFileIO",  # local files, no Hadoop
            f"rest.token={self.token}",
        ]  # fmt: skip
        self._proc = proc = BrokerProcess("Iceberg REST catalog", argv, self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log_path.read_bytes())
            if found:
                self.port = int(found.group(1))
                return self
            if proc.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-1500:]
        raise BrokerError(f"the Iceberg REST catalog did not start within {timeout}s: {tail}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(10.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class RestLake:
    """Tables of a running REST catalog, written with pyiceberg's REST client (the same
    interface as :class:`tests.support.iceberg.Lake`)."""

    server: IcebergRestServer
    name: str = "default"

    @property
    def uri(self) -> str:
        return self.server.uri

    @property
    def secrets(self) -> dict[str, str]:
        """What the worker's edge would pass the tables (``TableEnv.secrets``)."""
        return {TOKEN_ENV: self.server.token}

    def catalog(self) -> Any:
        from pyiceberg.catalog import load_catalog

        return load_catalog(self.name, type="rest", uri=self.uri, token=self.server.token)

    def options(self, table: str, extra: str = "") -> str:
        text = (
            f"connector='iceberg', catalog_uri='{self.uri}', catalog='{self.name}', "
            f"table='{table}', token_env='{TOKEN_ENV}'"
        )
        return f"{text}, {extra}" if extra else text
