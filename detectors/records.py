"""Call-detail records as the detectors see them, and the rejection of bad input.

A :class:`Call` is one call attempt after decoding and normalisation: both
numbers are E.164 strings, ``start`` is epoch seconds (event time).  Readers
build calls from the CONTRACT encodings; anything that cannot be turned into a
call becomes a :class:`Rejected` value with a short, stable ``reason`` code that
the summary and the metrics count by.

>>> call = Call(caller="+8613800000001", callee="+8613900000002", start=1.7e9,
...             duration=0, answered=False, ring=2.0)
>>> call.failed
False
>>> Call.from_dict(call.to_dict()) == call
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

#: Reason codes for rejected input.  They are metric label values, so the set
#: is closed and small; the free-text ``detail`` carries the specifics.
REJECT_REASONS: tuple[str, ...] = (
    "malformed",  # not decodable at all (bad JSON, wrong column count, bad bytes)
    "not_an_object",  # JSON value that is not an object
    "missing_field",  # a required field is absent
    "bad_number",  # caller or callee cannot be normalised
    "not_dialable",  # a PBX dialplan name or internal extension (s, h, 100), not a subscriber
    "bad_time",  # start is not ISO-8601 with offset nor epoch seconds
    "bad_duration",  # duration not a non-negative integer
    "bad_field",  # an optional field has the wrong type
    "truncated",  # the input ended inside a compressed stream: what followed is missing
)

#: ``Call.caller`` of a call whose caller withheld their number (CONTRACT 1a)
WITHHELD = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that could not become a call, with the reason it was refused."""

    reason: str
    detail: str
    raw: bytes | str = b""
    #: where the input came from, e.g. ``"day.jsonl:1207"`` or ``"cdr.raw/3@1551"``
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        raw = self.raw.decode("utf-8", "replace") if isinstance(self.raw, bytes) else self.raw
        return {"reason": self.reason, "detail": self.detail, "source": self.source, "raw": raw}


class Call(msgspec.Struct, array_like=True, gc=False):
    """One normalised call attempt.

    ``caller`` is :data:`WITHHELD` (empty) when the caller withheld their number.
    ``duration`` is billable talk seconds (0 when unanswered).  ``ring`` is the
    seconds from setup to answer or abandon, or ``None`` when the source did not
    say.  ``disposition`` is the switch's own word where it gave one
    (Asterisk: ``ANSWERED``, ``NO ANSWER``, ``BUSY``, ``FAILED``, ``CONGESTION``).

    A :class:`msgspec.Struct`: cheap to build (readers make one per record), and
    it travels between stream stages as a MessagePack array of its fields
    (``array_like``), decoded straight back into calls.  ``gc=False``: a call
    holds only strings and numbers, so the garbage collector need not track it.
    """

    caller: str
    callee: str
    start: float
    duration: int
    answered: bool
    ring: float | None = None
    id: str | None = None
    trunk: str | None = None
    src_ip: str | None = None
    disposition: str | None = None

    @property
    def withheld(self) -> bool:
        """The caller withheld their number: the call has no caller to keep state for.

        >>> Call(WITHHELD, "+8613900000002", 1.7e9, 0, False).withheld
        True
        """
        return self.caller == WITHHELD

    @property
    def failed(self) -> bool:
        """The call never reached the callee (unallocated, unreachable, congestion)."""
        if self.disposition is not None:
            return self.disposition in ("FAILED", "CONGESTION")
        return not self.answered and self.ring is not None and self.ring < 0.5

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "caller": self.caller,
            "callee": self.callee,
            "start": self.start,
            "duration": self.duration,
            "answered": self.answered,
        }
        for name in ("ring", "id", "trunk", "src_ip", "disposition"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Call:
        """Rebuild a call from :meth:`to_dict` output (already normalised)."""
        return cls(
            caller=data["caller"],
            callee=data["callee"],
            start=float(data["start"]),
            duration=int(data["duration"]),
            answered=bool(data["answered"]),
            ring=data.get("ring"),
            id=data.get("id"),
            trunk=data.get("trunk"),
            src_ip=data.get("src_ip"),
            disposition=data.get("disposition"),
        )
