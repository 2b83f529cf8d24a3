"""Per-number online features over event-time sliding windows.

Only numbers that call often get a :class:`NumberState` (the detector keeps a
bare call count and the calls packed for the rest, counted on the state when it is made;
see ``[features].promote_after``).  A state
keeps, for every horizon (say 10 min and 1 h), two adjacent tumbling buckets
of integer counters.  A sliding count is estimated as
``current + previous * (1 - elapsed fraction of current)``: O(1) per call, exact
when calls are evenly spread.  Alongside the counters a number remembers a
fixed ring of its most recent distinct callees (31-bit fingerprints), and how
often each refused, which gives distinct-callee, repeat-after-refusal and
call-back counts without an unbounded set.  Numbers that call a tracked number
enter its ring too, as *contacts*, and so does a callee once a call to it was
answered for ``contact_talk_s``: a callee who is neither is a *stranger*.

The layout is fixed and small: one ``array('i')`` holding the bucket indices
and counters, one ``array('i')`` ring and one ``bytearray`` of refusals of
``recent_callees`` entries each, and a few scalars; under 1 KB in memory even
for the busiest number, and it pickles for Faust tables.

>>> from detectors.config import load_settings
>>> fs = load_settings().features
>>> st = NumberState(fs, first_seen=0.0)
>>> for i in range(30):
...     st.outbound(10.0 * i, 8613900000000 + i * 7919, i % 5 == 0, 3, 1.0, False, fs)
>>> f = st.features(600, now=290.0, fs=fs)
>>> f["attempts"], round(f["answer_ratio"], 2), f["distinct_ratio"]
(30.0, 0.2, 1.0)
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from typing import TYPE_CHECKING

from detectors.dedup import newer_position

if TYPE_CHECKING:
    from detectors.config import FeatureSettings

# Counter slots per horizon bucket.
# Every call is NEW or goes to someone in the ring, a contact or a stranger called again
# (STRANGER_REPEAT): calls to contacts are ATTEMPTS - NEW - STRANGER_REPEAT, no counter.
ATTEMPTS, ANSWERED, SHORT, TALK, RING_ONCE, FAILED, NEW, REPEAT_REFUSED, SEQUENTIAL, INBOUND, \
    CALLBACK, STRANGER_REPEAT = range(12)
N_COUNTERS = 12
_STRIDE = 2 * N_COUNTERS  # current bucket, then previous bucket, per horizon
_ZEROS = array("i", bytes(4 * N_COUNTERS))
_GAP_ALPHA = 0.05  # weight of the newest inter-call gap in the decayed mean/variance
# Each recent-callee slot has one byte: refusals in the low six bits, and two flags.
_MAX_REFUSALS = 60
_REFUSALS = 0x3F
CONTACT_FLAG = 0x80  # they called us, or talked at length with us: not a stranger
INBOUND_ONLY = 0x40  # in the ring because they called us; we have not called them (yet)
_INT_MAX = 2**31 - 1  # counters are 32-bit: they saturate instead of overflowing
_FINGERPRINT_MOD = 2_147_483_629  # largest prime below 2**31


def _read_array(code: str, data: bytes) -> array:
    """An array of ``code`` from little-endian bytes."""
    out = array(code)
    out.frombytes(data)
    if _SWAP:
        out.byteswap()
    return out


def fingerprint(number: int) -> int:
    """A non-zero 31-bit fingerprint of a number's digits (0 marks an empty ring slot)."""
    return number % _FINGERPRINT_MOD or 1


# Scalars live in two small arrays instead of Python objects (a float object costs 24 bytes,
# an array slot 8): the float array ``vals`` ...
NEXT_ROLL, FIRST_SEEN, LAST_SEEN, LAST_CALLEE, GAP_MEAN, GAP_VAR, LAST_ALERT, MODEL_SCORE, \
    APPLIED_OFFSET, APPLIED_INDEX = range(10)
_N_VALS = 10
_N_VALS_V2 = 8  # layout 2 had no applied position
# ... and, after the counters in ``counts``, these whole numbers (offsets from the end).
_RING_POS, _CALLS, _NEXT_JUDGE, _NEXT_SCORE = -4, -3, -2, -1
_N_INTS = 4
# Binary form (:meth:`NumberState.to_bytes`): magic and version, then the lengths of counts,
# ring, trunk and ring id (0xFFFF: none), then counts, vals, ring (little-endian), refusals,
# trunk, ring id.
_MAGIC = b"DGS\x04"  # 4: the ring id (3: the applied input position)
_MAGIC_V3 = b"DGS\x03"  # still read: no ring id
_MAGIC_V2 = b"DGS\x02"  # still read: no ring id, its position is "none applied"
_HEADER = struct.Struct("<4sHHHH")
_HEADER_V3 = struct.Struct("<4sHHH")  # layouts 2 and 3: no ring id length
_NO_TRUNK = _NO_RING_ID = 0xFFFF
_SWAP = sys.byteorder != "little"


class NumberState:
    """Online state of one calling number; see the module docstring.

    ``counts`` holds the bucket index per horizon, the current and previous
    counters per horizon, then four whole numbers (ring position, calls since
    full state began, when to judge and to score next); ``vals`` holds the
    floats.  Both are plain arrays so a busy number stays under 1 KB.  ``ring_id`` is the
    ring of numbers this number is a member of, if the group detection said so (not to
    be confused with ``ring``, the recent callees).
    """

    __slots__ = ("counts", "vals", "ring", "refusals", "trunk", "ring_id")

    def __init__(self, fs: FeatureSettings, first_seen: float, now: float | None = None) -> None:
        t = first_seen if now is None else now
        horizons = fs.horizons_s
        n = len(horizons)
        # array * n allocates exactly n items (building from bytes over-allocates)
        self.counts = counts = array("i", [0]) * (n + _STRIDE * n + _N_INTS)
        for i, h in enumerate(horizons):
            counts[i] = int(t // h)
        self.vals = vals = array("d", [0.0]) * _N_VALS
        vals[NEXT_ROLL] = min((counts[i] + 1) * h for i, h in enumerate(horizons))
        vals[FIRST_SEEN] = first_seen
        vals[LAST_SEEN] = t
        vals[LAST_ALERT] = -math.inf
        vals[APPLIED_OFFSET] = -1.0
        self.ring = array("i", [0]) * fs.recent_callees
        self.refusals = bytearray(fs.recent_callees)
        self.trunk: str | None = None
        self.ring_id: str | None = None

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.ring_id = None  # pickled before the ring id was kept
        for name, value in zip(self.__slots__[:len(state)], state, strict=True):
            # unpickled arrays come over-allocated; a slice copy is exactly sized
            setattr(self, name, value[:] if isinstance(value, array) else value)
        if len(self.vals) < _N_VALS:  # pickled before the applied position was kept
            self.vals.extend((-1.0, 0.0)[len(self.vals) - _N_VALS:])

    def to_bytes(self) -> bytes:
        """A compact, self-describing binary form (what the Faust state table stores).

        Unlike a pickle, reading it back (:meth:`from_bytes`) cannot run code.

        >>> from detectors.config import load_settings
        >>> fs = load_settings().features
        >>> st = NumberState(fs, first_seen=5.0)
        >>> st.outbound(5.0, 8613900000001, False, 0, 1.0, False, fs, "gw-1")
        >>> back = NumberState.from_bytes(st.to_bytes())
        >>> st.ring_id = "ring-0123456789ab"
        >>> back = NumberState.from_bytes(st.to_bytes())
        >>> back.to_bytes() == st.to_bytes(), back.trunk, back.first_seen, back.ring_id
        (True, 'gw-1', 5.0, 'ring-0123456789ab')
        """
        counts, vals, ring = self.counts, self.vals, self.ring
        if _SWAP:
            counts, vals, ring = counts[:], vals[:], ring[:]
            for a in (counts, vals, ring):
                a.byteswap()
        trunk = b""
        if self.trunk is not None:  # a trunk name over 64 KiB keeps its first whole characters
            trunk = self.trunk.encode()
            if len(trunk) >= _NO_TRUNK:
                trunk = trunk[:_NO_TRUNK - 1].decode(errors="ignore").encode()
        ring_id = b"" if self.ring_id is None else self.ring_id.encode()
        if len(ring_id) >= _NO_RING_ID:
            raise ValueError(f"ring id of {len(ring_id)} bytes: too long to store")
        return b"".join((
            _HEADER.pack(_MAGIC, len(counts), len(ring),
                         _NO_TRUNK if self.trunk is None else len(trunk),
                         _NO_RING_ID if self.ring_id is None else len(ring_id)),
            counts.tobytes(), vals.tobytes(), ring.tobytes(), self.refusals, trunk, ring_id,
        ))

    @classmethod
    def from_bytes(cls, data: bytes) -> NumberState:
        """Read :meth:`to_bytes` output (or an earlier layout's); ``ValueError`` if it is not
        exactly that."""
        magic = data[:4]
        if magic == _MAGIC and len(data) >= _HEADER.size:
            header, n_vals = _HEADER, _N_VALS
            _, n_counts, n_ring, n_trunk, n_ring_id = header.unpack_from(data)
        elif magic in (_MAGIC_V3, _MAGIC_V2) and len(data) >= _HEADER_V3.size:
            header, n_vals = _HEADER_V3, _N_VALS if magic == _MAGIC_V3 else _N_VALS_V2
            _, n_counts, n_ring, n_trunk = header.unpack_from(data)
            n_ring_id = _NO_RING_ID
        else:
            raise ValueError("not a dialguard number state (bad magic)")
        trunk_len = 0 if n_trunk == _NO_TRUNK else n_trunk
        ring_id_len = 0 if n_ring_id == _NO_RING_ID else n_ring_id
        sizes = (4 * n_counts, 8 * n_vals, 4 * n_ring, n_ring, trunk_len, ring_id_len)
        if len(data) != header.size + sum(sizes):
            raise ValueError(f"number state of {len(data)} bytes does not match its header")
        state = cls.__new__(cls)
        at = header.size
        parts = []
        for size in sizes:
            parts.append(data[at:at + size])
            at += size
        state.counts = _read_array("i", parts[0])
        state.vals = _read_array("d", parts[1])
        if n_vals < _N_VALS:  # an earlier layout: nothing known to be applied
            state.vals.extend((-1.0, 0.0))
        state.ring = _read_array("i", parts[2])
        state.refusals = bytearray(parts[3])
        try:
            state.trunk = None if n_trunk == _NO_TRUNK else parts[4].decode()
            state.ring_id = None if n_ring_id == _NO_RING_ID else parts[5].decode()
        except UnicodeDecodeError as exc:
            raise ValueError("number state: trunk or ring id is not UTF-8") from exc
        return state

    # Named views of the packed scalars (the hot paths index the arrays directly).
    @property
    def first_seen(self) -> float:
        return self.vals[FIRST_SEEN]

    @property
    def last_seen(self) -> float:
        return self.vals[LAST_SEEN]

    @property
    def last_alert(self) -> float:
        return self.vals[LAST_ALERT]

    @last_alert.setter
    def last_alert(self, value: float) -> None:
        self.vals[LAST_ALERT] = value

    def first_delivery(self, offset: int, index: int) -> bool:
        """Whether input position ``(offset, index)`` (a message offset of this state's
        partition and a call's index in it) is newer than any applied to this state; if
        so it is applied from now on.  A message delivered again after a takeover finds
        its calls already in the state that was saved with them, and skips them.

        >>> from detectors.config import load_settings
        >>> st = NumberState(load_settings().features, 0.0)
        >>> st.first_delivery(7, 0), st.first_delivery(7, 1), st.first_delivery(7, 0)
        (True, True, False)
        >>> st.first_delivery(6, 9), st.first_delivery(8, 0)
        (False, True)
        """
        vals = self.vals
        if not newer_position(offset, index, vals[APPLIED_OFFSET], vals[APPLIED_INDEX]):
            return False
        vals[APPLIED_OFFSET] = offset
        vals[APPLIED_INDEX] = index
        return True

    @property
    def model_score(self) -> float:
        return self.vals[MODEL_SCORE]

    @model_score.setter
    def model_score(self, value: float) -> None:
        self.vals[MODEL_SCORE] = value

    @property
    def calls(self) -> int:
        """Calls made since the number got full state."""
        return self.counts[_CALLS]

    @property
    def next_judge(self) -> int:
        return self.counts[_NEXT_JUDGE]

    @next_judge.setter
    def next_judge(self, value: int) -> None:
        self.counts[_NEXT_JUDGE] = min(value, 2**31 - 1)

    @property
    def next_score(self) -> int:
        return self.counts[_NEXT_SCORE]

    @next_score.setter
    def next_score(self, value: int) -> None:
        self.counts[_NEXT_SCORE] = value

    def _roll(self, t: float, horizons: tuple[int, ...]) -> None:
        counts = self.counts
        n = len(horizons)
        next_roll: float = math.inf
        for i, h in enumerate(horizons):
            b = int(t // h)
            old = counts[i]
            if b > old:
                cur = n + _STRIDE * i
                prev = cur + N_COUNTERS
                if b == old + 1:
                    counts[prev : prev + N_COUNTERS] = counts[cur:prev]
                else:
                    counts[prev : prev + N_COUNTERS] = _ZEROS
                counts[cur:prev] = _ZEROS
                counts[i] = old = b
            end = (old + 1) * h
            if end < next_roll:
                next_roll = end
        self.vals[NEXT_ROLL] = next_roll

    def outbound(
        self,
        t: float,
        callee: int,
        answered: bool,
        talk: int,
        ring: float | None,
        failed: bool,
        fs: FeatureSettings,
        trunk: str | None = None,
    ) -> None:
        """Account one call this number made at event time ``t`` to ``callee`` (its digits)."""
        vals = self.vals
        counts = self.counts
        if t >= vals[NEXT_ROLL]:
            self._roll(t, fs.horizons_s)
        counts[_CALLS] += 1
        refused = not answered or talk < fs.refusal_talk_s
        # Which counters this call adds to, decided once, applied to every horizon.
        if answered:
            outcome = SHORT if talk < fs.short_call_s else -1
        elif failed:
            outcome = FAILED
        elif ring is not None and ring < fs.ring_once_s:
            outcome = RING_ONCE
        else:
            outcome = -1

        recent = self.ring
        refusals = self.refusals
        key = callee % _FINGERPRINT_MOD or 1
        engaged = answered and talk >= fs.contact_talk_s
        if key in recent:
            idx = recent.index(key)
            flags = refusals[idx]
            refusal_count = flags & _REFUSALS
            novelty = REPEAT_REFUSED if refusal_count >= 2 else -1
            known = -1 if flags & CONTACT_FLAG else STRANGER_REPEAT
            flags &= ~INBOUND_ONLY
            if refused:
                if refusal_count < _MAX_REFUSALS:
                    flags += 1
            elif talk >= fs.short_call_s:
                flags &= ~_REFUSALS  # a real conversation: whatever they said, it was not no
            refusals[idx] = flags | CONTACT_FLAG if engaged else flags
        else:
            novelty = NEW
            known = -1
            pos = counts[_RING_POS]
            recent[pos] = key
            refusals[pos] = (1 if refused else 0) | (CONTACT_FLAG if engaged else 0)
            pos += 1
            counts[_RING_POS] = 0 if pos == len(recent) else pos
        last = vals[LAST_CALLEE]
        sequential = last and 0 < abs(callee - last) <= fs.sequential_gap
        vals[LAST_CALLEE] = callee

        bases = (range(len(fs.horizons_s), len(counts) - _N_INTS, _STRIDE)
                 if t >= vals[LAST_SEEN] else self._late_bases(t, fs.horizons_s))
        for base in bases:
            counts[base] += 1
            if answered:
                counts[base + ANSWERED] += 1
                total = counts[base + TALK] + talk
                counts[base + TALK] = total if total <= _INT_MAX else _INT_MAX
            if outcome >= 0:
                counts[base + outcome] += 1
            if novelty >= 0:
                counts[base + novelty] += 1
            if known >= 0:
                counts[base + known] += 1
            if sequential:
                counts[base + SEQUENTIAL] += 1

        gap = t - vals[LAST_SEEN]
        if gap > 0:
            delta = gap - vals[GAP_MEAN]
            vals[GAP_MEAN] += _GAP_ALPHA * delta
            vals[GAP_VAR] = (1 - _GAP_ALPHA) * (vals[GAP_VAR] + _GAP_ALPHA * delta * delta)
            vals[LAST_SEEN] = t
        if trunk is not None:
            self.trunk = trunk

    def _late_bases(self, t: float, horizons: tuple[int, ...]) -> list[int]:
        """Where a call (made or received) older than the number's newest call made counts,
        per horizon: in the current bucket if it falls in it, in the previous one if there,
        nowhere if older still.  Calls of one number can come late (a takeover's re-read raw
        messages after newer ones); counting them as current would crowd a short window with
        an hour's calls.

        >>> from detectors.config import load_settings
        >>> fs = load_settings().features
        >>> st = NumberState(fs, first_seen=0.0)
        >>> st.outbound(7300.0, 8613900000001, False, 0, 20.0, False, fs)
        >>> st.outbound(1200.0, 8613900000002, False, 0, 20.0, False, fs)  # 6,100 s late
        >>> [st.attempts(h, 7300.0, fs) for h in fs.horizons_s]
        [1.0, 1.0, 2.0]
        """
        counts = self.counts
        bases = []
        for i, h in enumerate(horizons):
            cur = len(horizons) + _STRIDE * i
            start = counts[i] * h
            if t >= start:
                bases.append(cur)
            elif t >= start - h:
                bases.append(cur + N_COUNTERS)
        return bases

    def inbound(self, t: float, caller: int, fs: FeatureSettings) -> None:
        """Account a call this number received; a call-back if we called ``caller`` lately.

        The caller becomes a contact: it enters the recent-callee ring if it is not there.
        """
        if t >= self.vals[NEXT_ROLL]:
            self._roll(t, fs.horizons_s)
        counts = self.counts
        recent = self.ring
        refusals = self.refusals
        key = caller % _FINGERPRINT_MOD or 1
        if caller == 0:  # a withheld caller: counted, but nobody to call back or remember
            callback = False
        elif key in recent:
            idx = recent.index(key)
            callback = not refusals[idx] & INBOUND_ONLY
            # they called us: not a refusal, and a contact from now on
            refusals[idx] = (refusals[idx] & INBOUND_ONLY) | CONTACT_FLAG
        else:
            callback = False
            pos = counts[_RING_POS]
            recent[pos] = key
            refusals[pos] = CONTACT_FLAG | INBOUND_ONLY
            pos += 1
            counts[_RING_POS] = 0 if pos == len(recent) else pos
        bases = (range(len(fs.horizons_s), len(counts) - _N_INTS, _STRIDE)
                 if t >= self.vals[LAST_SEEN] else self._late_bases(t, fs.horizons_s))
        for base in bases:
            counts[base + INBOUND] += 1
            if callback:
                counts[base + CALLBACK] += 1

    def strangers_in_ring(self) -> list[int]:
        """Fingerprints of the recent callees who are not contacts."""
        return [key for key, flags in zip(self.ring, self.refusals, strict=True)
                if key and not flags & CONTACT_FLAG]

    def may_reach(self, attempts: float) -> bool:
        """False when the longest horizon's two buckets together hold fewer calls (cheap gate)."""
        counts = self.counts
        base = len(counts) - _N_INTS - _STRIDE
        return counts[base] + counts[base + N_COUNTERS] >= attempts

    def window(self, horizon: int, now: float, fs: FeatureSettings) -> list[float]:
        """The sliding-window estimate of every counter at ``horizon`` as of ``now``."""
        c = self.counts
        i = fs.horizons_s.index(horizon)
        cur = len(fs.horizons_s) + _STRIDE * i
        b = c[i]
        if now >= (b + 2) * horizon:
            return [0.0] * N_COUNTERS
        if now >= (b + 1) * horizon:  # the current bucket has become the previous one
            w = 1.0 - (now - (b + 1) * horizon) / horizon
            return [c[cur + k] * w for k in range(N_COUNTERS)]
        w = 1.0 - max(0.0, now - b * horizon) / horizon
        prev = cur + N_COUNTERS
        return [c[cur + k] + c[prev + k] * w for k in range(N_COUNTERS)]

    def attempts(self, horizon: int, now: float, fs: FeatureSettings) -> float:
        """Sliding-window estimate of calls made within ``horizon`` seconds before ``now``.

        The ``ATTEMPTS`` slot of :meth:`window`, computed alone (the judge's cheap gate).
        """
        c = self.counts
        i = fs.horizons_s.index(horizon)
        cur = len(fs.horizons_s) + _STRIDE * i + ATTEMPTS
        b = c[i]
        if now >= (b + 2) * horizon:
            return 0.0
        if now >= (b + 1) * horizon:
            return c[cur] * (1.0 - (now - (b + 1) * horizon) / horizon)
        return c[cur] + c[cur + N_COUNTERS] * (1.0 - max(0.0, now - b * horizon) / horizon)

    def features(self, horizon: int, now: float, fs: FeatureSettings) -> dict[str, float]:
        """Named features over one horizon (the names rules use, see detectors.config.FEATURES)."""
        w = self.window(horizon, now, fs)
        attempts = w[ATTEMPTS]
        answered = w[ANSWERED]
        per_attempt = 1.0 / attempts if attempts > 0 else 0.0
        gap_mean, gap_var = self.vals[GAP_MEAN], self.vals[GAP_VAR]
        gap_cv = math.sqrt(gap_var) / gap_mean if gap_mean > 0 else 0.0
        return {
            "attempts": round(attempts, 3),
            "answered": answered,
            "answer_ratio": answered * per_attempt,
            "short_call_ratio": w[SHORT] / answered if answered > 0 else 0.0,
            "mean_talk_s": w[TALK] / answered if answered > 0 else 0.0,
            "listened_ratio": max(0.0, answered - w[SHORT]) * per_attempt,
            "ring_once_ratio": w[RING_ONCE] * per_attempt,
            "failed_ratio": w[FAILED] * per_attempt,
            "distinct_ratio": min(1.0, w[NEW] * per_attempt),
            "repeat_refused": w[REPEAT_REFUSED],
            "repeat_refused_ratio": w[REPEAT_REFUSED] * per_attempt,
            "sequential_ratio": w[SEQUENTIAL] * per_attempt,
            "inbound": w[INBOUND],
            "inbound_ratio": w[INBOUND] * per_attempt,
            "callback_ratio": w[CALLBACK] / w[NEW] if w[NEW] > 0 else 0.0,
            "calls_per_min": attempts * 60.0 / horizon,
            "gap_cv": gap_cv,
            "virtual": 0.0,  # filled in by the detector, which knows the number
            "refused_callees": float(sum(1 for r in self.refusals if r & _REFUSALS >= 2)),
            "strangers": w[NEW],
            "contact_ratio": max(0.0, attempts - w[NEW] - w[STRANGER_REPEAT]) * per_attempt,
            "stranger_repeat_ratio": w[STRANGER_REPEAT] * per_attempt,
            "missed_retry_ratio": (min(1.0, w[STRANGER_REPEAT] / (attempts - answered))
                                   if attempts > answered else 0.0),
            "circle_callees": 0.0,  # filled in by the detector, which sees who calls whom
        }
