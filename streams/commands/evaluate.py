"""``dialguard evaluate``: dialguard's Detector against two baselines on a labelled day."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from detectors.alerts import Alert
from detectors.config import ConfigError, load_settings
from detectors.numbers import NumberNormaliser
from formats.registry import READ_CHOICES
from streams.cli import main
from streams.commands.simulate import rate_scale_options
from testbed.evaluation import (
    calls_from_files,
    calls_from_records,
    compare,
    default_detectors,
    recording,
    render_tables,
)
from testbed.report import (
    SEED_SPLIT,
    SeedFailed,
    SeedJob,
    alerted_numbers,
    evaluate_seeds,
    named_numbers,
    parse_seeds,
    pool_seeds,
    render_pooled,
)
from testbed.simulation import Labels, SimConfig
from testbed.worlds import WORLDS, check_world, kind_breakdown, kind_of, simulate_world


def _alert_rows(alerts: list[Alert], labels: Labels) -> list[dict[str, Any]]:
    rows = []
    for alert in alerts:
        row = alert.to_dict()
        row["truth"] = [
            {"number": n, "class": labels.class_of(n),
             "kind": kind_of(labels.meta, n, labels.class_of(n))}
            for n in named_numbers(alert)
        ]
        rows.append(row)
    return rows


def _kind_table(breakdown: dict[str, dict[str, Any]], names: list[str]) -> Any:
    from rich.table import Table

    table = Table(title="Alerted/members per kind (world's sub-classes; abuse kinds are recall, "
                        "legitimate ones false positives)")
    table.add_column("kind")
    for name in names:
        table.add_column(name, justify="right")
    for kind, entry in breakdown.items():
        table.add_row(kind, *[f"{entry['alerted'][n]}/{entry['members']}" for n in names])
    return table


@main.command("evaluate")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Simulate this world (ignored with --input).")
@click.option("--seeds", "seeds_text",
              help="Many seeds instead of one: a range (1-20), a list (1,5,9), or "
                   f"{' / '.join(SEED_SPLIT)} (the seed split: "
                   + "; ".join(f"{k} {v[0]}-{v[-1]}" for k, v in SEED_SPLIT.items())
                   + "); figures per seed, pooled, and the worst seed.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Processes evaluating seeds in parallel (with --seeds).")
@click.option("--world", type=click.Choice(WORLDS), default="standard", show_default=True,
              help="Which simulated world (ignored with --input); see testbed.worlds.")
@click.option("--size", type=click.Choice(["small", "day"]), default="day", show_default=True)
@click.option("--hours", type=click.FloatRange(min=0.1, max=168), help="Override the length.")
@click.option("--subscribers", type=click.IntRange(min=10), help="Override the population.")
@rate_scale_options
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Evaluate CDR files instead (repeatable); needs --labels.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="Labels written by `dialguard simulate` (OUT.labels.json).")
@click.option("--format", "fmt", type=click.Choice(READ_CHOICES), default="auto",
              show_default=True, help="Encoding of --input files.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (TOML) for dialguard's detector and the cool-down.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the full report (per-campaign detail, every alert with the "
                   "truth about its numbers) as JSON here.")
def evaluate_command(seed: int, seeds_text: str | None, jobs: int, world: str, size: str,
                     hours: float | None, subscribers: int | None,
                     abuse_rate_scale: float | None, legit_rate_scale: float | None,
                     inputs: tuple[str, ...],
                     labels_path: str | None, fmt: str, config_path: str | None,
                     json_path: str | None) -> None:
    """Compare dialguard with a pike-style volume rule and an hourly ANI profile on a
    labelled day: precision, recall per abuse class, false positives per legitimate
    class, F1, time to detect, rotating pools found in rings.  Simulates the day unless
    --input/--labels are given; with --seeds, many days: per seed, pooled, worst seed."""
    from rich.console import Console

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    shape: dict[str, Any] = {"hours": hours, "subscribers": subscribers,
                             "abuse_rate_scale": abuse_rate_scale,
                             "legit_rate_scale": legit_rate_scale}
    if seeds_text is not None:
        if inputs or labels_path:
            raise click.UsageError("--seeds simulates its days: not with --input/--labels")
        try:
            seeds = parse_seeds(seeds_text)
            check_world(world, SimConfig.preset(size, **shape))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        _evaluate_seeds([SeedJob(world, s, size, config_path=config_path, **shape)
                         for s in seeds], jobs, json_path)
        return
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
            config = SimConfig.preset(size, **shape)
            check_world(world, config)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        with console.status("simulating"):
            day = simulate_world(world, config, seed)
            labels = day.labels
            calls = list(calls_from_records(day.records(), normaliser, rejected))
    allow = [normaliser(n) for n in labels.allowlist]
    sinks: dict[str, list[Alert]] = {}
    detectors = []
    for name, make in default_detectors(settings, allow):
        sinks[name] = []
        detectors.append((name, recording(make, sinks[name])))
    with console.status(f"running {len(detectors)} detectors over {len(calls)} calls"):
        report = compare(calls, labels, detectors)
    report["rejected"] = rejected
    ran = [n for n, m in report["detectors"].items() if "error" not in m]
    out = Console()
    for table in render_tables(report):
        out.print(table)
    if labels.meta.get("kinds"):
        alerted = {name: alerted_numbers(sinks[name]) for name in ran}
        report["kinds"] = kind_breakdown(alerted, labels)
        out.print(_kind_table(report["kinds"], ran))
    report["alerts"] = {name: _alert_rows(sinks[name], labels) for name in ran}
    if rejected:
        console.print(f"rejected records: {sum(rejected.values())} {rejected}")
    if json_path:
        try:
            Path(json_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}") from None


def _evaluate_seeds(jobs: list[SeedJob], processes: int, json_path: str | None) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    done: list[int] = []
    with console.status(f"evaluating {len(jobs)} seeds of the {jobs[0].world} world") as status:
        def progress(seed: int) -> None:
            done.append(seed)
            status.update(f"evaluated {len(done)}/{len(jobs)} seeds (last: {seed})")

        try:
            per_seed = evaluate_seeds(jobs, processes, progress)
        except SeedFailed as exc:
            raise click.ClickException(str(exc)) from None
    pooled = pool_seeds(per_seed)
    out = Console()
    out = Console(width=max(out.width, 150))  # the tables are wide; a pipe gets them whole
    for table in render_pooled(pooled, jobs[0].world):
        out.print(table)
    if json_path:
        report = {"world": jobs[0].world, "seeds": pooled["seeds"], "split": pooled["split"],
                  "pooled": pooled, "per_seed": per_seed}
        try:
            Path(json_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}") from None
