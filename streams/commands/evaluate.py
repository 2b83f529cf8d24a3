"""``dialguard evaluate``: dialguard's Detector against two baselines on a labelled day."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from detectors.config import ConfigError, load_settings
from detectors.evaluation import (
    calls_from_files,
    calls_from_records,
    compare,
    default_detectors,
    render_tables,
)
from detectors.numbers import NumberNormaliser
from detectors.simulation import Labels, SimConfig, simulate
from streams.cli import main


@main.command("evaluate")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Simulate this world (ignored with --input).")
@click.option("--size", type=click.Choice(["small", "day"]), default="day", show_default=True)
@click.option("--hours", type=click.FloatRange(min=0.1, max=168), help="Override the length.")
@click.option("--subscribers", type=click.IntRange(min=10), help="Override the population.")
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Evaluate CDR files instead (repeatable); needs --labels.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="Labels written by `dialguard simulate` (OUT.labels.json).")
@click.option("--format", "fmt", type=click.Choice(["auto", "json", "asterisk"]), default="auto",
              show_default=True, help="Encoding of --input files.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (TOML) for dialguard's detector and the cool-down.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the full report (per-campaign detail) as JSON here.")
def evaluate_command(seed: int, size: str, hours: float | None, subscribers: int | None,
                     inputs: tuple[str, ...], labels_path: str | None, fmt: str,
                     config_path: str | None, json_path: str | None) -> None:
    """Compare dialguard with a pike-style volume rule and an hourly ANI profile on a
    labelled day: precision, recall per abuse class, false positives per legitimate
    class, F1 and time to detect.  Simulates the day unless --input/--labels are given."""
    from rich.console import Console

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    normaliser = NumberNormaliser(settings.input.region)
    console = Console(stderr=True)
    rejected: dict[str, int] = {}
    if inputs or labels_path:
        if not inputs or not labels_path:
            raise click.UsageError("--input and --labels go together")
        for path in inputs:
            if not Path(path).is_file():
                raise click.UsageError(f"no such file: {path}")
        try:
            labels = Labels.read(labels_path)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        with console.status("reading"):
            calls = list(calls_from_files(inputs, fmt, normaliser, settings.input.timezone,
                                          rejected))
    else:
        try:
            config = SimConfig.preset(size, hours=hours, subscribers=subscribers)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        with console.status("simulating"):
            day = simulate(config, seed)
            labels = day.labels
            calls = list(calls_from_records(day.records(), normaliser, rejected))
    allow = [normaliser(n) for n in labels.allowlist]
    with console.status(f"running 3 detectors over {len(calls)} calls"):
        report = compare(calls, labels, default_detectors(settings, allow))
    report["rejected"] = rejected
    out = Console()
    for table in render_tables(report):
        out.print(table)
    if rejected:
        console.print(f"rejected records: {sum(rejected.values())} {rejected}")
    if json_path:
        try:
            Path(json_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}") from None
