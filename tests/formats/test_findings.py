"""One test per input finding of issues 10 and 11 (each failed before the fix)."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.config import load_settings
from detectors.engine import Detector
from detectors.features import NumberState
from detectors.numbers import NumberNormaliser
from detectors.records import WITHHELD, Call, Rejected
from formats.files import InputError, open_binary
from formats.json_lines import JsonLines
from formats.reading import read_path
from streams.commands.produce import Batcher, cdr_messages
from streams.ingest import BATCH_DECODER, IN, OUT, ForwardedMetrics, Ingest, partition_for
from streams.options import WorkerOptions

NORM = NumberNormaliser("CN")
JSON = JsonLines(NORM)
GOOD = {"caller": "13800000001", "callee": "13900000002", "start": 1709596900, "duration": 12}


def good(**changes: Any) -> bytes:
    return orjson.dumps({**GOOD, **changes})


# ---------------------------------------------------------------- 11.1 poison nesting


@pytest.mark.parametrize("data", [
    b"[" * 100000 + b"]" * 100000,
    b"[" * 300 + b"]" * 300,  # orjson.dumps of this raised TypeError in _bad
    b'{"caller": "13800000001", "callee": "13900000002", "start": 1709596900, '
    b'"duration": 1, "x": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
])
def test_deep_nesting_is_a_rejection_and_keeps_the_raw_bytes(data: bytes) -> None:
    [rejected] = JSON.decode(data, "cdr.raw/0@1")
    assert isinstance(rejected, Rejected) and rejected.reason == "malformed"
    assert isinstance(rejected.raw, bytes) and rejected.raw[:2000] in data  # never re-serialised
    out = list(JSON.read([good(), data, good(caller="13800000002")], "d.json"))
    assert [type(r).__name__ for r in out] == ["Call", "Rejected", "Call"]


def test_deep_nesting_inside_an_array_spoils_only_its_element() -> None:
    value = b"[" + good() + b"," + b"[" * 2000 + b"]" * 2000 + b"]"
    out = JSON.decode(value)
    assert isinstance(out[0], Call) and isinstance(out[-1], Rejected)


def test_an_unknown_field_nested_within_the_decoders_limit_is_kept_and_ignored() -> None:
    """CONTRACT 1a: unknown fields are ignored.  The fast decoder takes nesting up to its
    own recursion limit (deeper raises, and the careful path rejects, as above), so the
    depth is scanned only for messages that did not decode, never for every message."""
    data = good()[:-1] + b', "x": ' + b"[" * 50 + b"]" * 50 + b"}"
    [call] = JSON.decode(data)
    assert isinstance(call, Call) and call.duration == GOOD["duration"]
    assert [type(r).__name__ for r in JSON.decode(b"[" + data + b"," + good() + b"]")] == [
        "Call", "Call"]


# ---------------------------------------------------------------- 11.2 out-of-range values


@pytest.mark.parametrize("duration", [4294967295, 10**18, 1e18, 1e308, int("9" * 100), 86401])
def test_impossible_durations_are_bad_duration(duration: Any) -> None:
    data = orjson.dumps({**GOOD, "duration": duration}) if not (
        isinstance(duration, int) and duration > 2**64) else (
        good()[:-3] + str(duration).encode() + b"}")
    [rejected] = JSON.decode(data)
    assert isinstance(rejected, Rejected)
    assert rejected.reason in ("bad_duration", "malformed"), rejected
    if duration < 2**64:
        assert rejected.reason == "bad_duration"


@pytest.mark.parametrize("start", [1e308, "1900-01-01T00:00:00Z", "9999-01-01T00:00:00Z",
                                   -1e300, "2024-05-01T00:00:²³Z", "١٧٠٩٥٩٦٩٠٠"])
def test_impossible_starts_are_bad_time(start: Any) -> None:
    [rejected] = JSON.decode(orjson.dumps({**GOOD, "start": start}))
    assert isinstance(rejected, Rejected) and rejected.reason == "bad_time", rejected


def test_one_impossible_record_does_not_cost_its_neighbours_their_alerts() -> None:
    settings = load_settings()
    calls = [Call("+8613800000002", f"+86139{i:08d}", 1709596900.0 + 5 * i, 0, False, 2.0)
             for i in range(300)]

    def alerts(records: list[Call | Rejected]) -> list[bytes]:
        detector = Detector(settings)
        return [a.to_json() for r in records if isinstance(r, Call) for a in detector.observe(r)]

    poison = JSON.decode(orjson.dumps({"caller": "13800000002", "callee": "13900000010",
                                       "start": 1709596900, "duration": 4294967295,
                                       "answered": True}))
    assert alerts(calls[:150] + poison + calls[150:]) == alerts(calls)
    assert alerts(calls)


def test_talk_counters_saturate_instead_of_overflowing() -> None:
    fs = load_settings().features
    state = NumberState(fs, 0.0)
    for i in range(3):
        state.outbound(float(i), 8613900000000 + i, True, 2**31 - 10, 1.0, False, fs)
    assert max(state.counts) == 2**31 - 1


# ---------------------------------------------------------------- 11.7 produce --batch


def test_produce_sends_an_undecodable_line_alone_and_counts_truthfully(tmp_path: Path) -> None:
    path = tmp_path / "ten.jsonl"
    lines = [good(callee=f"1390000{i:04d}") for i in range(10)]
    lines[4] = lines[4][:25]  # truncated
    path.write_bytes(b"\n".join(lines) + b"\n")
    sent: list[bytes] = []
    batcher = Batcher(lambda key, value: sent.append(value), 10)
    for outgoing in cdr_messages(str(path), "auto", NORM):
        batcher.add(outgoing)
    batcher.flush()
    assert len(sent) == 2 and sent[0] == lines[4]
    decoded = [r for value in sent for r in JSON.decode(value)]
    assert sum(isinstance(r, Call) for r in decoded) == 9
    assert "produced 9 CDRs in 1 messages" in batcher.report("cdr.raw")
    assert "1 lines that are not JSON" in batcher.report("cdr.raw")


# ---------------------------------------------------------------- 11.8 files and digits


def test_replay_of_a_truncated_gzip_says_so_with_its_summary(tmp_path: Path) -> None:
    body = b"\n".join(good(callee=f"1390000{i:04d}", start=1709596900 + i)
                      for i in range(3000)) + b"\n"
    packed = gzip.compress(body)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    out = list(read_path(path, "auto", NORM))
    assert out[-1].reason == "truncated" and "ends early" in out[-1].detail
    assert sum(isinstance(r, Call) for r in out) > 1000
    proc = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)],
                          capture_output=True, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Aborted" not in err
    assert "compressed file ends early" in err and "rejected truncated: 1" in err
    assert "read " in err  # the summary


def test_a_utf16_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(good().decode().encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        open_binary(path)
    path.write_bytes(good().decode().encode("utf-16-le"))  # no BOM either
    with pytest.raises(InputError, match="UTF-16"):
        list(read_path(path, "json", NORM))
    proc = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)],
                          capture_output=True, timeout=300)
    assert proc.returncode == 1 and b"UTF-16" in proc.stderr


def test_a_float_number_is_the_number_not_its_digits() -> None:
    [call] = JSON.decode(b'{"caller": 13800000001.0, "callee": 13900000002, '
                         b'"start": 1709596900, "duration": 0}')
    assert isinstance(call, Call) and call.caller == "+8613800000001"
    [rejected] = JSON.decode(good(caller=13800000001.5))
    assert rejected.reason == "bad_number"


@pytest.mark.parametrize("caller", ["１３８００００００００１", "١٣٨٠٠٠٠٠٠٠١", "¹³⁸⁰⁰⁰⁰⁰⁰⁰¹"])
def test_non_ascii_digits_are_rejected_everywhere_with_the_same_reason(caller: str) -> None:
    [rejected] = JSON.decode(good(caller=caller))
    assert rejected.reason == "bad_number"
    [rejected] = JSON.decode(good(duration="１２"))
    assert rejected.reason == "bad_duration"


# ---------------------------------------------------------------- withheld callers


def test_withheld_calls_get_no_state_and_count_on_the_callee_side() -> None:
    detector = Detector(load_settings())
    callee = "+8613900000002"
    for i in range(10):  # the callee becomes a tracked caller first
        detector.observe(Call(callee, f"+86138{i:08d}", 1709596900.0 + i, 30, True, 2.0))
    for i in range(500):
        assert detector.observe(Call(WITHHELD, callee, 1709597000.0 + i, 0, False, 1.0)) == ()
    assert WITHHELD not in detector.states and WITHHELD not in detector.light
    state = detector.states[callee]
    assert state.window(600, 1709597500.0, detector.settings.features)[9] > 0  # INBOUND


def test_ingest_routes_withheld_calls_to_the_callee_partition_only() -> None:
    sent: list[tuple[bytes, Any]] = []

    async def send(value: bytes, partition: int | None) -> Any:
        sent.append((value, partition))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    ingest = Ingest(WorkerOptions(partitions=8), NORM, ForwardedMetrics(), send, send)
    records = [{**GOOD, "caller": "anonymous", "callee": f"1390000{i:04d}"} for i in range(40)]
    asyncio.run(ingest.ingest_messages([(orjson.dumps(records), "cdr.raw", 0, 1)]))
    batches = [(p, BATCH_DECODER.decode(v)) for v, p in sent]
    flagged = [(p, f, c) for p, b in batches for f, c in zip(b.flags, b.calls, strict=True)]
    assert len(flagged) == 40 and all(f == IN and not f & OUT for _, f, _ in flagged)
    assert all(p == partition_for(c.callee, 8) for p, _, c in flagged)
    assert len({p for p, _, _ in flagged}) > 1  # not one hot partition
    assert ingest.metrics.take()["withheld"] == 40


def test_kafka_messages_may_carry_the_configured_csv_format() -> None:
    sent: list[bytes] = []

    async def send(value: bytes, partition: int | None) -> Any:
        sent.append(value)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    settings = load_settings()
    settings = replace(settings, input=replace(settings.input, format="asterisk"))
    ingest = Ingest(WorkerOptions(partitions=2, settings=settings), NORM, ForwardedMetrics(),
                    send, send)
    row = ('"","13800000001","13900000002","from-trunk","","SIP/gw-0000001a","","Dial","",'
           '"2024-05-01 00:00:00",,"2024-05-01 00:00:09",9,0,"NO ANSWER","DOCUMENTATION",'
           '"1714521600.1",""')
    block = (row + "\r\n" + row.replace("13900000002", "13900000003")).encode()
    asyncio.run(ingest.ingest_messages([(block, "cdr.raw", 0, 1), (row.encode(), "cdr.raw", 0, 2)]))
    assert ingest.counts["calls"] == 3 and ingest.counts["rejected"] == 0
