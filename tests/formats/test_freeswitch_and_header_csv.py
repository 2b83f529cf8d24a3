"""FreeSWITCH mod_cdr_csv (example, default, configured templates) and header CSV (1c, 1d)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from detectors.config import ConfigError, InputSettings, load_settings
from detectors.numbers import NumberNormaliser
from detectors.records import Call, Rejected
from formats.freeswitch import EXAMPLE, FreeSwitch, FreeSwitchWriter, parse_template
from formats.header_csv import HeaderCsv
from formats.reading import read_path

NORM = NumberNormaliser("CN")
FIXTURES = Path(__file__).parent / "fixtures"
SHANGHAI = InputSettings(timezone="Asia/Shanghai")


@pytest.mark.parametrize("name", ["Master-freeswitch-example.csv",
                                  "Master-freeswitch-default.csv"])
def test_hand_written_freeswitch_files_read_by_auto(name: str) -> None:
    out = list(read_path(FIXTURES / name, "auto", NORM, SHANGHAI))
    assert all(isinstance(c, Call) for c in out), out
    answered, withheld, busy, failed = out
    assert (answered.caller, answered.callee, answered.start, answered.duration, answered.ring,
            answered.answered, answered.id) == (
        "+8613800000001", "+8613900000002", 1714521600.0, 30, 4.0, True,
        "6a1c8d4e-0b1f-4c3e-9a55-2f0d6c1e7a01")
    assert withheld.withheld and withheld.ring == 25.0 and not withheld.answered
    assert busy.disposition == "BUSY" and not busy.failed
    assert failed.disposition == "FAILED" and failed.failed


def test_a_template_from_config_is_read_in_its_column_order() -> None:
    template = ('"${destination_number}","${caller_id_number}","${start_stamp}",'
                '"${answer_stamp}","${end_stamp}","${billsec}","${sip_gateway_name}"')
    s = load_settings()
    assert not s.input.freeswitch_template
    reader = FreeSwitch(NORM, template=parse_template(template))
    [call] = reader.read(['"13900000002","13800000001","2024-05-01 00:00:00",'
                          '"2024-05-01 00:00:02","2024-05-01 00:00:12","10","gw-cloud"'])
    assert isinstance(call, Call)
    assert (call.caller, call.callee, call.duration, call.ring, call.trunk) == (
        "+8613800000001", "+8613900000002", 10, 2.0, "gw-cloud")
    with pytest.raises(ValueError, match="lacks"):
        FreeSwitch(NORM, template=("caller_id_number",))


def test_a_template_without_the_needed_variables_is_refused_in_config(tmp_path: Path) -> None:
    bad = tmp_path / "fs.toml"
    bad.write_text('[input]\nfreeswitch_template = \'"${caller_id_name}"\'\n')
    with pytest.raises(ConfigError, match="freeswitch_template"):
        load_settings(bad)


def test_freeswitch_rows_of_another_width_and_bad_values_are_rejected() -> None:
    writer = FreeSwitchWriter(EXAMPLE)
    buf = io.StringIO()
    good = {"caller": "13800000001", "callee": "13900000002", "start": 1714521600.0,
            "duration": 5, "ring": 2.0, "disposition": "ANSWERED"}
    writer.write([good, {**good, "callee": "h"}, {**good, "duration": "5s"},
                  {**good, "start": "yesterday"}], buf)
    lines = buf.getvalue().splitlines() + ['"just","three","columns"']
    out = list(FreeSwitch(NORM).read(lines))
    assert [r.reason if isinstance(r, Rejected) else "call" for r in out] == [
        "call", "not_dialable", "bad_duration", "bad_time", "malformed"]
    assert all(line.startswith('"') and line.endswith('"') for line in lines)  # all quoted


def test_auto_refuses_to_guess_a_header_csv() -> None:
    from formats.sniff import UnknownFormat

    with pytest.raises(UnknownFormat, match="give --format"):
        list(read_path(FIXTURES / "export-header.csv", "auto", NORM))


def test_header_csv_with_a_cgrates_style_column_map(tmp_path: Path) -> None:
    config = tmp_path / "export.toml"
    config.write_text('[input]\ntimezone = "Asia/Shanghai"\n[input.csv_columns]\n'
                      'caller = "~*req.calling_number"\ncallee = "called_number"\n'
                      'start = "setup_time"\nduration = "billsec"\nring = "ring_s"\n'
                      'id = "~*req.0"\ntrunk = "route"\n')
    settings = load_settings(config)
    out = list(read_path(FIXTURES / "export-header.csv", "csv", NORM, settings.input))
    first, withheld, dialplan = out
    assert isinstance(first, Call) and (first.caller, first.start, first.duration, first.ring,
                                        first.id, first.trunk) == (
        "+8613800000001", 1714521600.0, 30, 4.0, "x1", "gw-cloud")
    assert isinstance(withheld, Call) and withheld.withheld and not withheld.answered
    assert isinstance(dialplan, Rejected) and dialplan.reason == "not_dialable"


def test_header_csv_refuses_a_header_without_a_required_column() -> None:
    reader = HeaderCsv(NORM, {"caller": "a", "callee": "b", "start": "c", "duration": "d"})
    [rejected] = reader.read(["a,b,c", "1,2,3"])
    assert rejected.reason == "malformed" and "'d'" in rejected.detail


@pytest.mark.parametrize(("value", "reason"), [
    ("4294967295", "bad_duration"), ("1" * 100, "bad_duration"), ("1e308", "bad_duration"),
    ("１２", "bad_duration"), ("-3", "bad_duration")])
def test_header_csv_values_outside_physical_ranges(value: str, reason: str) -> None:
    reader = HeaderCsv(NORM)
    [rejected] = reader.read(["caller,callee,start,duration",
                              f"13800000001,13900000002,1714521600,{value}"])
    assert isinstance(rejected, Rejected) and rejected.reason == reason


def test_header_csv_time_format_from_config() -> None:
    reader = HeaderCsv(NORM, timezone="Asia/Shanghai", time_format="%d/%m/%Y %H:%M:%S")
    [call] = reader.read(["caller,callee,start,duration",
                          "13800000001,13900000002,01/05/2024 08:00:00,3"])
    assert isinstance(call, Call) and call.start == 1714521600.0
