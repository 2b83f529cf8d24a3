"""``dialguard worker``: run a Faust stream worker against Kafka (CONTRACT section 3)."""

from __future__ import annotations

import os
import signal
import sys

import click

from streams.cli import load_detection_setup, main
from streams.options import DEFAULT_TOPICS as TOPICS

DEFAULT_BROKER = "kafka://127.0.0.1:9092"
BROKER_ENV = "DIALGUARD_BROKER"


def broker_url(value: str | None) -> str:
    """``--broker`` / ``$DIALGUARD_BROKER`` as a Faust URL (``host:port`` gets ``kafka://``)."""
    url = value or os.environ.get(BROKER_ENV) or DEFAULT_BROKER
    return ";".join(p if "://" in p else f"kafka://{p}" for p in url.replace(",", ";").split(";")
                    if p.strip())


@main.command("worker")
@click.option("--broker", help=f"Kafka URL, kafka://HOST:PORT (default ${BROKER_ENV}, "
              f"else {DEFAULT_BROKER}).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings TOML (the same file replay takes); defaults otherwise.")
@click.option("--allowlist", "allowlist_path", type=click.Path(dir_okay=False),
              help="Registered callers, one number per line, never alerted.")
@click.option("--metrics-port", type=int, default=9464, show_default=True,
              help="Serve Prometheus metrics on this port (0: pick a free one; -1: off).")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True)
@click.option("--partitions", type=int, default=8, show_default=True,
              help="Partitions of the repartition topic and state table (fixed once created).")
@click.option("--data-dir", default="dialguard-data", show_default=True,
              help="Faust data directory.")
@click.option("--app-id", default="dialguard", show_default=True,
              help="Faust app id: consumer group and internal topic prefix.")
@click.option("--topic-in", default=TOPICS.raw, show_default=True)
@click.option("--topic-alerts", default=TOPICS.alerts, show_default=True)
@click.option("--topic-rejected", default=TOPICS.rejected, show_default=True)
@click.option("--topic-control", default=TOPICS.control, show_default=True)
@click.option("--topic-calls", default=TOPICS.calls, show_default=True,
              help="Internal repartition topic.")
@click.option("--topic-groups", default=None,
              help="Internal topic of calls by grouping key, for the group stage "
                   "(default: the calls topic's name with .groups for .calls).")
@click.option("--rings/--no-rings", "rings", default=None,
              help="Run the group (ring) stage beside per-number detection "
                   "(default: [rings].enabled).")
@click.option("--ingest-batch", type=int, default=2000, show_default=True,
              help="Raw messages decoded and repartitioned together.")
@click.option("--ingest", type=click.Choice(["kafka", "faust"]), default="kafka",
              show_default=True, help="Ingest with one aiokafka consumer (fast) or a Faust agent.")
@click.option("--ingest-processes", type=int, default=1, show_default=True,
              help="Run kafka ingest (decoding, repartitioning) in this many processes of its "
                   "own beside detection; 0: inside the worker process.")
@click.option("--session-timeout", type=click.FloatRange(min=6.0), default=10.0,
              show_default=True,
              help="Seconds without a heartbeat before Kafka gives a stopped worker's "
                   "partitions to the others (the broker allows 6 s and up by default).")
@click.option("--align-slack", type=click.FloatRange(min=0.0), default=300.0,
              show_default=True,
              help="Seconds of event time a cdr.raw partition may run ahead of the slowest one "
                   "with a backlog before ingest holds it back (0: never).")
@click.option("--progress-interval", type=click.FloatRange(min=0.0), default=60.0,
              show_default=True,
              help="Seconds between progress lines in the log (at --log-level info; 0: never).")
@click.option("--references-every", type=click.FloatRange(min=0.0), default=60.0,
              show_default=True,
              help="Write a partition's learned references to their changelog table when they "
                   "changed and this many seconds of event time passed since the last write "
                   "(what a restart can forget of them; 0: whenever they changed).")
@click.option("--stall-after", type=click.FloatRange(min=0.0), default=60.0,
              show_default=True,
              help="Seconds a detect or groups partition's committed offset may stay short of "
                   "the log end without moving before the partition is resumed and sought "
                   "back to it; stalled as long again, the worker exits for its supervisor "
                   "to restart it (0: off).")
@click.option("--duration", type=float, default=None,
              help="Stop by itself after this many seconds (tests, demos).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker_command(
    broker: str | None,
    config_path: str | None,
    allowlist_path: str | None,
    metrics_port: int,
    metrics_addr: str,
    partitions: int,
    data_dir: str,
    app_id: str,
    topic_in: str,
    topic_alerts: str,
    topic_rejected: str,
    topic_control: str,
    topic_calls: str,
    topic_groups: str | None,
    rings: bool | None,
    ingest_batch: int,
    ingest: str,
    ingest_processes: int,
    session_timeout: float,
    align_slack: float,
    progress_interval: float,
    references_every: float,
    stall_after: float,
    duration: float | None,
    log_level: str,
) -> None:
    """Run a stream worker: cdr.raw in, dialguard.alerts out, cdr.rejected for bad input.

    Several workers with the same --app-id share the partitions; each serves
    /metrics.  Control messages on the control topic tune every worker live.
    """
    import faust

    from detectors.model import import_river
    from streams.app import create_pipeline
    from streams.metrics import DialguardMetrics
    from streams.options import Topics, WorkerOptions

    if partitions < 1:
        raise click.UsageError("--partitions must be at least 1")
    if ingest_batch < 1:
        raise click.UsageError("--ingest-batch must be at least 1")
    if ingest_processes < 0:
        raise click.UsageError("--ingest-processes must be 0 or more")
    if ingest == "faust":
        ingest_processes = 0  # the Faust ingest agent runs inside the worker
    settings, normaliser, allowlist = load_detection_setup(config_path, allowlist_path)

    metrics = DialguardMetrics(profiles=settings.rules)
    if metrics_port >= 0:
        try:
            server = metrics.serve(metrics_port, metrics_addr)
        except OSError as exc:
            raise click.UsageError(f"cannot serve metrics on port {metrics_port}: {exc}") from None
        port = getattr(server, "server_port", metrics_port)
        click.echo(f"dialguard worker: metrics on http://{metrics_addr}:{port}/metrics", err=True)

    url = broker_url(broker)
    options = WorkerOptions(
        broker=url,
        settings=settings,
        allowlist=allowlist,
        topics=Topics(raw=topic_in, rejected=topic_rejected, alerts=topic_alerts,
                      control=topic_control, calls=topic_calls, groups=topic_groups or ""),
        partitions=partitions,
        rings=rings,
        app_id=app_id,
        data_dir=data_dir,
        ingest_batch=ingest_batch,
        ingest=ingest,
        ingest_processes=ingest_processes,
        session_timeout=session_timeout,
        align_slack=align_slack,
        progress_interval=progress_interval,
        references_every=references_every,
        stall_after_s=stall_after,
    )
    import_river()  # at start, not at the model's first score inside the event loop
    pipeline = create_pipeline(options, metrics)
    try:
        ready = pipeline.prepare()
    except Exception as exc:
        metrics.close()
        raise click.ClickException(f"internal topics on {url}: {exc}") from None
    click.echo("dialguard worker: internal topics ready: "
               + ", ".join(f"{name} ({n} partitions)" for name, n in ready.items()), err=True)
    click.echo(f"dialguard worker: {app_id} on {url}, reading {topic_in}", err=True)
    worker = faust.Worker(pipeline.app, loglevel=log_level.upper(), quiet=True,
                          redirect_stdouts=False)
    if duration is not None:
        worker.loop.call_later(duration, os.kill, os.getpid(), signal.SIGTERM)
    try:
        worker.execute_from_commandline()
    finally:
        metrics.close()
        c = pipeline.counts
        print(f"dialguard worker: stopped; {c['messages']} messages, {c['calls']} calls, "
              f"{c['rejected']} rejected, {c['alerts']} alerts, "
              f"{c.get('detect_rejected', 0)} rejected by detection, "
              f"{c.get('ring_alerts', 0)} ring alerts, "
              f"{c.get('memberships_sent', 0)} ring memberships sent, "
              f"{c.get('memberships', 0)} applied, {c.get('bad_memberships', 0)} skipped",
              file=sys.stderr)
