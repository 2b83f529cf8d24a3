"""Switch time stamps: ``YYYY-MM-DD HH:MM:SS`` in a configured zone, to epoch seconds.

Asterisk and FreeSWITCH write local wall-clock time unless told otherwise, so
the zone comes from configuration (``input.timezone``).  Conversions are cached
per minute (a day of CDRs has at most 1,440 distinct minutes) and per time
stamp (a busy switch writes the same second on several rows).

>>> times = LocalTimes("Asia/Shanghai")
>>> times.epoch("2024-05-01 08:00:30"), times.epoch("2024-05-01 08:00:²³"), times.epoch("")
(1714521630.0, None, None)
>>> format_local(1714521630.0, "Asia/Shanghai")
'2024-05-01 08:00:30'
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from formats.fields import REMEMBERED, remember


class LocalTimes:
    """Epoch seconds of switch time stamps in ``timezone`` (an IANA name)."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._minutes: dict[str, float] = {}  # "YYYY-MM-DD HH:MM" -> epoch seconds
        self._stamps: dict[str, float] = {}  # whole stamps already converted

    def epoch(self, stamp: str) -> float | None:
        """Epoch seconds of ``stamp``, or None when it is not a time stamp in ASCII digits.

        A stamp seen before is one dict look-up: FreeSWITCH rows carry three
        stamps, and a day repeats each second on several rows.
        """
        known = self._stamps.get(stamp)
        if known is not None:
            return known
        epoch = self.convert(stamp)
        if epoch is not None:
            remember(self._stamps, stamp, epoch)
        return epoch

    def convert(self, stamp: str) -> float | None:
        """:meth:`epoch` without remembering the stamp (for a caller that remembers its own)."""
        if len(stamp) == 19 and stamp[16] == ":" and stamp.isascii():
            seconds = stamp[17:]
            if not seconds.isdigit():
                return None
            minute = stamp[:16]
            base = self._minutes.get(minute)
            if base is None:
                try:
                    base = datetime.fromisoformat(minute).replace(tzinfo=self._tz).timestamp()
                except ValueError:
                    return None
                if len(self._minutes) > REMEMBERED:
                    self._minutes.clear()
                self._minutes[minute] = base
            return base + int(seconds)
        stamp = stamp.strip()
        if not stamp or not stamp.isascii() or not stamp[:1].isdigit():
            return None
        try:
            started = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if started.tzinfo is None:
            started = started.replace(tzinfo=self._tz)
        return started.timestamp()


def format_local(t: float, timezone: str = "UTC") -> str:
    """``YYYY-MM-DD HH:MM:SS`` of epoch seconds ``t`` in ``timezone``, as switches write it."""
    return datetime.fromtimestamp(t, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
