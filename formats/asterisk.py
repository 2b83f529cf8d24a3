"""Asterisk ``Master.csv`` (cdr_csv, CONTRACT 1b)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any


def _asterisk_time(value: Any) -> tuple[str, float | None]:
    """Master.csv start text (UTC) and epoch seconds, or the raw text if unparseable."""
    t: float | None
    if isinstance(value, int | float) and not isinstance(value, bool):
        t = float(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return value, None
        if dt.tzinfo is None:
            return value, None
        t = dt.timestamp()
    else:
        return "", None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"), t


def _fmt(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def asterisk_row(rec: dict[str, Any], channel_no: int) -> list[str]:
    """One record as the 18 Master.csv columns (times in UTC).

    >>> row = asterisk_row({"caller": "13800000001", "callee": "13900000002",
    ...     "start": 1714521600.0, "duration": 12, "ring": 3.2, "answered": True,
    ...     "trunk": "gw-cloud", "id": "x1", "disposition": "ANSWERED"}, 26)
    >>> len(row), row[5], row[9], row[12], row[13], row[14]
    (18, 'SIP/gw-cloud-0000001a', '2024-05-01 00:00:00', '15', '12', 'ANSWERED')
    """
    src = str(rec.get("caller", "") or "")
    dst = str(rec.get("callee", "") or "")
    start_text, t = _asterisk_time(rec.get("start"))
    duration = rec.get("duration", "")
    ring = rec.get("ring") or 0.0
    trunk = rec.get("trunk") or "unknown"
    disposition = rec.get("disposition") or ("ANSWERED" if rec.get("answered") else "NO ANSWER")
    answered = disposition == "ANSWERED"
    if isinstance(duration, int) and not isinstance(duration, bool) and t is not None:
        billsec = duration
        total = int(round(ring)) + billsec
        answer = _fmt(t + round(ring)) if answered else ""
        end = _fmt(t + total)
        total_text, bill_text = str(total), str(billsec)
    else:  # a malformed record stays malformed
        answer = end = ""
        total_text = bill_text = str(duration)
    uniqueid = rec.get("id") or (f"{int(t)}.{channel_no}" if t is not None else str(channel_no))
    return [
        "", src, dst, "from-trunk", f'"{src}" <{src}>', f"SIP/{trunk}-{channel_no:08x}",
        f"SIP/core-out-{channel_no + 1:08x}" if disposition != "FAILED" else "",
        "Dial", f"SIP/core-out/{dst},60", start_text, answer, end, total_text, bill_text,
        disposition, "DOCUMENTATION", uniqueid, "",
    ]


def write_asterisk_csv(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Asterisk Master.csv (CONTRACT 1b): no header, 18 quoted columns; returns rows written."""
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    n = 0
    for n, rec in enumerate(records, 1):
        writer.writerow(asterisk_row(rec, 2 * n))
    return n


