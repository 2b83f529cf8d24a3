"""Every reader, fed anything: rejected with a reason or accepted, never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.numbers import NumberNormaliser
from detectors.records import REJECT_REASONS, Call, Rejected
from formats.registry import FORMATS, make_reader

NORM = NumberNormaliser("CN")
READERS = {name: make_reader(name, NORM) for name in FORMATS}

# Lines that look like each format, with any field replaced by hostile text.
HOSTILE = st.sampled_from([
    "", '"', '""', ",", "\n", "\r", "\x00", "²³", "١٢", "１２", "1" * 100, "4294967295", "-1",
    "1e308", "nan", "anonymous", "s", "100", "[" * 50, "{" * 50, "\ufeff", "9999-01-01 00:00:00",
    "2024-05-01 00:00:00", "13800000001", "+8613900000002", "ANSWERED", "NO ANSWER",
    "SIP/gw-0000001a", "1714521600.1",
])
FIELD = HOSTILE | st.text(max_size=20)


def csv_line(fields: list[str], quote_all: bool) -> str:
    return ",".join('"' + f.replace('"', '""') + '"' if quote_all or not f.isdigit() else f
                    for f in fields)


def check(records: list[Call | Rejected]) -> None:
    for record in records:
        assert isinstance(record, Call | Rejected)
        if isinstance(record, Rejected):
            assert record.reason in REJECT_REASONS and record.detail
        else:
            assert record.caller == "" or record.caller.startswith("+")
            assert 0 <= record.duration <= 86400


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.binary(max_size=600))
def test_random_bytes_never_raise(name: str, data: bytes) -> None:
    reader = READERS[name]
    check(list(reader.read(data.split(b"\n"), "fuzz")))
    check(reader.decode(data, "cdr.raw/0@0"))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([13, 15, 16, 17, 18, 19, 20, 21]), st.booleans(),
       st.lists(st.lists(FIELD, min_size=21, max_size=21), min_size=1, max_size=4),
       st.sampled_from(sorted(FORMATS)))
def test_switch_shaped_lines_never_raise(columns: int, quote_all: bool, rows: list[list[str]],
                                         name: str) -> None:
    lines = [csv_line(row[:columns], quote_all) for row in rows]
    reader = READERS[name]
    check(list(reader.read(lines, "fuzz")))
    check(reader.decode("\r\n".join(lines).encode("utf-8", "surrogatepass")))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["caller", "callee", "start", "duration", "answered", "ring", "id",
                         "trunk", "src_ip", "disposition", "x"]), inner, max_size=8),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(0, 3000))
def test_json_values_and_deep_nesting_never_raise(value: object, depth: int) -> None:
    import orjson

    try:
        data = orjson.dumps(value)
    except TypeError:
        return
    reader = READERS["json"]
    check(reader.decode(data))
    check(reader.decode(b"[" * depth + data + b"]" * depth))
    check(list(reader.read([data, b"{" * depth, data])))
