"""``dialguard simulate OUT``: write a labelled synthetic carrier day.

Beside ``OUT`` it writes ``OUT.labels.json`` (the class of every calling
number, the abuse campaigns, the allowlist; see
:class:`testbed.simulation.Labels`) and ``OUT.allowlist.txt`` (the
registered enterprise numbers, one per line, for ``--allowlist``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from formats.registry import WRITE_CHOICES
from streams.cli import main
from testbed.evaluation import abuse_classes
from testbed.simulation import SimConfig, write_day
from testbed.worlds import WORLDS, check_world, simulate_world

F = TypeVar("F", bound=Callable[..., Any])


def rate_scale_options(command: F) -> F:
    """``--abuse-rate-scale`` and ``--legit-rate-scale`` (``SimConfig``'s, wide world)."""
    for side, text in (("legit", "every legitimate class"), ("abuse", "every abuse class")):
        command = click.option(
            f"--{side}-rate-scale", type=click.FloatRange(min=0.05, max=20),
            help=f"Wide world: {text} calls this many times as fast (e.g. 3 or 0.333): do "
                 "the thresholds hold?")(command)
    return command


@main.command("simulate")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--seed", default=1, show_default=True, type=int,
              help="The world: same seed, same day.")
@click.option("--world", type=click.Choice(WORLDS), default="standard", show_default=True,
              help="standard; hard: wider, overlapping legitimate and abuse behaviour "
                   "(testbed.worlds); wide: every parameter drawn per seed from wide priors, "
                   "more classes (testbed.wide).")
@click.option("--format", "fmt", type=click.Choice(WRITE_CHOICES), default="json",
              show_default=True, help="json (CONTRACT 1a), asterisk (Master.csv, 18 columns; "
              "asterisk16..asterisk21 for the other layouts), freeswitch (example template), "
              "freeswitch-default, csv.")
@click.option("--size", type=click.Choice(["small", "day"]), default="day", show_default=True,
              help="small: ~3k subscribers over 4 h (tests); day: ~38k subscribers over 24 h.")
@click.option("--hours", type=click.FloatRange(min=0.1, max=168), help="Override the length.")
@click.option("--subscribers", type=click.IntRange(min=10), help="Override the population.")
@click.option("--start", type=float, help="Start, epoch seconds (default 2024-03-05 00:00+08).")
@rate_scale_options
@click.option("--gzip", "compress", is_flag=True,
              help="gzip the records (also implied by an OUT ending in .gz).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr.")
def simulate_command(out: str, seed: int, world: str, fmt: str, size: str, hours: float | None,
                     subscribers: int | None, start: float | None,
                     abuse_rate_scale: float | None, legit_rate_scale: float | None,
                     compress: bool, progress: bool) -> None:
    """Write a seeded, labelled synthetic day of CDRs to OUT, plus OUT.labels.json and
    OUT.allowlist.txt beside it (--world hard: a harder world, same labels; --world wide:
    wide priors and more classes).  With --gzip,
    .gz is appended to OUT if it lacks it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    compress = compress or out.endswith(".gz")
    if compress and not out.endswith(".gz"):
        out += ".gz"
    try:
        config = SimConfig.preset(size, hours=hours, subscribers=subscribers, start=start,
                                  abuse_rate_scale=abuse_rate_scale,
                                  legit_rate_scale=legit_rate_scale)
        check_world(world, config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not progress,
                  transient=False) as bar:
        task = bar.add_task("simulating", total=None)
        day = simulate_world(world, config, seed)
        bar.update(task, description="writing", total=len(day), completed=0)
        try:
            paths = write_day(day, out, fmt, compress,
                              progress=lambda n: bar.update(task, completed=n))
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    meta = day.labels.meta
    abuse = sum(1 for c in day.labels.classes.values() if c in abuse_classes(day.labels))
    console.print(
        f"world {world}, seed {seed}: "
        f"{meta['records']} records ({meta['duplicates']} duplicates, {meta['malformed']} "
        f"malformed) -> {paths['records']}\n"
        f"{len(day.labels.campaigns)} abuse campaigns, {abuse} abuse numbers -> {paths['labels']}\n"
        f"{len(day.labels.allowlist)} allowlisted numbers -> {paths['allowlist']}"
    )
