"""Simulated worlds of different difficulty: ``standard`` and ``hard``.

``standard`` is :func:`testbed.simulation.simulate`, unchanged.  ``hard`` is
the same carrier (same label classes, same record format, same counts in
:class:`~testbed.simulation.SimConfig`) drawn from wider, overlapping
distributions, so legitimate bulk callers and stealthy abuse look alike on
the obvious features.  It exists to test whether a detector generalises, not
to be caught: nothing here was fitted to any detector's thresholds.

Every number carries a *kind* (a sub-class, e.g. ``enterprise/unregistered_cc``)
in ``labels.meta["kinds"]`` so results can be broken down further than the
label classes; numbers without one are plain members of their class.

Legitimate traffic, beyond the standard world's ordinary subscribers:

* **courier**: parcel couriers with answer rates 0.5-0.92 and rounds that run
  into the evening; parcel-station couriers who call everyone whose parcel
  arrived in quick succession ("come downstairs"); food-delivery riders
  (lunch and dinner peaks, very short calls, customers call them too).  Talk
  is short (median 6-30 s), so many answered calls are under ten seconds.
* **dispatch**: radio-taxi dispatch (the standard one) and app-booking
  confirmation desks (taxi, designated driver) that call hundreds of one-off
  customers for a few seconds each, with little inbound traffic.
* **notice**: school notices with low answer rates (parents at work), clinic
  appointment reminders (a queue worked through business hours, short
  "press 1 to confirm" calls, patients call back to reschedule), and the
  standard notice bursts.
* **enterprise**: registered (allowlisted) call centres as in the standard
  world, plus *unregistered* small call centres (after-sales, property
  management, car dealers) whose agents call customers back; not on the
  allowlist, some on cloud contact-centre gateways that dialers use too.
* **ordinary**: also business travellers ringing round hotels, people hunting
  for a flat ringing landlords, and someone ringing round family and friends
  (a wedding, a funeral): many distinct callees in a few hours.

Abuse (labels as in the standard world):

* **cloud_dialer**: the standard burst, and *low-and-slow* campaigns of 3-20
  numbers each making 15-60 calls an hour over 4-12 hours with a working-day
  rhythm; curious victims return missed calls (up to 10%).
* **rotating_pool**: the standard sprinkle (a few calls per number) and
  *rotating* pools where each number makes 20-60 calls before the next takes
  over (1-4 at a time).
* **ring_once**: international single numbers and domestic SIM pools of 2-8
  numbers, fast or slow (tens an hour), ring times up to ~7 s, some quick
  pick-ups, call-back rates 2-15%.
* **marketing_blast**: SIM farms of 1-6 SIMs at 20-150 calls an hour, answer
  rates 0.25-0.6, a pitch of 20-90 s for those who listen, some call-backs,
  personal cover traffic on half the SIMs.
* **repeat_refused**: the standard harassment, and debt collectors who also
  ring the debtor's contacts (many distinct callees, answered, arguing).

Abuse enters by dialer gateways, wholesale SBCs, interconnect trunks (from
another network, caller numbers not ours) and mobile trunks (SIM boxes).

Record-level realism on top of the standard world's: some trunks' clocks are
skewed by up to 40 s and some write whole seconds; records are delivered when
the call *ends* (so long calls arrive minutes late), some trunks deliver in
batches of 1-5 minutes, and about 2% of records arrive up to 15 minutes late.

>>> from testbed.simulation import ALL_CLASSES, SimConfig
>>> day = simulate_world("hard", SimConfig.preset("small"), seed=7)
>>> day.labels.meta["world"], sorted(set(day.labels.classes.values())) == sorted(ALL_CLASSES)
('hard', True)
>>> again = simulate_world("hard", SimConfig.preset("small"), 7)
>>> list(day.records())[:50] == list(again.records())[:50]
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from testbed.simulation import (
    _BUSINESS_HOURS,
    _DIALER_WORDS,
    _INTERCONNECT_TRUNKS,
    _MOBILE_TRUNKS,
    _WHOLESALE_TRUNKS,
    ANSWERED,
    BUSY,
    FAILED,
    NO_ANSWER,
    LabelledDay,
    SimConfig,
    SimulatedDay,
    simulate,
)

WORLDS: tuple[str, ...] = ("standard", "hard", "wide")

# Hourly rhythms (local time) the hard world adds.
_COURIER_LATE_HOURS = (0, 0, 0, 0, 0, 0, 0, 0.3, 0.9, 1, 1, 1, 0.6, 0.7, 1, 1, 1, 1, 0.9, 0.7,
                       0.5, 0.3, 0.05, 0)
_MEAL_HOURS = (0.02, 0.01, 0, 0, 0, 0, 0.05, 0.2, 0.3, 0.3, 0.6, 1.6, 1.8, 0.9, 0.4, 0.3, 0.5,
               1.2, 1.6, 1.2, 0.7, 0.5, 0.3, 0.1)
_EVENING_HOURS = (0, 0, 0, 0, 0, 0, 0, 0.2, 0.5, 0.8, 0.9, 0.9, 0.6, 0.7, 0.9, 0.9, 0.9, 0.8,
                  0.8, 1, 1, 0.8, 0.3, 0)


class HardDay(SimulatedDay):
    """The hard world: a :class:`~testbed.simulation.SimulatedDay` with other generators.

    Build it with :func:`simulate_world` (``"hard"``).

    >>> from testbed.simulation import SimConfig
    >>> day = HardDay(SimConfig.preset("small"), seed=3)
    >>> kinds = day.labels.meta["kinds"]
    >>> any(k == "enterprise/unregistered_cc" for k in kinds.values())
    True
    >>> unregistered = [n for n, k in kinds.items() if k.endswith("unregistered_cc")]
    >>> any(n in day.labels.allowlist for n in unregistered)
    False
    """

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.kinds: dict[str, str] = {}
        self._begins = math.inf
        super().__init__(config, seed)

    # ----------------------------------------------------------------- helpers

    def _kind(self, numbers: Iterable[Any], kind: str) -> None:
        for v in numbers:
            self.kinds["+" + str(int(v)) if not isinstance(v, str) else v] = kind

    def _new_labels(self, build: Any, kind: str, *args: Any) -> None:
        """Run a standard generator and give the numbers it labelled a kind."""
        before = set(self.classes)
        build(*args)
        self._kind(sorted(set(self.classes) - before), kind)

    def _outcomes(self, n: int, p_answer: float, talk_median: float, talk_sigma: float,
                  short_share: float = 0.0, hi: int = 1800, lo: int = 1
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(answered, ring, talk, disposition) for ordinary person-to-business calls."""
        rng = self.rng
        ans = rng.random(n) < p_answer
        busy = ~ans & (rng.random(n) < 0.15)
        talk = self._talk(talk_median, talk_sigma, n, lo=lo, hi=hi)
        if short_share > 0:
            talk = np.where(rng.random(n) < short_share, rng.integers(1, 9, n), talk)
        ring = np.where(ans, np.clip(rng.lognormal(math.log(7), 0.5, n), 1, 40),
                        np.where(busy, rng.uniform(1, 8, n), rng.uniform(15, 45, n)))
        disp = np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER))
        return ans, ring, np.where(ans, talk, 0), disp

    def _call(self, t: np.ndarray, me: int, callees: np.ndarray, trunk: int, p_answer: float,
              talk_median: float, talk_sigma: float, short_share: float = 0.0,
              retry: float = 0.0, hi: int = 1800) -> np.ndarray:
        """Calls from ``me`` (one retry of some unanswered); returns which were answered."""
        rng = self.rng
        n = len(t)
        ans, ring, talk, disp = self._outcomes(n, p_answer, talk_median, talk_sigma,
                                               short_share, hi)
        self.calls.add(t, me, callees, ring, talk, disp, trunk)
        again = ~ans & (rng.random(n) < retry)
        j = int(again.sum())
        if j:
            a2, r2, k2, d2 = self._outcomes(j, p_answer, talk_median, talk_sigma, short_share,
                                            hi)
            self.calls.add(t[again] + rng.uniform(120, 1800, j), me, callees[again], r2, k2,
                           d2, trunk)
        return ans

    def _inbound(self, t: np.ndarray, callers: np.ndarray, me: int, talk_median: float,
                 p_answer: float = 0.9) -> None:
        """Calls to ``me`` from ``callers`` at ``t``."""
        n = len(t)
        if n == 0:
            return
        rng = self.rng
        ans = rng.random(n) < p_answer
        self.calls.add(t, callers, me,
                       np.where(ans, rng.uniform(1, 15, n), rng.uniform(15, 40, n)),
                       np.where(ans, self._talk(talk_median, 0.8, n, hi=3600), 0),
                       np.where(ans, ANSWERED, NO_ANSWER),
                       [self._mobile_trunk(int(v)) for v in callers.tolist()])

    def _began(self, t: np.ndarray) -> None:
        """Note the first call of the current abuse operation (not its cover traffic)."""
        if len(t):
            self._begins = min(self._begins, float(np.min(t)))

    def _mobile_trunk_index(self) -> int:
        return self._trunk(_MOBILE_TRUNKS[int(self.rng.integers(0, len(_MOBILE_TRUNKS)))])

    def _wholesale(self) -> int:
        return self._trunk(_WHOLESALE_TRUNKS[int(self.rng.integers(0, len(_WHOLESALE_TRUNKS)))])

    def _abuse_origin(self, k: int, sim_ok: bool = True) -> tuple[np.ndarray, int, str]:
        """Numbers and a trunk for an abuse operation: gateway, SBC, interconnect or SIM box."""
        rng = self.rng
        u = rng.random()
        if u < 0.4:
            word = _DIALER_WORDS[int(rng.integers(0, len(_DIALER_WORDS)))]
            return (self._dialer_numbers(k),
                    self._trunk(f"gw-{word}-{rng.integers(1, 99):02d}", ip=True), "gateway")
        if u < 0.65:
            return self._dialer_numbers(k), self._wholesale(), "wholesale"
        if u < 0.8 or not sim_ok:  # another network hands the calls over: numbers not ours
            return (self.numbers.mobile(k, virtual_share=0.2),
                    self._trunk(_INTERCONNECT_TRUNKS[int(rng.integers(0, 3))]), "interconnect")
        trunk = self._mobile_trunk_index()
        numbers = self.numbers.mobile(k, virtual_share=0.3)
        for v in numbers.tolist():
            self._home[v] = trunk
        return numbers, trunk, "simbox"

    # ----------------------------------------------------------------- build

    def _build(self) -> None:
        cfg = self.config
        rng = self.rng
        self._build_network()
        self._ordinary()
        busy_people = max(1, cfg.subscribers // 2500)
        for _ in range(busy_people):
            self._traveller()
        for _ in range(busy_people):
            self._flat_hunter()
        for _ in range(max(1, busy_people // 2)):
            self._ring_round()
        for _ in range(cfg.couriers):
            self._courier_hard()
        for _ in range(cfg.dispatch):
            if rng.random() < 0.45:
                self._new_labels(self._dispatch, "dispatch/radio_taxi")
            else:
                self._app_confirm()
        for _ in range(cfg.notice):
            u = rng.random()
            if u < 0.4:
                self._school()
            elif u < 0.75:
                self._clinic()
            else:
                self._new_labels(self._notice, "notice/standard")
        for i in range(cfg.enterprise):
            self._new_labels(self._enterprise, "enterprise/registered", i)
        for _ in range(2 * cfg.enterprise):
            self._call_centre()
        for i in range(cfg.cloud_dialer):
            self._cloud_dialer_hard(i)
        for i in range(cfg.rotating_pool):
            self._rotating_pool_hard(i)
        for i in range(cfg.ring_once):
            self._ring_once_hard(i)
        for i in range(cfg.marketing_blast):
            self._marketing_hard(i)
        for i in range(cfg.repeat_refused):
            self._repeat_refused_hard(i)
        self._skew_clocks()
        self._finish()
        self._redeliver()
        # A campaign starts at its first campaign call, not at the SIM's personal cover calls.
        for camp in self.labels.campaigns:
            begins = camp.params.get("begins", -math.inf)
            if begins > camp.start:
                camp.start = round(begins, 3)
        self.labels.campaigns.sort(key=lambda c: (c.start, c.id))
        present = set(self.labels.classes)
        called = set(np.unique(self.cols["caller"]).tolist())
        kinds = {n: k for n, k in sorted(self.kinds.items())
                 if n in present and int(n[1:]) in called}
        self.labels.meta["world"] = "hard"
        self.labels.meta["kinds"] = kinds
        self.labels.meta["kind_counts"] = dict(sorted(Counter(kinds.values()).items()))

    # ----------------------------------------------------------------- legitimate

    def _traveller(self) -> None:
        """A business traveller ringing round hotels for a room, then calling colleagues."""
        rng = self.rng
        me = int(self.numbers.mobile(1)[0])
        trunk = self._mobile_trunk_index()
        self._home[me] = trunk
        self._label([me], "ordinary")
        self._kind([me], "ordinary/traveller")
        self._cover(me, trunk)
        n = int(rng.integers(15, 51))
        hotels = self.numbers.fixed(n)
        start, end = self.clock.window(1800, 3 * 3600)
        t = np.sort(rng.uniform(start, end, n))
        ans = self._call(t, me, hotels, trunk, rng.uniform(0.75, 0.95), rng.uniform(30, 90), 0.7,
                         short_share=rng.uniform(0.1, 0.4), retry=0.3)
        back = ~ans & (rng.random(n) < 0.3)
        self._inbound(t[back] + rng.uniform(120, 1800, int(back.sum())), hotels[back], me, 40)

    def _flat_hunter(self) -> None:
        """Someone looking for a flat: rings landlords and agents from listings."""
        rng = self.rng
        me = int(self.numbers.mobile(1, virtual_share=0.04)[0])
        trunk = self._mobile_trunk_index()
        self._home[me] = trunk
        self._label([me], "ordinary")
        self._kind([me], "ordinary/flat_hunter")
        self._cover(me, trunk)
        n = int(rng.integers(20, 61))
        landlords = self.numbers.mobile(n)
        t = np.sort(self.clock.between(_EVENING_HOURS, self.config.start, self.end, n))
        ans = self._call(t, me, landlords, trunk, rng.uniform(0.45, 0.8), rng.uniform(40, 100),
                         0.8, short_share=rng.uniform(0.1, 0.3), retry=0.4)
        back = rng.random(n) < np.where(ans, 0.1, 0.3)
        self._inbound(t[back] + rng.uniform(300, 5400, int(back.sum())), landlords[back], me, 90)

    def _ring_round(self) -> None:
        """News to share (a wedding, a funeral): family and friends, one after another."""
        rng = self.rng
        me = int(self.population[int(rng.integers(0, len(self.population)))])
        self._kind([me], "ordinary/ring_round")
        self.classes["+" + str(me)] = "ordinary"
        trunk = self._home[me]
        n = int(rng.integers(25, 91))
        people = self._customers(n, 0.7)
        start, end = self.clock.window(3600, 4 * 3600)
        t = np.sort(rng.uniform(start, end, len(people)))
        ans = self._call(t, me, people, trunk, rng.uniform(0.6, 0.9), rng.uniform(40, 120), 0.9,
                         retry=0.3)
        back = ~ans & (rng.random(len(people)) < 0.5)
        self._inbound(t[back] + rng.exponential(1200, int(back.sum())) + 30, people[back], me,
                      120)

    def _courier_hard(self) -> None:
        rng = self.rng
        kind = str(rng.choice(["parcel", "parcel_station", "food_rider"], p=[0.5, 0.3, 0.2]))
        me = int(self.numbers.mobile(1, virtual_share=0.05)[0])
        self._label([me], "courier")
        self._kind([me], f"courier/{kind}")
        trunk = self._mobile_trunk_index()
        self._home[me] = trunk
        p_ans = rng.uniform(0.5, 0.92)
        talk_median = rng.uniform(6, 30)
        if kind == "food_rider":
            orders = int(rng.uniform(20, 70) * self.clock.fraction(_MEAL_HOURS))
            if orders == 0:
                return
            t = np.sort(self.clock.times(_MEAL_HOURS, orders))
            customers = self._customers(orders, 0.8)
            t = t[:len(customers)]
            ans = self._call(t, me, customers, trunk, p_ans, talk_median, 0.6, retry=0.7, hi=120)
            # customers ring the rider ("where is my food?"), restaurants too
            asks = rng.random(len(t)) < rng.uniform(0.15, 0.45)
            self._inbound(t[asks] + rng.uniform(-900, 600, int(asks.sum())), customers[asks], me,
                          15)
            self._callbacks(t[~ans], me, customers[~ans], rng.uniform(0.3, 0.7), 0.9, 12, 180)
            return
        if kind == "parcel":
            n = int(rng.uniform(40, 220) * self.clock.fraction(_COURIER_LATE_HOURS))
            if n == 0:
                return
            customers = self._customers(n, rng.uniform(0.5, 0.85))
            t = np.sort(self.clock.times(_COURIER_LATE_HOURS, len(customers)))
        else:  # parcel station: rounds calling everyone whose parcel came in
            rounds = int(rng.integers(2, 6))
            parts_t, parts_c = [], []
            for _ in range(rounds):
                m = int(rng.integers(15, 81))
                cust = self._customers(m, rng.uniform(0.6, 0.9))
                t0 = float(self.clock.times(_COURIER_LATE_HOURS, 1)[0])
                per_min = rng.uniform(2, 6)
                parts_t.append(t0 + np.sort(rng.uniform(0, len(cust) / per_min * 60, len(cust))))
                parts_c.append(cust)
            t = np.concatenate(parts_t)
            customers = np.concatenate(parts_c)
            order = np.argsort(t)
            t, customers = t[order], customers[order]
        ans = self._call(t, me, customers, trunk, p_ans, talk_median, 0.6,
                         retry=rng.uniform(0.3, 0.9), hi=240)
        self._callbacks(t[~ans], me, customers[~ans], rng.uniform(0.2, 0.6), 0.85, 20, 900)
        self._callbacks(t[ans], me, customers[ans], rng.uniform(0.03, 0.15), 0.85, 30, 3600)

    def _app_confirm(self) -> None:
        """A booking desk (taxi app, designated driver) confirming one-off customers."""
        rng = self.rng
        if rng.random() < 0.5:
            me = int(self.numbers.fixed(1)[0])
            trunk = self._wholesale()
        else:
            me = int(self.numbers.mobile(1)[0])
            trunk = self._mobile_trunk_index()
            self._home[me] = trunk
        self._label([me], "dispatch")
        self._kind([me], "dispatch/app_confirm")
        bookings = int(rng.uniform(150, 700) * self.clock.fraction(_EVENING_HOURS))
        if bookings == 0:
            return
        customers = self._customers(bookings, 0.7)
        t = np.sort(self.clock.times(_EVENING_HOURS, len(customers)))
        called = rng.random(len(t)) < rng.uniform(0.6, 0.95)
        tc, cc = t[called], customers[called]
        ans = self._call(tc, me, cc, trunk, rng.uniform(0.6, 0.88), rng.uniform(8, 20), 0.5,
                         retry=0.5, hi=300)
        self._callbacks(tc[~ans], me, cc[~ans], rng.uniform(0.15, 0.4), 0.9, 25, 600)
        self._callbacks(tc[ans], me, cc[ans], rng.uniform(0.02, 0.1), 0.9, 60, 3600)
        drivers = self._customers(int(rng.integers(20, 61)), 0.8)
        k = int(len(t) * rng.uniform(0.1, 0.5))
        td = np.sort(self.clock.times(_EVENING_HOURS, k))
        self._call(td, me, drivers[rng.integers(0, len(drivers), k)], trunk, 0.9, 15, 0.6)

    def _school(self) -> None:
        """School notices: a few recorded bursts a day; parents at work often miss them."""
        cfg, rng = self.config, self.rng
        me = int(self.numbers.fixed(1)[0])
        self._label([me], "notice")
        self._kind([me], "notice/school_low_answer")
        trunk = (self._trunk(f"pbx-school-{rng.integers(1, 40)}", ip=True)
                 if rng.random() < 0.5 else self._wholesale())
        community = self._customers(int(rng.integers(100, 1201)), rng.uniform(0.75, 0.95))
        offset = cfg.utc_offset_h * 3600.0
        day0 = math.floor((cfg.start + offset) / 86400.0) * 86400.0 - offset
        slots = (7.0, 7.5, 8.0, 11.5, 12.0, 15.5, 16.0, 16.5, 17.0, 19.5)
        candidates = [d + h * 3600.0 for d in np.arange(day0, self.end, 86400.0) for h in slots
                      if cfg.start <= d + h * 3600.0 < self.end - 600]
        if not candidates:
            candidates = [float(rng.uniform(cfg.start, max(cfg.start, self.end - 1800)))]
        n_bursts = min(int(rng.integers(1, 4)), len(candidates))
        p_ans = rng.uniform(0.25, 0.6)
        for pick in sorted(rng.choice(len(candidates), size=n_bursts, replace=False).tolist()):
            t0 = candidates[pick] + rng.uniform(-300, 300)
            who = community[rng.random(len(community)) < rng.uniform(0.3, 1.0)]
            t = t0 + np.sort(rng.uniform(0, len(who) / rng.uniform(10, 60) * 60.0, len(who)))
            ans = self._call(t, me, who, trunk, p_ans, rng.uniform(20, 45), 0.4,
                             short_share=rng.uniform(0.05, 0.3), retry=rng.uniform(0.3, 0.8),
                             hi=180)
            self._callbacks(t[~ans], me, who[~ans], rng.uniform(0.05, 0.2), 0.6, 40, 1800)

    def _clinic(self) -> None:
        """Appointment reminders: a queue worked through business hours, patients call back."""
        rng = self.rng
        me = int(self.numbers.fixed(1)[0])
        self._label([me], "notice")
        self._kind([me], "notice/clinic_reminder")
        trunk = (self._trunk(f"pbx-clinic-{rng.integers(1, 40)}", ip=True)
                 if rng.random() < 0.6 else self._wholesale())
        n = int(rng.uniform(150, 900) * self.clock.fraction(_BUSINESS_HOURS))
        if n == 0:
            return
        patients = self._customers(n, 0.8)
        runs = int(rng.integers(1, 5))
        edges = np.sort(rng.integers(0, len(patients) + 1, runs - 1))
        parts = []
        for chunk in np.split(np.arange(len(patients)), edges):
            if len(chunk) == 0:
                continue
            t0 = float(self.clock.times(_BUSINESS_HOURS, 1)[0])
            parts.append(t0 + np.sort(rng.uniform(0, len(chunk) / rng.uniform(3, 30) * 60,
                                                  len(chunk))))
        t = np.concatenate(parts)
        self._call(t, me, patients, trunk, rng.uniform(0.45, 0.75), rng.uniform(12, 25),
                         0.4, short_share=rng.uniform(0.1, 0.3), retry=rng.uniform(0.3, 0.7),
                         hi=120)
        self._callbacks(t, me, patients, rng.uniform(0.05, 0.2), 0.8, 60, 2400)

    def _call_centre(self) -> None:
        """An unregistered small call centre: agents call customers back; not allowlisted."""
        rng = self.rng
        agents = int(rng.integers(1, 7))
        u = rng.random()
        if u < 0.4:  # a cloud contact-centre platform, the kind dialers use as well
            word = _DIALER_WORDS[int(rng.integers(0, len(_DIALER_WORDS)))]
            trunk = self._trunk(f"gw-{word}-cc-{rng.integers(1, 99):02d}", ip=True)
            numbers = self.numbers.fixed(agents)
        elif u < 0.75:
            trunk = self._wholesale()
            numbers = self.numbers.fixed(agents)
        else:  # agents on mobile SIMs
            trunk = self._mobile_trunk_index()
            numbers = self.numbers.mobile(agents, virtual_share=0.3)
            for v in numbers.tolist():
                self._home[v] = trunk
        self._label(numbers, "enterprise")
        self._kind(numbers, "enterprise/unregistered_cc")
        frac = self.clock.fraction(_BUSINESS_HOURS)
        p_ans = rng.uniform(0.4, 0.8)
        talk_median = rng.uniform(40, 120)
        short = rng.uniform(0.1, 0.35)
        for j, me in enumerate(numbers.tolist()):
            n = int(rng.uniform(60, 400) * frac)
            if n == 0:
                continue
            cust = self._customers(n, rng.uniform(0.5, 0.8))
            t = np.sort(self.clock.times(_BUSINESS_HOURS, len(cust)))
            ans = self._call(t, me, cust, trunk, p_ans * rng.uniform(0.85, 1.15), talk_median,
                             0.9, short_share=short, retry=rng.uniform(0.1, 0.5))
            self._callbacks(t[~ans], me, cust[~ans], rng.uniform(0.05, 0.3), 0.8, 60, 1800)
            if j == 0:  # the published number also takes customers' calls
                k = int(n * rng.uniform(0.05, 0.8))
                src = self._customers(k, 0.6)
                self._inbound(self.clock.times(_BUSINESS_HOURS, len(src)), src, me, 120)

    # ----------------------------------------------------------------- abuse

    def _cloud_dialer_hard(self, i: int) -> None:
        self._begins = math.inf
        rng = self.rng
        style = "burst" if rng.random() < 0.35 else "low_slow"
        k = int(rng.integers(1, 5)) if style == "burst" else int(rng.integers(3, 21))
        numbers, trunk, origin = self._abuse_origin(k)
        members = self._label(numbers, "cloud_dialer")
        self._kind(members, f"cloud_dialer/{style}/{origin}")
        p_answer = rng.uniform(0.05, 0.45)
        p_back = rng.uniform(0.0, 0.1)
        sequential = bool(rng.random() < 0.25)
        if style == "burst":
            start, end = self.clock.window(600, 3 * 3600)
        else:
            start, end = self.clock.window(4 * 3600, 12 * 3600)
        per_hour = rng.uniform(15, 60)
        for me in numbers.tolist():
            if style == "burst":
                n = int(math.exp(rng.uniform(math.log(200), math.log(3000))))
                s = start + rng.uniform(0, 0.2) * (end - start)
                t = np.sort(rng.uniform(s, end, n))
            else:
                s = start + rng.uniform(0, 0.15) * (end - start)
                e = end - rng.uniform(0, 0.15) * (end - start)
                n = int(rng.poisson(per_hour * rng.uniform(0.7, 1.3) * (e - s) / 3600.0))
                t = np.sort(self.clock.between(_BUSINESS_HOURS, s, e, n))
            if n == 0:
                continue
            callees = self._leaked(n, sequential)
            self._began(t)
            p_fail = rng.uniform(0.1, 0.4) if sequential else rng.uniform(0.0, 0.12)
            self._bulk_calls(t, me, callees, trunk, p_answer * rng.uniform(0.8, 1.2), p_fail,
                             rng.uniform(8, 30), rng.uniform(0.4, 0.9))
            self._callbacks(t, me, callees, p_back, rng.uniform(0.2, 0.8), 15, 1800)
        self._campaign(f"cloud_dialer-{i + 1:02d}", "cloud_dialer", members, start, end, trunk,
                       answer_rate=p_answer, sequential=float(sequential), callback_rate=p_back,
                       low_slow=float(style == "low_slow"), per_hour=per_hour,
                       begins=self._begins)

    def _rotating_pool_hard(self, i: int) -> None:
        self._begins = math.inf
        rng = self.rng
        style = "sprinkle" if rng.random() < 0.4 else "rotate"
        p_answer = rng.uniform(0.05, 0.35)
        give_up = rng.uniform(8, 25)
        if style == "sprinkle":
            k = int(rng.integers(20, 201))
            numbers, trunk, _ = self._abuse_origin(k, sim_ok=False)
            members = self._label(numbers, "rotating_pool")
            start, end = self.clock.window(1800, 4 * 3600)
            for me in numbers.tolist():
                n = 2 + int(rng.poisson(rng.uniform(1, 10)))
                t = np.sort(rng.uniform(start, end, n))
                self._began(t)
                self._bulk_calls(t, me, self._leaked(n, False), trunk, p_answer,
                                 rng.uniform(0, 0.1), give_up, 0.85)
        else:
            k = int(rng.integers(10, 61))
            numbers, trunk, _ = self._abuse_origin(k)
            members = self._label(numbers, "rotating_pool")
            concurrent = int(rng.integers(1, 5))
            rate = rng.uniform(60, 300)  # calls an hour while a number is in use
            per_number = rng.uniform(20, 60)
            turn = per_number / rate * 3600.0
            start = float(self.clock.times(_BUSINESS_HOURS, 1)[0])
            end = start
            for j, me in enumerate(numbers.tolist()):
                s = start + (j // concurrent) * turn * rng.uniform(0.9, 1.3)
                n = max(1, int(rng.normal(per_number, per_number * 0.2)))
                t = np.sort(s + rng.uniform(0, n / rate * 3600.0, n))
                t = t[t < self.end]
                if len(t) == 0:
                    continue
                end = max(end, float(t[-1]))
                callees = self._leaked(len(t), False)
                self._began(t)
                self._bulk_calls(t, me, callees, trunk, p_answer, rng.uniform(0, 0.1), give_up,
                                 rng.uniform(0.5, 0.9))
                self._callbacks(t, me, callees, rng.uniform(0, 0.04), 0.3, 10, 1800)
        self._kind(members, f"rotating_pool/{style}")
        self._campaign(f"rotating_pool-{i + 1:02d}", "rotating_pool", members, start, end, trunk,
                       answer_rate=p_answer, numbers=k, rotate=float(style == "rotate"),
                       begins=self._begins)

    def _ring_once_hard(self, i: int) -> None:
        self._begins = math.inf
        rng = self.rng
        if rng.random() < 0.4:
            style = "international"
            numbers = self.numbers.international(1)
            trunk = self._trunk(f"intl-gw-{rng.integers(1, 4)}", ip=True)
        else:
            style = "sim_pool"
            numbers = self.numbers.mobile(int(rng.integers(2, 9)), virtual_share=0.5)
            trunk = self._mobile_trunk_index()
            for v in numbers.tolist():
                self._home[v] = trunk
        members = self._label(numbers, "ring_once")
        self._kind(members, f"ring_once/{style}")
        start, end = self.clock.window(3600, 12 * 3600)
        ring_lo = rng.uniform(1.0, 3.0)
        ring_hi = ring_lo + rng.uniform(0.5, 4.0)
        p_back = rng.uniform(0.02, 0.15)
        p_pick = rng.uniform(0.0, 0.08)
        total = int(math.exp(rng.uniform(math.log(100), math.log(2000))))
        for me in numbers.tolist():
            n = max(1, int(total / len(numbers) * rng.uniform(0.6, 1.4)))
            t = np.sort(self.clock.between(_EVENING_HOURS, start, end, n))
            callees = self._leaked(n, bool(rng.random() < 0.3))
            fail = rng.random(n) < rng.uniform(0.02, 0.2)
            ans = ~fail & (rng.random(n) < p_pick)
            ring = np.where(fail, 0.0, rng.uniform(ring_lo, ring_hi, n))
            self._began(t)
            self.calls.add(t, me, callees, ring, np.where(ans, rng.integers(1, 6, n), 0),
                           np.where(fail, FAILED, np.where(ans, ANSWERED, NO_ANSWER)), trunk)
            self._callbacks(t[~fail], me, callees[~fail], p_back, 0.95, rng.uniform(30, 120), 900)
        self._campaign(f"ring_once-{i + 1:02d}", "ring_once", members, start, end, trunk,
                       calls=total, callback_rate=p_back, ring_hi=ring_hi, begins=self._begins)

    def _marketing_hard(self, i: int) -> None:
        self._begins = math.inf
        rng = self.rng
        k = int(rng.integers(1, 7))
        if rng.random() < 0.8:
            trunk = self._mobile_trunk_index()
            numbers = self.numbers.mobile(k, virtual_share=0.3)
            for v in numbers.tolist():
                self._home[v] = trunk
        else:
            trunk = self._wholesale()
            numbers = self.numbers.fixed(k)
        members = self._label(numbers, "marketing_blast")
        self._kind(members, "marketing_blast/sim_farm" if k > 1 else "marketing_blast/single")
        p_answer = rng.uniform(0.25, 0.6)
        hang_up = rng.uniform(0.3, 0.75)
        pitch = rng.uniform(20, 90)
        p_back = rng.uniform(0.01, 0.08)
        sessions = [self.clock.window(1800, 4 * 3600) for _ in range(int(rng.integers(1, 5)))]
        first = min(s for s, _ in sessions)
        last = max(e for _, e in sessions)
        per_hour = rng.uniform(20, 150)
        for me in numbers.tolist():
            if rng.random() < 0.5:
                self._cover(me, trunk)
            rate = per_hour * rng.uniform(0.7, 1.3)
            for s, e in sessions:
                n = int(rng.poisson(rate * (e - s) / 3600.0))
                if n == 0:
                    continue
                t = np.sort(rng.uniform(s, e, n))
                self._began(t)
                callees = self._leaked(n, False)
                redial = rng.random(n) < rng.uniform(0.0, 0.1)
                if n > 3:
                    callees = np.where(redial, np.roll(callees, 3), callees)
                ans = rng.random(n) < p_answer
                short = rng.random(n) < hang_up
                talk = np.where(short, self._talk(rng.uniform(3, 8), 0.5, n, hi=20),
                                self._talk(pitch, 0.7, n, hi=900))
                busy = ~ans & (rng.random(n) < 0.3)
                ring = np.where(ans, rng.uniform(2, 12, n),
                                np.where(busy, rng.uniform(1, 8, n), rng.uniform(15, 35, n)))
                self.calls.add(t, me, callees, ring, np.where(ans, talk, 0),
                               np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER)), trunk)
                self._callbacks(t, me, callees, p_back, 0.6, 20, 1800)
        self._campaign(f"marketing_blast-{i + 1:02d}", "marketing_blast", members, first, last,
                       trunk, per_hour=per_hour, answer_rate=p_answer, callback_rate=p_back,
                       sims=k, begins=self._begins)

    def _repeat_refused_hard(self, i: int) -> None:
        self._begins = math.inf
        cfg, rng = self.config, self.rng
        style = "collector" if rng.random() < 0.4 else "harass"
        if rng.random() < 0.25:
            me = int(self.numbers.fixed(1)[0])
            trunk = self._wholesale()
        else:
            me = int(self.numbers.mobile(1, virtual_share=0.3)[0])
            trunk = self._mobile_trunk_index()
            self._home[me] = trunk
            if rng.random() < 0.5:
                self._cover(me, trunk)
        members = self._label([me], "repeat_refused")
        self._kind(members, f"repeat_refused/{style}")
        targets = self.population[rng.choice(len(self.population),
                                             size=min(int(rng.integers(5, 41)),
                                                      len(self.population)), replace=False)]
        start, end = self.clock.window(2 * 3600, 14 * 3600)
        times, callees, answered = [], [], []
        for target in targets.tolist():
            p = rng.uniform(0.05, 0.35)
            for _ in range(int(rng.integers(1, 5))):
                k = int(rng.integers(1, 7))
                t = rng.uniform(start, end) + np.cumsum(rng.uniform(30, 600, k))
                times.append(t)
                callees.append(np.full(k, target))
                answered.append(rng.random(k) < p * 0.7 ** np.arange(k))
        t = np.concatenate(times)
        cal = np.concatenate(callees)
        ans = np.concatenate(answered)
        n = len(t)
        keep = t < min(end + 1800, self.end)
        self._began(t[keep])
        reject = ~ans & (rng.random(n) < 0.5)
        argue = rng.random(n) < 0.4
        talk = np.where(argue, self._talk(50, 0.7, n, hi=900), self._talk(5, 0.6, n, hi=20))
        ring = np.where(ans, rng.uniform(2, 10, n),
                        np.where(reject, rng.uniform(1, 6, n), rng.uniform(20, 40, n)))
        self.calls.add(t[keep], me, cal[keep], ring[keep], np.where(ans, talk, 0)[keep],
                       np.where(ans, ANSWERED, np.where(reject, BUSY, NO_ANSWER))[keep], trunk)
        # some of the harassed call back to argue or plead
        back = ans & (rng.random(n) < rng.uniform(0.0, 0.2))
        self._inbound(t[back] + rng.uniform(60, 3600, int(back.sum())), cal[back], me, 90)
        if style == "collector":  # the debtor's contacts: many distinct people, answered
            m = int(rng.integers(20, 121))
            contacts = self._customers(m, 0.7)
            tc = np.sort(rng.uniform(start, end, len(contacts)))
            self._began(tc)
            self._call(tc, me, contacts, trunk, rng.uniform(0.5, 0.8), rng.uniform(20, 120), 0.8,
                       short_share=rng.uniform(0.2, 0.5), retry=0.3)
        self._campaign(f"repeat_refused-{i + 1:02d}", "repeat_refused", members,
                       float(t.min()), float(t.max()), trunk, targets=len(targets),
                       horizon_h=cfg.hours, collector=float(style == "collector"),
                       begins=self._begins)

    # ----------------------------------------------------------------- delivery

    def _skew_clocks(self) -> None:
        """Some trunks' clocks run off by up to 40 s; some write whole seconds."""
        rng = self.rng
        n_trunks = len(self.trunks)
        skew = np.where(rng.random(n_trunks) < 0.3, rng.uniform(-40, 40, n_trunks), 0.0)
        whole = rng.random(n_trunks) < 0.3
        calls = self.calls
        times = calls.parts["t"]
        for idx, (t, trunk) in enumerate(zip(times, calls.parts["trunk"], strict=True)):
            shifted = t + skew[trunk]
            times[idx] = np.where(whole[trunk], np.floor(shifted), shifted)

    def _redeliver(self) -> None:
        """Delivery order: at the end of each call, some trunks in batches, a few very late."""
        rng = self.rng
        c = self.cols
        rows, kind = self.emit_rows, self.emit_kind
        n_trunks = len(self.trunks)
        batch = np.where(rng.random(n_trunks) < 0.3, rng.uniform(60, 300, n_trunks), 0.0)
        m = len(rows)
        end = c["t"][rows] + c["ring"][rows] + c["talk"][rows]
        b = batch[c["trunk"][rows]]
        end = np.where(b > 0, np.ceil(end / np.maximum(b, 1.0)) * b, end)
        late = rng.random(m) < 0.02
        keys = end + np.where(late, rng.uniform(5, 900, m), 0.0) + np.where(
            kind == 1, rng.uniform(0.5, 60, m), 0.0)
        order = np.argsort(keys, kind="stable")
        self.emit_rows = rows[order]
        self.emit_kind = kind[order]


def check_world(world: str, config: SimConfig | None = None) -> None:
    """``ValueError`` unless ``world`` is a world and models what ``config`` asks.

    >>> check_world("hard", SimConfig(abuse_rate_scale=3.0))
    Traceback (most recent call last):
    ...
    ValueError: rate scales are modelled by the wide world only, not 'hard'
    """
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}: {', '.join(WORLDS[:-1])} or {WORLDS[-1]}")
    if config is not None and world != "wide":
        if config.history_days:
            raise ValueError(f"history_days is modelled by the wide world only, not {world!r}")
        if (config.abuse_rate_scale, config.legit_rate_scale) != (1.0, 1.0):
            raise ValueError(f"rate scales are modelled by the wide world only, not {world!r}")


def simulate_world(world: str, config: SimConfig | None = None, seed: int = 0
                   ) -> LabelledDay:
    """A labelled day of the named world (``standard``, ``hard`` or ``wide``, see
    :mod:`testbed.wide`); deterministic per seed.

    >>> simulate_world("nowhere")
    Traceback (most recent call last):
    ...
    ValueError: unknown world 'nowhere': standard, hard or wide
    """
    check_world(world, config)
    if world == "standard":
        return simulate(config, seed)
    if world == "hard":
        return HardDay(config or SimConfig(), int(seed))
    from testbed.wide import simulate_wide  # check_world: nothing else is left

    return simulate_wide(config, seed)


def kind_of(labels_meta: dict[str, Any], number: str, cls: str) -> str:
    """A number's kind from ``labels.meta["kinds"]``, else its class."""
    kinds = labels_meta.get("kinds") or {}
    return str(kinds.get(number, cls))


def kind_breakdown(alerted: dict[str, set[str]], labels: Any) -> dict[str, dict[str, Any]]:
    """Per kind: members, class, and how many of them each detector alerted.

    ``alerted`` maps a detector name to the numbers it alerted.

    >>> from testbed.simulation import Labels
    >>> lab = Labels(classes={"+1": "courier", "+2": "courier"}, campaigns=[], allowlist=[],
    ...              meta={"kinds": {"+1": "courier/food_rider"}})
    >>> kind_breakdown({"d": {"+1"}}, lab)["courier/food_rider"]
    {'class': 'courier', 'members': 1, 'alerted': {'d': 1}}
    """
    out: dict[str, dict[str, Any]] = {}
    for number, cls in labels.classes.items():
        kind = kind_of(labels.meta, number, cls)
        if kind == cls and cls == "ordinary":
            kind = "ordinary/plain"
        entry = out.setdefault(kind, {"class": cls, "members": 0,
                                      "alerted": {name: 0 for name in alerted}})
        entry["members"] += 1
        for name, numbers in alerted.items():
            if number in numbers:
                entry["alerted"][name] += 1
    return dict(sorted(out.items()))
