"""Asterisk Master.csv as Asterisk writes it (cdr_csv.c): every case of issue 10 and 11."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from detectors.numbers import NumberNormaliser
from detectors.records import WITHHELD, Call, Rejected
from formats.asterisk import Asterisk, AsteriskWriter, asterisk_trunk
from formats.reading import read_path

NORM = NumberNormaliser("CN")
FIXTURES = Path(__file__).parent / "fixtures"
BASE = ('"","13800000001","13900000002","from-trunk","""A"" <13800000001>",'
        '"SIP/gw-cloud-0000001a","SIP/core-0000001b","Dial","SIP/core/13900000002,60",'
        '"{start}",{answer},"2024-05-01 00:00:20",{duration},{billsec},"{disposition}",'
        '"DOCUMENTATION"')


def row(extra: str = "", start: str = "2024-05-01 00:00:00", duration: str = "20",
        billsec: str = "12", disposition: str = "ANSWERED",
        answer: str = '"2024-05-01 00:00:08"', **fields: str) -> str:
    text = BASE.format(start=start, duration=duration, billsec=billsec,
                       disposition=disposition, answer=answer)
    for name, value in fields.items():
        column = {"src": 1, "dst": 2, "channel": 5}[name]
        parts = text.split('","')
        parts[column] = value
        text = '","'.join(parts)
    return text + extra


def read(lines: list[str], timezone: str = "UTC") -> list[Call | Rejected]:
    return list(Asterisk(NORM, timezone).read(lines, "Master.csv"))


# 16 base columns, then uniqueid, userfield, and peeraccount/linkedid/sequence (cdr_csv.c)
LAYOUTS = {
    16: "",
    17: ',"1714521600.7"',
    18: ',"1714521600.7",""',
    19: ',"","1714521600.7",0',
    20: ',"1714521600.7","","1714521600.7",0',
    21: ',"1714521600.7","","","1714521600.7",0',
}


@pytest.mark.parametrize("columns", sorted(LAYOUTS))
def test_every_layout_from_16_to_21_columns_reads(columns: int) -> None:
    [call] = read([row(LAYOUTS[columns])])
    assert isinstance(call, Call), call
    assert (call.caller, call.callee, call.start, call.duration, call.ring, call.answered,
            call.trunk) == ("+8613800000001", "+8613900000002", 1714521600.0, 12, 8.0, True,
                            "gw-cloud")
    if columns >= 17:
        assert call.id is not None and call.id.startswith("1714521600.7#")


def test_the_layout_is_the_first_records_and_other_counts_are_malformed() -> None:
    out = read([row(LAYOUTS[18]), row(LAYOUTS[21]), row(LAYOUTS[18])])
    assert [type(r).__name__ for r in out] == ["Call", "Rejected", "Call"]
    assert out[1].reason == "malformed" and "expected 18 columns" in out[1].detail
    [bad] = read(['"too","few"'])
    assert isinstance(bad, Rejected) and "16 to 21" in bad.detail


def test_17_columns_tell_a_userfield_from_a_uniqueid() -> None:
    [with_id] = read([row(',"1714521600.7"')])
    [with_userfield] = read([row(',"vip customer"')])
    assert isinstance(with_id, Call) and with_id.id.startswith("1714521600.7#")
    assert isinstance(with_userfield, Call) and with_userfield.id.startswith("#")


def test_legs_sharing_a_uniqueid_are_kept_apart_and_a_repeat_is_one_id() -> None:
    legs = [row(',"1714521600.7","","","1714521600.7",0'),
            row(',"1714521600.7","","","1714521600.7",1', dst="13900000003"),
            row(',"1714521600.7","","","1714521600.7",0')]  # the first delivered again
    ids = [c.id for c in read(legs) if isinstance(c, Call)]
    assert ids == ["1714521600.7#0", "1714521600.7#1", "1714521600.7#0"]
    # without a sequence column the row itself tells legs apart
    legs18 = [row(',"1714521600.7",""'), row(',"1714521600.7",""', dst="13900000003"),
              row(',"1714521600.7",""')]
    ids18 = [c.id for c in read(legs18) if isinstance(c, Call)]
    assert len(set(ids18)) == 2 and ids18[0] == ids18[2]


@pytest.mark.parametrize("src", ["", "anonymous", "Anonymous", "unknown", "Restricted",
                                 "private", "UNAVAILABLE"])
def test_withheld_callers_are_calls_not_bad_numbers(src: str) -> None:
    [call] = read([row(LAYOUTS[18], src=src)])
    assert isinstance(call, Call) and call.withheld and call.caller == WITHHELD


@pytest.mark.parametrize("disposition", ["NO ANSWER", "BUSY"])
def test_not_answered_with_billsec_is_ringing_not_talk(disposition: str) -> None:
    [call] = read([row(LAYOUTS[18], duration="40", billsec="35", disposition=disposition,
                       answer="")])
    assert isinstance(call, Call)
    assert (call.answered, call.duration, call.ring) == (False, 0, 40.0)


@pytest.mark.parametrize("dst", ["s", "t", "h", "i", "*97", "100", "8001"])
def test_dialplan_names_and_extensions_are_not_dialable(dst: str) -> None:
    [rejected] = read([row(LAYOUTS[18], dst=dst)])
    assert isinstance(rejected, Rejected) and rejected.reason == "not_dialable"


def test_an_extension_calling_out_is_not_dialable_and_garbage_is_a_bad_number() -> None:
    [ext] = read([row(LAYOUTS[18], src="8001")])
    [garbage] = read([row(LAYOUTS[18], dst="13900-hello")])
    assert (ext.reason, garbage.reason) == ("not_dialable", "bad_number")


@pytest.mark.parametrize(("channel", "trunk"), [
    ("SIP/gw-cloud-0000001a", "gw-cloud"), ("PJSIP/trunk7-00000003", "trunk7"),
    ("SIP/x-0000001a", "x"), ("PJSIP/x-00000003", "x"), ("TELCHAN/5/22", "TELCHAN/5"),
    ("DAHDI/1-1", "DAHDI/1"), ("Local/100@from-internal-00000012;1", None),
    ("IAX2/branch-office-1234", "branch-office"), ("SIP/plainpeer", "plainpeer"), ("", None),
])
def test_trunk_is_the_peer_without_per_call_suffixes(channel: str, trunk: str | None) -> None:
    assert asterisk_trunk(channel) == trunk


@pytest.mark.parametrize(("changes", "reason"), [
    ({"start": "2024-05-01 00:00:²³"}, "bad_time"),  # isdigit() is true for superscripts
    ({"start": "٢٠٢٤-05-01 00:00:00"}, "bad_time"),  # Arabic-Indic digits
    ({"start": "1900-05-01 00:00:00"}, "bad_time"),
    ({"start": "9999-05-01 00:00:00"}, "bad_time"),
    ({"start": "01/05/2024"}, "bad_time"),
    ({"billsec": "１２"}, "bad_duration"),  # full-width digits
    ({"billsec": "4294967295", "duration": "4294967295"}, "bad_duration"),
    ({"billsec": "1" * 100, "duration": "1" * 100}, "bad_duration"),
    ({"billsec": "90000", "duration": "90000"}, "bad_duration"),  # longer than a day
    ({"billsec": "30", "duration": "20"}, "bad_duration"),
    ({"billsec": "x"}, "bad_duration"),
])
def test_impossible_values_are_rejected_with_a_reason(changes: dict, reason: str) -> None:
    [rejected] = read([row(LAYOUTS[18], **changes)])
    assert isinstance(rejected, Rejected) and rejected.reason == reason, rejected


def test_non_ascii_digits_in_numbers_are_bad_numbers() -> None:
    [rejected] = read([row(LAYOUTS[18], src="١٣٨٠٠٠٠٠٠٠١")])
    assert rejected.reason == "bad_number" and "ASCII" in rejected.detail


def test_a_newline_inside_a_quoted_field_is_one_record() -> None:
    text = row(LAYOUTS[18]).replace('"""A"" <', '"""A\nB"" <')
    out = read(text.split("\n"))
    assert len(out) == 1 and isinstance(out[0], Call)


def test_an_unclosed_quote_costs_its_own_line_only() -> None:
    out = read([row(LAYOUTS[18]).replace('"Dial"', '"Di"al"'), row(LAYOUTS[18]),
                row(LAYOUTS[18], dst="13900000003")])
    assert [type(r).__name__ for r in out] == ["Rejected", "Call", "Call"]


def test_hand_written_asterisk_13_file_with_bom_crlf_and_legs() -> None:
    out = list(read_path(FIXTURES / "Master-asterisk13.csv", "auto", NORM))
    calls = [c for c in out if isinstance(c, Call)]
    reasons = [r.reason for r in out if isinstance(r, Rejected)]
    assert reasons == ["not_dialable", "not_dialable"]  # dst "s"; src extension 8001
    assert len(calls) == 5  # both legs of 1714521600.26, withheld x2, the multi-line clid
    first, second = calls[0], calls[1]
    assert first.id != second.id and first.answered and not second.answered
    assert [c.withheld for c in calls] == [False, False, True, True, False]
    assert calls[3].trunk == "TELCHAN/5" and calls[4].trunk == "DAHDI/1"
    assert calls[4].ring == 40.0 and calls[4].duration == 0  # NO ANSWER to voicemail


def test_a_wrong_time_zone_is_warned_once_with_the_offset(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    lines = (FIXTURES / "Master-asterisk13.csv").read_bytes().splitlines()
    with caplog.at_level(logging.WARNING, "dialguard.formats"):
        list(Asterisk(NORM, "UTC").read(lines, "Master.csv"))
    [warning] = caplog.records
    assert "+8.00 h" in warning.getMessage() and "UTC+8.00" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "dialguard.formats"):
        calls = [c for c in Asterisk(NORM, "Asia/Shanghai").read(lines) if isinstance(c, Call)]
    assert not caplog.records and calls[0].start == 1714521600.0


def test_sixteen_column_file_in_local_time_and_a_repeated_row() -> None:
    from detectors.config import InputSettings

    out = list(read_path(FIXTURES / "Master-asterisk14.csv", "auto", NORM,
                         InputSettings(timezone="Asia/Shanghai")))
    assert all(isinstance(c, Call) for c in out) and len(out) == 3
    assert out[0].start == 1714521600.0 and out[1].disposition == "BUSY"
    assert out[1].id == out[2].id != out[0].id  # the row delivered twice is one record


@pytest.mark.parametrize("columns", sorted(LAYOUTS))
def test_the_writer_writes_what_asterisk_writes(columns: int) -> None:
    buf = io.StringIO()
    records = [{"caller": "13800000001", "callee": "13900000002", "start": 1714521600.0,
                "duration": 0, "ring": 6.4, "answered": False, "trunk": "gw-cloud",
                "disposition": "NO ANSWER"}]
    AsteriskWriter(columns).write(records, buf)
    text = buf.getvalue()
    assert ',"2024-05-01 00:00:00",,"2024-05-01 00:00:06",6,0,"NO ANSWER",' in text
    [call] = read(text.splitlines())
    assert isinstance(call, Call) and call.ring == 6.0 and not call.answered


def test_kafka_message_may_carry_a_line_or_a_block() -> None:
    reader = Asterisk(NORM)
    block = "\r\n".join([row(LAYOUTS[18]), row(LAYOUTS[18], dst="s")]).encode()
    out = reader.decode(b"\xef\xbb\xbf" + block, "cdr.raw/0@7")
    assert [type(r).__name__ for r in out] == ["Call", "Rejected"]
    assert out[1].source == "cdr.raw/0@7:2"


def test_a_doubled_quote_in_a_field_read_reads_the_same_on_every_row() -> None:
    """Every field quoted, a quote doubled inside the channel: the first row (which fixes
    the layout) and the rows after it are read alike, as csv reads them."""
    def row(n: int) -> str:
        return (f'"","1380000000{n}","13900000002","default","","SIP/gw-""x""-0000001a","",'
                f'"Dial","","2024-05-01 00:00:0{n}","2024-05-01 00:00:0{n}",'
                f'"2024-05-01 00:00:09","9","4","ANSWERED","DOCUMENTATION","1714521600.{n}",""')
    calls = Asterisk(NumberNormaliser("CN")).read([row(1), row(2), row(3)])
    assert [c.trunk for c in calls] == ['gw-"x"'] * 3
