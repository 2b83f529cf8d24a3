"""The detector: calls in, per-number state updated, alerts out.

This is the one place detection happens.  ``dialguard replay``, the Faust
workers, the evaluator and the benchmarks all drive a :class:`Detector`.

Per call the work is a cheap state update (:mod:`detectors.features`).  Only a
number that has made at least ``[alerts].min_attempts`` calls in the longest
horizon, and is not in its cool-down, is judged: every rule profile
(:mod:`detectors.rules`) is checked, and every ``score_every`` such calls the
River model (:mod:`detectors.model`) scores its profile.

A rule that says nobody calls back (it has ``max_inbound_ratio``) does not judge a number
whose callees answer at least ``[alerts].settle_answer_ratio`` of its calls before it has
called for ``[alerts].settle_s`` (at most ``settle_max_share`` of the rule's horizon: a
burst rule must not wait out a burst): call-backs and retries come minutes after the calls
that earn them, so on an answered number their absence says nothing yet (notice lines,
booking desks); a hardly answered dialer is judged at once.

How rules and model combine: a rule match decides that a number is alerted;
the alert's score is the best matching profile's score plus
``[model].weight`` times the model's latest score, so among alerts the
unusual profiles rank first.  With ``[model].alert_threshold`` above 0, a
number the model scores at or above it also alerts on its own (profile
``model``) if it passes the volume floor and nobody calls it back.

State is a mapping from E.164 number to :class:`~detectors.features.NumberState`
passed in by the caller (a dict, or a Faust table's write-behind cache), so it
partitions by key: :meth:`Detector.observe_outbound` touches only the caller's
entry and :meth:`Detector.observe_inbound` only the callee's.

A number's state also keeps the ring of numbers it is a member of, when group detection
(:mod:`detectors.rings`) says so through :meth:`Detector.join_ring` and
:meth:`Detector.leave_ring`; its number alerts then carry that ``ring_id`` (the stream
workers' detect stage is told by the group stage; ``dialguard replay`` tags its alerts in
:class:`~detectors.composite.DetectorChain` instead).

>>> from detectors.config import load_settings
>>> from detectors.records import Call
>>> det = Detector(load_settings())
>>> alerts = []
>>> for i in range(120):
...     alerts += det.observe(Call("+8617000000001", f"+86139{i * 7919:08d}", 1.7e9 + 3 * i,
...                                duration=0, answered=False, ring=12.0))
>>> [(a.kind, a.caller, a.profile) for a in alerts]
[('number', '+8617000000001', 'dialer_burst')]
>>> alerts[0].reasons[1]
'10 calls in 10 min (>= 10)'
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.circles import CallGraph, circle_members
from detectors.config import FIXED_AT_START, ConfigError, RuleProfile, Settings, load_settings
from detectors.dedup import Deduplicator
from detectors.features import NumberState, fingerprint
from detectors.model import CallingProfileModel
from detectors.reach import ReachJudge
from detectors.records import WITHHELD, Call
from detectors.rules import RuleMatch, evaluate, horizon_text

_NO_ALERTS: tuple[Alert, ...] = ()
_JUMP_CONFIRMATIONS = 100  # records in a row needed before the watermark jumps ahead
_SWEEP_FRACTION = 0.5  # sweep idle numbers every half of the idle expiry (event time)
_JUDGE_STEP = 0.0625  # a judged number is judged again after this fraction more calls
# A number without full state: [window start, calls in window, first seen, last seen, its
# calls in the window packed with _EARLY_CALL, counted on its state when it gets one].
_LIGHT_START, _LIGHT_CALLS, _LIGHT_FIRST, _LIGHT_LAST, _LIGHT_EARLY = range(5)
#: a call of a number without full state: time, callee digits, talk, ring (NaN: not
#: given), answered | failed << 1 (29 bytes)
_EARLY_CALL = struct.Struct("<dqidB")
#: the first bytes of an early call, which say which call it was: its time and callee
_EARLY_KEY_BYTES = 16


def _packed_again(early: bytes, packed: bytes) -> bool:
    """Whether a call with ``packed``'s time and callee is among the ``early`` calls: the
    same record delivered again (after a takeover the dedup window is gone), which must not
    be counted twice when those calls are counted on the number's state.

    >>> a = _EARLY_CALL.pack(1.7e9, 8613900000001, 0, 20.0, 0)
    >>> _packed_again(a, _EARLY_CALL.pack(1.7e9, 8613900000001, 0, 20.0, 0))
    True
    >>> _packed_again(a, _EARLY_CALL.pack(1.7e9, 8613900000002, 0, 20.0, 0))
    False
    """
    key = packed[:_EARLY_KEY_BYTES]
    at = early.find(key)
    while at >= 0:  # found at a call's start, not across two calls' bytes
        if at % _EARLY_CALL.size == 0:
            return True
        at = early.find(key, at + 1)
    return False


#: longest ring id a number's state takes (the group detector's are 17 characters)
MAX_RING_ID = 64


@dataclass
class DetectorStats:
    calls: int = 0
    duplicates: int = 0
    alerts: int = 0
    expired: int = 0
    late: int = 0
    #: call sides skipped because their number's state already held their input position
    redelivered: int = 0


class Detector:
    """Online bulk-outbound detection over a stream of :class:`~detectors.records.Call`."""

    def __init__(
        self,
        settings: Settings,
        allowlist: Allowlist | None = None,
        states: MutableMapping[str, NumberState] | None = None,
        track_touched: bool = False,
    ) -> None:
        self.settings = settings
        self.allowlist = allowlist if allowlist is not None else Allowlist()
        self.states: MutableMapping[str, NumberState] = states if states is not None else {}
        #: numbers that have not called often enough for full state, each a list of the
        #: four floats and the bytes named by ``_LIGHT_*`` (memory only: losing them on a
        #: restart forgets at most ``promote_after - 1`` calls each)
        self.light: dict[str, list[Any]] = {}
        #: ring memberships of numbers without full state: number -> (ring id, when it
        #: joined); moved into the state at promotion (memory only, like ``light``)
        self.waiting_rings: dict[str, tuple[str, float]] = {}
        ms = settings.model
        self.model = CallingProfileModel(ms.n_trees, ms.height, ms.window_size, ms.seed)
        self.dedup = Deduplicator(settings.input.dedup_window_s)
        #: ids of calls seen on their callee side only (:meth:`observe_sides`)
        self.inbound_dedup = Deduplicator(settings.input.dedup_window_s)
        #: what busy callers look like today (learned; see detectors.reach)
        self.reach = ReachJudge(settings.reach)
        cs = settings.circles
        #: who called whom lately (see detectors.circles); None when [circles] is off
        self.graph = CallGraph(cs.bits, cs.generation_s) if cs.enabled else None
        self.stats = DetectorStats()
        #: newest event time seen (what idle expiry is measured against)
        self.watermark = -math.inf
        self._ahead = 0  # records in a row that are further ahead than max_clock_jump_s
        self._last_sweep = -math.inf
        #: called with every model score (for a score histogram); None to skip
        self.on_model_score: Callable[[float], None] | None = None
        #: numbers whose state changed since the last :meth:`drain_touched` (write-behind)
        self.touched: set[str] | None = set() if track_touched else None
        self._apply(settings)

    @classmethod
    def example(cls) -> Detector:
        """An instance on the shipped defaults (doctests, contract tests)."""
        return cls(load_settings())

    def _apply(self, settings: Settings) -> None:
        self.settings = settings
        #: enabled profiles with their ``min_attempts`` (checked before the other features)
        #: and how long each waits on an answered number ([alerts].settle_s, at most
        #: settle_max_share of its horizon: a burst rule must not wait out a burst; 0: never,
        #: no such claim)
        self._volume_floors = [
            (p, p.min.get("attempts", 0.0),
             min(settings.alerts.settle_s, p.horizon_s * settings.alerts.settle_max_share)
             if "inbound_ratio" in p.max else 0.0)
            for p in settings.rules.values() if p.enabled]
        self._virtual = settings.features.virtual_prefixes
        self._cooldown = settings.alerts.cooldown_s
        self._min_attempts = settings.alerts.min_attempts
        self._confidence_z = settings.alerts.confidence_z
        self._settle_answer = settings.alerts.settle_answer_ratio
        self._sweep_interval = settings.features.idle_expiry_s * _SWEEP_FRACTION
        self._max_jump = settings.input.max_clock_jump_s
        self.reach = ReachJudge(settings.reach, self.reach.references)
        self._settle = settings.reach.settle_s
        #: enabled profiles that name circle_callees (costly: computed only for them)
        self._circle_profiles = {p.name for p in settings.rules.values()
                                 if "circle_callees" in p.min or "circle_callees" in p.max}

    def update_settings(self, settings: Settings) -> None:
        """Switch to new thresholds (live tuning); layout-shaping keys must not change."""
        for dotted in FIXED_AT_START:
            section, key = dotted.split(".")
            if getattr(getattr(settings, section), key) != getattr(
                getattr(self.settings, section), key
            ):
                raise ConfigError(f"{dotted} is fixed at start; restart to change it")
        self._apply(settings)
        for state in self.states.values():  # new thresholds: judge everyone at the next call
            state.next_judge = 0

    def set_allowlist(self, allowlist: Allowlist) -> None:
        self.allowlist = allowlist

    # ------------------------------------------------------------------ per call

    def observe(self, call: Call) -> Sequence[Alert]:
        """One call, both sides: the caller's outbound state and the callee's inbound state."""
        return self.observe_sides(call, True, True)

    def observe_sides(self, call: Call, outbound: bool, inbound: bool, offset: int = -1,
                      index: int = 0) -> Sequence[Alert]:
        """One call as a partition of the stream workers sees it: caller side, callee side or both.

        The per-call path :meth:`observe` (both sides) and the workers share: deduplicate
        by id, account the sides, expire now and then.  A call seen on its callee side
        only is deduplicated apart from outbound ones (its caller side, and the
        duplicate count, belong to the partition of its caller).

        ``offset`` and ``index`` (the worker's message offset and the call's index in it,
        ``-1``: no position) make redelivery exact: a side whose number's state already
        holds that position (saved before a crash, the message delivered again to the
        partition's next owner) is skipped and counted in ``stats.redelivered``.
        """
        if call.id is not None:
            if outbound:
                if self.dedup.seen(call.id, call.start):
                    self.stats.duplicates += 1
                    return _NO_ALERTS
            elif self.inbound_dedup.seen(call.id, call.start):
                return _NO_ALERTS
        return self.observe_unique(call, outbound, inbound, offset, index)

    def observe_unique(self, call: Call, outbound: bool = True, inbound: bool = True,
                       offset: int = -1, index: int = 0) -> Sequence[Alert]:
        """:meth:`observe_sides` for a call known not to be a duplicate (a composite's part)."""
        alert = self.observe_outbound(call, offset, index) if outbound else None
        if inbound:
            self.observe_inbound(call, offset, index)
        if outbound and self.graph is not None and call.caller != WITHHELD:
            self.graph.add(fingerprint(int(call.caller[1:])), fingerprint(int(call.callee[1:])),
                           call.start)
        if self.watermark - self._last_sweep >= self._sweep_interval:
            self.maybe_expire()
        return _NO_ALERTS if alert is None else (alert,)

    def observe_outbound(self, call: Call, offset: int = -1, index: int = 0) -> Alert | None:
        """Account the call on the caller's state; an alert if the caller is now judged abusive."""
        fs = self.settings.features
        t = call.start
        self.stats.calls += 1
        if t > self.watermark:
            if t - self.watermark <= self._max_jump or self.watermark == -math.inf:
                self.watermark = t
                self._ahead = 0
            else:
                # One record far in the future must not age everyone else's state out:
                # the watermark follows a jump only once many records agree with it.
                self._ahead += 1
                if self._ahead >= _JUMP_CONFIRMATIONS:
                    self.watermark = t
                    self._ahead = 0
        elif t < self.watermark - fs.horizons_s[0]:
            self.stats.late += 1
        caller = call.caller
        if caller == WITHHELD:  # no number to keep state for (CONTRACT 1a)
            return None
        state = self.states.get(caller)
        if state is None:
            state = self._promote(caller, call, t)
            if state is None:
                return None
        # sides are told apart: a number calling itself is applied once as each
        if offset >= 0 and not state.first_delivery(offset, 2 * index):
            self.stats.redelivered += 1
            return None
        state.outbound(t, int(call.callee[1:]), call.answered, call.duration, call.ring,
                       call.failed, fs, call.trunk)
        if self.touched is not None:
            self.touched.add(caller)
        if (
            state.calls < state.next_judge
            or t - state.last_alert < self._cooldown
            or not state.may_reach(self._min_attempts)
        ):
            return None
        attempts = state.attempts(fs.horizons_s[-1], t, fs)
        if attempts < self._min_attempts or caller in self.allowlist:
            return None
        alert = self._judge(caller, state, t)
        if alert is None:
            # Judge again after the volume grows by a fraction: ratios move slowly.
            state.next_judge = state.calls + int(attempts * _JUDGE_STEP)
        return alert

    def _promote(self, caller: str, call: Call, t: float) -> NumberState | None:
        """Count a call of a number without full state; full state once it calls often,
        with the calls it made before counted on it (in order, as they came)."""
        fs = self.settings.features
        entry = self.light.get(caller)
        if entry is None:
            entry = [t, 0, t, t, b""]
            self.light[caller] = entry
        elif t - entry[_LIGHT_START] > fs.horizons_s[-1]:
            entry[_LIGHT_START] = t
            entry[_LIGHT_CALLS] = 0
            entry[_LIGHT_EARLY] = b""
        ring = call.ring
        packed = _EARLY_CALL.pack(t, int(call.callee[1:]), min(call.duration, 2**31 - 1),
                                  math.nan if ring is None else ring,
                                  call.answered | call.failed << 1)
        if entry[_LIGHT_EARLY] and _packed_again(entry[_LIGHT_EARLY], packed):
            return None
        entry[_LIGHT_CALLS] += 1
        if t > entry[_LIGHT_LAST]:
            entry[_LIGHT_LAST] = t
        if entry[_LIGHT_CALLS] < fs.promote_after:
            entry[_LIGHT_EARLY] += packed
            return None
        del self.light[caller]
        early = list(_EARLY_CALL.iter_unpack(entry[_LIGHT_EARLY]))
        state = NumberState(fs, entry[_LIGHT_FIRST], now=min([t, *(c[0] for c in early)]))
        for at, callee, talk, ring, flags in early:
            state.outbound(at, callee, bool(flags & 1), talk, None if ring != ring else ring,
                           bool(flags & 2), fs)
        waiting = self.waiting_rings.pop(caller, None)
        if waiting is not None:
            state.ring_id = waiting[0]
        self.states[caller] = state
        return state

    def observe_inbound(self, call: Call, offset: int = -1, index: int = 0) -> None:
        """Account the call on the callee's state, if the callee is a tracked caller."""
        state = self.states.get(call.callee)
        if state is None:
            return
        if offset >= 0 and not state.first_delivery(offset, 2 * index + 1):
            self.stats.redelivered += 1
            return
        caller = int(call.caller[1:]) if call.caller != WITHHELD else 0  # 0: never a callback
        state.inbound(call.start, caller, self.settings.features)
        if self.touched is not None:
            self.touched.add(call.callee)

    # ------------------------------------------------------------------ rings

    def join_ring(self, number: str, ring_id: str, at: float) -> None:
        """``number`` joined ring ``ring_id`` at event time ``at`` (what group detection
        found): its number alerts carry the ring id until :meth:`leave_ring`.  A number
        already in a ring stays in that one, as ``GroupDetector.ring_of`` keeps the first.

        The membership is kept in the number's state (saved with it); a number without
        full state keeps it in :attr:`waiting_rings` until it gets one.
        """
        _check_ring_id(ring_id)
        if not math.isfinite(at):
            raise ValueError(f"a ring membership at {at}")
        state = self.states.get(number)
        if state is None:
            self.waiting_rings.setdefault(number, (ring_id, at))
        elif state.ring_id is None:
            state.ring_id = ring_id
            if self.touched is not None:
                self.touched.add(number)

    def leave_ring(self, number: str, ring_id: str) -> None:
        """Ring ``ring_id`` ended: ``number``, if a member of it, is in no ring any more."""
        _check_ring_id(ring_id)
        state = self.states.get(number)
        if state is not None:
            if state.ring_id == ring_id:
                state.ring_id = None
                if self.touched is not None:
                    self.touched.add(number)
            return
        waiting = self.waiting_rings.get(number)
        if waiting is not None and waiting[0] == ring_id:
            del self.waiting_rings[number]

    def ring_id_of(self, number: str) -> str | None:
        """The ring ``number`` is a member of, as far as :meth:`join_ring` was told."""
        state = self.states.get(number)
        if state is not None:
            return state.ring_id
        waiting = self.waiting_rings.get(number)
        return None if waiting is None else waiting[0]

    # ------------------------------------------------------------------ judgement

    def _judge(self, caller: str, state: NumberState, t: float) -> Alert | None:
        settings = self.settings
        fs = settings.features
        virtual = 1.0 if caller.startswith(self._virtual) else 0.0
        by_horizon: dict[int, dict[str, float]] = {}

        def features(horizon: int) -> dict[str, float]:
            found = by_horizon.get(horizon)
            if found is None:
                found = state.features(horizon, t, fs)
                found["virtual"] = virtual
                by_horizon[horizon] = found
            return found

        best: RuleMatch | None = None
        best_horizon = fs.horizons_s[-1]
        calling_for = t - state.first_seen
        for profile, floor, settle in self._volume_floors:
            # the volume floor first: most judged numbers fail it at most horizons
            if floor > 0 and round(state.attempts(profile.horizon_s, t, fs), 3) < floor:
                continue
            found = features(profile.horizon_s)
            waits = settle > 0 and found["answer_ratio"] >= self._settle_answer
            if waits and calling_for < settle:
                continue  # answered: its call-backs and retries have not had time to come
            match = self._match(profile, state, found)
            if match is not None and waits:
                match.reasons.append(
                    f"answer rate {found['answer_ratio']:.2f} (>= {self._settle_answer:g}): "
                    f"judged after {horizon_text(int(settle))} of calls, time for "
                    "call-backs and retries")
            if match is not None and (best is None or match.score > best.score):
                best, best_horizon = match, profile.horizon_s
        reach_horizon = settings.reach.horizon_s
        reach = self.reach.judge(
            features(reach_horizon),
            settled=features(reach_horizon)["attempts"] - state.attempts(self._settle, t, fs))
        if reach is not None and (best is None or reach.score > best.score):
            best, best_horizon = reach, reach_horizon

        ms = settings.model
        model_score: float | None = None
        state.next_score -= 1
        if state.next_score <= 0 or best is not None:
            state.next_score = ms.score_every
            if best is None and t - state.last_alert >= self._cooldown:
                # a busy caller not alerted: part of what is normal today
                self.reach.learn(features(reach_horizon), t)
            if ms.enabled:
                state.model_score = self.model.score_and_learn(
                    features(fs.horizons_s[-1]), learn=best is None
                )
                if self.on_model_score is not None:
                    self.on_model_score(state.model_score)
        if ms.enabled:
            model_score = state.model_score if self.model.warmed_up else 0.0

        if best is not None:
            score = best.score + ms.weight * (model_score or 0.0)
            reasons = list(best.reasons)
            if model_score is not None:
                reasons.append(f"model anomaly score {model_score:.2f}")
            return self._raise(caller, state, t, score, reasons, best.profile, model_score,
                               features(best_horizon))
        if (
            ms.enabled
            and ms.alert_threshold > 0
            and model_score is not None
            and model_score >= ms.alert_threshold
        ):
            longest = features(fs.horizons_s[-1])
            if longest["inbound"] == 0:
                reasons = [
                    f"model: calling profile unlike ordinary callers (score {model_score:.2f})",
                    f"{longest['attempts']:.0f} calls in {fs.horizons_s[-1] // 60} min, "
                    f"answer rate {longest['answer_ratio']:.2f}, no calls received",
                ]
                return self._raise(caller, state, t, ms.weight * model_score, reasons, "model",
                                   model_score, longest)
        return None

    def _match(self, profile: RuleProfile, state: NumberState,
               features: dict[str, float]) -> RuleMatch | None:
        """One profile against one horizon's features; circles only if all else holds."""
        z = self._confidence_z
        if profile.name not in self._circle_profiles or self.graph is None:
            return evaluate(profile, features, z)
        features["circle_callees"] = math.inf  # first: would it match if the circle did?
        if evaluate(profile, features, z) is None:
            features["circle_callees"] = 0.0
            return None
        features["circle_callees"] = float(circle_members(self.graph, state.strangers_in_ring()))
        return evaluate(profile, features, z)

    def _raise(
        self,
        caller: str,
        state: NumberState,
        t: float,
        score: float,
        reasons: list[str],
        profile: str,
        model_score: float | None,
        features: dict[str, float],
    ) -> Alert:
        state.last_alert = t
        if self.touched is not None:
            self.touched.add(caller)
        self.stats.alerts += 1
        return Alert(
            kind="number",
            caller=caller,
            score=score,
            reasons=reasons,
            detected_at=t,
            first_seen=state.first_seen,
            profile=profile,
            model_score=model_score,
            features={k: round(v, 4) for k, v in features.items()},
            trunk=state.trunk,
            ring_id=state.ring_id,
        )

    # ------------------------------------------------------------------ housekeeping

    def maybe_expire(self) -> int:
        """Forget idle numbers now and then (driven by event time, not a clock)."""
        if self.watermark - self._last_sweep < self._sweep_interval:
            return 0
        if self._last_sweep == -math.inf:
            self._last_sweep = self.watermark
            return 0
        self._last_sweep = self.watermark
        return self.expire(self.watermark)

    def expire(self, now: float) -> int:
        """Drop numbers whose last call is older than ``idle_expiry_s`` before ``now``."""
        cutoff = now - self.settings.features.idle_expiry_s
        idle = [number for number, state in self.states.items() if state.last_seen < cutoff]
        for number in idle:
            del self.states[number]
            if self.touched is not None:
                self.touched.add(number)
        quiet = [number for number, entry in self.light.items() if entry[_LIGHT_LAST] < cutoff]
        for number in quiet:
            del self.light[number]
        # a membership waits for its number's state as long as the number calls, or as long
        # as a number's state waits for its next call when it does not
        for number in [number for number, (_, at) in self.waiting_rings.items()
                       if at < cutoff and number not in self.light]:
            del self.waiting_rings[number]
        self.stats.expired += len(idle) + len(quiet)
        return len(idle) + len(quiet)

    def drain_touched(self) -> set[str]:
        """Numbers changed since the last call (for flushing to a Faust table); resets the set."""
        touched = self.touched or set()
        self.touched = set() if self.touched is not None else None
        return touched

    def table_state(self) -> dict[str, bytes]:
        """What the state table holds: number -> :meth:`NumberState.to_bytes`."""
        return {number: state.to_bytes() for number, state in self.states.items()}

    def load_table_state(self, items: Mapping[str, bytes]) -> None:
        """Replace the per-number state by what :meth:`table_state` gave."""
        self.states.clear()
        for number, data in items.items():
            self.states[number] = NumberState.from_bytes(data)

    @property
    def tracked_numbers(self) -> int:
        """Numbers with any state: full (``states``) or a bare call count (``light``)."""
        return len(self.states) + len(self.light)


def _check_ring_id(ring_id: str) -> None:
    if not ring_id or len(ring_id) > MAX_RING_ID:
        raise ValueError(f"a ring id of {len(ring_id)} characters")
