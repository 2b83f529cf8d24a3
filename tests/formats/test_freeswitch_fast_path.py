"""The FreeSWITCH reader's row expression reads every row it matches exactly as split_row does.

:class:`formats.freeswitch.Layout`'s expression is a speed-up only: the same
rows read with it and forced through :func:`formats.csv_rows.split_row` (it
never matching) give the same calls and rejections, hostile rows included,
for the ``example`` and ``default`` templates and configured ones.
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import formats.freeswitch
from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.csv_rows import split_row
from formats.freeswitch import DEFAULT, EXAMPLE, FreeSwitch, FreeSwitchWriter, Layout
from tests.formats.test_asterisk_fast_path import TEXT, written_field

from .helpers import same

NORM = NumberNormaliser("CN")
#: a configured template: other order, trunk and address read, a variable written twice
CONFIGURED = ("destination_number", "caller_id_number", "start_stamp", "answer_stamp",
              "end_stamp", "billsec", "sip_gateway_name", "uuid", "network_addr",
              "sip_received_ip", "hangup_cause", "caller_id_number")
TEMPLATES = (EXAMPLE, DEFAULT, CONFIGURED)
RECORDS = [{"caller": f"138{i % 97:08d}", "callee": f"139{i:08d}", "start": 1714521600.0 + i,
            "duration": i % 5 * 7, "ring": float(i % 4), "trunk": "gw-cloud",
            "src_ip": "192.0.2.7", "disposition": ("ANSWERED", "NO ANSWER", "BUSY", "FAILED",
                                                    "CONGESTION")[i % 5]}
           for i in range(200)]
HOSTILE_VALUES = st.sampled_from([
    "2024-05-01 00:00:00", "2024-05-01 00:00:²³", "2024-05-01T00:00:00+08:00", " 7", "1e3",
    "86401", "999999999", "anonymous", " Unknown ", "s", "+8613900000002", "NORMAL_CLEARING",
    "USER_BUSY", "1850-01-01 00:00:00"]) | TEXT


def written_row(template: tuple[str, ...], i: int) -> list[str]:
    """Record ``i`` of RECORDS as mod_cdr_csv writes it with ``template``, field by field."""
    out = io.StringIO()
    FreeSwitchWriter(template).write([RECORDS[i]], out)
    return split_row(out.getvalue().rstrip("\n"), len(template))


@st.composite
def hostile_row(draw: st.DrawFn, template: tuple[str, ...]) -> str:
    """A row of ``template``, some fields replaced by hostile ones, maybe a column more or less."""
    fields = ['"' + f.replace('"', '""') + '"' for f in written_row(template, draw(
        st.integers(0, len(RECORDS) - 1)))]
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(template) - 1))
        if draw(st.booleans()):
            fields[where] = draw(written_field())
        else:
            fields[where] = '"' + draw(HOSTILE_VALUES).replace('"', '""') + '"'
    if draw(st.integers(0, 3)) == 0:
        fields = fields[:-1] if draw(st.booleans()) else [*fields, draw(written_field())]
    return ",".join(fields)


@st.composite
def hostile_lines(draw: st.DrawFn) -> tuple[tuple[str, ...], list[str]]:
    """A template and a few hostile rows of it."""
    template = draw(st.sampled_from(TEMPLATES))
    return template, draw(st.lists(hostile_row(template), min_size=1, max_size=5))


@st.composite
def written_rows(draw: st.DrawFn) -> tuple[tuple[str, ...], str]:
    """A template and a row for it: hostile, or with every field written any which way."""
    template = draw(st.sampled_from(TEMPLATES))
    if draw(st.booleans()):
        return template, draw(hostile_row(template))
    columns = len(template)
    fields = draw(st.lists(written_field(), min_size=columns - 1, max_size=columns + 1))
    return template, ",".join(fields)


def read_all(template: tuple[str, ...], lines: list[str]) -> list[Call | Rejected]:
    configured = None if template in (EXAMPLE, DEFAULT) else template
    return list(FreeSwitch(NORM, "Asia/Shanghai", template=configured).read(lines, "Master.csv"))


def read_without_expression(template: tuple[str, ...], lines: list[str],
                            monkeypatch: pytest.MonkeyPatch) -> list[Call | Rejected]:
    """The records of ``lines`` with the row expression never matching: split_row alone."""
    with monkeypatch.context() as patch:
        patch.setattr(formats.freeswitch, "row_pattern", lambda *args, **kw: re.compile("(?!)"))
        return read_all(template, lines)


@settings(max_examples=1000, deadline=None)
@given(written_rows())
def test_a_row_the_expression_matches_splits_as_split_row_splits_it(
        row: tuple[tuple[str, ...], str]) -> None:
    template, text = row
    layout = Layout(template)
    match = layout.row_pattern.fullmatch(text)
    if match is None:
        return
    fields = split_row(text, layout.width)
    assert len(fields) == layout.width
    assert match.group(*layout.order) == layout.pick([*fields, ""])


@pytest.mark.parametrize("template", TEMPLATES)
def test_freeswitch_rows_are_matched_by_the_expression(template: tuple[str, ...]) -> None:
    layout = Layout(template)
    for i in range(len(RECORDS)):
        text = ",".join('"' + f + '"' for f in written_row(template, i))
        match = layout.row_pattern.fullmatch(text)
        assert match is not None
        assert layout.fields(text) == layout.pick([*split_row(text, layout.width), ""])


@settings(max_examples=300, deadline=None)
@given(hostile_lines())
def test_hostile_rows_read_the_same_with_and_without_the_expression(
        lines: tuple[tuple[str, ...], list[str]]) -> None:
    template, rows = lines
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert same(read_all(template, rows), read_without_expression(template, rows,
                                                                      monkeypatch))


@pytest.mark.parametrize("template", TEMPLATES)
def test_written_days_read_the_same_with_and_without_the_expression(
        template: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    FreeSwitchWriter(template, "Asia/Shanghai").write(
        [*RECORDS, {"caller": "anonymous", "callee": "s", "start": "late", "duration": "x"}],
        out)
    lines = out.getvalue().splitlines()
    fast = read_all(template, lines)
    assert sum(isinstance(r, Call) for r in fast) == len(RECORDS)
    assert same(fast, read_without_expression(template, lines, monkeypatch))
