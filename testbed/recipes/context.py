"""The shared context every recipe of a simulated world draws on.

A :class:`WorldContext` holds what one simulated day is made of: the seeded
random generator, the day's clock and rhythms, the number factory, the trunks,
the column store the calls go into, the labels (classes, kinds, campaigns,
groups, allowlist) and the seed-level priors.  A *recipe* is a plain function
``recipe(ctx)`` that adds one operation or one legitimate caller to the day
through this context; a world is a list of recipes run in order over one
context (see :mod:`testbed.wide`).

>>> from testbed.simulation import SimConfig
>>> ctx = WorldContext(SimConfig.preset("small"), seed=3)
>>> a = ctx.prior("courier", "customers", 30, 200)
>>> a == ctx.prior("courier", "customers", 30, 200) and 30 <= a <= 200
True
>>> trunk = ctx.trunks.get("mob-1", has_ids=True)
>>> t = ctx.clock.times((1.0,) * 24, 5)
>>> ctx.sink.add(t, 8613800000001, 8613900000002, 5.0, 30, 0, trunk)
>>> len(ctx.sink)
5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from testbed.recipes.parts import CallSink, DayClock, Trunks
from testbed.simulation import (
    _INTERCONNECT_TRUNKS,
    _MOBILE_PREFIXES,
    ANSWERED,
    BUSY,
    FAILED,
    NO_ANSWER,
    Campaign,
    SimConfig,
    _e164,
    _Numbers,
)


@dataclass
class LabelBook:
    """The truth as the recipes write it: classes, kinds, campaigns, legitimate groups."""

    classes: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    allowlist: list[str] = field(default_factory=list)
    #: the day's window: a campaign's calls outside it are not part of the day
    window: tuple[float, float] = (-math.inf, math.inf)
    _counts: dict[str, int] = field(default_factory=dict)

    def label(self, numbers: Iterable[Any], cls: str, kind: str | None = None) -> list[str]:
        out = []
        for v in numbers:
            s = _e164(int(v))
            self.classes[s] = cls
            if kind is not None:
                self.kinds[s] = kind
            out.append(s)
        return out

    def next_id(self, prefix: str) -> str:
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return f"{prefix}-{self._counts[prefix]:02d}"

    def campaign(self, cls: str, members: list[str], times: Iterable[np.ndarray],
                 trunk: str | None, **params: float) -> Campaign | None:
        """Record an abuse operation; start and end are its own first and last calls in the
        day.  An operation that made no call in the day is none: its numbers are unlabelled."""
        lo, hi = self.window
        ts = [t[(t >= lo) & (t < hi)] for t in times]
        ts = [t for t in ts if len(t)]
        if not ts:
            for number in members:
                self.classes.pop(number, None)
                self.kinds.pop(number, None)
            return None
        start = min(float(t.min()) for t in ts)
        end = max(float(t.max()) for t in ts)
        camp = Campaign(self.next_id(cls), cls, members, round(start, 3), round(end, 3), trunk,
                        {k: round(float(v), 4) for k, v in params.items()})
        self.campaigns.append(camp)
        return camp

    def group(self, cls: str, kind: str, members: list[str], trunk: str | None,
              **params: float) -> None:
        """Record a legitimate group of numbers (a privacy pool, a company's lines)."""
        self.groups.append({"id": self.next_id(kind.replace("/", "-")), "class": cls,
                            "kind": kind, "members": members, "trunk": trunk,
                            "params": {k: round(float(v), 4) for k, v in params.items()}})


@dataclass
class Population:
    """The subscribers (on-net), the off-net numbers they know, and their home trunks."""

    numbers: np.ndarray
    external: np.ndarray
    home: dict[int, int]
    #: per subscriber, indices into ``book`` (numbers then external) ordered by closeness
    contacts: np.ndarray

    @property
    def book(self) -> np.ndarray:
        return np.concatenate([self.numbers, self.external])


#: The priors that set how fast a class calls, by (class, name): which side's scale
#: (``SimConfig.abuse_rate_scale`` / ``legit_rate_scale``) multiplies them, to which power
#: (a gap between calls shrinks as the rate grows).  More or fewer calls use the random
#: stream differently, so a scaled seed is another day drawn from the same priors: compare
#: scaled and unscaled runs pooled over many seeds, not seed by seed.
RATE_PRIORS: dict[tuple[str, str], tuple[str, int]] = {
    ("cloud_dialer", "calls_per_hour"): ("abuse", 1),
    ("rotating_pool", "calls_per_hour_per_number"): ("abuse", 1),
    ("marketing_blast", "calls_per_hour"): ("abuse", 1),
    ("ring_once", "calls"): ("abuse", 1),
    ("debt_collection", "calls_per_target"): ("abuse", 1),
    ("repeat_refused", "gap_s"): ("abuse", -1),
    ("ordinary", "calls_per_day"): ("legit", 1),
    ("courier", "customers_per_day"): ("legit", 1),
    ("dispatch", "calls_per_day"): ("legit", 1),
    ("dispatch", "confirmations"): ("legit", 1),
    ("notice", "hospital_per_min"): ("legit", 1),
    ("notice", "school_per_min"): ("legit", 1),
    ("privacy_number", "orders_per_number"): ("legit", 1),
    ("customer_service", "calls_in_per_day"): ("legit", 1),
}


class WorldContext:
    """One simulated day under construction: everything recipes share.

    Seed-level priors: :meth:`prior` draws a parameter of a class once per seed
    (uniform or log-uniform over a wide range) and remembers it, so every
    operation of that class in the day varies around the same seed value
    (:meth:`vary`) and another seed gets another value.  The drawn values end up
    in the labels (``meta["priors"]``).
    """

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.end = config.start + config.hours * 3600.0
        self.clock = DayClock(config.start, self.end, config.utc_offset_h, self.rng)
        self.numbers = _Numbers(self.rng)
        self.trunks = Trunks(self.rng)
        self.sink = CallSink()
        self.book = LabelBook(window=(config.start, self.end))
        self.priors: dict[str, dict[str, float]] = {}
        self.population: Population | None = None
        #: leaked target lists (numbers) that abuse operations buy and share
        self.leaked_lists: list[np.ndarray] = []
        self.meta: dict[str, Any] = {}

    # ----------------------------------------------------------------- priors

    def prior(self, cls: str, name: str, lo: float, hi: float, log: bool = True) -> float:
        """The seed's value of ``cls``'s parameter ``name``, drawn once from [lo, hi]; a
        calling rate (:data:`RATE_PRIORS`) times the config's scale for its side."""
        values = self.priors.setdefault(cls, {})
        if name not in values:
            u = self.rng.random()
            values[name] = (math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if log
                            else lo + u * (hi - lo)) * self._rate_scale(cls, name)
        return values[name]

    def _rate_scale(self, cls: str, name: str) -> float:
        rate = RATE_PRIORS.get((cls, name))
        if rate is None:
            return 1.0
        side, power = rate
        config = self.config
        return (config.abuse_rate_scale if side == "abuse" else config.legit_rate_scale) ** power

    def vary(self, value: float, factor: float = 1.5, lo: float = -math.inf,
             hi: float = math.inf) -> float:
        """``value`` times a log-uniform factor in [1/factor, factor], clipped to [lo, hi]."""
        x = value * math.exp(self.rng.uniform(-math.log(factor), math.log(factor)))
        return float(min(max(x, lo), hi))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(0, len(options)))]

    @property
    def people(self) -> Population:
        if self.population is None:
            raise RuntimeError("the population recipe must run first")
        return self.population

    # ----------------------------------------------------------------- numbers and trunks

    def home_trunk(self, number: int) -> int:
        """The trunk a number's calls enter by: its home switch, else an interconnect."""
        found = self.people.home.get(number)
        if found is not None:
            return found
        return self.trunks.get(_INTERCONNECT_TRUNKS[number % len(_INTERCONNECT_TRUNKS)])

    def home_trunks(self, numbers: np.ndarray) -> np.ndarray:
        return np.array([self.home_trunk(v) for v in numbers.tolist()], dtype=np.int16)

    def customers(self, n: int, on_net: float) -> np.ndarray:
        """``n`` distinct-ish members of the public: subscribers and off-net numbers."""
        rng, people = self.rng, self.people
        k = int(round(n * on_net))
        pick = people.numbers[rng.integers(0, len(people.numbers), k)]
        rest = people.external[rng.integers(0, len(people.external), n - k)]
        out = np.concatenate([pick, rest])
        rng.shuffle(out)
        return np.unique(out)

    def leaked(self, n: int, sequential: bool = False, which: int | None = None) -> np.ndarray:
        """``n`` targets in dialling order: a run through one of the day's leaked lists,
        or a sequential number block (many of whose numbers are not allocated)."""
        if sequential or not self.leaked_lists:
            return self.numbers.block(n)
        lists = self.leaked_lists
        target = lists[int(self.rng.integers(0, len(lists))) if which is None else which]
        at = int(self.rng.integers(0, len(target)))
        return np.take(target, np.arange(at, at + n), mode="wrap")

    def random_mobiles(self, n: int) -> np.ndarray:
        """Plausible mobile numbers nobody in the simulation owns (for leaked lists)."""
        rng = self.rng
        return (86 * 10**11 + np.array(_MOBILE_PREFIXES, dtype=np.int64)[
            rng.integers(0, len(_MOBILE_PREFIXES), n)] * 10**8 + rng.integers(0, 10**8, n))

    # ----------------------------------------------------------------- call shapes

    def talk(self, median: float, sigma: float, n: int, lo: int = 1, hi: int = 5400
             ) -> np.ndarray:
        x = self.rng.lognormal(math.log(max(median, 0.5)), sigma, n)
        return np.clip(np.ceil(x), lo, hi).astype(np.int64)

    def outcomes(self, n: int, p_answer: float, talk_median: float, talk_sigma: float,
                 short_share: float = 0.0, hi: int = 1800, busy_share: float = 0.15
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(answered, ring, talk, disposition) of ``n`` calls between people."""
        rng = self.rng
        ans = rng.random(n) < p_answer
        busy = ~ans & (rng.random(n) < busy_share)
        talk = self.talk(talk_median, talk_sigma, n, hi=hi)
        if short_share > 0:
            talk = np.where(rng.random(n) < short_share, rng.integers(1, 9, n), talk)
        ring = np.where(ans, np.clip(rng.lognormal(math.log(7), 0.5, n), 1, 40),
                        np.where(busy, rng.uniform(1, 8, n), rng.uniform(15, 45, n)))
        disp = np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER))
        return ans, ring, np.where(ans, talk, 0), disp

    def place(self, t: np.ndarray, me: int, callees: np.ndarray, trunk: int, p_answer: float,
              talk_median: float, talk_sigma: float = 0.8, short_share: float = 0.0,
              retry: float = 0.0, hi: int = 1800, hidden: Any = False) -> np.ndarray:
        """Calls from ``me`` with one retry of some unanswered ones; returns which were
        answered (the first attempt)."""
        rng = self.rng
        n = len(t)
        ans, ring, talk, disp = self.outcomes(n, p_answer, talk_median, talk_sigma,
                                              short_share, hi)
        self.sink.add(t, me, callees, ring, talk, disp, trunk, hidden)
        again = ~ans & (rng.random(n) < retry)
        j = int(again.sum())
        if j:
            a2, r2, k2, d2 = self.outcomes(j, p_answer, talk_median, talk_sigma, short_share, hi)
            hid = hidden[again] if isinstance(hidden, np.ndarray) else hidden
            self.sink.add(t[again] + rng.uniform(120, 1800, j), me, callees[again], r2, k2, d2,
                          trunk, hid)
        return ans

    def inbound(self, t: np.ndarray, callers: np.ndarray, me: int, talk_median: float,
                p_answer: float = 0.9) -> None:
        """Calls to ``me`` from ``callers`` at ``t`` (each by its own home trunk)."""
        n = len(t)
        if n == 0:
            return
        ans, ring, talk, disp = self.outcomes(n, p_answer, talk_median, 0.8, hi=3600)
        self.sink.add(t, callers, me, ring, talk, disp, self.home_trunks(callers))

    def callbacks(self, t: np.ndarray, caller: int, callees: np.ndarray, p: float,
                  answer: float, talk_median: float, delay_mean: float) -> np.ndarray:
        """Some callees call ``caller`` back after a delay; returns the times they did."""
        rng = self.rng
        back = rng.random(len(callees)) < p
        n = int(back.sum())
        if n == 0:
            return np.zeros(0)
        when = t[back] + 20.0 + rng.exponential(delay_mean, n)
        self.inbound(when, callees[back], caller, talk_median, answer)
        return when

    def bulk(self, t: np.ndarray, me: int, callees: np.ndarray, trunk: int, p_answer: float,
             p_fail: float, give_up: float, short_share: float, talk_median: float,
             hidden: Any = False) -> None:
        """Dialer-style attempts: failed, rejected, timed out, or answered and mostly brief."""
        rng = self.rng
        n = len(t)
        u = rng.random(n)
        fail = u < p_fail
        ans = ~fail & (u < p_fail + p_answer * (1 - p_fail))
        busy = ~fail & ~ans & (rng.random(n) < 0.2)
        short = rng.random(n) < short_share
        talk = np.where(short, self.talk(rng.uniform(2, 6), 0.6, n, hi=30),
                        self.talk(talk_median, 0.8, n, hi=900))
        ring = np.where(fail, 0.0, np.where(
            ans, np.clip(rng.lognormal(math.log(6), 0.5, n), 1, give_up),
            np.where(busy, rng.uniform(1, 6, n), give_up + rng.uniform(-1, 1, n))))
        disp = np.where(fail, FAILED, np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER)))
        self.sink.add(t, me, callees, np.maximum(ring, 0.0), np.where(ans, talk, 0), disp, trunk,
                      hidden)

    def hidden_share(self, n: int, share: float) -> np.ndarray | bool:
        """A withheld-caller mask for ``n`` calls (False when ``share`` is 0)."""
        if share <= 0:
            return False
        return self.rng.random(n) < share
