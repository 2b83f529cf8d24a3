"""``dialguard demo``: broker + worker + a simulated CDR feed, alerts printed live."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from streams.cli import main
from streams.options import DEFAULT_TOPICS


def simulated_feed(seed: int, size: str = "small") -> Iterator[dict[str, Any]]:
    """CONTRACT 1a records of a simulated carrier day with abuse campaigns in it."""
    from testbed.simulation import SimConfig, simulate

    yield from simulate(SimConfig.preset(size), seed=seed).records()


def _alert_line(alert: dict[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.gmtime(float(alert.get("detected_at", 0))))
    who = alert.get("caller") or f"{len(alert.get('members') or [])} numbers"
    reasons = alert.get("reasons") or [""]
    evidence = reasons[1] if len(reasons) > 1 else reasons[0]
    ring = f"  [cyan]{alert['ring_id']}[/]" if alert.get("ring_id") else ""
    return (f"[bold red]ALERT[/] {when} UTC  {who:<16} [yellow]{alert.get('profile', '')}"
            f"[/] score {float(alert.get('score', 0)):.2f}  {evidence}{ring}")


@main.command("demo")
@click.option("--duration", type=float, default=None,
              help="Stop everything after this many seconds (default: until Ctrl-C).")
@click.option("--broker", "broker_kind", type=click.Choice(["auto", "kafka", "tansu"]),
              default="auto", show_default=True, help="Which local broker to start.")
@click.option("--rate", type=float, default=2000.0, show_default=True,
              help="CDRs per second sent (the simulated day is replayed faster than real time).")
@click.option("--metrics-port", type=int, default=9464, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--size", type=click.Choice(["small", "day"]), default="small", show_default=True)
def demo_command(duration: float | None, broker_kind: str, rate: float, metrics_port: int,
                 seed: int, size: str) -> None:
    """Start a local broker, a worker and a simulated CDR feed with a cloud-dialer campaign;
    print alerts as they are raised.  Ctrl-C (or --duration) stops every process started."""
    from kafka import KafkaConsumer, KafkaProducer
    from rich.console import Console

    from streams.brokers import BrokerError, start_broker

    console = Console(stderr=False)
    err = Console(stderr=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGTERM, on_signal)
    deadline = None if duration is None else time.monotonic() + duration
    tmp = Path(tempfile.mkdtemp(prefix="dialguard-demo-"))
    broker = worker = producer = consumer = None
    sent = alerts = 0
    try:
        err.print(f"starting a broker ({broker_kind}) ...")
        try:
            broker = start_broker(broker_kind)
        except (BrokerError, ValueError) as exc:
            raise click.ClickException(f"cannot start a broker: {exc}") from None
        tag = uuid.uuid4().hex[:6]
        topics = DEFAULT_TOPICS  # the worker's
        broker.create_topics([topics.raw, topics.alerts, topics.rejected], partitions=2)
        err.print(f"broker {broker.name} at {broker.url}; starting a worker "
                  f"(metrics on http://127.0.0.1:{metrics_port}/metrics) ...")
        worker_log = tmp / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-c", "from streams.cli import main; main()", "worker",
             "--broker", broker.url, "--app-id", f"dialguard-demo-{tag}", "--partitions", "2",
             "--metrics-port", str(metrics_port), "--data-dir", str(tmp / "data"),
             "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=worker_log.open("wb"),
        )
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        consumer = KafkaConsumer(topics.alerts, bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", group_id=None)
        err.print(f"feeding a simulated carrier day ({size}, seed {seed}) at {rate:.0f} CDR/s; "
                  "Ctrl-C stops")
        feed = simulated_feed(seed, size)
        started = time.monotonic()
        exhausted = False
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            if worker.poll() is not None:
                err.print(f"[red]the worker stopped (exit {worker.returncode}); "
                          f"its log: {worker_log}")
                break
            due = int((time.monotonic() - started) * rate)
            while not exhausted and sent < due:
                try:
                    record = next(feed)
                except StopIteration:
                    exhausted = True
                    err.print(f"feed finished: {sent} CDRs sent; still watching for alerts")
                    break
                caller = record.get("caller")
                key = str(caller).encode() if caller is not None else None
                producer.send(topics.raw, key=key, value=orjson.dumps(record))
                sent += 1
            for messages in consumer.poll(timeout_ms=200).values():
                for message in messages:
                    try:
                        alert = orjson.loads(message.value)
                    except orjson.JSONDecodeError:
                        continue
                    alerts += 1
                    console.print(_alert_line(alert), highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for closer in (producer, consumer):
            if closer is not None:
                with contextlib.suppress(Exception):  # shutting down anyway
                    closer.close()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
        if broker is not None:
            broker.stop()
        err.print(f"demo stopped: {sent} CDRs sent, {alerts} alerts shown")
