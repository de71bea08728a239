"""Apache Kafka from its published jars: a single-node KRaft broker (broker + controller in one).

``deploy/kafka/pom.xml`` names the broker (``org.apache.kafka:kafka_2.13``) and the log4j2
binding its POM leaves out. :func:`kafka_jars` resolves it once with Maven into a cache directory
outside the repository (``$TABLESTREAM_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/tablestream``, else
``~/.cache/tablestream``), one subdirectory per POM content, written to a temporary directory and
renamed into place so two processes resolving at once cannot see half a directory.

:class:`KafkaBroker` formats a log directory (``kafka.tools.StorageTool format --standalone``),
then runs ``kafka.Kafka`` on two free 127.0.0.1 ports (client and controller). ``restart()`` stops
the process and starts it again on the same directory and ports.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from app.broker.process import BrokerError, LaunchedBroker, free_port

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
CACHE_ENV = "TABLESTREAM_KAFKA_CACHE"

E_NO_TOOL = (
    "Apache Kafka needs {tool} on PATH ({why}); install OpenJDK 17+ and Maven "
    "(Debian: apt-get install openjdk-17-jre-headless maven), or use the Tansu broker"
)
E_RESOLVE = "mvn could not resolve {pom} (exit {code}): {tail}"
E_FORMAT = "kafka-storage format of {dir} failed (exit {code}): {tail}"

#: Broker settings for a single node: every internal topic with one replica, no wait before the
#: first group rebalance, few partitions for the internal topics (faster first use), and no
#: auto-created topics: the app must create what it uses, as on a locked-down production cluster.
BASE_CONFIG: Mapping[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    # The log cleaner's offset map lives on the heap for the broker's whole life: its default,
    # 128 MB, is a quarter of this node's 512 MB heap (two thirds of what stayed live after each
    # collection), ~700k keys per cleaning pass at 16 MB.
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
"""

#: The garbage collector as Kafka's own launcher sets it (``KAFKA_JVM_PERFORMANCE_OPTS`` of
#: ``bin/kafka-run-class.sh``, which starting from the jars bypasses): G1 aiming at 20 ms pauses.
#: Without the target G1 aims at 200 ms: at 10k records/s its pauses were 9 against 33 per run,
#: median 120 against 24 ms, the same total (docs/BENCHMARKS.md). Kept for comparison.
STOCK_GC = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)
#: What the broker runs with: ZGC (OpenJDK 17), which collects concurrently with pauses under a
#: millisecond. G1's 20 ms target still meant a 10-35 ms pause every ~5 s at 10k records/s, and
#: a remark pause of 20-34 ms every ~20 s, each stalling every record in flight through the
#: broker. With the smaller cleaner buffer below, 11 alternating pairs of runs on two warm
#: brokers: the broker hop's p99 median 16.9 -> 14.1 ms, the pipeline's 36.7 -> 27.6 ms
#: (docs/BENCHMARKS.md, issue 9).
LOW_PAUSE_GC = ("-XX:+UseZGC",)
#: The broker's JVM as benchmarks run it (full JIT).
JVM_OPTS = (
    "-Xmx512m", "-Xms128m", *LOW_PAUSE_GC, "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
)  # fmt: skip
#: C1 only: measured here, starts take about a third less time (format 3-6 s -> 1.5-3 s, the
#: broker 8-13 s -> 6-10 s on a loaded 2-core machine) at some cost in peak speed. Tests use it.
QUICK_START = ("-XX:TieredStopAtLevel=1",)


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where resolved jars live; this launcher is a command-line edge, so it reads the env."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "tablestream"


def kafka_version(pom: Path = POM) -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text())
    if not match:
        raise BrokerError(f"no <kafka.version> in {pom}", path=str(pom))
    return match.group(1)


def require(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(E_NO_TOOL.format(tool=tool, why=why), tool=tool)
    return path


def kafka_jars(cache: Path | None = None, pom: Path = POM) -> Path:
    """The directory holding the broker's jars, resolving them with Maven on first use."""
    if not pom.is_file():
        raise BrokerError(f"no Kafka POM at {pom} (a source checkout is needed)", path=str(pom))
    return maven_libs(pom, f"kafka-{kafka_version(pom)}", cache)


def maven_libs(pom: Path, label: str, cache: Path | None = None) -> Path:
    """The runtime jars of ``pom`` (any POM of deploy/), resolved once into
    ``<cache>/<label>-<digest of the POM>/libs``; reused while the POM is unchanged."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:10]
    root = cache or cache_root()
    target = root / f"{label}-{digest}"
    libs = target / "libs"
    if (target / "complete").is_file():
        return libs
    mvn = require("mvn", f"to resolve {pom.name} once into {root}")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".resolving-", dir=root))
    try:
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={work / 'libs'}", "-DincludeScope=runtime"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-800:]
            raise BrokerError(
                E_RESOLVE.format(pom=pom, code=done.returncode, tail=tail), path=str(pom)
            )
        (work / "complete").write_text(digest)
        try:
            work.rename(target)  # atomic; fails when another process got there first
        except OSError:
            if not (target / "complete").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return libs


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not led by '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaBroker(LaunchedBroker):
    """One Apache Kafka KRaft node on 127.0.0.1. Context manager, or start()/stop()/close()."""

    kind = "kafka"
    stop_timeout = 15.0

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        data_dir: Path | None = None,
        config: Mapping[str, str] | None = None,
        jvm_opts: tuple[str, ...] = JVM_OPTS + QUICK_START,
        cache: Path | None = None,
    ) -> None:
        super().__init__(port, log_path)
        self.controller_port = free_port(avoid={self.port})
        self.config = dict(config or {})
        self.jvm_opts = jvm_opts
        self.cache = cache
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tablestream-kafka-"))

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    def server_properties(self) -> dict[str, str]:
        return {
            **BASE_CONFIG,
            "listeners": f"PLAINTEXT://{self.url},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.url}",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.log_dir),
            **self.config,
        }

    def _java(self, libs: Path, opts: tuple[str, ...], main: str, *args: str) -> list[str]:
        java = require("java", "Apache Kafka runs on a JVM")
        log4j = self.data_dir / "log4j2.properties"
        return [
            java, *opts, f"-Dlog4j2.configurationFile={log4j}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def _prepare(self, libs: Path) -> Path:
        """Write the configuration; format the log directory unless a former start did."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        (self.data_dir / "log4j2.properties").write_text(LOG4J2.format(level="INFO"))
        if (self.log_dir / "meta.properties").is_file():
            return props
        argv = self._java(
            libs, JVM_OPTS + QUICK_START, "kafka.tools.StorageTool", "format", "--standalone",
            "-t", new_cluster_id(), "-c", str(props),
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-800:]
            raise BrokerError(
                E_FORMAT.format(dir=self.log_dir, code=done.returncode, tail=tail),
                path=str(self.log_dir),
            )
        return props

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        libs = kafka_jars(self.cache)
        props = self._prepare(libs)
        argv = self._java(libs, self.jvm_opts, "kafka.Kafka", str(props))
        self.launch("Apache Kafka", argv, timeout, cwd=self.data_dir)
        return self

    def restart(self, timeout: float = 90.0) -> KafkaBroker:
        """Stop, then start on the same log directory and ports (records and offsets kept)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the data directory if this broker made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
