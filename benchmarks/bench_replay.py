"""Replay throughput of every input format, metrics overhead and state size per number.

Prints figures and ratios measured in one run on this machine, against
baselines measured in the same run: decoding alone (orjson / the csv module),
and the Asterisk reader as it was before the formats package (loaded from git,
reading the all-quoted Master.csv the old simulator wrote).  It asserts
nothing, because shared machines are noisy.  Targets (issues 2, 4 and 10):
>= 100k CDR/s per core end to end, <= 1 KB of state per tracked number, metrics
cost <= 5 %, no format slower than 0.9x the old Asterisk replay.  Group detection
(issue 9): replay with rings on >= 0.7x of it off in the same run, bytes of group
state per tracked caller, and group state over the day (bounded: it expires).

    python benchmarks/bench_replay.py [--seed 7] [--repeat 3] [--size day]
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from detectors.composite import DetectorChain
from detectors.config import load_settings
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.numbers import NumberNormaliser
from detectors.records import Call
from detectors.rings.detector import GroupDetector
from formats.reading import read_paths
from formats.registry import writer
from streams.replay import replay, tune_gc

#: (label, writer variant, reader format); every one written from the same simulated day
FORMATS = [("json", "json", "json"), ("asterisk", "asterisk", "asterisk"),
           ("asterisk16", "asterisk16", "asterisk"), ("asterisk21", "asterisk21", "asterisk"),
           ("freeswitch", "freeswitch", "freeswitch"),
           ("fs-default", "freeswitch-default", "freeswitch"), ("csv", "csv", "csv")]


def simulate(directory: Path, seed: int, size: str) -> Path:
    out = directory / f"day-{seed}.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams", "simulate", str(out), "--seed", str(seed),
         "--size", size, "--format", "json", "--no-progress"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return out


def write_formats(json_path: Path) -> dict[str, Path]:
    """The day in every format, and in the all-quoted Asterisk style of the old simulator."""
    records = [orjson.loads(line) for line in json_path.read_bytes().splitlines()]
    files = {"json": json_path}
    for label, variant, _ in FORMATS[1:]:
        files[label] = json_path.with_suffix(f".{label}.csv")
        with open(files[label], "w", encoding="utf-8", newline="") as out:
            writer(variant)(records, out)
    quoted = json_path.with_suffix(".quoted.csv")
    with open(files["asterisk"], newline="") as src, open(quoted, "w", newline="") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(src))
    files["asterisk-old"] = quoted
    return files


def old_reader() -> Any | None:
    """``detectors/readers.py`` as it was before the formats package (from git), or None."""
    root = Path(__file__).resolve().parents[1]
    try:
        gone = subprocess.run(["git", "rev-list", "-n", "1", "HEAD", "--",
                               "detectors/readers.py"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        source = subprocess.run(["git", "show", f"{gone}^:detectors/readers.py"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("readers_before_formats")
    exec(compile(source, "readers_before_formats.py", "exec"), module.__dict__)  # noqa: S102
    return module


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    """Best records/s over ``repeat`` runs (on a shared machine the least disturbed), and count."""
    rates = []
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return max(rates), count


def read_only(path: Path, fmt: str, reader: Any = None) -> int:
    """Records decoded into calls or rejections, in event-time order, with no detection."""
    norm = NumberNormaliser("CN")
    if reader is not None:
        records = reader.read_paths([path], fmt, norm, "UTC")
    else:
        records = read_paths([path], fmt, norm)
    return sum(1 for _ in records)


def decode_only(path: Path, fmt: str) -> int:
    """Records parsed by orjson or the csv module alone: the ceiling of any reader."""
    n = 0
    with open(path, "rb") as f:
        if fmt == "json":
            for line in f:
                orjson.loads(line)
                n += 1
        else:
            for _row in csv.reader(io.TextIOWrapper(f, "utf-8")):
                n += 1
    return n


def replay_run(path: Path, fmt: str, with_metrics: bool = False, reader: Any = None
               ) -> tuple[int, Detector]:
    settings = load_settings()
    detector = Detector(settings)
    metrics = None
    if with_metrics:
        from prometheus_client import CollectorRegistry

        from streams.metrics import DialguardMetrics

        metrics = DialguardMetrics(CollectorRegistry())
    sink = io.BytesIO()
    if reader is not None:  # the reader of before, for the baseline
        records = reader.read_paths([path], fmt, NumberNormaliser(settings.input.region),
                                    settings.input.timezone)
    else:
        records = read_paths([path], fmt, NumberNormaliser(settings.input.region),
                             settings.input)
    summary = replay(records, detector, lambda a: sink.write(a.to_json() + b"\n"),
                     metrics=metrics)
    return summary.read, detector


def _deep(st: NumberState) -> int:
    """Bytes an object owns: itself and every slot value not shared with other objects."""
    size = sys.getsizeof(st)
    for name in NumberState.__slots__:
        value = getattr(st, name)
        if value is None or isinstance(value, bool) or value in (0, 0.0, float("inf"),
                                                                  float("-inf")):
            continue  # shared singletons and cached small values
        if isinstance(value, str):
            continue  # trunk names are interned by the readers' dict keys, shared
        size += sys.getsizeof(value)
    return size


def state_bytes(detector: Detector) -> dict[str, float]:
    """In-memory bytes per tracked number (key, dict slot, object and its buffers) and stored."""
    states, light = detector.states, detector.light
    if not states and not light:
        return {}
    full_sizes = []
    stored = []
    share = sys.getsizeof(states) / max(1, len(states))
    for key, st in states.items():
        full_sizes.append(sys.getsizeof(key) + share + _deep(st))
        stored.append(len(st.to_bytes()))
    light_share = sys.getsizeof(light) / max(1, len(light))
    light_sizes = [sys.getsizeof(key) + light_share + sys.getsizeof(entry)
                   + sum(sys.getsizeof(v) if isinstance(v, bytes) else 24 for v in entry)
                   for key, entry in light.items()]
    full = NumberState(detector.settings.features, 0.0)
    for i in range(detector.settings.features.recent_callees * 2):
        full.outbound(float(i), 8613900000000 + 7919 * i, True, 30, 5.0, False,
                      detector.settings.features, "gw-cloud")
    full.last_alert = 100.0
    full.model_score = 0.5
    everything = full_sizes + light_sizes
    return {
        "numbers": len(everything),
        "full": len(full_sizes),
        "mean_bytes": statistics.fmean(everything),
        "mean_full_bytes": statistics.fmean(full_sizes) if full_sizes else 0.0,
        "max_bytes": max(everything),
        "busiest_number_bytes": sys.getsizeof("+8613900000000") + share + _deep(full),
        "mean_stored_bytes": statistics.fmean(stored) if stored else 0.0,
        "max_stored_bytes": max(stored) if stored else 0.0,
    }


def chain_run(path: Path, fmt: str, rings: bool) -> tuple[int, DetectorChain]:
    """Replay through the detector chain, with group detection on or off."""
    settings = load_settings()
    chain = DetectorChain.for_settings(settings, rings=rings)
    sink = io.BytesIO()
    records = read_paths([path], fmt, NumberNormaliser(settings.input.region), settings.input)
    summary = replay(records, chain, lambda a: sink.write(a.to_json() + b"\n"))
    return summary.read, chain


def cli_rate(path: Path, *flags: str) -> float:
    """Records/s of ``dialguard replay`` (its summary's rate: start-up not counted)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        subprocess.run([sys.executable, "-m", "streams", "replay", str(path), "--alerts",
                        str(Path(tmp) / "alerts.jsonl"), "--summary-json", str(summary),
                        "--no-progress", *flags], check=True, stderr=subprocess.DEVNULL)
        return float(orjson.loads(summary.read_bytes())["records_per_second"])


def group_state_over_day(path: Path) -> list[tuple[float, int, int]]:
    """(hour, caller records, stored bytes) of the group detector at every event-time hour."""
    settings = load_settings()
    group = GroupDetector(settings)
    samples: list[tuple[float, int, int]] = []
    first: float | None = None
    next_hour = 0.0
    for record in read_paths([path], "json", NumberNormaliser(settings.input.region),
                             settings.input):
        if not isinstance(record, Call):
            continue
        start = record.start
        group.observe(record)
        first = start if first is None else first
        if start - first >= next_hour * 3600:
            stored = sum(len(v) for v in group.table_state().values())
            samples.append((next_hour, group.tracked_numbers, stored))
            next_hour += 1
    return samples


def ring_figures(path: Path, repeat: int) -> None:
    # ``dialguard replay`` itself: the group detector's own process is its default on two
    # or more cores, and a process started from a script would import the script again
    off, on, split = (max(cli_rate(path, *flags) for _ in range(repeat)) for flags in
                      (["--no-rings"], ["--rings", "--no-group-process"], ["--group-process"]))
    print(f"group detection (dialguard replay): {off:,.0f} r/s with rings off, {on:,.0f} r/s "
          f"on in one process: {on / off:.2f}x; {split:,.0f} r/s with the group detector in "
          f"a process of its own (the default on 2+ cores): {split / off:.2f}x (target >= 0.7x)")
    _, chain = chain_run(path, "json", rings=True)
    group = chain.part(GroupDetector)
    assert isinstance(group, GroupDetector)
    samples = group_state_over_day(path)
    peak = max(samples, key=lambda s: s[1])
    records, stored = peak[1], peak[2]
    memory = sum(sys.getsizeof(k) + sys.getsizeof(rec) + 8 * len(rec)
                 for st in group.states.values() for k, rec in st.callers.items())
    callers = sum(len(st.callers) for st in group.states.values())
    print(f"  group state: peak {records:,} caller records under keys at hour {peak[0]:.0f}, "
          f"{stored / max(1, records):.0f} B stored per record (KeyState.to_bytes), "
          f"~{memory / max(1, callers):.0f} B in memory per record at the end; "
          f"rings {group.stats.rings}, keys {len(group.states):,}")
    print("  caller records by hour: " + " ".join(f"{int(h)}:{c:,}" for h, c, _ in samples))
    bare_feed_figures(path, repeat)


def bare_feed_figures(path: Path, repeat: int) -> None:
    """The same day as a feed naming no trunk or source address: its calls are judged under
    population shares (``[rings].population_shards``), against no such key at all."""
    with tempfile.TemporaryDirectory() as tmp:
        bare, off = Path(tmp) / "bare.jsonl", Path(tmp) / "no-shares.toml"
        with path.open("rb") as src, bare.open("wb") as out:
            for line in src:
                record = orjson.loads(line)
                record.pop("trunk", None)
                record.pop("src_ip", None)
                out.write(orjson.dumps(record) + b"\n")
        off.write_text("[rings]\npopulation_shards = 0\n")
        rates = {(shares, mode): max(cli_rate(bare, *config, mode) for _ in range(repeat))
                 for shares, config in ((True, []), (False, ["--config", str(off)]))
                 for mode in ("--group-process", "--no-group-process")}
    print("  a feed without ingress (the same day, trunk and src_ip left out), rings on, with "
          "population shares against without: " + "; ".join(
              f"{where} {rates[True, mode]:,.0f} vs {rates[False, mode]:,.0f} r/s "
              f"({rates[True, mode] / rates[False, mode]:.2f}x)"
              for where, mode in (("group detector in its own process", "--group-process"),
                                  ("in one process", "--no-group-process"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="day", choices=["small", "day"])
    args = parser.parse_args()
    tune_gc()  # as `dialguard replay` does

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print(f"simulating seed {args.seed} ({args.size}), writing it in every format ...",
              flush=True)
        files = write_formats(simulate(directory, args.seed, args.size))
        before = old_reader()
        old = files["asterisk-old"]
        base_read = base_replay = 0.0
        if before is not None:
            base_read, n = best_of(args.repeat, lambda: read_only(old, "asterisk", before))
            base_replay, _ = best_of(args.repeat, lambda: replay_run(
                old, "asterisk", reader=before)[0])
            print(f"baseline: the Asterisk reader before the formats package on the all-quoted "
                  f"18 columns of the old simulator: read {base_read:,.0f} r/s, replay "
                  f"{base_replay:,.0f} r/s ({n:,} records)")
        else:
            print("baseline: not measured (no git history here)")
        print(f"{'input':<13} {'decode only':>12} {'read':>11} {'replay':>11} "
              f"{'read vs before':>15} {'replay vs before':>17} {'metrics cost':>13}")
        detector = None
        rows = [(label, fmt) for label, _, fmt in FORMATS] + [("asterisk-old", "asterisk")]
        for label, fmt in rows:
            path = files[label]
            kind = "json" if fmt == "json" else "csv"
            ceiling, n = best_of(args.repeat, lambda p=path, k=kind: decode_only(p, k))
            read, _ = best_of(args.repeat, lambda p=path, f=fmt: read_only(p, f))
            if before is not None:  # measured next to each row: the machine's load moves
                base_read, _ = best_of(args.repeat, lambda: read_only(old, "asterisk", before))
            plain, _ = best_of(args.repeat, lambda p=path, f=fmt: replay_run(p, f)[0])
            cost = "-"
            if label in ("json", "asterisk"):  # the metrics do not depend on the format
                metered, _ = best_of(args.repeat, lambda p=path, f=fmt: replay_run(p, f, True)[0])
                cost = f"{100 * (plain - metered) / plain:.1f}%"
            vs_read = f"{read / base_read:.2f}x" if base_read else "-"
            vs_replay = f"{plain / base_replay:.2f}x" if base_replay else "-"
            print(f"{label:<13} {ceiling:>8,.0f} r/s {read:>7,.0f} r/s {plain:>7,.0f} r/s "
                  f"{vs_read:>15} {vs_replay:>17} {cost:>13}", flush=True)
            if fmt == "json":
                _, detector = replay_run(path, fmt)
        print(f"({n:,} records each; targets: replay >= 100,000 CDR/s per core, metrics cost "
              f"<= 5 %, every format >= 0.90x before)")
        assert detector is not None
        sizes = state_bytes(detector)
        print("state per tracked number at the end of the day "
              f"({sizes['numbers']:,.0f} numbers, {sizes['full']:,.0f} of them with full state; "
              "target <= 1024 bytes):")
        print(f"  in memory (key, dict slot, object and what it owns): mean "
              f"{sizes['mean_bytes']:.0f} B over all, {sizes['mean_full_bytes']:.0f} B over full "
              f"states, max {sizes['max_bytes']:.0f} B, a busy number with a full callee ring "
              f"{sizes['busiest_number_bytes']:.0f} B")
        print(f"  stored (Faust table value, NumberState.to_bytes): "
              f"mean {sizes['mean_stored_bytes']:.0f} B, max {sizes['max_stored_bytes']:.0f} B")
        ring_figures(files["json"], args.repeat)


if __name__ == "__main__":
    main()
