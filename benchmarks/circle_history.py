"""Would a history of who knows whom find debt collectors?  A ceiling, not a detector.

A debt collector calls a borrower's household, friends and colleagues: strangers to the
collector who know each other.  Within one day they seldom call each other (the
``[circles]`` sketch found little, README "How detection works"); a carrier has weeks
of records.  This simulates the wide world with ``history_days`` days of the same
subscribers calling their contacts before the day (``SimConfig.history_days``), keeps
the **exact** call graph of all of it (no sketch, no horizon, no 32-callee memory: what
dialguard would see is less), and for every number with at least ``--min-strangers``
strangers on the day (callees it had no call with before the day) counts those strangers
who are connected to another of them.  It prints per class the count and share, and how
many numbers of each class a rule "at least C connected strangers, at least S of them"
would find.

    python benchmarks/circle_history.py --seeds 1-4 --history-days 7
"""

from __future__ import annotations

import argparse
import collections
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from testbed.report import parse_seeds

COUNTS = (3, 4, 5, 6)
SHARES = (0.2, 0.3, 0.5)


def connected_strangers(seed: int, history_days: int, min_strangers: int,
                        size: str = "day") -> dict[str, list[tuple[int, int]]]:
    """Per class, (connected strangers, strangers) of every number with ``min_strangers``
    strangers on the day, with the whole history's graph."""
    from detectors.config import load_settings
    from detectors.numbers import NumberNormaliser
    from testbed.evaluation import calls_from_records
    from testbed.simulation import SimConfig
    from testbed.worlds import simulate_world

    norm = NumberNormaliser(load_settings().input.region)
    day = simulate_world("wide", SimConfig.preset(size, history_days=history_days), seed)
    start = day.labels.meta["start"]
    graph: dict[str, set[str]] = collections.defaultdict(set)
    known: dict[str, set[str]] = collections.defaultdict(set)
    strangers: dict[str, set[str]] = collections.defaultdict(set)
    for call in calls_from_records(day.records(), norm, {}):
        if not call.caller:
            continue
        graph[call.caller].add(call.callee)
        graph[call.callee].add(call.caller)
        if call.start < start:
            known[call.caller].add(call.callee)
            known[call.callee].add(call.caller)
        elif call.callee not in known[call.caller]:
            strangers[call.caller].add(call.callee)
    out: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for number, theirs in strangers.items():
        if len(theirs) < min_strangers:
            continue
        linked = sum(1 for s in theirs if any(o != number and o in theirs for o in graph[s]))
        out[day.labels.class_of(number)].append((linked, len(theirs)))
    return dict(out)


def report(per_class: dict[str, list[tuple[int, int]]]) -> list[str]:
    lines = []
    for cls, rows in sorted(per_class.items()):
        counts = sorted(c for c, _ in rows)
        shares = sorted(c / n for c, n in rows)
        mid, top = counts[len(counts) // 2], counts[-1]
        lines.append(f"{cls:18s} numbers {len(rows):6,d}  connected strangers median {mid} max "
                     f"{top}  share median {shares[len(shares) // 2]:.2f} 90th "
                     f"{shares[int(0.9 * (len(shares) - 1))]:.2f}")
    lines.append("numbers found by 'at least C connected strangers, at least S of them':")
    for c in COUNTS:
        for s in SHARES:
            found = {cls: sum(1 for k, n in rows if k >= c and k / n >= s)
                     for cls, rows in sorted(per_class.items())}
            lines.append(f"  C={c} S={s:.1f}: " + ", ".join(
                f"{cls} {n}" for cls, n in found.items() if n))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1-4")
    ap.add_argument("--history-days", type=int, default=7)
    ap.add_argument("--min-strangers", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    pooled: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        futures: list[Any] = [pool.submit(connected_strangers, s, args.history_days,
                                          args.min_strangers) for s in seeds]
        for future in futures:
            for cls, rows in future.result().items():
                pooled[cls].extend(rows)
    print(f"wide seeds {args.seeds}, {args.history_days} days of history, numbers with >= "
          f"{args.min_strangers} strangers on the day")
    print("\n".join(report(pooled)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
