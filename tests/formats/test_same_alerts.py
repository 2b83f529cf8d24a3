"""Every format carries the same calls: a simulated day written in each gives JSON's alerts.

Switches write whole seconds, so "the JSON of the same calls" is the day's calls
as a switch would keep them (start and ring to the second); the FreeSWITCH
templates carry no trunk or source address, so neither does its JSON.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.config import InputSettings, load_settings
from detectors.engine import Detector
from detectors.numbers import NumberNormaliser
from detectors.records import Call
from formats.csv_rows import split_row
from formats.files import open_text_for_writing
from formats.header_csv import write_header_csv
from formats.json_lines import JsonLines
from formats.reading import read_paths
from formats.registry import writer
from streams.replay import replay
from testbed.simulation import SimConfig, simulate

NORM = NumberNormaliser("CN")
SEED = 4
#: a header CSV export with names of its own, mapped CGRateS-style in configuration
EXPORT_COLUMNS = {"caller": "calling_number", "callee": "called_number", "start": "setup_time",
                  "duration": "billsec", "answered": "answered", "ring": "ring_s",
                  "id": "cdr_id", "trunk": "route", "src_ip": "peer_ip",
                  "disposition": "disposition"}
VARIANTS = [f"asterisk{n}" for n in range(16, 22)] + ["freeswitch", "freeswitch-default", "csv"]


@pytest.fixture(scope="module")
def day() -> Any:
    return simulate(SimConfig.preset("small", hours=2), seed=SEED)


@pytest.fixture(scope="module")
def switch_calls(day: Any) -> list[dict[str, Any]]:
    """The day's calls as a switch keeps them: whole-second starts and rings."""
    out = []
    for call in JsonLines(NORM).read(orjson.dumps(r) for r in day.records()):
        if isinstance(call, Call):
            record = call.to_dict()
            record["start"] = float(int(call.start))
            record["ring"] = float(round(call.ring or 0.0))
            out.append(record)
    return out


_JSON_RUNS: dict[tuple[str, bool], tuple[list, Any]] = {}


def json_run(tmp_path: Path, records: list[dict[str, Any]], key: tuple[str, bool]
             ) -> tuple[list, Any]:
    """Alerts and summary of the JSON of ``records`` (computed once per kind of records)."""
    if key not in _JSON_RUNS:
        path = tmp_path / "day.jsonl"
        write(path, "json", records)
        _JSON_RUNS[key] = alerts_of(path, "json")
    return _JSON_RUNS[key]


def alerts_of(path: Path, fmt: str, settings: InputSettings | None = None) -> tuple[list, Any]:
    alerts: list[bytes] = []
    records = read_paths([path], fmt, NORM, settings)
    summary = replay(records, Detector(load_settings()), lambda a: alerts.append(a.to_json()))
    return alerts, summary


def write(path: Path, variant: str, records: list[dict[str, Any]]) -> None:
    with open_text_for_writing(path, compress=False) as out:
        if variant == "csv":
            write_header_csv(records, out, EXPORT_COLUMNS)
        else:
            writer(variant)(records, out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_day_in_each_format_gives_the_alerts_of_its_json(
        tmp_path: Path, switch_calls: list[dict[str, Any]], variant: str) -> None:
    records = switch_calls
    if variant.startswith("freeswitch"):
        records = [{k: v for k, v in r.items() if k not in ("trunk", "src_ip")}
                   for r in switch_calls]
    path = tmp_path / f"day.{variant}"
    write(path, variant, records)
    settings = None
    if variant == "csv":
        settings = InputSettings(csv_columns={k: f"~*req.{v}" for k, v in
                                              EXPORT_COLUMNS.items()})
    expected, json_summary = json_run(tmp_path, records,
                                      ("switch", variant.startswith("freeswitch")))
    got, summary = alerts_of(path, variant.partition("-")[0].rstrip("0123456789"), settings)
    assert not summary.rejected, summary.rejected
    assert (summary.calls, summary.duplicates, summary.withheld) == (
        json_summary.calls, json_summary.duplicates, json_summary.withheld)
    assert len(expected) > 10
    assert got == expected


@pytest.mark.parametrize("columns", range(16, 22))
def test_the_raw_day_in_each_asterisk_layout_loses_no_leg(tmp_path: Path, day: Any,
                                                          columns: int) -> None:
    """Defects and all: no ``malformed``, every call of the JSON read, legs sharing ids."""
    path = tmp_path / "Master.csv"
    write(path, f"asterisk{columns}", list(day.records()))
    _, json_summary = json_run(tmp_path, list(day.records()), ("raw", False))
    _, summary = alerts_of(path, "asterisk")
    assert "malformed" not in summary.rejected
    assert summary.calls == json_summary.calls
    assert sum(summary.rejected.values()) == sum(json_summary.rejected.values())
    if columns >= 17:
        where = 16 if columns != 19 else 17  # uniqueid, or linkedid
        uniqueids = Counter(split_row(line, columns)[where]
                            for line in path.read_text().splitlines())
        assert max(uniqueids.values()) > 1  # some calls have several legs
