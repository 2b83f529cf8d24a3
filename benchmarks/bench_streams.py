"""Stream throughput on one broker: ceiling, naive Faust agent, dialguard's worker (CDR/s).

    python benchmarks/bench_streams.py                 # starts a broker (Kafka, else Tansu)
    python benchmarks/bench_streams.py --broker 127.0.0.1:9092 --single 100000 --batched 500000

Three consumers read the same pre-produced topics, each in its own process:

* ``ceiling``: raw aiokafka ``getmany`` + :meth:`formats.json_lines.JsonLines.decode`,
  nothing else: the most any Python consumer of this data can do;
* ``naive``: a Faust agent taking one event at a time, decoding it and calling
  :meth:`Detector.observe` per record (dict state, no table), sending alerts;
* ``dialguard``: the real worker as ``dialguard worker`` runs it by default
  (:mod:`streams.app`): ingest in a process of its own (``--ingest-processes 1``)
  + repartition topic + detect + state table changelog + alerts;
* ``dialguard-1proc``: the same worker with ingest inside its one process
  (``--ingest-processes 0``).

``BENCH_TRACE=1`` prints the dialguard worker's counts every half second.

Each is timed from its first consumed message until it has accounted for every
CDR (for dialguard: until the detect side has processed every call), for one-CDR
messages and for batched messages (``--batch`` CDRs per message).  Data is a
simulated carrier day (:mod:`testbed.simulation`), about 0.1% malformed.
Prints a table and the ratios against the targets (dialguard >= 2x naive on
one-CDR messages, >= 100k CDR/s on batched messages).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

PARTITIONS = 4


# --------------------------------------------------------------------------- data


def make_records(n: int, seed: int) -> list[bytes]:
    from testbed.simulation import DEFAULT_START, SimConfig, simulate

    out: list[bytes] = []
    day_no = 0
    while len(out) < n:  # consecutive days (time moves on), each its own population
        config = SimConfig.preset("day", start=DEFAULT_START + 86400 * day_no)
        out.extend(orjson.dumps(r) for r in simulate(config, seed=seed + day_no).records())
        day_no += 1
    return out[:n]


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, max_request_size=16 << 20, acks=1)
    await producer.start()
    try:
        futures = []
        for i, v in enumerate(values):
            futures.append(await producer.send(topic, v, partition=i % PARTITIONS))
            if len(futures) >= 20000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def create_topics(bootstrap: str, names: list[str]) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        admin.close()
    time.sleep(1.0)


# --------------------------------------------------------------------------- runners (child)


def run_ceiling(bootstrap: str, topic: str, expect: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from detectors.numbers import NumberNormaliser
    from formats.json_lines import JsonLines

    async def main() -> dict[str, float]:
        decode = JsonLines(NumberNormaliser("CN")).decode
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        first = None
        try:
            while n < expect:
                batch = await consumer.getmany(timeout_ms=500, max_records=10000)
                for messages in batch.values():
                    if first is None and messages:
                        first = time.perf_counter()
                    for m in messages:
                        n += len(decode(m.value))
        finally:
            await consumer.stop()
        assert first is not None
        return {"cdrs": n, "seconds": time.perf_counter() - first}

    return asyncio.run(main())


def _run_faust(app: Any, progress: Callable[[], int], expect: int, first_ref: dict[str, float],
               trace: Callable[[], Any] = lambda: "") -> dict[str, float]:
    import faust

    result: dict[str, float] = {}

    last_log = [0.0]

    @app.timer(0.02)
    async def watch() -> None:
        n = progress()
        if n and "first" not in first_ref:
            first_ref["first"] = time.perf_counter()
        if os.environ.get("BENCH_TRACE") and time.perf_counter() - last_log[0] > 0.5:
            last_log[0] = time.perf_counter()
            print(f"{time.perf_counter() - first_ref.get('first', last_log[0]):7.2f} s "
                  f"{trace()}", file=sys.stderr)
        if n >= expect and not result:
            result.update(cdrs=n, seconds=time.perf_counter() - first_ref["first"])
            os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False)
    worker.loop.call_later(600, os.kill, os.getpid(), signal.SIGTERM)
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()
    return result


def run_naive(bootstrap: str, topic: str, expect: int) -> dict[str, float]:
    import faust

    from detectors.config import load_settings
    from detectors.engine import Detector
    from detectors.numbers import NumberNormaliser
    from detectors.records import Call
    from formats.json_lines import JsonLines

    app = faust.App(f"bench-naive-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    key_serializer="raw", value_serializer="raw", store="memory://",
                    datadir=f"/tmp/bench-naive-{os.getpid()}")
    raw = app.topic(topic, value_type=bytes)
    alerts = app.topic(f"{topic}.naive-alerts", value_type=bytes)
    detector = Detector(load_settings())
    decode = JsonLines(NumberNormaliser("CN")).decode
    count = {"n": 0}
    first: dict[str, float] = {}

    @app.agent(raw)
    async def naive(stream: faust.StreamT) -> None:
        async for value in stream:
            for record in decode(value):
                count["n"] += 1
                if type(record) is Call:
                    for alert in detector.observe(record):
                        await alerts.send(value=alert.to_json())

    return _run_faust(app, lambda: count["n"], expect, first)


def run_dialguard(bootstrap: str, topic: str, expect: int,
                  ingest_processes: int = 0) -> dict[str, float]:

    from streams.app import create_pipeline
    from streams.options import Topics, WorkerOptions

    tag = uuid.uuid4().hex[:8]
    options = WorkerOptions(
        broker=f"kafka://{bootstrap}",
        topics=Topics(raw=topic, rejected=f"{topic}.rej-{tag}", alerts=f"{topic}.alerts-{tag}",
                      control=f"{topic}.ctl-{tag}", calls=f"{topic}.calls-{tag}"),
        partitions=PARTITIONS, app_id=f"bench-dg-{tag}", data_dir=f"/tmp/bench-dg-{tag}",
        lag_interval=0, ingest_processes=ingest_processes,
    )
    pipeline = create_pipeline(options)
    pipeline.prepare()  # internal topics first, as `dialguard worker` does
    c = pipeline.counts
    first: dict[str, float] = {}
    return _run_faust(pipeline.app, lambda: c["detected"] + c["rejected"], expect, first,
                      lambda: c)


def run_dialguard_default(bootstrap: str, topic: str, expect: int) -> dict[str, float]:
    return run_dialguard(bootstrap, topic, expect, ingest_processes=1)


RUNNERS = {"ceiling": run_ceiling, "naive": run_naive, "dialguard": run_dialguard_default,
           "dialguard-1proc": run_dialguard}


def child(argv: list[str]) -> None:
    mode, bootstrap, topic, expect, out = argv
    result = RUNNERS[mode](bootstrap, topic, int(expect))
    Path(out).write_text(json.dumps(result))


# --------------------------------------------------------------------------- driver


def run_mode(mode: str, bootstrap: str, topic: str, expect: int) -> float | None:
    out = Path(f"/tmp/bench-streams-{uuid.uuid4().hex[:8]}.json")
    try:
        subprocess.run([sys.executable, __file__, "_child", mode, bootstrap, topic, str(expect),
                        str(out)], timeout=900, check=False, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        if not out.exists():
            print(f"  {mode}: no result", file=sys.stderr)
            return None
        result = json.loads(out.read_text())
        if not result:
            return None
        return float(result["cdrs"]) / float(result["seconds"])
    finally:
        out.unlink(missing_ok=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--broker", help="host:port of a running broker (default: start one)")
    parser.add_argument("--single", type=int, default=100_000, help="CDRs as one-CDR messages")
    parser.add_argument("--batched", type=int, default=500_000, help="CDRs in batched messages")
    parser.add_argument("--batch", type=int, default=500, help="CDRs per batched message")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per mode and shape; the median is reported")
    parser.add_argument("--modes", default="ceiling,naive,dialguard,dialguard-1proc")
    args = parser.parse_args()

    broker = None
    if args.broker:
        bootstrap = args.broker.split("://", 1)[-1]
    else:
        from streams.brokers import start_broker

        broker = start_broker("auto", partitions=PARTITIONS)
        bootstrap = broker.bootstrap
        print(f"broker: {broker.name} at {bootstrap}", file=sys.stderr)
    try:
        t0 = time.perf_counter()
        records = make_records(max(args.single, args.batched), args.seed)
        print(f"generated {len(records)} records in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        tag = uuid.uuid4().hex[:8]
        single_topic, batched_topic = f"bench-{tag}.single", f"bench-{tag}.batched"
        batched_values = [b"[" + b",".join(records[i:i + args.batch]) + b"]"
                          for i in range(0, args.batched, args.batch)]
        create_topics(bootstrap, [single_topic, batched_topic])
        asyncio.run(produce(bootstrap, single_topic, records[:args.single]))
        asyncio.run(produce(bootstrap, batched_topic, batched_values))
        print(f"produced {args.single} one-CDR messages and {len(batched_values)} messages of "
              f"{args.batch} CDRs", file=sys.stderr)

        modes = args.modes.split(",")
        rates: dict[tuple[str, str], float | None] = {}
        for shape, topic, expect in (("one CDR/msg", single_topic, args.single),
                                     (f"{args.batch} CDRs/msg", batched_topic, args.batched)):
            for mode in modes:
                runs = [r for r in (run_mode(mode, bootstrap, topic, expect)
                                    for _ in range(args.repeat)) if r is not None]
                rate = statistics.median(runs) if runs else None
                rates[(shape, mode)] = rate
                print(f"  {shape:>14}  {mode:<10} "
                      f"{'failed' if rate is None else f'{rate:,.0f} CDR/s'}", file=sys.stderr)

        shapes = ["one CDR/msg", f"{args.batch} CDRs/msg"]
        print(f"\n{'CDR/s':<12}" + "".join(f"{m:>16}" for m in modes))
        for shape in shapes:
            row = [rates.get((shape, m)) for m in modes]
            print(f"{shape:<12}" + "".join(f"{'-' if r is None else f'{r:,.0f}':>16}"
                                           for r in row))
        print()
        for shape in shapes:
            dg, nv, ce = (rates.get((shape, m)) for m in ("dialguard", "naive", "ceiling"))
            if dg and nv:
                print(f"{shape}: dialguard / naive = {dg / nv:.2f}x", end="")
                print(f", dialguard / ceiling = {dg / ce:.2f}" if ce else "")
        single_dg, single_nv = rates.get(("one CDR/msg", "dialguard")), rates.get(
            ("one CDR/msg", "naive"))
        batched_dg = rates.get((shapes[1], "dialguard"))
        if single_dg and single_nv:
            ok = single_dg >= 2 * single_nv
            print(f"target dialguard >= 2x naive on one-CDR messages: "
                  f"{'met' if ok else 'NOT met'} ({single_dg / single_nv:.2f}x)")
        if batched_dg:
            ok = batched_dg >= 100_000
            print(f"target >= 100k CDR/s per worker on batched messages: "
                  f"{'met' if ok else 'NOT met'} ({batched_dg:,.0f} CDR/s; the worker is two "
                  f"processes, detect + ingest)")
        batched_one = rates.get((shapes[1], "dialguard-1proc"))
        if batched_one:
            print(f"  with ingest inside the worker's one process: {batched_one:,.0f} CDR/s "
                  f"({'met' if batched_one >= 100_000 else 'not met'})")
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
