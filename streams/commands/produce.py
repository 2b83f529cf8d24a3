"""``dialguard produce``: send CDR files to Kafka (CONTRACT 1a JSON), for tests and demos."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from streams.cli import main

BROKER_ENV = "DIALGUARD_BROKER"


def bootstrap_servers(broker: str | None) -> list[str]:
    """``host:port`` list from ``--broker`` or ``$DIALGUARD_BROKER`` (``kafka://`` optional)."""
    from streams.options import kafka_bootstrap

    return kafka_bootstrap(broker or os.environ.get(BROKER_ENV) or "127.0.0.1:9092")


def cdr_messages(
    path: str, fmt: str, normaliser: Any, timezone: str = "UTC"
) -> Iterator[tuple[bytes | None, Any, int]]:
    """``(key, record, bytes consumed)`` per CDR of a file.

    ``record`` is the original line (bytes) for JSON input, so bad records
    reach the worker as they are and are rejected there; for Asterisk input it
    is the CONTRACT 1a dict of a decoded row (rows that cannot be decoded are
    yielded with ``record=None``).  The key is the normalised caller when there
    is one.
    """
    from detectors.readers import open_binary, read_asterisk_csv, sniff_format
    from detectors.records import Call

    stream = open_binary(path)
    try:
        if fmt == "auto":
            fmt = sniff_format(stream)
        if fmt == "json":
            for line in stream:
                size = len(line)
                line = line.strip()
                if not line:
                    continue
                key = None
                try:
                    value = orjson.loads(line)
                    if isinstance(value, dict) and isinstance(value.get("caller"), str | int):
                        key = normaliser(str(value["caller"])).encode()
                except Exception:  # bad records are the worker's to reject
                    pass
                yield key, line, size
        elif fmt == "asterisk":
            for record in read_asterisk_csv(stream, normaliser, timezone, Path(path).name):
                if isinstance(record, Call):
                    yield record.caller.encode(), record.to_dict(), 180
                else:
                    yield None, None, 180
        else:
            raise click.UsageError(f"unknown format {fmt!r}")
    finally:
        if path != "-":
            stream.close()


@main.command("produce")
@click.argument("paths", nargs=-1, required=True)
@click.option("--broker", help=f"Kafka URL or host:port (default ${BROKER_ENV}, else "
              "127.0.0.1:9092).")
@click.option("--topic", default="cdr.raw", show_default=True)
@click.option("--batch", type=int, default=1, show_default=True,
              help="CDRs per message: 1 sends one object per message, N a JSON array of N.")
@click.option("--format", "fmt", type=click.Choice(["auto", "json", "asterisk"]), default="auto",
              show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings TOML (region and Asterisk time zone).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def produce_command(
    paths: tuple[str, ...],
    broker: str | None,
    topic: str,
    batch: int,
    fmt: str,
    config_path: str | None,
    progress: bool | None,
) -> None:
    """Send CDR files (JSON lines or Asterisk Master.csv) to Kafka as CONTRACT 1a JSON.

    Messages are keyed by the calling number.  Asterisk rows are converted to
    JSON objects.  A summary goes to stderr.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

    from detectors.config import ConfigError, load_settings
    from detectors.numbers import NumberNormaliser

    if batch < 1:
        raise click.UsageError("--batch must be at least 1")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise click.UsageError(f"no such file: {path}")
    normaliser = NumberNormaliser(settings.input.region)
    servers = bootstrap_servers(broker)
    try:
        producer = KafkaProducer(bootstrap_servers=servers, linger_ms=20,
                                 batch_size=512 * 1024, max_request_size=8 << 20,
                                 acks=1)
    except KafkaError as exc:
        raise click.ClickException(f"cannot reach Kafka at {','.join(servers)}: {exc}") from None

    console = Console(stderr=True)
    show = console.is_terminal if progress is None else progress
    total = sum(Path(p).stat().st_size for p in paths if p != "-")
    sent_cdrs = sent_messages = skipped = 0
    with Progress(TextColumn("[bold]produce"), BarColumn(), TextColumn("{task.fields[cdrs]} CDRs"),
                  TransferSpeedColumn(), console=console, disable=not show) as bar:
        task = bar.add_task("produce", total=total or None, cdrs=0)
        pending: list[Any] = []
        pending_key: bytes | None = None
        done = 0

        def flush() -> None:
            nonlocal pending, pending_key, sent_messages
            if not pending:
                return
            parts = [p if isinstance(p, bytes) else orjson.dumps(p) for p in pending]
            producer.send(topic, key=pending_key, value=b"[" + b",".join(parts) + b"]")
            sent_messages += 1
            pending, pending_key = [], None

        try:
            for path in paths:
                for key, record, size in cdr_messages(path, fmt, normaliser,
                                                      settings.input.timezone):
                    done += size
                    if record is None:
                        skipped += 1
                        continue
                    sent_cdrs += 1
                    if batch == 1:
                        value = record if isinstance(record, bytes) else orjson.dumps(record)
                        producer.send(topic, key=key, value=value)
                        sent_messages += 1
                    else:
                        if not pending:
                            pending_key = key
                        pending.append(record)
                        if len(pending) >= batch:
                            flush()
                    if sent_cdrs % 5000 == 0:
                        bar.update(task, completed=done, cdrs=sent_cdrs)
            flush()
            producer.flush(timeout=60)
            bar.update(task, completed=done, cdrs=sent_cdrs)
        except KafkaError as exc:
            raise click.ClickException(f"sending to {topic} failed: {exc}") from None
        finally:
            producer.close(timeout=10)
    note = f", {skipped} rows not convertible (skipped)" if skipped else ""
    print(f"produced {sent_cdrs} CDRs in {sent_messages} messages to {topic}{note}",
          file=sys.stderr)
