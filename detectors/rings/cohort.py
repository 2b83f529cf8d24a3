"""The state of one grouping key: its callers, its own baseline, and the ring it holds.

Each caller seen under a key has a small record: when it was first and last seen, its
calls, its **strength** (unanswered or cut-short calls to callees it had not just
called) and its engaged calls (real conversations, and repeated contacts: calling back
a number it has just called).  A caller whose engaged share stays at most
``max_engaged_ratio`` and whose answered share stays at most ``max_answer_ratio``
*qualifies*; couriers, privacy numbers, notice lines and call centres talk to the people
they call and try them again, so they do not.  The answered share is taken over
``answer_grace_calls`` more calls than were made: two answered calls out of a pool
number's three say little, seven out of a courier's ten say enough.  A number is judged
on its life under the key, not on its latest hour: a caller that retires from the key
without qualifying is remembered (``engaged``, for ``engaged_memory_s``), and when it
calls again its new record starts from its old engagement, so one unlucky run of
unanswered calls after a quiet spell does not make a notice line look like a fresh
dialer number.

What counts as many is judged against the key itself.  Callers that retire from the
key without joining a ring feed a decaying histogram of the strength they reached: the
key's **baseline**, started from a prior (``prior_tail ** s``, worth ``prior_weight``
callers).  For a strength ``s`` the key expects ``active * p(s)`` of its current
callers to reach ``s`` by chance; a ring is founded at the lowest ``s`` for which the
callers actually there outnumber that expectation so far that at most
``max_false_share`` of them would be chance (and there are ``min_members``).  A mobile
switch carrying a whole city thus asks far more of each number than a gateway used
by nobody else.  The lowest strength tried is ``min_strength``, or ``quorum_strength``
where at least ``quorum_members`` callers qualify at it together: several fresh numbers
each with a couple of unanswered calls are rarer than one (the same judgement against
the key's traffic decides whether they are rarer enough).  Where the key asks no more
than ``min_strength`` (its own traffic is no constraint: a gateway nobody else uses),
``quiet_min_members`` numbers are enough, not ``min_members``.

Pace is judged apart from count.  A record also keeps the evidence of the caller's first
``burst_s`` under the key (``BURST``), binned and baselined like strength
(``burst_active``, ``burst_baseline``, prior ``burst_prior_tail ** s``).  Where the hour's
count finds no ring, at least ``min_members`` callers with ``min_strength`` or more such
calls in their first minutes, more than the key's callers show there, are one (their
answered share judged with confidence: no quiet key's benefits at this scale).

>>> from detectors.config import load_settings
>>> rs = load_settings().rings
>>> state = KeyState.new(rs.max_strength)
>>> for i in range(8):  # eight fresh numbers, four unanswered calls each, nobody else
...     for j in range(4):
...         _ = state.account(f"+8617000000{i:03d}", 1.7e9 + 60 * j + i, 8613900000000 + 97 * i + j,
...                       False, 0, rs)
>>> threshold = state.founding_threshold(rs)  # eight at once: a quorum, two calls each do
>>> threshold, state.qualified_at_least(threshold)
(2, 8)
>>> KeyState.from_bytes(state.to_bytes()) == state
True
"""

from __future__ import annotations

import math
from functools import partial
from itertools import accumulate, compress
from operator import gt, itemgetter

import msgspec

from detectors.config import RingSettings
from detectors.dedup import newer_position
from detectors.rules import wilson_bounds

# Slots of a caller's record (a list of floats, so that it packs small); slots 8-11 hold
# the recent callees, slot 12 the evidence of the caller's first ``burst_s`` (BURST).
FIRST, LAST, CALLS, STRENGTH, ENGAGED, ANSWERED, RING_INDEX, NEXT_SLOT = range(8)
#: Recent callees remembered per caller (a call to one of them is a repeat, not evidence);
#: :meth:`KeyState.account` compares the four slots one by one.
RECENT = 4
BURST = NEXT_SLOT + 1 + RECENT
_RECORD = BURST + 1
NOT_IN_RING = -1.0
_LAST_OF = itemgetter(LAST)


def _active_bin(rec: list[float], top: int, rs: RingSettings) -> int:
    """The bin of a key's ``active`` that the caller of ``rec`` is counted in: its strength
    (bin ``top`` holding everything above) if it is outside the ring and *qualifies* (at
    most ``max_engaged_ratio`` of its calls engaged, at most ``max_answer_ratio`` answered
    over ``answer_grace_calls`` more calls than it made); else -1, in none.  A caller in
    a bin of ``active`` is in ``burst_active``'s bin of its ``BURST`` evidence, likewise
    capped at ``top``.

    :meth:`KeyState.account` spells it out (a call there would cost too much)."""
    calls = rec[CALLS]
    if rec[RING_INDEX] < 0 and (rec[ENGAGED] <= rs.max_engaged_ratio * calls and rec[ANSWERED]
                                <= rs.max_answer_ratio * (calls + rs.answer_grace_calls)):
        strength = int(rec[STRENGTH])
        return strength if strength < top else top
    return -1


class Ring(msgspec.Struct, array_like=True, gc=False):
    """A ring living under a key: its id, members (in order of joining) and totals."""

    ring_id: str
    key: str
    founded_at: float
    first_seen: float
    threshold: int
    last_call: float
    last_alert: float
    members: list[str]
    member_calls: list[int]
    new_members: list[str]
    calls: int = 0
    answered: int = 0
    distinct: int = 0
    withheld: int = 0
    #: founded on its founders' first minutes (``burst_s``): ``threshold`` is burst evidence
    burst: bool = False

    @property
    def answer_rate(self) -> float:
        return self.answered / self.calls if self.calls else 0.0


class KeyState(msgspec.Struct, array_like=True):
    """Callers, baseline histogram and ring of one key (a Faust table value)."""

    callers: dict[str, list[float]]
    #: qualified active callers (not in the ring) by strength, the last bin ">= max"
    active: list[int]
    #: decayed strengths reached by retired callers that were in no ring
    baseline: list[float]
    baseline_total: float = 0.0
    baseline_at: float = -math.inf
    #: newest event time seen under this key, and when the key was last swept: a key is
    #: swept by its own event time, so that how keys are spread over stages changes nothing
    seen_until: float = -math.inf
    swept_at: float = -math.inf
    in_ring: int = 0
    withheld: int = 0
    ring: Ring | None = None
    #: callers that retired without qualifying: caller -> [last call, calls, engaged,
    #: answered] (their engagement carries over when they call again)
    engaged: dict[str, list[float]] = msgspec.field(default_factory=dict)
    #: the newest input position applied (the group stage's message offset and the call's
    #: index in it; -1: none): a message delivered again after a takeover is not counted twice
    applied_offset: int = -1
    applied_index: int = 0
    #: as ``active`` and ``baseline``, by the evidence of a caller's first ``burst_s``
    burst_active: list[int] = msgspec.field(default_factory=list)
    burst_baseline: list[float] = msgspec.field(default_factory=list)

    @classmethod
    def new(cls, max_strength: int, now: float = -math.inf) -> KeyState:
        """An empty key first seen at ``now`` (its first sweep is due a while later)."""
        bins = max_strength + 1
        return cls({}, [0] * bins, [0.0] * bins, swept_at=now, burst_active=[0] * bins,
                   burst_baseline=[0.0] * bins)

    # ------------------------------------------------------------------ per call

    def count_withheld(self) -> None:
        """A withheld caller's call under this (ingress) key: evidence, never a member."""
        self.withheld += 1
        if self.ring is not None:
            self.ring.withheld += 1

    def first_delivery(self, offset: int, index: int) -> bool:
        """Whether input position ``(offset, index)`` is newer than any applied here; if so
        it is applied from now on (see :meth:`NumberState.first_delivery
        <detectors.features.NumberState.first_delivery>`).

        >>> st = KeyState.new(3)
        >>> st.first_delivery(4, 0), st.first_delivery(4, 0), st.first_delivery(5, 0)
        (True, False, True)
        """
        if not newer_position(offset, index, self.applied_offset, self.applied_index):
            return False
        self.applied_offset, self.applied_index = offset, index
        return True

    def account(self, caller: str, t: float, callee: int, answered: bool, talk: int,
                rs: RingSettings) -> tuple[list[float], bool]:
        """Count one call of ``caller`` under this key: the caller's record, and whether its
        evidence grew (the only time the key's judgement can change).

        The hot path of group detection.  A caller's first call here (most calls on a busy
        key) is written straight into a new record; a later one is counted on its record
        (:meth:`_count`), then moves the caller between the bins of ``active`` if its bin
        changed (:meth:`_move`) or, for a ring member, is counted on the ring
        (:meth:`_count_member`).  The bins are :func:`_active_bin`'s, spelled out here: a
        call of it at these three places costs the group detector 6 % more instructions.
        """
        if t > self.seen_until:
            self.seen_until = t
        rec = self.callers.get(caller)
        if rec is not None and t - rec[LAST] > rs.member_idle_s:
            self._retire([caller], t, rs)  # back after a long silence: a fresh record
            rec = None
        top = len(self.active) - 1
        if rec is None:  # its recent callees are empty: no repeat; and it is young
            calls, engaged, answers = 1.0, 0.0, 0.0
            if self.engaged:
                past = self.engaged.pop(caller, None)
                if past is not None and t - past[0] <= rs.engaged_memory_s:
                    calls, engaged, answers = past[1] + 1, past[2], past[3]
            strength = 0.0
            if not answered:
                strength = 1.0
            else:
                answers += 1
                if talk >= rs.engaged_talk_s:
                    engaged += 1
                elif talk < rs.short_talk_s:
                    strength = 1.0
            burst = strength if rs.burst_s > 0 else 0.0
            rec = [t, t, calls, strength, engaged, answers, NOT_IN_RING, 1.0,
                   float(callee), -1.0, -1.0, -1.0, burst]
            self.callers[caller] = rec
            if (engaged <= rs.max_engaged_ratio * calls
                    and answers <= rs.max_answer_ratio * (calls + rs.answer_grace_calls)):
                place = 1 if strength and top else 0  # strength is 0 or 1 here
                self.active[place] += 1
                self.burst_active[place if burst else 0] += 1
            return rec, strength > 0.0
        calls = rec[CALLS]
        if (rec[RING_INDEX] < 0 and rec[ENGAGED] <= rs.max_engaged_ratio * calls
                and rec[ANSWERED] <= rs.max_answer_ratio * (calls + rs.answer_grace_calls)):
            was, was_burst = int(rec[STRENGTH]), int(rec[BURST])
            if was > top:
                was = top
            if was_burst > top:
                was_burst = top
        else:
            was = was_burst = -1
        repeat, grew = self._count(rec, t, callee, answered, talk, rs)
        if rec[RING_INDEX] < 0:
            calls = rec[CALLS]
            if (rec[ENGAGED] <= rs.max_engaged_ratio * calls
                    and rec[ANSWERED] <= rs.max_answer_ratio * (calls + rs.answer_grace_calls)):
                now, now_burst = int(rec[STRENGTH]), int(rec[BURST])
                if now > top:
                    now = top
                if now_burst > top:
                    now_burst = top
            else:
                now = now_burst = -1
            if now != was:
                self._move(self.active, was, now)
            if now_burst != was_burst:
                self._move(self.burst_active, was_burst, now_burst)
        elif self.ring is not None:
            self._count_member(self.ring, rec, t, answered, repeat)
        return rec, grew

    @staticmethod
    def _count(rec: list[float], t: float, callee: int, answered: bool, talk: int,
               rs: RingSettings) -> tuple[bool, bool]:
        """Count a later call on ``rec``: whether it was a repeat (its callee one of the
        recent ones) and whether the caller's strength grew.

        Trying a number again is contact, not a sweep of a list: engaged.  A new callee is
        remembered, and the call is evidence if unanswered or cut short while the caller is
        young (``youth_s``), engaged if talked through.
        """
        if t > rec[LAST]:
            rec[LAST] = t
        rec[CALLS] += 1
        value = float(callee)
        if rec[8] == value or rec[9] == value or rec[10] == value or rec[11] == value:
            rec[ENGAGED] += 1
            if answered:
                rec[ANSWERED] += 1
            return True, False
        slot = int(rec[NEXT_SLOT])
        rec[8 + slot] = value
        rec[NEXT_SLOT] = float((slot + 1) % RECENT)
        if answered:
            rec[ANSWERED] += 1
            if talk >= rs.engaged_talk_s:
                rec[ENGAGED] += 1
                return False, False
            if talk >= rs.short_talk_s:
                return False, False
        age = t - rec[FIRST]
        if age > rs.youth_s:
            return False, False
        rec[STRENGTH] += 1
        if age <= rs.burst_s:
            rec[BURST] += 1
        return False, True

    @staticmethod
    def _move(bins: list[int], was: int, now: int) -> None:
        """Move a caller from bin ``was`` of ``bins`` to bin ``now`` (-1: in none)."""
        if was >= 0:
            bins[was] -= 1
        if now >= 0:
            bins[now] += 1

    @staticmethod
    def _count_member(ring: Ring, rec: list[float], t: float, answered: bool,
                      repeat: bool) -> None:
        """Count on ``ring`` a call of its member ``rec`` (the record counted it already)."""
        ring.calls += 1
        ring.answered += answered
        ring.distinct += not repeat
        place = int(rec[RING_INDEX])
        if place < len(ring.member_calls):
            ring.member_calls[place] = int(rec[CALLS])
        if t > ring.last_call:
            ring.last_call = t

    def _withdraw(self, rec: list[float], rs: RingSettings) -> None:
        top = len(self.active) - 1
        place = _active_bin(rec, top, rs)
        if place >= 0:
            self.active[place] -= 1
            self.burst_active[min(int(rec[BURST]), top)] -= 1

    def _deposit(self, rec: list[float], rs: RingSettings) -> None:
        top = len(self.active) - 1
        place = _active_bin(rec, top, rs)
        if place >= 0:
            self.active[place] += 1
            self.burst_active[min(int(rec[BURST]), top)] += 1

    # ------------------------------------------------------------------ judgement

    def qualified_at_least(self, strength: int) -> int:
        return sum(self.active[min(strength, len(self.active) - 1):])

    def chance_share(self, strength: int, rs: RingSettings, burst: bool = False) -> float:
        """Share of this key's callers expected to reach ``strength`` by chance (baseline),
        in their first ``youth_s`` or, with ``burst``, their first ``burst_s``."""
        baseline = self.burst_baseline if burst else self.baseline
        tail = sum(baseline[min(strength, len(baseline) - 1):])
        prior = rs.burst_prior_tail if burst else rs.prior_tail
        return ((tail + rs.prior_weight * prior ** strength)
                / (self.baseline_total + rs.prior_weight))

    def founding_threshold(self, rs: RingSettings, members: int = 0,
                           lowest: int | None = None, burst: bool = False) -> int | None:
        """The lowest strength (from ``lowest``; by default ``quorum_strength`` if at least
        ``quorum_members`` qualify there, else ``min_strength``) at which the callers here
        are a ring, not chance; or None.

        ``members``: active callers already in the ring, counted as found at any strength
        (for judging whether one more caller may join).

        With ``burst``, the evidence of each caller's first ``burst_s`` is judged against
        the key's baseline of it (from ``burst_prior_tail``): at least ``min_strength``,
        and always ``min_members`` (a busy key's own callers seldom make three unanswered
        calls in their first minutes; a quorum of two-call numbers is not asked there).
        """
        active = self.burst_active if burst else self.active
        top = min(rs.max_strength, len(active) - 1)
        start = (rs.min_strength if burst else rs.quorum_strength) if lowest is None else lowest
        if start > top:
            return None
        # Suffix sums from the top down to ``start`` (the last bin holds everything above),
        # found[top - s] and tail[top - s] for strength s: added in the same order as one
        # loop from the top would, so the same floats; the baseline's only when first asked.
        found = list(accumulate(reversed(active[start:top]), initial=sum(active[top:])))
        min_members, share = rs.min_members, rs.max_false_share
        prior_weight = rs.prior_weight
        prior_tail = rs.burst_prior_tail if burst else rs.prior_tail
        # fewer than min_members only where the key asks no more than min_strength
        few = rs.quiet_min_members if lowest is None and not burst else min_members
        baseline = self.burst_baseline if burst else self.baseline
        tail: list[float] | None = None
        scale = 0.0
        if found[0] + members >= min_members:
            # As many at the top as needed everywhere: every strength is tried.  A busy key
            # with a few heavy callers of its own, most often; where even the least chance
            # (at the top: the tail and the prior only fall as s rises, all terms >= 0)
            # exceeds what the most callers (at ``start``) allow, none is a ring.
            tail = list(accumulate(reversed(baseline[start:top]),
                                   initial=0.0 + sum(baseline[top:])))
            scale = self.expected_callers(rs) / (self.baseline_total + prior_weight)
            if (scale * (tail[0] + prior_weight * prior_tail ** top)
                    > share * (found[top - start] + members)):
                return None
        for s in range(start, top + 1):
            count = found[top - s] + members
            if count < min_members and (count < few or s > rs.min_strength):
                return None  # fewer numbers only where the key asks no more than min_strength
            if s < rs.min_strength and lowest is None and count < rs.quorum_members:
                continue  # below min_strength only a quorum of callers may found
            if tail is None:
                tail = list(accumulate(reversed(baseline[start:top]),
                                       initial=0.0 + sum(baseline[top:])))
                scale = self.expected_callers(rs) / (self.baseline_total + prior_weight)
            chance = scale * (tail[top - s] + prior_weight * prior_tail ** s)
            if chance <= share * count:
                return s
        return None

    def expected_callers(self, rs: RingSettings) -> float:
        """How many callers this key's own traffic puts here over ``youth_s``: from the
        rate at which callers retired from it (the baseline), and at least the callers
        here now that show no evidence (a burst of suspects inflates neither)."""
        rate = self.baseline_total * math.log(2) / rs.baseline_half_life_s
        quiet = len(self.callers) - self.in_ring - self.qualified_at_least(1)
        return max(1.0, rate * rs.youth_s, float(quiet))

    def asked_by_the_hour(self, rs: RingSettings) -> int | None:
        """The evidence by the hour the key would ask now of ``min_members`` founders (None:
        none would do): ``min_strength`` on a key whose traffic is no constraint."""
        return self.founding_threshold(rs, rs.min_members, rs.min_strength)

    def members_at(self, strength: int, rs: RingSettings, burst: bool = False) -> list[str]:
        """Callers not yet in the ring that qualify at ``strength`` (of their first
        ``burst_s``, with ``burst``), in order of first call (on a busy key, without the
        benefit of the doubt: see :meth:`_plainly_unanswered`)."""
        top = len(self.active) - 1
        slot = BURST if burst else STRENGTH
        # judged by their first minutes, numbers are on a busy key: no benefit of the doubt
        doubt = not burst and strength <= rs.min_strength
        found = [(rec[FIRST], caller) for caller, rec in self.callers.items()
                 if rec[slot] >= strength and _active_bin(rec, top, rs) >= 0
                 and (doubt or self._surely_unanswered(rec, rs))]
        return [caller for _, caller in sorted(found)]

    @staticmethod
    def _plainly_unanswered(rec: list[float], strength: int, rs: RingSettings) -> bool:
        """Where the key asks more than ``min_strength`` (a busy key: a city's switch), the
        answered share is judged without ``answer_grace_calls`` and with confidence (its
        Wilson upper bound at ``confidence_z``): a courier's first calls there, a few of
        them unanswered, must not make it a member of a ring of SIM-farm numbers."""
        return strength <= rs.min_strength or KeyState._surely_unanswered(rec, rs)

    @staticmethod
    def _surely_unanswered(rec: list[float], rs: RingSettings) -> bool:
        """The caller's answered share is at most ``max_answer_ratio`` with confidence (its
        Wilson upper bound at ``confidence_z``)."""
        calls = rec[CALLS]
        upper = wilson_bounds(rec[ANSWERED] / calls, calls, rs.confidence_z)[1]
        return upper <= rs.max_answer_ratio

    def joins(self, rec: list[float], rs: RingSettings) -> bool:
        """Whether a caller outside the living ring now has the evidence to join it: as
        much as the founders had, and as much as the key's traffic asks for now with the
        ring's members counted.  Where the founders needed no more than ``min_strength``
        (the key's traffic was no constraint: a gateway nobody else uses), a joiner needs
        only ``join_strength``: a pool's next number joins at its first unanswered call.
        On a busy key that asked more of the founders, joiners below that would be mostly
        the key's own callers (measured: ordinary subscribers on a city's switch).

        Where, besides, the ring's members and the callers qualifying to join it are at
        least ``own_key_share`` of the key's callers, the key is the operation's own (a
        gateway it rents) and its traffic is no reference: a qualifying caller joins at
        ``join_strength`` without it.  Judged against such a key's traffic, a pool whose
        numbers make a call or two each was asking ever more of them, its own numbers that
        had not joined yet being counted as the key's ordinary callers.

        A ring founded on its founders' first ``burst_s`` takes joiners by the same
        judgement of theirs, or by the hour as on any key that asked more than
        ``min_strength`` (never with a quiet key's benefits).  A ring founded by the hour
        does not take joiners by their pace: counted with a large ring's members, the
        key's traffic would let its ordinary callers' quick runs of unanswered calls in
        (measured: ordinary subscribers joining SIM-farm rings on city switches)."""
        ring = self.ring
        if ring is None or _active_bin(rec, len(self.active) - 1, rs) < 0:
            return False  # in the ring already, or not qualifying
        if self._joins_by_hour(rec, ring, rs):
            return True
        return ring.burst and self._joins_by_burst(rec, rs)

    def _joins_by_hour(self, rec: list[float], ring: Ring, rs: RingSettings) -> bool:
        quiet = ring.threshold <= rs.min_strength
        if ring.burst:
            # its founders' evidence was of their first minutes: by the hour, a joiner needs
            # what the key would ask of founders by the hour (min_members of them) now, and
            # has a quiet key's benefits only where that is no more than min_strength
            asked = self.asked_by_the_hour(rs)
            if asked is None:
                return False
            quiet = asked <= rs.min_strength
            floor = rs.join_strength if quiet else max(ring.threshold, asked)
        else:
            floor = rs.join_strength if quiet else ring.threshold
        if rec[STRENGTH] < floor:
            return False
        if quiet and self.in_ring + self.qualified_at_least(1) >= rs.own_key_share * len(
                self.callers):
            return True
        now = self.founding_threshold(rs, self.in_ring, floor)
        return (now is not None and rec[STRENGTH] >= now
                and self._plainly_unanswered(rec, now if ring.burst else ring.threshold, rs))

    def _joins_by_burst(self, rec: list[float], rs: RingSettings) -> bool:
        """Whether the caller's first ``burst_s`` stand out from the key's as the founders'
        did: at least ``min_strength``, and what the key's traffic asks of founders (at
        most ``min_members`` of the ring's members counted: a large ring does not vouch
        for a courier's unlucky first minutes)."""
        if rs.burst_s <= 0 or rec[BURST] < rs.min_strength:
            return False
        now = self.founding_threshold(rs, min(self.in_ring, rs.min_members), rs.min_strength,
                                      burst=True)
        return now is not None and rec[BURST] >= now and self._surely_unanswered(rec, rs)

    def enrol(self, caller: str, rs: RingSettings) -> bool:
        """Move ``caller`` into the ring (the ring must exist); whether it is listed among
        the ring's members (at most ``max_members`` are; the rest are counted only)."""
        ring = self.ring
        assert ring is not None
        rec = self.callers[caller]
        self._withdraw(rec, rs)
        self.in_ring += 1
        ring.first_seen = min(ring.first_seen, rec[FIRST])
        ring.last_call = max(ring.last_call, rec[LAST])
        ring.calls += int(rec[CALLS])
        ring.distinct += int(rec[STRENGTH] + rec[ENGAGED])
        if len(ring.members) < rs.max_members:
            rec[RING_INDEX] = float(len(ring.members))
            ring.members.append(caller)
            ring.member_calls.append(int(rec[CALLS]))
            ring.new_members.append(caller)
            return True
        rec[RING_INDEX] = float(rs.max_members)  # counted, not listed
        ring.member_calls.append(int(rec[CALLS]))
        return False

    # ------------------------------------------------------------------ housekeeping

    def expire(self, now: float, rs: RingSettings) -> Ring | None:
        """Retire idle callers into the baseline, decay it, end an idle ring.

        Returns the ring that ended, if one did (its members' ring id is stale).
        """
        self.swept_at = max(self.swept_at, now)
        self._decay(now, rs)
        cutoff = now - rs.member_idle_s
        # the callers whose last call is before ``cutoff``, in the dict's order (the order
        # they join the baseline in), selected in C: a busy key has thousands
        callers = self.callers
        idle = list(compress(callers, map(partial(gt, cutoff), map(_LAST_OF, callers.values()))))
        if idle:
            self._retire(idle, now, rs)
        if self.engaged:
            forget = now - rs.engaged_memory_s
            for caller in [c for c, past in self.engaged.items() if past[0] < forget]:
                del self.engaged[caller]
        ring = self.ring
        if ring is None or now - ring.last_call <= rs.ring_idle_s:
            return None
        return self.end_ring(rs)

    def _decay(self, now: float, rs: RingSettings) -> None:
        if self.baseline_at > -math.inf and now > self.baseline_at:
            keep = 0.5 ** ((now - self.baseline_at) / rs.baseline_half_life_s)
            self.baseline = [v * keep for v in self.baseline]
            self.burst_baseline = [v * keep for v in self.burst_baseline]
            self.baseline_total *= keep
        if now > self.baseline_at:
            self.baseline_at = now

    def _retire(self, idle: list[str], now: float, rs: RingSettings) -> None:
        """Drop the records of the ``idle`` callers; one outside a ring joins the baseline as
        of the moment it went idle (so the baseline does not depend on when sweeps happen).

        Every record ends here, most of them a few calls old (a third of the group
        detector's time on a simulated day): hence the baseline's sums inlined."""
        callers, active, engaged = self.callers, self.active, self.engaged
        burst_active = self.burst_active
        top = len(active) - 1
        idle_s, half_life = rs.member_idle_s, rs.baseline_half_life_s
        baseline, total, at = self.baseline, self.baseline_total, self.baseline_at
        burst_baseline = self.burst_baseline
        for caller in idle:
            rec = callers.pop(caller)
            if rec[RING_INDEX] >= 0:
                self.in_ring -= 1
                continue
            strength = _active_bin(rec, top, rs)
            if strength >= 0:
                active[strength] -= 1  # out of ``active`` (as _withdraw does)
                burst = int(rec[BURST])
                if burst > top:
                    burst = top
                burst_active[burst] -= 1
            else:
                strength = burst = 0
                if rec[CALLS] >= rs.min_strength:  # a few calls say too little
                    engaged[caller] = [rec[LAST], rec[CALLS], rec[ENGAGED], rec[ANSWERED]]
            if now > at:
                self.baseline_total = total
                self._decay(now, rs)
                baseline, total, at = self.baseline, self.baseline_total, self.baseline_at
                burst_baseline = self.burst_baseline
            since = at - (rec[LAST] + idle_s)
            weight = 0.5 ** (since / half_life) if since > 0.0 else 1.0  # 0.5 ** 0.0 is 1.0
            baseline[strength] += weight
            burst_baseline[burst] += weight
            total += weight
        self.baseline_total = total

    def end_ring(self, rs: RingSettings) -> Ring | None:
        """End the ring; its members become ordinary callers of the key again."""
        ring = self.ring
        if ring is None:
            return None
        self.ring = None
        for rec in self.callers.values():
            if rec[RING_INDEX] >= 0:
                rec[RING_INDEX] = NOT_IN_RING
                self._deposit(rec, rs)
        self.in_ring = 0
        self.withheld = 0
        return ring

    @property
    def empty(self) -> bool:
        """Nothing left worth keeping: no callers, no ring, a baseline all but forgotten."""
        return (not self.callers and self.ring is None and self.baseline_total < 0.5
                and not self.engaged)

    # ------------------------------------------------------------------ binary form

    def to_bytes(self) -> bytes:
        """MessagePack of the fields; :meth:`from_bytes` cannot run code."""
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyState:
        try:
            state = _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a ring key state: {exc}") from None
        if len(state.burst_active) != len(state.active):
            state._add_burst_evidence()
        return state

    def _add_burst_evidence(self) -> None:
        """A state written before the evidence of callers' first ``burst_s`` was kept: its
        callers have none (they are judged by the hour until they retire), its baseline
        of it starts from the prior."""
        bins = len(self.active)
        self.burst_active = [0] * bins
        self.burst_active[0] = sum(self.active)
        self.burst_baseline = [0.0] * bins
        self.burst_baseline[0] = self.baseline_total
        for rec in self.callers.values():
            rec.append(0.0)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(KeyState)
