"""The header CSV reader's fast path gives the calls its careful path gives.

:meth:`formats.header_csv.HeaderCsv._fast_call` is a speed-up only: the same
rows read with it and with it refusing every row (so that each goes through
the dict and the JSON checks) give the same calls and rejections, hostile
values included, for the identity column map, a renamed and reordered one, and
one with a time format.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.header_csv import FIELDS, HeaderCsv, write_header_csv
from tests.formats.test_asterisk_fast_path import TEXT, written_field

from .helpers import same

NORM = NumberNormaliser("CN")
RENAMED = {"caller": "~*req.a_number", "callee": "b_number", "start": "setup",
           "duration": "billsec", "answered": "ok", "ring": "~*req.ringing", "id": "~*req.0",
           "trunk": "route", "disposition": "status"}
#: (column map, strptime format or "", how the writer names the columns)
MAPS: list[tuple[Mapping[str, str], str, Mapping[str, str] | None]] = [
    ({name: name for name in FIELDS}, "", None),
    (RENAMED, "", {"caller": "a_number", "callee": "b_number", "start": "setup",
                   "duration": "billsec", "answered": "ok", "ring": "ringing", "id": "id",
                   "trunk": "route", "src_ip": "src_ip", "disposition": "status"}),
    ({"caller": "callee", "callee": "caller", "start": "start", "duration": "duration"},
     "%Y-%m-%d %H:%M:%S", None),
]
RECORDS: list[dict[str, Any]] = [
    {"caller": ("anonymous", f" 138{i:08d} ", f"+86138{i:08d}")[i % 3], "callee": f"139{i:08d}",
     "start": (1714521600.0 + i, f"2024-05-01 00:{i % 60:02d}:{i % 60:02d}",
               "2024-05-01T08:00:00+08:00", 1714521600 + i)[i % 4],
     "duration": i % 5 * 7, "ring": (3.5, 0, None)[i % 3],
     "answered": (True, False, None, "yes", "N", " TRUE ")[i % 6],
     "id": (f"id{i}", "", None)[i % 3],
     "trunk": "gw-cloud" if i % 2 else None, "src_ip": "192.0.2.7", "disposition": "ANSWERED"}
    for i in range(120)]
HOSTILE_VALUES = st.sampled_from([
    "", " ", "2024-05-01 00:00:00", "2024-05-01 00:00:²³", "2024-05-01T00:00:00+08:00",
    "2024-05-01T00:00:00", "1714521600.5", "1e400", "nan", "-inf", "1850-01-01 00:00:00",
    " 7 ", "7.0", "4_2", "+7", "-1", "86401", "999999999", "1" * 12, "３", "²", "0.5", "inf",
    "true", "FALSE", "Yes", "maybe", "anonymous", " Unknown ", "s", "+8613900000002",
    "13800000001", "\u3000", "\x1f",
]) | TEXT


def written(columns: Mapping[str, str] | None, records: list[dict[str, Any]]) -> list[str]:
    out = io.StringIO()
    write_header_csv(records, out, columns)
    return out.getvalue().splitlines()


@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[int, list[str]]:
    """A column map (its place in MAPS) and a header with a few rows, fields made hostile."""
    which = draw(st.integers(0, len(MAPS) - 1))
    header, *rows = written(MAPS[which][2], RECORDS)
    lines = [header]
    for _ in range(draw(st.integers(1, 5))):
        fields = rows[draw(st.integers(0, len(rows) - 1))].split(",")
        for _ in range(draw(st.integers(0, 3))):
            where = draw(st.integers(0, len(fields) - 1))
            fields[where] = draw(written_field() if draw(st.booleans()) else HOSTILE_VALUES)
        if draw(st.integers(0, 5)) == 0:
            fields = fields[:-1] if draw(st.booleans()) else [*fields, draw(written_field())]
        lines.append(",".join(fields))
    return which, lines


def read_all(which: int, lines: list[str]) -> list[Call | Rejected]:
    columns, time_format, _ = MAPS[which]
    return list(HeaderCsv(NORM, columns, "Asia/Shanghai", time_format).read(lines, "cdr.csv"))


def read_carefully(which: int, lines: list[str], monkeypatch: pytest.MonkeyPatch
                   ) -> list[Call | Rejected]:
    """The records of ``lines`` with the fast path refusing every row."""
    with monkeypatch.context() as patch:
        patch.setattr(HeaderCsv, "_fast_call", lambda self, fields: None)
        return read_all(which, lines)


@settings(max_examples=1000, deadline=None)
@given(hostile_file())
def test_hostile_rows_read_the_same_with_and_without_the_fast_path(
        file: tuple[int, list[str]]) -> None:
    which, lines = file
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert same(read_all(which, lines), read_carefully(which, lines, monkeypatch))


@pytest.mark.parametrize("which", range(len(MAPS)))
def test_written_days_read_the_same_with_and_without_the_fast_path(
        which: int, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = written(MAPS[which][2], [*RECORDS, {"caller": "x", "callee": "s", "start": "late",
                                                "duration": "x"}])
    fast = read_all(which, lines)
    assert sum(isinstance(r, Call) for r in fast) > len(RECORDS) // 2
    assert same(fast, read_carefully(which, lines, monkeypatch))


def test_the_fast_path_reads_the_usual_rows() -> None:
    """Not vacuous: plain rows of every map are read by the fast path itself."""
    for which, (columns, time_format, names) in enumerate(MAPS):
        reader = HeaderCsv(NORM, columns, "Asia/Shanghai", time_format)
        header, *rows = written(names, RECORDS)
        index, problem = reader._index(header.split(","))
        assert not problem
        taken = []
        for row in rows:
            fields = row.split(",")
            taken.append(reader._fast_call(tuple(fields[index[f]] if f in index else ""
                                                 for f in FIELDS)))
        assert sum(c is not None for c in taken) > len(rows) // 8, which
