"""``dialguard produce``: send CDR files to Kafka (CONTRACT 1a JSON), for tests and demos."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import click
import orjson

from detectors.records import Rejected
from formats.files import InputError
from formats.registry import READ_CHOICES
from streams.cli import main
from streams.options import DEFAULT_TOPICS as TOPICS

BROKER_ENV = "DIALGUARD_BROKER"


def bootstrap_servers(broker: str | None) -> list[str]:
    """``host:port`` list from ``--broker`` or ``$DIALGUARD_BROKER`` (``kafka://`` optional)."""
    from streams.options import kafka_bootstrap

    return kafka_bootstrap(broker or os.environ.get(BROKER_ENV) or "127.0.0.1:9092")


class Outgoing(NamedTuple):
    key: bytes | None
    record: Any
    size: int
    #: not JSON at all: it must travel alone (inside a batch it would spoil the others)
    alone: bool = False


def cdr_messages(
    path: str, fmt: str, normaliser: Any, settings: Any = None
) -> Iterator[Outgoing]:
    """One :class:`Outgoing` per CDR of a file (``size``: bytes consumed).

    For JSON input ``record`` is the original line (bytes), so bad records reach
    the worker as they are and are rejected there (a line that is not JSON is
    marked ``alone``); for the CSV formats it is the CONTRACT 1a dict of a decoded row, or the
    :class:`~detectors.records.Rejected` of a row that cannot be converted.  The
    key is the normalised caller when there is one (none for a withheld caller).
    """
    from detectors.records import Call
    from formats.fields import too_deep
    from formats.files import lines_of, open_binary
    from formats.registry import make_reader
    from formats.sniff import sniff_stream

    name = Path(path).name
    stream = open_binary(path)
    try:
        if fmt == "auto":
            fmt = sniff_stream(stream, name)
        if fmt == "json":
            for line in lines_of(stream, name):
                size = len(line)
                line = line.strip()
                if not line:
                    continue
                key = None
                try:
                    value = None if too_deep(line) else orjson.loads(line)
                except orjson.JSONDecodeError:
                    value = None
                if value is None:
                    yield Outgoing(None, line, size, alone=True)
                    continue
                with contextlib.suppress(ValueError):  # bad numbers are the worker's to reject
                    if isinstance(value, dict) and isinstance(value.get("caller"), str | int):
                        key = normaliser(str(value["caller"])).encode()
                yield Outgoing(key or None, line, size)
        else:
            reader = make_reader(fmt, normaliser, settings)
            for record in reader.read(lines_of(stream, name), name):
                if isinstance(record, Call):
                    yield Outgoing(record.caller.encode() or None, record.to_dict(), 180)
                else:
                    yield Outgoing(None, record, 180)
    finally:
        if path != "-":
            stream.close()


@main.command("produce")
@click.argument("paths", nargs=-1, required=True)
@click.option("--broker", help=f"Kafka URL or host:port (default ${BROKER_ENV}, else "
              "127.0.0.1:9092).")
@click.option("--topic", default=TOPICS.raw, show_default=True)
@click.option("--batch", type=int, default=1, show_default=True,
              help="CDRs per message: 1 sends one object per message, N a JSON array of N "
              "(a line that is not JSON is sent in a message of its own).")
@click.option("--format", "fmt", type=click.Choice(READ_CHOICES), default="auto",
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
    """Send CDR files to Kafka as CONTRACT 1a JSON (rows of the CSV formats converted).

    Messages are keyed by the calling number.  A JSON line that does not decode
    is sent in a message of its own, so that it never spoils a batch; a CSV row
    that cannot be converted is counted and skipped.  A summary goes to stderr.
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
    batcher = Batcher(lambda key, value: producer.send(topic, key=key, value=value), batch)
    with Progress(TextColumn("[bold]produce"), BarColumn(), TextColumn("{task.fields[cdrs]} CDRs"),
                  TransferSpeedColumn(), console=console, disable=not show) as bar:
        task = bar.add_task("produce", total=total or None, cdrs=0)
        done = 0
        try:
            for path in paths:
                for outgoing in cdr_messages(path, fmt, normaliser, settings.input):
                    done += outgoing.size
                    batcher.add(outgoing)
                    if batcher.records % 5000 == 0:
                        bar.update(task, completed=done, cdrs=batcher.records)
            batcher.flush()
            producer.flush(timeout=60)
            bar.update(task, completed=done, cdrs=batcher.records)
        except KafkaError as exc:
            raise click.ClickException(f"sending to {topic} failed: {exc}") from None
        except InputError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            producer.close(timeout=10)
    print(batcher.report(topic), file=sys.stderr)


class Batcher:
    """Groups outgoing CDRs into messages of up to ``batch``; counts what it sent and skipped.

    >>> sent = []
    >>> b = Batcher(lambda key, value: sent.append(value), 10)
    >>> for out in (Outgoing(None, b'{"a":1}', 8), Outgoing(None, b'{"a', 4, alone=True),
    ...             Outgoing(None, b'{"b":2}', 8)):
    ...     b.add(out)
    >>> b.flush()
    >>> sent
    [b'{"a', b'[{"a":1},{"b":2}]']
    >>> b.report("cdr.raw")  # doctest: +NORMALIZE_WHITESPACE
    'produced 2 CDRs in 1 messages to cdr.raw, and 1 lines that are not JSON, each in a
     message of its own (the worker rejects them)'
    """

    def __init__(self, send: Any, batch: int) -> None:
        self.send = send
        self.batch = batch
        self.pending: list[Any] = []
        self.pending_key: bytes | None = None
        self.cdrs = self.alone = self.messages = 0
        self.skipped: Counter[str] = Counter()

    @property
    def records(self) -> int:
        """Lines and rows sent so far."""
        return self.cdrs + self.alone

    def add(self, out: Outgoing) -> None:
        record = out.record
        if isinstance(record, Rejected):
            self.skipped[record.reason] += 1
            return
        if out.alone or self.batch == 1:
            self.send(out.key, record if isinstance(record, bytes) else orjson.dumps(record))
            if out.alone:
                self.alone += 1
            else:
                self.cdrs += 1
                self.messages += 1
            return
        if not self.pending:
            self.pending_key = out.key
        self.pending.append(record)
        self.cdrs += 1
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        parts = [p if isinstance(p, bytes) else orjson.dumps(p) for p in self.pending]
        self.send(self.pending_key, b"[" + b",".join(parts) + b"]")
        self.messages += 1
        self.pending, self.pending_key = [], None

    def report(self, topic: str) -> str:
        """What was sent, in words: CDRs, lines sent alone, rows skipped, messages."""
        text = f"produced {self.cdrs} CDRs in {self.messages} messages to {topic}"
        if self.alone:
            text += (f", and {self.alone} lines that are not JSON, each in a message of its "
                     f"own (the worker rejects them)")
        if self.skipped:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items()))
            text += f"; {sum(self.skipped.values())} rows not convertible, skipped ({reasons})"
        return text
