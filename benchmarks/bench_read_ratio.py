"""Reading alone, each reader against the Asterisk reader of before, in CPU time of one process.

For comparing two trees on a shared machine: run this with each tree on
PYTHONPATH in turn, several times, and compare the ratios (each measured next
to its baseline in the same process, in ``time.process_time``, best of
``--repeat``).  The day is simulated and written in every format once into
``--dir`` (bench_replay's files) and reused by later runs.

    python benchmarks/bench_read_ratio.py --dir /tmp/days LABEL
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_replay  # noqa: E402

from streams.replay import tune_gc  # noqa: E402

#: (label, bench_replay file label, reader format)
ROWS = [("asterisk", "asterisk", "asterisk"), ("asterisk16", "asterisk16", "asterisk"),
        ("asterisk21", "asterisk21", "asterisk"), ("freeswitch", "freeswitch", "freeswitch"),
        ("fs-default", "fs-default", "freeswitch"), ("csv", "csv", "csv")]


def files(directory: Path, seed: int) -> dict[str, Path]:
    """bench_replay's files of the seed's day in ``directory``, written when missing."""
    found = {"asterisk-old": directory / f"day-{seed}.quoted.csv",
             **{label: directory / f"day-{seed}.{label}.csv" for _, label, _ in ROWS}}
    if not all(path.exists() for path in found.values()):
        directory.mkdir(parents=True, exist_ok=True)
        bench_replay.write_formats(bench_replay.simulate(directory, seed, "day"))
    return found


def best_cpu(repeat: int, run: Callable[[], int]) -> float:
    """Best records per CPU second over ``repeat`` runs."""
    rates = []
    for _ in range(repeat):
        started = time.process_time()
        count = run()
        rates.append(count / (time.process_time() - started))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label", nargs="?", default="")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/dialguard-read-ratio"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    tune_gc()
    paths = files(args.dir, args.seed)
    before = bench_replay.old_reader()
    if before is None:
        sys.exit("no git history: the reader of before cannot be loaded")
    old = paths["asterisk-old"]
    out = [args.label]
    for label, file_label, fmt in ROWS:
        base = best_cpu(args.repeat, lambda: bench_replay.read_only(old, "asterisk", before))
        rate = best_cpu(args.repeat, lambda p=paths[file_label], f=fmt: bench_replay.read_only(
            p, f))
        out.append(f"{label} {rate / base:.3f}")
    print("  ".join(out), flush=True)


if __name__ == "__main__":
    main()
