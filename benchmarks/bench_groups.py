"""The cost of the workers' group (ring) stage, without a broker (CDR/s, bytes).

    python benchmarks/bench_groups.py [--seed 4] [--per-message 100] [--runs 3] [--partitions 4]

* **ingest**: :meth:`streams.ingest.Ingest.ingest_messages` (decode, repartition by number,
  and with group detection on also by grouping key) over a simulated day of the wide world in
  messages of ``--per-message`` CDRs, sends captured; group detection off is the baseline
  measured in the same run (best of ``--runs``);
* **bytes** sent to ``dialguard.calls`` (the same with group detection on or off) and to
  ``dialguard.groups``, per call;
* **group stage**: :meth:`streams.grouping.PartitionGroups.run_batch` over the grouped
  batches (every partition in this one process), calls per second, and the bytes of key
  states its buffers would write to the group table's changelog.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from typing import Any

import orjson

from detectors.config import load_settings
from detectors.numbers import NumberNormaliser
from formats.json_lines import write_json_lines
from streams.control import Tuning
from streams.grouping import PartitionGroups
from streams.ingest import BATCH_DECODER, BATCH_ENCODER, Ingest
from streams.metrics import NullMetrics
from streams.options import WorkerOptions
from testbed.simulation import SimConfig
from testbed.worlds import simulate_world


def messages(seed: int, per_message: int) -> tuple[list[bytes], int]:
    out = io.StringIO()
    n = write_json_lines(simulate_world("wide", SimConfig.preset("small"), seed=seed).records(),
                         out)
    rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return [orjson.dumps(rows[i:i + per_message]) for i in range(0, len(rows), per_message)], n


def run_ingest(values: list[bytes], partitions: int, rings: bool
               ) -> tuple[float, dict[str, list[tuple[bytes, int | None]]]]:
    """Seconds of ``ingest_messages`` over ``values``, and what it sent, by topic."""
    sent: dict[str, list[tuple[bytes, int | None]]] = {"calls": [], "groups": [],
                                                       "rejected": []}
    done: asyncio.Future[Any] | None = None

    def sender(topic: str) -> Any:
        async def send(value: bytes, partition: int | None) -> asyncio.Future[Any]:
            sent[topic].append((value, partition))
            assert done is not None
            return done
        return send

    settings = load_settings()
    options = WorkerOptions(settings=settings, partitions=partitions, rings=rings,
                            align_slack=0)
    ingest = Ingest(options, NumberNormaliser(settings.input.region), NullMetrics(),
                    sender("calls"), sender("rejected"), None, sender("groups"))

    async def go() -> float:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        started = time.perf_counter()
        for offset, value in enumerate(values):
            await ingest.ingest_messages([(value, "cdr.raw", 0, offset)])
        return time.perf_counter() - started

    return asyncio.run(go()), sent


def run_group_stage(groups: list[tuple[bytes, int | None]], partitions: int,
                    buffer: int) -> tuple[float, int]:
    """Seconds of ``run_batch`` over ``groups`` and the bytes of the key states the agent
    would write to the changelog, a buffer being ``buffer`` batches of one partition."""
    settings = load_settings()
    # no table, changelog or sink: run_batch alone, as the agent runs it per batch
    stage = PartitionGroups(Tuning(settings), partitions, {}, None, None,  # type: ignore[arg-type]
                            NullMetrics(), {})
    elapsed = 0.0
    written = 0
    by_partition: dict[int, list[bytes]] = {}
    for value, partition in groups:
        by_partition.setdefault(partition or 0, []).append(value)
    for partition, values in by_partition.items():
        for i in range(0, len(values), buffer):
            started = time.perf_counter()
            touched: set[str] = set()
            for value in values[i:i + buffer]:
                touched |= stage.run_batch(partition, value)[2]
            elapsed += time.perf_counter() - started
            states = stage.detectors[partition].states
            written += sum(len(states[k].to_bytes()) for k in touched if k in states)
    return elapsed, written


def _unstamped(batches: list[tuple[bytes, int | None]]) -> list[tuple[int | None, bytes, int]]:
    """Each batch's partition, flags and length of its calls, without its arrival time."""
    out = []
    for value, partition in batches:
        batch = BATCH_DECODER.decode(value)
        out.append((partition, batch.flags, len(BATCH_ENCODER.encode(batch.calls))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--buffer", type=int, default=64,
                        help="batches per group-stage buffer (the worker's groups_batch)")
    args = parser.parse_args()
    values, n = messages(args.seed, args.per_message)
    print(f"wide world seed {args.seed}: {n:,} CDRs in {len(values):,} messages, "
          f"{args.partitions} partitions")
    best: dict[bool, float] = {}
    sent: dict[bool, dict[str, list[tuple[bytes, int | None]]]] = {}
    for _ in range(args.runs):
        for rings in (False, True):
            seconds, sent[rings] = run_ingest(values, args.partitions, rings)
            best[rings] = min(best.get(rings, seconds), seconds)
    off, on = n / best[False], n / best[True]
    print(f"ingest, group detection off: {off:10,.0f} CDR/s (baseline)")
    print(f"ingest, group detection on:  {on:10,.0f} CDR/s ({on / off:.2f}x)")
    calls_off = sum(len(v) for v, _ in sent[False]["calls"])
    calls_on = sum(len(v) for v, _ in sent[True]["calls"])
    grouped = sum(len(v) for v, _ in sent[True]["groups"])
    same = _unstamped(sent[False]["calls"]) == _unstamped(sent[True]["calls"])
    print(f"bytes to dialguard.calls per CDR: {calls_off / n:.1f} off, {calls_on / n:.1f} on "
          f"({'the same batches' if same else 'DIFFERENT batches'})")
    print(f"bytes to dialguard.groups per CDR: {grouped / n:.1f} ({grouped / calls_on:.2f}x "
          "of dialguard.calls)")
    runs = [run_group_stage(sent[True]["groups"], args.partitions, args.buffer)
            for _ in range(args.runs)]
    stage = min(seconds for seconds, _ in runs)
    print(f"group stage (observe_keyed per key, all partitions here): {n / stage:10,.0f} CDR/s")
    print(f"group changelog, buffers of {args.buffer} batches: {runs[0][1] / n:,.0f} bytes "
          f"per CDR ({runs[0][1] / grouped:.1f}x of dialguard.groups)")


if __name__ == "__main__":
    main()
