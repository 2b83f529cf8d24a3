import gzip
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.numbers import NumberNormaliser
from detectors.records import REJECT_REASONS, Call, Rejected
from formats.json_lines import JsonLines, parse_time
from formats.ordering import event_time_order
from formats.reading import read_path, read_paths

NORM = NumberNormaliser("CN")
READER = JsonLines(NORM)


def read_json_lines(lines, _norm=None, source=""):
    return READER.read(lines, source)


def decode_json_value(data, _norm=None, source=""):
    return READER.decode(data, source)


def call_from_mapping(record, _norm=None):
    return READER.from_mapping(record, "", orjson.dumps(record))
GOOD = {"caller": "13800000001", "callee": "13900000002", "start": 1714521600, "duration": 12}


def line(**changes: object) -> bytes:
    record = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return orjson.dumps(record)


def test_good_record_decodes_with_defaults() -> None:
    [call] = read_json_lines([line()], NORM)
    assert isinstance(call, Call)
    assert (call.caller, call.callee, call.start, call.duration, call.answered) == (
        "+8613800000001", "+8613900000002", 1714521600.0, 12, True)
    assert call.ring is None and call.id is None


def test_answered_defaults_to_duration_and_can_be_given() -> None:
    [call] = read_json_lines([line(duration=0)], NORM)
    assert isinstance(call, Call) and call.answered is False
    [call] = read_json_lines([line(duration=0, answered=True)], NORM)
    assert isinstance(call, Call) and call.answered is True


def test_unknown_fields_are_kept_out_of_the_way() -> None:
    [call] = read_json_lines([line(imsi="460001234567890", cell="A1")], NORM)
    assert isinstance(call, Call)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"caller": ...}, "missing_field"),
        ({"start": ...}, "missing_field"),
        ({"duration": None}, "missing_field"),
        ({"caller": "not-a-number"}, "bad_number"),
        ({"callee": ""}, "bad_number"),
        ({"start": "yesterday"}, "bad_time"),
        ({"start": "2024-05-01T08:00:00"}, "bad_time"),
        ({"start": 1714521600000}, "bad_time"),
        ({"start": True}, "bad_time"),
        ({"duration": -1}, "bad_duration"),
        ({"duration": "12"}, "bad_duration"),
        ({"duration": 1.5}, "bad_duration"),
        ({"answered": "yes"}, "bad_field"),
        ({"ring": -2}, "bad_field"),
        ({"trunk": 7}, "bad_field"),
        ({"id": [1]}, "bad_field"),
    ],
)
def test_each_bad_field_is_rejected_with_its_reason(changes: dict, reason: str) -> None:
    [rejected] = read_json_lines([line(**changes)], NORM, "day.jsonl")
    assert isinstance(rejected, Rejected)
    assert rejected.reason == reason
    assert rejected.source == "day.jsonl:1"
    assert rejected.detail


def test_bad_lines_do_not_stop_the_good_ones() -> None:
    lines = [line(), b"{not json", b"", b"[1, 2]", b"42", line(caller="13800000009"), b"\xff\xfe"]
    out = list(read_json_lines(lines, NORM, "f"))
    calls = [r for r in out if isinstance(r, Call)]
    rejected = [r for r in out if isinstance(r, Rejected)]
    assert [c.caller for c in calls] == ["+8613800000001", "+8613800000009"]
    assert sorted(r.reason for r in rejected) == ["malformed", "malformed", "not_an_object",
                                                    "not_an_object", "not_an_object"]


def test_kafka_value_may_be_an_array() -> None:
    value = b"[" + line() + b"," + line(caller="x") + b"]"
    out = decode_json_value(value, NORM, "cdr.raw/0@5")
    assert isinstance(out[0], Call)
    assert isinstance(out[1], Rejected) and out[1].source == "cdr.raw/0@5[1]"


def test_iso_times_with_offsets() -> None:
    assert parse_time("2024-05-01T08:00:00+08:00") == 1714521600.0
    assert parse_time("2024-05-01T00:00:00Z") == 1714521600.0
    assert parse_time(1714521600.25) == 1714521600.25


def test_files_gzip_and_format_sniffing(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(line() + b"\n" + line(start=1714521700) + b"\n")
    packed = tmp_path / "b.csv.gz"
    row = ('"","13800000001","13900000002","default","","SIP/gw-00000001","","Dial","",'
           '"2024-05-01 00:00:30",,"2024-05-01 00:00:40",10,0,"NO ANSWER","DOCUMENTATION"')
    packed.write_bytes(gzip.compress((row + "\n").encode()))
    out = list(read_paths([plain, packed], "auto", NORM))
    assert [c.start for c in out if isinstance(c, Call)] == [1714521600.0, 1714521630.0,
                                                             1714521700.0]


def test_stdin_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(line() + b"\n")))
    monkeypatch.setattr("sys.stdin", fake)
    assert len([r for r in read_path("-", "auto", NORM) if isinstance(r, Call)]) == 1


def test_event_time_order_reorders_within_slack_and_keeps_everything() -> None:
    starts = [100.0, 90.0, 95.0, 300.0, 250.0, 1000.0, 10.0]
    calls = [Call("+1", "+2", t, 0, False) for t in starts]
    out = [c.start for c in event_time_order(calls, slack_s=120, chunk=2)]
    assert sorted(out) == sorted(starts)  # nothing lost
    assert out[:5] == [90.0, 95.0, 100.0, 250.0, 300.0]
    assert out[5:] == [10.0, 1000.0]  # later than the slack: passed on, not dropped


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_json_reader(data: bytes) -> None:
    for record in read_json_lines(data.split(b"\n"), NORM):
        assert isinstance(record, Call | Rejected)
        if isinstance(record, Rejected):
            assert record.reason in REJECT_REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["caller", "callee", "start", "duration", "answered", "ring", "id",
                         "trunk", "x"]), inner, max_size=8),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_values_never_crash(value: object) -> None:
    try:
        data = orjson.dumps(value)
    except TypeError:
        return
    for record in decode_json_value(data, NORM):
        assert isinstance(record, Call | Rejected)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["caller", "callee", "start", "duration", "answered", "ring", "id", "trunk",
                     "src_ip", "disposition", "extra"]),
    st.none() | st.booleans() | st.integers(-5, 2_000_000_000) | st.floats(allow_nan=False)
    | st.sampled_from(["13800000001", "+8613900000002", "2024-05-01T00:00:00Z", "x", ""]),
    max_size=11))
def test_fast_and_careful_decoding_agree(record: dict) -> None:
    """The C fast path and the careful dict path give the same call or the same rejection."""
    data = orjson.dumps(record)
    careful = READER.from_mapping(orjson.loads(data), "", data)
    fast = READER._fast_call(data)
    if fast is not None:
        assert careful == fast
    [decoded] = decode_json_value(data, NORM)
    assert decoded == careful or (isinstance(decoded, Rejected) and isinstance(careful, Rejected)
                                  and decoded.reason == careful.reason)


def test_array_fast_path_matches_one_by_one() -> None:
    items = [line(), line(caller="13800000002", id=7), line(start="2024-05-01T00:00:00Z")]
    value = b"[" + b",".join(items) + b"]"
    assert decode_json_value(value, NORM) == [decode_json_value(i, NORM)[0] for i in items]


def test_one_bad_element_does_not_change_its_neighbours() -> None:
    items = [line(), b'{"caller": "x"}', line(caller="13800000002", start="2024-05-01T00:00:00Z")]
    out = decode_json_value(b"[" + b",".join(items) + b"]", NORM, "cdr.raw/0@1")
    assert out[0] == decode_json_value(items[0], NORM)[0]
    assert out[2] == decode_json_value(items[2], NORM)[0]
    assert isinstance(out[1], Rejected) and out[1].reason == "missing_field"
    assert out[1].source == "cdr.raw/0@1[1]"


