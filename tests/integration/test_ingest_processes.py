"""``dialguard worker --ingest-processes``: the ingest processes live and die with their worker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.brokers import unique_tag


def _topics() -> dict[str, str]:
    tag = unique_tag()
    return {name: f"ip-{tag}.{name}" for name in ("raw", "alerts", "rejected", "control",
                                                  "calls")}


def _ingest_children(worker_pid: int, timeout: float = 60.0) -> list[int]:
    """Pids of the worker's ingest processes (multiprocessing spawn children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == worker_pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the worker started no ingest process")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for(log: Path, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the worker log:\n{log.read_text()[-3000:]}")


def _worker_with_ingest_processes(
    n: int, kafka_broker: Any, tmp_path: Path, start_worker: Callable[..., Any]
) -> tuple[Any, Path, list[int]]:
    """A started worker with ``n`` ingest processes, its log and their pids."""
    topics = _topics()
    kafka_broker.create_topics([topics["raw"]], partitions=2)
    proc, log = start_worker(kafka_broker, topics, f"dg-ip-{unique_tag()}", tmp_path,
                             "w", 2, "--ingest-processes", str(n))
    children = _ingest_children(proc.pid)
    _wait_for(log, f"ingest: {n} process(es) started")
    return proc, log, children


def test_worker_stops_when_its_ingest_process_dies(kafka_broker: Any, tmp_path: Path,
                                                    start_worker: Callable[..., Any]) -> None:
    proc, log, children = _worker_with_ingest_processes(2, kafka_broker, tmp_path, start_worker)
    os.kill(children[0], signal.SIGKILL)
    assert proc.wait(timeout=60) != 0
    text = log.read_text()
    assert "exited (-9); stopping" in text, text[-3000:]
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_gone(pid) for pid in children)  # the other one was stopped with the worker


def test_stopping_the_worker_stops_its_ingest_process(kafka_broker: Any, tmp_path: Path,
                                                     start_worker: Callable[..., Any]) -> None:
    proc, log, children = _worker_with_ingest_processes(1, kafka_broker, tmp_path, start_worker)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert all(_gone(pid) for pid in children)
    assert "exited" not in log.read_text()  # a stop asked for is not reported as a crash


def test_ingest_process_of_a_killed_worker_stops_by_itself(
    kafka_broker: Any, tmp_path: Path, start_worker: Callable[..., Any]
) -> None:
    proc, _, children = _worker_with_ingest_processes(1, kafka_broker, tmp_path, start_worker)
    proc.kill()  # no chance to stop its ingest process
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_gone(pid) for pid in children)  # it noticed its worker was gone
