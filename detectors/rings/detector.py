"""The group detector: calls in, per-key cohorts updated, ring alerts out.

Each call is routed by its grouping keys (:func:`detectors.rings.keys.route`: ingress,
called number block) and accounted on the caller's record under each key
(:class:`~detectors.rings.cohort.KeyState`).  A key founds a ring when enough of its
callers have more evidence than the key's own traffic explains; later callers with
as much evidence join it.  A ring is alerted when founded and again with its new
members at most once per ``[rings].update_interval_s``, always with the same
``ring_id`` (derived from its key, founding time and founders: the same input gives
the same id).  Allowlisted numbers never join; withheld callers (``caller == ""``)
are counted on their ingress.

State is ``states`` (key -> :class:`KeyState`), a dict or a Faust table's cache, touched
per call only at the keys the call is routed by: :meth:`GroupDetector.observe_keyed`
takes the call with the one key a partitioned stage received it under.

:meth:`GroupDetector.ring_of` tells which ring a number is a member of (the first it
joined, until that ring ends).  A stage that runs apart from the per-number detector asks
for the changes instead (``track_memberships``, :meth:`GroupDetector.drain_memberships`):
every number that joined a ring, every member of a ring that ended, to pass on to
:meth:`detectors.engine.Detector.join_ring` and ``leave_ring``.

>>> from detectors.config import load_settings
>>> from detectors.records import Call
>>> det = GroupDetector.example()
>>> alerts = []
>>> for j in range(10):                         # four fresh numbers behind one gateway,
...     for i in range(4):                      # an unanswered call each a minute
...         alerts += det.observe(Call(f"+8617100000{i:03d}", f"+86139{j * 5 + i:04d}7777",
...                                    1.7e9 + 60 * j + i, 0, False, trunk="gw-pool"))
>>> [(a.kind, len(a.members), len(a.new_members), a.detected_at - 1.7e9) for a in alerts]
[('ring', 2, 2, 121.0), ('ring', 4, 2, 421.0)]
>>> alerts[0].reasons[2], det.ring_of("+8617100000000") == alerts[0].ring_id
('all via gw-pool', True)

On a key nobody else uses (it asks no more than ``[rings].min_strength`` of each number),
two numbers are a ring (``[rings].quiet_min_members``); on a busy key, ``min_members``.

Five such numbers at once are a quorum (``[rings].quorum_members``): two calls each do.

>>> det, alerts = GroupDetector.example(), []
>>> for j in range(10):
...     for i in range(5):
...         alerts += det.observe(Call(f"+8617100000{i:03d}", f"+86139{j * 5 + i:04d}7777",
...                                    1.7e9 + 60 * j + i, 0, False, trunk="gw-pool"))
>>> [(a.kind, len(a.members), a.detected_at - 1.7e9, a.features["threshold"]) for a in alerts]
[('ring', 5, 64.0, 2.0)]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

import msgspec

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.config import FIXED_AT_START, ConfigError, RingSettings, Settings, load_settings
from detectors.dedup import Deduplicator
from detectors.records import Call
from detectors.rings import report
from detectors.rings.cohort import BURST, RING_INDEX, STRENGTH, KeyState, Ring
from detectors.rings.keys import (
    ADDRESS,
    BLOCK,
    BLOCK_DIGITS,
    INGRESS,
    is_block,
    population_keys,
    population_share,
    route,
)

_NO_ALERTS: tuple[Alert, ...] = ()
_SWEEP_FRACTION = 0.25  # sweep every quarter of the member idle time (event time)
_MAX_JUMP = 86400.0  # a record this far ahead of event time does not move it alone
_KEYS_KEPT = 4096  # ingress keys remembered per kind (trunks are few; addresses may not be)


@dataclass
class GroupStats:
    calls: int = 0
    duplicates: int = 0
    alerts: int = 0
    rings: int = 0
    expired: int = 0
    #: calls skipped because their key's state already held their input position
    redelivered: int = 0


class Membership(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """``number`` joined ring ``ring_id`` at event time ``at``, or (``joined`` false) that
    ring ended then."""

    number: str
    ring_id: str
    at: float
    joined: bool = True


class GroupDetector:
    """Online linking of calling numbers into operations (CONTRACT 2, kind ``ring``)."""

    def __init__(self, settings: Settings, allowlist: Allowlist | None = None,
                 states: MutableMapping[str, KeyState] | None = None,
                 track_memberships: bool = False) -> None:
        self.settings = settings
        self.allowlist = allowlist if allowlist is not None else Allowlist()
        self.states: MutableMapping[str, KeyState] = states if states is not None else {}
        #: block keys swept by one caller so far: key -> (caller, last call); a block gets
        #: full state only when a second caller sweeps it (unanswered or cut-short calls;
        #: most blocks never are), and until then its talked-to calls are not kept
        self.lone_blocks: dict[str, tuple[str, float]] = {}
        #: caller -> ring id, for tagging number alerts (rebuilt from ``states``)
        self.memberships: dict[str, str] = {}
        #: joins and ring ends since the last :meth:`drain_memberships` (None: not kept)
        self.membership_changes: list[Membership] | None = [] if track_memberships else None
        self.dedup = Deduplicator(settings.input.dedup_window_s)
        self.stats = GroupStats()
        self.watermark = -math.inf
        self._last_sweep = -math.inf
        self._blocks = settings.rings.callee_blocks
        self._shards = settings.rings.population_shards
        self._population = population_keys(self._shards) if self._shards else ()
        #: ingress keys by trunk and by source address, made once (see _remember_key)
        self._trunk_keys: dict[str, str] = {}
        self._address_keys: dict[str, str] = {}
        self.rebuild_memberships()

    @classmethod
    def example(cls) -> GroupDetector:
        """An instance on the shipped defaults (doctests, contract tests)."""
        return cls(load_settings())

    def update_settings(self, settings: Settings) -> None:
        """Switch to new thresholds (live tuning); layout-shaping keys must not change."""
        for dotted in FIXED_AT_START:
            section, key = dotted.split(".")
            if getattr(getattr(settings, section), key) != getattr(
                getattr(self.settings, section), key
            ):
                raise ConfigError(f"{dotted} is fixed at start; restart to change it")
        self.settings = settings

    @property
    def allowlist(self) -> Allowlist:
        return self._allowlist

    @allowlist.setter
    def allowlist(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        self._allowed = allowlist.numbers  # a set's lookup per call, not a method's

    def set_allowlist(self, allowlist: Allowlist) -> None:
        self.allowlist = allowlist

    # ------------------------------------------------------------------ per call

    def route(self, call: Call) -> tuple[str, ...]:
        """The keys a stream stage would repartition ``call`` by."""
        return route(call, self._blocks, self._shards)

    def observe(self, call: Call) -> Sequence[Alert]:
        if call.id is not None and self.dedup.seen(call.id, call.start):
            self.stats.duplicates += 1
            return _NO_ALERTS
        return self.observe_unique(call)

    def observe_unique(self, call: Call) -> Sequence[Alert]:
        """A call known not to be a duplicate, under every key it is routed by.

        The hot path: the keys :func:`~detectors.rings.keys.route` gives are made here (an
        ingress key is made once per trunk or address and reused), each looked up once and
        accounted by its kind, with no tuple of keys per call.
        """
        self.stats.calls += 1
        t = call.start
        watermark = self.watermark
        if t > watermark and (t - watermark <= _MAX_JUMP or watermark == -math.inf):
            self.watermark = t  # as _advance does
        alerts: list[Alert] | None = None
        caller = call.caller
        if not caller or caller not in self._allowed:
            trunk = call.trunk
            if trunk:
                ingress = self._trunk_keys.get(trunk)
                if ingress is None:
                    ingress = _remember_key(self._trunk_keys, INGRESS, trunk)
            elif call.src_ip:
                ingress = self._address_keys.get(call.src_ip)
                if ingress is None:
                    ingress = _remember_key(self._address_keys, ADDRESS, call.src_ip)
            elif self._population and caller:
                ingress = self._population[population_share(caller, self._shards)]
            else:
                ingress = None
            states = self.states
            if not caller:  # withheld: evidence for the ingress, never a member
                if ingress is not None:
                    state = states.get(ingress)
                    if state is not None:
                        state.count_withheld()
            else:
                rs = self.settings.rings
                if ingress is not None:
                    state = states.get(ingress)
                    if state is None:
                        state = KeyState.new(rs.max_strength, t)
                        states[ingress] = state
                    alert = self._account(state, call, caller, ingress, rs)
                    if alert is not None:
                        alerts = [alert]
                callee = call.callee
                if self._blocks and len(callee) > BLOCK_DIGITS + 4:
                    block = BLOCK + callee[:-BLOCK_DIGITS]
                    state = states.get(block)
                    # most calls are talked-to calls to a block with no state: nothing to do
                    if state is None and _sweeps(call, rs):
                        state = self._found_block(block, caller, t, rs)
                    if state is not None:
                        alert = self._account(state, call, caller, block, rs)
                        if alert is not None:
                            alerts = [alert] if alerts is None else [*alerts, alert]
        if self.watermark - self._last_sweep >= self.settings.rings.ring_idle_s:
            self.maybe_expire()
        return _NO_ALERTS if alerts is None else alerts

    def observe_keyed(self, call: Call, key: str, offset: int = -1,
                      index: int = 0) -> Alert | None:
        """Account ``call`` under ``key`` only (a stage of the key's partition); a ring alert
        if that key's ring is (re)alerted.

        ``offset`` and ``index`` (the stage's message offset and the call's index in it;
        ``-1``: no position) make redelivery exact: a call whose key's state already holds
        that position is skipped and counted in ``stats.redelivered``.
        """
        self._advance(call.start)
        alert = None
        caller = call.caller
        if not caller or caller not in self._allowed:
            rs = self.settings.rings
            state = found = self.states.get(key)  # the one lookup of the key's state
            if offset >= 0 and state is not None and not state.first_delivery(offset, index):
                self.stats.redelivered += 1
                return None
            if key.startswith(BLOCK):  # withheld callers count for nothing under a block
                if caller and state is None and _sweeps(call, rs):
                    state = self._found_block(key, caller, call.start, rs)
                if caller and state is not None:
                    alert = self._account(state, call, caller, key, rs)
            elif not caller:  # withheld: evidence for the ingress, never a member
                if state is not None:
                    state.count_withheld()
            else:
                if state is None:
                    state = KeyState.new(rs.max_strength, call.start)
                    self.states[key] = state
                alert = self._account(state, call, caller, key, rs)
            if offset >= 0 and found is None and state is not None:
                state.first_delivery(offset, index)  # made by this call: worth a state
        if self.watermark - self._last_sweep >= self.settings.rings.ring_idle_s:
            self.maybe_expire()
        return alert

    def _advance(self, t: float) -> None:
        if t > self.watermark and (t - self.watermark <= _MAX_JUMP or self.watermark == -math.inf):
            self.watermark = t

    def _found_block(self, key: str, caller: str, t: float, rs: RingSettings
                     ) -> KeyState | None:
        """The state of block ``key`` (it has none) when ``caller``'s sweep evidence at ``t``
        makes it the block's second caller; else None, ``caller`` remembered as its lone one."""
        lone = self.lone_blocks.get(key)
        if lone is None or lone[0] == caller or t - lone[1] > rs.member_idle_s:
            self.lone_blocks[key] = (caller, t)
            return None
        del self.lone_blocks[key]
        state = KeyState.new(rs.max_strength, t)
        self.states[key] = state
        return state

    def _account(self, state: KeyState, call: Call, caller: str, key: str,
                 rs: RingSettings) -> Alert | None:
        """Count the call on the caller's record under ``key``; found, join, alert."""
        t = call.start
        ring = state.ring
        if ring is not None and t - ring.last_call > rs.ring_idle_s:
            self._forget_ring(state.end_ring(rs), t)
        callee = call.callee
        try:
            digits = int(callee[1:])  # repeat checks compare callees as numbers
        except ValueError:
            digits = 0
        rec, grew = state.account(caller, t, digits, call.answered, call.duration, rs)
        if state.seen_until - state.swept_at >= rs.member_idle_s:  # the key's own sweep
            self._forget_ring(state.expire(state.seen_until, rs), state.seen_until)
        ring = state.ring
        if ring is None:
            # the judgement only changes when some caller's evidence does
            if not grew or rec[STRENGTH] < rs.quorum_strength:
                return None
            ring = self._judge(state, key, rec, t, rs)
            if ring is None:
                return None
        elif grew and rec[STRENGTH] >= rs.join_strength and state.joins(rec, rs):
            listed = state.enrol(caller, rs)
            if listed:  # a member no ring alert lists is not tagged either
                self._joined(caller, ring.ring_id, t)
        if rec[RING_INDEX] < 0 or not ring.new_members:
            return None
        if ring.last_alert > -math.inf and t - ring.last_alert < rs.update_interval_s:
            return None
        return self._alert(state, ring, key, t)

    def _judge(self, state: KeyState, key: str, rec: list[float], t: float,
               rs: RingSettings) -> Ring | None:
        """A ring founded now under ``key`` (whose caller ``rec`` has just more evidence): by
        its callers' evidence over their first ``youth_s``, else over their first
        ``burst_s`` (a dialer's numbers on a busy key stand out sooner by how fast they
        pile up unanswered calls than by how many); or None."""
        threshold = state.founding_threshold(rs)
        if threshold is not None:
            founders = state.members_at(threshold, rs)
            if len(founders) >= (rs.quiet_min_members if threshold <= rs.min_strength
                                 else rs.min_members):
                return self._found(state, key, threshold, founders, t)
        if rs.burst_s <= 0 or rec[BURST] < rs.min_strength:
            return None
        by_hour = state.asked_by_the_hour(rs)
        if by_hour is not None and by_hour <= rs.min_strength:
            return None  # a key that asks no more by the hour: its own judgement is soon enough
        threshold = state.founding_threshold(rs, burst=True)
        if threshold is None:
            return None
        founders = state.members_at(threshold, rs, burst=True)
        if len(founders) < rs.min_members:
            return None
        return self._found(state, key, threshold, founders, t, burst=True)

    def _found(self, state: KeyState, key: str, threshold: int, founders: list[str],
               t: float, burst: bool = False) -> Ring:
        rs = self.settings.rings
        digest = hashlib.blake2b(f"{key}|{t:.3f}|{','.join(sorted(founders))}".encode(),
                                 digest_size=6).hexdigest()
        ring = Ring(f"ring-{digest}", key, t, t, threshold, t, -math.inf, [], [], [],
                    withheld=state.withheld, burst=burst)
        state.ring = ring
        for caller in founders:
            if state.enrol(caller, rs):
                self._joined(caller, ring.ring_id, t)
        self.stats.rings += 1
        return ring

    def _joined(self, caller: str, ring_id: str, t: float) -> None:
        self.memberships.setdefault(caller, ring_id)
        if self.membership_changes is not None:
            self.membership_changes.append(Membership(caller, ring_id, t))

    def _alert(self, state: KeyState, ring: Ring, key: str, t: float) -> Alert:
        rs = self.settings.rings
        expected = state.expected_callers(rs) * state.chance_share(ring.threshold, rs,
                                                                   ring.burst)
        alert = Alert(
            kind="ring",
            score=report.score(ring, rs.weight),
            reasons=report.reasons(ring, expected, rs.quorum_members if ring.threshold
                                   < rs.min_strength else 0, rs.min_strength,
                                   rs.burst_s if ring.burst else 0.0),
            detected_at=t,
            first_seen=ring.first_seen,
            members=list(ring.members),
            new_members=list(ring.new_members),
            ring_id=ring.ring_id,
            profile="ring",
            features={"members": float(len(ring.member_calls)), "calls": float(ring.calls),
                      "answer_rate": round(ring.answer_rate, 4),
                      "threshold": float(ring.threshold)},
            trunk=key[len(INGRESS):] if key.startswith(INGRESS) else None,
        )
        ring.new_members = []
        ring.last_alert = t
        self.stats.alerts += 1
        return alert

    def ring_of(self, caller: str) -> str | None:
        """The id of the ring ``caller`` is a member of, if any (for number alerts)."""
        return self.memberships.get(caller)

    # ------------------------------------------------------------------ housekeeping

    def maybe_expire(self) -> int:
        if self._last_sweep == -math.inf:
            self._last_sweep = self.watermark
            return 0
        self._last_sweep = self.watermark
        return self.expire(self.watermark)

    def expire(self, now: float) -> int:
        """Sweep the keys that had no call for a while (busy keys sweep themselves as their
        calls come); drop keys with nothing left and lone blocks gone quiet."""
        rs = self.settings.rings
        before = self.tracked_numbers
        quiet = now - rs.member_idle_s * _SWEEP_FRACTION
        cutoff = now - rs.member_idle_s
        for key in [k for k, s in self.states.items() if s.seen_until < quiet]:
            state = self.states[key]
            if state.seen_until < cutoff and state.ring is None and is_block(key):
                # every caller idle and no ring: the sweep would leave it without callers,
                # and such a block is dropped (whatever its baseline), so drop it at once
                del self.states[key]
                continue
            self._forget_ring(state.expire(now, rs), now)
            if state.empty or (is_block(key) and not state.callers and state.ring is None):
                del self.states[key]
            else:
                self.states[key] = state  # a table's cache learns of the change
        for key in [k for k, lone in self.lone_blocks.items() if lone[1] < cutoff]:
            del self.lone_blocks[key]
        gone = max(0, before - self.tracked_numbers)
        self.stats.expired += gone
        return gone

    def _forget_ring(self, ring: Ring | None, t: float) -> None:
        """The ring ``ring`` (if any) ended at event time ``t``: its members are in it no more."""
        if ring is None:
            return
        for caller in ring.members:
            if self.memberships.get(caller) == ring.ring_id:
                del self.memberships[caller]
        if self.membership_changes is not None:
            self.membership_changes.extend(Membership(caller, ring.ring_id, t, False)
                                           for caller in ring.members)

    def drain_memberships(self) -> list[Membership]:
        """The joins and ring ends since the last call, in the order they happened (empty
        unless ``track_memberships``)."""
        changes = self.membership_changes or []
        if self.membership_changes is not None:
            self.membership_changes = []
        return changes

    @property
    def tracked_numbers(self) -> int:
        """Caller records over all keys (a caller under two keys counts twice)."""
        return sum(len(s.callers) for s in self.states.values()) + len(self.lone_blocks)

    # ------------------------------------------------------------------ tables

    def table_state(self) -> dict[str, bytes]:
        """What a changelog-backed table holds: key -> binary :class:`KeyState`."""
        return {key: state.to_bytes() for key, state in self.states.items()}

    def load_table_state(self, items: Mapping[str, bytes]) -> None:
        """Replace the per-key state by ``items`` (as :meth:`table_state` wrote them)."""
        self.states.clear()
        for key, data in items.items():
            self.states[key] = KeyState.from_bytes(data)
        self.rebuild_memberships()

    def rebuild_memberships(self) -> None:
        self.memberships = {}
        for state in self.states.values():
            if state.ring is not None:
                for caller in state.ring.members:
                    self.memberships.setdefault(caller, state.ring.ring_id)


def _sweeps(call: Call, rs: RingSettings) -> bool:
    """Whether ``call`` is sweep evidence under its callee's block (unanswered or cut
    short): what makes a block without state worth one, once a second caller gives it."""
    return not call.answered or call.duration < rs.short_talk_s


def _remember_key(made: dict[str, str], prefix: str, name: str) -> str:
    """The key ``prefix + name``, kept in ``made`` so that the next call by the same trunk or
    address reuses it (no new string, its hash known) instead of making it again."""
    if len(made) >= _KEYS_KEPT:
        made.clear()
    key = made[name] = prefix + name
    return key
