"""``dialguard replay PATH...`` (CONTRACT section 3)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
import orjson

from detectors.composite import DetectorChain
from detectors.records import Rejected
from formats.files import InputError
from formats.reading import read_paths
from formats.registry import READ_CHOICES
from streams.cli import load_detection_setup, main
from streams.group_process import GroupProcessChain, GroupProcessError
from streams.replay import replay, tune_gc

if TYPE_CHECKING:
    from rich.console import Console


@main.command("replay")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(READ_CHOICES), default="auto",
              show_default=True, help="Input encoding; auto looks at the first bytes of each file.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (TOML); keys left out keep their defaults.")
@click.option("--allowlist", "allowlist_path", type=click.Path(dir_okay=False),
              help="Registered callers, one number per line, never alerted.")
@click.option("--alerts", "alerts_path", default="-", show_default=True,
              help="Where alerts go, one JSON object per line; - is stdout.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Write every rejected record with its reason here (JSON lines).")
@click.option("--summary-json", "summary_path", type=click.Path(dir_okay=False),
              help="Also write the summary as JSON to this file.")
@click.option("--slack", default=300.0, show_default=True,
              help="Seconds of disorder within a file that are re-ordered by event time; 0: "
              "records in the order they come, as the stream workers take them.")
@click.option("--metrics-port", type=int,
              help="Serve Prometheus metrics on this port while running.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True,
              help="Address the metrics endpoint listens on (127.0.0.1 for this host only).")
@click.option("--linger", default=0.0, show_default=True,
              help="With --metrics-port: keep serving this many seconds after the input ends.")
@click.option("--rings/--no-rings", "rings", default=None,
              help="Run group detection (ring alerts) beside the per-number detector "
                   "(default: [rings].enabled).")
@click.option("--group-process/--no-group-process", "group_process", default=None,
              help="Run group detection in a process of its own, beside the per-number "
                   "detector: the same alerts, faster on two or more cores, each a batch of "
                   "4,096 calls later (default: with rings on, two or more cores and no "
                   "input from stdin).")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal).")
def replay_command(
    paths: tuple[str, ...],
    fmt: str,
    config_path: str | None,
    allowlist_path: str | None,
    alerts_path: str,
    rejects_path: str | None,
    summary_path: str | None,
    slack: float,
    metrics_port: int | None,
    metrics_addr: str,
    linger: float,
    rings: bool | None,
    group_process: bool | None,
    progress: bool | None,
) -> None:
    """Run the stream workers' detection over CDR files in event-time order, with no broker.

    PATH may be - for stdin; gzip files are read as they are.  Alerts go to
    --alerts (default stdout), a summary to stderr.  Exit status 0 when the
    input was read, even if some records were rejected; 1 (after the summary)
    when a compressed file ended early.
    """
    settings, normaliser, allowlist = load_detection_setup(config_path, allowlist_path)
    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise click.UsageError(f"no such file: {path}")

    with_rings = settings.rings.enabled if rings is None else rings
    if group_process and not with_rings:
        raise click.UsageError("--group-process needs group detection (--rings)")
    if group_process is None:
        group_process = group_process_by_default(paths, with_rings, _cores())
    metrics = None
    if metrics_port is not None:
        from streams.metrics import DialguardMetrics

        metrics = DialguardMetrics(profiles=list(settings.rules))
        try:
            metrics.serve(metrics_port, metrics_addr)
        except OSError as exc:
            raise click.UsageError(
                f"cannot serve metrics on {metrics_addr}:{metrics_port}: {exc.strerror or exc}"
            ) from None
        click.echo(f"metrics on http://{metrics_addr}:{metrics_port}/metrics", err=True)

    out: IO[bytes] = sys.stdout.buffer if alerts_path == "-" else open(alerts_path, "wb")  # noqa: SIM115
    rejects: IO[bytes] | None = open(rejects_path, "wb") if rejects_path else None  # noqa: SIM115

    def on_alert(alert: object) -> None:
        out.write(alert.to_json() + b"\n")  # type: ignore[attr-defined]
        if alerts_path == "-":
            out.flush()

    def on_reject(rejected: Rejected) -> None:
        if rejected.reason == "truncated":  # the rest of a file is missing: say so at once
            click.echo(f"warning: {rejected.detail}", err=True)
        if rejects is not None:
            rejects.write(orjson.dumps(rejected.to_dict()) + b"\n")

    detector: DetectorChain | GroupProcessChain
    if group_process:
        detector = GroupProcessChain(settings, allowlist)
    else:
        detector = DetectorChain.for_settings(settings, allowlist, rings=with_rings)
    tune_gc()
    show_progress = sys.stderr.isatty() if progress is None else progress
    records = read_paths(paths, fmt, normaliser, settings.input, slack)
    try:
        if show_progress:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("replay"), BarColumn(),
                       TextColumn("{task.completed:,} records"), TimeElapsedColumn())
            with Progress(*columns, transient=True, console=_stderr_console()) as bar:
                task = bar.add_task("replay", total=None)
                summary = replay(records, detector, on_alert, on_reject, metrics,
                                 progress=lambda n: bar.advance(task, n))
        else:
            summary = replay(records, detector, on_alert, on_reject, metrics)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"reading input failed: {exc}") from None
    except GroupProcessError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if isinstance(detector, GroupProcessChain):
            detector.close()
        if out is not sys.stdout.buffer:
            out.close()
        if rejects is not None:
            rejects.close()
    click.echo(summary.render(), err=True)
    if summary_path:
        Path(summary_path).write_bytes(
            orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    if metrics is not None and linger > 0:
        click.echo(f"input done; serving metrics for {linger:.0f} s more", err=True)
        time.sleep(linger)
    if summary.rejected.get("truncated"):  # records are missing: scripts must notice
        raise click.exceptions.Exit(1)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def group_process_by_default(paths: tuple[str, ...], rings: bool, cores: int) -> bool:
    """Group detection in a process of its own when there is one to run, a second core to
    run it on, and no input from stdin (a live pipe would hold alerts back a batch)."""
    return rings and cores >= 2 and "-" not in paths


def _cores() -> int:
    """Cores this process may run on (a container's share, where the OS says)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
