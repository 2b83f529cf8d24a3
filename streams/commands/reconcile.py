"""``dialguard reconcile``: produced = processed + rejected, from Kafka alone (after any crash)."""

from __future__ import annotations

import asyncio

import click
import orjson

from streams.cli import main
from streams.commands.worker import broker_url
from streams.options import DEFAULT_TOPICS as TOPICS


@main.command("reconcile")
@click.option("--broker", help="Kafka URL, as for dialguard worker (default $DIALGUARD_BROKER).")
@click.option("--app-id", default="dialguard", show_default=True,
              help="The workers' app id (consumer groups <app-id> and <app-id>-ingest).")
@click.option("--topic-in", default=TOPICS.raw, show_default=True)
@click.option("--topic-rejected", default=TOPICS.rejected, show_default=True)
@click.option("--topic-calls", default=TOPICS.calls, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def reconcile_command(broker: str | None, app_id: str, topic_in: str, topic_rejected: str,
                      topic_calls: str, as_json: bool) -> None:
    """Count what was produced, processed, rejected and is still pending, from the topics and
    the committed offsets of the workers' consumer groups (no worker needs to be running).

    Exit 0 when balanced or still pending, 1 when records were lost.
    """
    from streams.options import Topics, kafka_bootstrap
    from streams.reconcile import reconcile

    topics = Topics(raw=topic_in, rejected=topic_rejected, calls=topic_calls)
    result = asyncio.run(reconcile(kafka_bootstrap(broker_url(broker)), app_id, topics))
    click.echo(orjson.dumps(result.to_dict()).decode() if as_json else result.render())
    if result.lost:
        raise SystemExit(1)
