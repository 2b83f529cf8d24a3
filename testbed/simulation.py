"""A seeded, labelled synthetic carrier day: CDRs with the truth about every caller.

What it models
--------------
One carrier's call records over ``hours`` hours from ``start`` (epoch seconds;
the daily rhythm follows local time ``utc_offset_h``, default China, UTC+8).
All randomness comes from one ``numpy.random.Generator`` seeded explicitly, so
a seed is a world: the same seed gives byte-identical output, another seed a
different population, different campaigns and different parameters.

Legitimate traffic:

* **ordinary** subscribers, each with a few contacts (mostly on-net, some on
  other networks).  Activity per person is lognormal (most make a handful of
  calls a day, a few make dozens); calls follow a day/evening rhythm, favour
  close contacts, ring a few seconds, talk lognormal minutes, go unanswered or
  busy now and then; a missed call is often returned by the callee or retried
  by the caller.  Off-net contacts call in over interconnect trunks.  A small
  share of ordinary subscribers hold virtual-operator (MVNO) numbers, and some
  calls go to service short codes.
* **courier**: tens to ~150 distinct customers per working day in delivery
  rounds, high answer rate, 15-60 s talk, one retry when unanswered, customers
  often call back or call first.
* **dispatch** (taxi): calls a fixed pool of drivers again and again, confirms
  with customers, receives many calls from drivers and customers.
* **notice** (school / hospital): one to three automated bursts a day to a fixed
  community, high answer rate, recorded-message talk, one retry.
* **enterprise** (e.g. a bank's card centre): high outbound volume to distinct
  customers over business hours, moderate answer rate, plus heavy inbound to
  the same numbers.  Every enterprise number is on the **allowlist** the
  simulator also outputs.

Abuse (every parameter is drawn per number or per campaign from a range):

* **cloud_dialer**: campaigns of 1-4 numbers behind one dialer trunk, 300-3000
  calls per number over 10 min-3 h, answer rate 0.05-0.35, very short talk,
  distinct callees from leaked lists (sometimes sequential number blocks, with
  unallocated numbers failing), rare curious call-backs.
* **rotating_pool**: one campaign over 20-200 caller numbers making a few calls
  each through a shared trunk (labelled; a per-number detector is not expected
  to catch it, that is a ring-detection problem).
* **ring_once** (wangiri): many distinct callees, 1-3 s of ring and hang-up
  (duration 0), a few callees call back (the point of the scam).
* **marketing_blast**: ordinary SIM cards on mobile trunks, 40-300 calls an hour
  to distinct callees in one to three sessions, answer rate 0.2-0.5, most
  answered calls hung up within seconds.
* **repeat_refused** (harassment, debt collection): the same 10-40 people called
  again and again in short bursts after they refuse, reject or hang up.

Record-level realism: numbers arrive national (``13812345678``,
``02112345678``), E.164 (``+86...``) or ``0086...``; start times are mostly
epoch seconds, some ISO-8601 with an offset; some trunks give record ids and
some do not; a few records with ids are delivered twice; a small fraction are
malformed (missing fields, unparseable numbers, times or durations); about one
record in a hundred arrives a few seconds late.  Each record names its ingress
``trunk``: mobile trunks for subscribers, interconnect trunks for other
networks, wholesale SBC trunks shared by enterprises, notices and some dialers,
and dialer-specific gateway names.

What it does not model: multi-day behaviour and history, number portability,
roaming, SMS, call forwarding and transfers, conference legs, spoofed caller
ids of real subscribers, network outages or congestion storms, seasonal or
holiday peaks, legitimate opinion polls and elections, diurnal variation of
abuse tactics in response to blocking, and signalling-level (SIP) detail beyond
``src_ip`` on gateway trunks.  The social graph is random, not clustered.

>>> day = simulate(SimConfig.preset("small"), seed=7)
>>> records = list(day.records())
>>> len(records) == len(day) and records == list(simulate(SimConfig.preset("small"), 7).records())
True
>>> sorted(set(day.labels.classes.values())) == sorted(ALL_CLASSES)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from formats.files import open_text_for_writing
from formats.registry import writer
from testbed.recipes.parts import CallSink, DayClock, Trunks

ABUSE_CLASSES: tuple[str, ...] = (
    "cloud_dialer",
    "rotating_pool",
    "ring_once",
    "marketing_blast",
    "repeat_refused",
)
LEGIT_CLASSES: tuple[str, ...] = ("ordinary", "courier", "dispatch", "notice", "enterprise")
ALL_CLASSES: tuple[str, ...] = LEGIT_CLASSES + ABUSE_CLASSES

#: 2024-03-05 00:00 at UTC+8, a Tuesday.
DEFAULT_START = 1709568000.0

# Dispositions (index into DISPOSITIONS).
ANSWERED, NO_ANSWER, BUSY, FAILED = 0, 1, 2, 3
DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED")

# Relative call intensity per local hour, 0..23.
_ORDINARY_HOURS = (0.15, 0.08, 0.05, 0.04, 0.04, 0.08, 0.3, 0.8, 1.3, 1.6, 1.7, 1.6,
                   1.3, 1.3, 1.5, 1.6, 1.6, 1.6, 1.5, 1.7, 1.8, 1.5, 0.9, 0.4)
_WORK_HOURS = (0, 0, 0, 0, 0, 0, 0, 0.2, 1, 1, 1, 1, 0.5, 0.6, 1, 1, 1, 1, 0.7, 0.3, 0.1, 0, 0, 0)
_BUSINESS_HOURS = (0, 0, 0, 0, 0, 0, 0, 0, 0.6, 1, 1, 1, 0.7, 0.8, 1, 1, 1, 1, 0.8, 0.6, 0.4,
                   0.2, 0, 0)
_DISPATCH_HOURS = (0.2, 0.1, 0.05, 0.05, 0.1, 0.3, 0.8, 1.4, 1.6, 1.2, 1, 1, 1, 1, 1, 1.1, 1.3,
                   1.6, 1.6, 1.3, 1.1, 1, 0.8, 0.4)

_MOBILE_PREFIXES = ("130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150",
                    "151", "152", "153", "155", "156", "157", "158", "159", "177", "180", "181",
                    "182", "183", "185", "186", "187", "188", "189", "198", "199")
_VIRTUAL_PREFIXES = ("162", "165", "167", "170", "171")
_AREA_CODES = ("10", "20", "21", "22", "23", "24", "25", "27", "28", "29", "755", "571", "512",
               "757", "760", "769", "592", "531", "371", "731")
_SERVICE_NUMBERS = ("10086", "10010", "10000", "95588", "95533", "95555", "95566", "12345",
                    "95338", "95311")
# International prefixes seen on wangiri calls (premium or satellite ranges).
_WANGIRI_PREFIXES = ("882", "881", "269", "375", "371", "225", "243", "228", "44", "7")

_MOBILE_TRUNKS = ("mob-gz-01", "mob-gz-02", "mob-sz-01", "ims-core-1")
_INTERCONNECT_TRUNKS = ("itc-ct-1", "itc-cu-1", "itc-cu-2")
_WHOLESALE_TRUNKS = ("sbc-ext-01", "sbc-ext-02", "sbc-ext-03", "sbc-ext-04")
_INTL_TRUNKS = ("intl-gw-1", "intl-gw-2")
_DIALER_WORDS = ("cloud", "vos", "yun", "hx", "tele", "callx", "ai", "voip", "zx", "ipx")


@dataclass(frozen=True)
class SimConfig:
    """The size and shape of a simulated day.  Counts are per class (numbers or campaigns).

    >>> SimConfig.preset("small").subscribers < SimConfig.preset("day").subscribers
    True
    >>> SimConfig.preset("day", hours=6).hours
    6.0
    """

    subscribers: int = 38_000
    hours: float = 24.0
    start: float = DEFAULT_START
    utc_offset_h: float = 8.0
    couriers: int = 40
    dispatch: int = 8
    notice: int = 6
    enterprise: int = 4
    cloud_dialer: int = 8  # campaigns of 1-4 numbers
    rotating_pool: int = 3  # campaigns of 20-200 numbers
    ring_once: int = 10
    marketing_blast: int = 20
    repeat_refused: int = 15
    duplicate_rate: float = 0.003  # share of records with an id delivered twice
    malformed_rate: float = 0.0005
    late_rate: float = 0.01  # share of records delivered a few seconds late
    iso_time_rate: float = 0.1  # share of JSON records with an ISO-8601 start
    #: days of ordinary subscribers' calls before the day (same people, same contacts): the
    #: history a carrier's detector has seen (wide world only)
    history_days: int = 0
    #: every calling rate of the abuse / the legitimate classes times this (wide world
    #: only; ``testbed.recipes.context.RATE_PRIORS``): would the thresholds hold at three
    #: times the rates, or a third?
    abuse_rate_scale: float = 1.0
    legit_rate_scale: float = 1.0

    @classmethod
    def preset(cls, size: str, **overrides: Any) -> SimConfig:
        """``day`` (a full day, ~150-300k records) or ``small`` (a few thousand, for tests)."""
        if size == "day":
            base = cls()
        elif size == "small":
            base = cls(subscribers=3000, hours=4.0, start=DEFAULT_START + 8 * 3600, couriers=4,
                       dispatch=2, notice=2, enterprise=2, cloud_dialer=2, rotating_pool=1,
                       ring_once=3, marketing_blast=4, repeat_refused=4, duplicate_rate=0.005,
                       malformed_rate=0.002)
        else:
            raise ValueError(f"unknown size {size!r}: small or day")
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def __post_init__(self) -> None:
        if self.subscribers < 10:
            raise ValueError("subscribers must be at least 10")
        if not 0 < self.hours <= 24 * 7:
            raise ValueError("hours must be within (0, 168]")
        for name in ("couriers", "dispatch", "notice", "enterprise", *ABUSE_CLASSES):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("abuse_rate_scale", "legit_rate_scale"):
            if not 0.05 <= getattr(self, name) <= 20:
                raise ValueError(f"{name} must be within [0.05, 20]")
        object.__setattr__(self, "hours", float(self.hours))


# --------------------------------------------------------------------------- labels


@dataclass
class Campaign:
    """One abuse operation: its members are the caller numbers it used."""

    id: str
    cls: str
    members: list[str]
    start: float
    end: float
    trunk: str | None = None
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class Labels:
    """The truth about a simulated day: the class of each calling number, campaigns, allowlist.

    Numbers are normalised E.164.  A number not listed is ``ordinary``.

    >>> lab = Labels(classes={"+8613800000001": "cloud_dialer"},
    ...              campaigns=[Campaign("cd-1", "cloud_dialer", ["+8613800000001"], 0.0, 60.0)],
    ...              allowlist=["+8695588"])
    >>> lab.class_of("+8613800000001"), lab.class_of("+8613900000009")
    ('cloud_dialer', 'ordinary')
    >>> Labels.from_dict(orjson.loads(orjson.dumps(lab.to_dict()))) == lab
    True
    """

    classes: dict[str, str]
    campaigns: list[Campaign]
    allowlist: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def class_of(self, number: str) -> str:
        return self.classes.get(number, "ordinary")

    def members(self, cls: str) -> set[str]:
        return {n for n, c in self.classes.items() if c == cls}

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "allowlist": self.allowlist,
            "campaigns": [asdict(c) for c in self.campaigns],
            "classes": self.classes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Labels:
        try:
            return cls(
                classes={str(k): str(v) for k, v in data["classes"].items()},
                campaigns=[Campaign(**c) for c in data["campaigns"]],
                allowlist=[str(n) for n in data.get("allowlist", [])],
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a dialguard labels file: {exc}") from exc

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))

    @classmethod
    def read(cls, path: str | Path) -> Labels:
        try:
            data = orjson.loads(Path(path).read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read labels {path}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a dialguard labels file")
        return cls.from_dict(data)

    def write_allowlist(self, path: str | Path) -> None:
        lines = ["# registered enterprise callers (dialguard simulate); one number per line"]
        lines += self.allowlist
        Path(path).write_text("\n".join(lines) + "\n", "utf-8")


# --------------------------------------------------------------------------- numbers


def national(e164: str) -> str:
    """How a +86 number is written nationally; other countries stay international.

    >>> national("+8613812345678"), national("+862112345678"), national("+8695588")
    ('13812345678', '02112345678', '95588')
    >>> national("+8821234567")
    '+8821234567'
    """
    if not e164.startswith("+86"):
        return e164
    rest = e164[3:]
    if len(rest) == 11 and rest[0] == "1":
        return rest
    if len(rest) >= 9:
        return "0" + rest
    return rest


class _Numbers:
    """Draws unique numbers (as E.164 digit integers) of several kinds."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[int] = set()

    def _unique(self, make: Any, n: int) -> np.ndarray:
        out: list[int] = []
        while len(out) < n:
            for v in make(n - len(out)).tolist():
                if v not in self.used:
                    self.used.add(v)
                    out.append(v)
        return np.array(out, dtype=np.int64)

    def mobile(self, n: int, virtual_share: float = 0.0) -> np.ndarray:
        rng = self.rng

        def make(k: int) -> np.ndarray:
            virtual = rng.random(k) < virtual_share
            pre = np.where(virtual,
                           np.array(_VIRTUAL_PREFIXES, dtype=np.int64)[
                               rng.integers(0, len(_VIRTUAL_PREFIXES), k)],
                           np.array(_MOBILE_PREFIXES, dtype=np.int64)[
                               rng.integers(0, len(_MOBILE_PREFIXES), k)])
            return 86 * 10**11 + pre * 10**8 + rng.integers(0, 10**8, k)

        return self._unique(make, n)

    def fixed(self, n: int) -> np.ndarray:
        """Fixed lines: +86, an area code, eight digits."""
        rng = self.rng

        def make(k: int) -> np.ndarray:
            codes = [_AREA_CODES[i] for i in rng.integers(0, len(_AREA_CODES), k)]
            subs = rng.integers(2 * 10**7, 9 * 10**7, k).tolist()
            return np.array([int(f"86{c}{s:08d}") for c, s in zip(codes, subs, strict=True)],
                            dtype=np.int64)

        return self._unique(make, n)

    def international(self, n: int) -> np.ndarray:
        rng = self.rng

        def make(k: int) -> np.ndarray:
            pres = [_WANGIRI_PREFIXES[i] for i in rng.integers(0, len(_WANGIRI_PREFIXES), k)]
            return np.array([int(p + str(rng.integers(10**(10 - len(p)), 10**(11 - len(p)))))
                             for p in pres], dtype=np.int64)

        return self._unique(make, n)

    def block(self, n: int, claim: bool = False) -> np.ndarray:
        """A sequential block of mobile numbers (in order, small random skips).

        With ``claim`` the block is drawn clear of numbers already in use and reserved.
        """
        while True:
            base = int(self.mobile(1)[0]) // 10000 * 10000
            steps = 1 + (self.rng.random(n) < 0.15) * self.rng.integers(1, 4, n)
            block = base + np.cumsum(steps).astype(np.int64)
            if not claim:
                return block
            values = block.tolist()
            if self.used.isdisjoint(values):
                self.used.update(values)
                return block


def _e164(v: int) -> str:
    return "+" + str(v)


# --------------------------------------------------------------------------- the world


class LabelledDay(Protocol):
    """What every world's day offers: its records in delivery order and the truth."""

    labels: Labels

    def records(self) -> Iterator[dict[str, Any]]: ...

    def __len__(self) -> int: ...


class SimulatedDay:
    """A generated day: :meth:`records` yields CONTRACT 1a dicts, :attr:`labels` is the truth.

    Build it with :func:`simulate`.  Records are re-generated on every call of
    :meth:`records` from stored columns, identically each time.
    """

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.end = config.start + config.hours * 3600.0
        self.clock = DayClock(config.start, self.end, config.utc_offset_h, self.rng)
        self.numbers = _Numbers(self.rng)
        self.calls = CallSink()
        self.trunk_table = Trunks(self.rng)
        #: trunk names, record ids or not, source address or not, by trunk index
        self.trunks = self.trunk_table.names
        self.trunk_has_ids = self.trunk_table.has_ids
        self.trunk_ip = self.trunk_table.ip
        self._trunk = self.trunk_table.get
        self.classes: dict[str, str] = {}
        self.campaigns: list[Campaign] = []
        self.allowlist: list[str] = []
        self._build()

    # ----------------------------------------------------------------- helpers

    def _label(self, numbers: Iterable[int], cls: str) -> list[str]:
        out = []
        for v in numbers:
            s = _e164(int(v))
            self.classes[s] = cls
            out.append(s)
        return out

    def _leaked(self, n: int, sequential: bool) -> np.ndarray:
        """Callees from a leaked list: on-net subscribers and off-net numbers, or a block."""
        rng = self.rng
        if sequential:
            return self.numbers.block(n)
        on_net = rng.random() * 0.5 + 0.3
        k = int(round(n * on_net))
        k = min(k, len(self.population))
        pick = self.population[rng.choice(len(self.population), size=k, replace=False)]
        rest = 86 * 10**11 + np.array(_MOBILE_PREFIXES, dtype=np.int64)[
            rng.integers(0, len(_MOBILE_PREFIXES), n - k)] * 10**8 + rng.integers(0, 10**8, n - k)
        out = np.concatenate([pick, rest])
        rng.shuffle(out)
        return out

    def _talk(self, median: float, sigma: float, n: int, lo: int = 1, hi: int = 5400
              ) -> np.ndarray:
        x = self.rng.lognormal(math.log(median), sigma, n)
        return np.clip(np.ceil(x), lo, hi).astype(np.int64)

    def _callbacks(self, t: np.ndarray, caller: int, callees: np.ndarray, p: float,
                   answer: float, talk_median: float, delay_mean: float) -> None:
        """Some callees call ``caller`` back after a delay (inbound to the caller)."""
        rng = self.rng
        back = rng.random(len(callees)) < p
        n = int(back.sum())
        if n == 0:
            return
        when = t[back] + 20.0 + rng.exponential(delay_mean, n)
        answered = rng.random(n) < answer
        trunk = [self._mobile_trunk(int(c)) for c in callees[back]]
        self.calls.add(when, callees[back], caller,
                       np.where(answered, rng.uniform(2, 12, n), rng.uniform(10, 40, n)),
                       np.where(answered, self._talk(talk_median, 0.9, n), 0),
                       np.where(answered, ANSWERED, NO_ANSWER), trunk)

    def _mobile_trunk(self, number: int) -> int:
        if number in self._home:
            return self._home[number]
        return self._trunk(_INTERCONNECT_TRUNKS[number % len(_INTERCONNECT_TRUNKS)], True)

    # ----------------------------------------------------------------- build

    def _build_network(self) -> None:
        """Trunks, the subscriber population and which mobile trunk each is homed on."""
        cfg = self.config
        rng = self.rng
        for name in _MOBILE_TRUNKS:
            self._trunk(name, has_ids=True)
        for name in _INTERCONNECT_TRUNKS:
            self._trunk(name, has_ids=bool(rng.random() < 0.6))
        for name in _WHOLESALE_TRUNKS:
            self._trunk(name, ip=True)
        self.population = self.numbers.mobile(cfg.subscribers, virtual_share=0.04)
        self.external = self.numbers.mobile(max(10, cfg.subscribers // 2), virtual_share=0.03)
        home = rng.integers(0, len(_MOBILE_TRUNKS), cfg.subscribers)
        self._home = dict(zip(self.population.tolist(), home.tolist(), strict=True))

    def _build(self) -> None:
        cfg = self.config
        self._build_network()
        self._ordinary()
        for _ in range(cfg.couriers):
            self._courier()
        for _ in range(cfg.dispatch):
            self._dispatch()
        for _ in range(cfg.notice):
            self._notice()
        for i in range(cfg.enterprise):
            self._enterprise(i)
        for i in range(cfg.cloud_dialer):
            self._cloud_dialer(i)
        for i in range(cfg.rotating_pool):
            self._rotating_pool(i)
        for i in range(cfg.ring_once):
            self._ring_once(i)
        for i in range(cfg.marketing_blast):
            self._marketing(i)
        for i in range(cfg.repeat_refused):
            self._repeat_refused(i)
        self._finish()

    def _ordinary(self) -> None:
        cfg, rng = self.config, self.rng
        n = cfg.subscribers
        pop, ext = self.population, self.external
        book = np.concatenate([pop, ext])
        kmax = 16
        k = np.minimum(2 + rng.poisson(5, n), kmax)
        on_net = rng.random((n, kmax)) < 0.78
        contacts = np.where(on_net, rng.integers(0, n, (n, kmax)),
                            n + rng.integers(0, len(ext), (n, kmax)))
        me = np.arange(n)[:, None]
        contacts = np.where(contacts == me, (me + 1) % n, contacts)
        rate = np.clip(rng.lognormal(math.log(2.0), 0.9, n), 0.05, 80.0)  # calls per day
        frac = self.clock.fraction(_ORDINARY_HOURS)
        per = rng.poisson(rate * frac)
        who = np.repeat(np.arange(n), per)
        m = len(who)
        t = self.clock.times(_ORDINARY_HOURS, m)
        rank = np.floor(k[who] * rng.random(m) ** 2).astype(np.int64)
        callee_idx = contacts[who, rank]
        callee = book[callee_idx]
        service = rng.random(m) < 0.03
        callee = np.where(service, np.array([int("86" + s) for s in _SERVICE_NUMBERS])[
            rng.integers(0, len(_SERVICE_NUMBERS), m)], callee)
        # how readily each person answers
        pick_up = np.concatenate([rng.beta(7, 2.5, n), rng.beta(7, 2.5, len(ext))])
        p_answer = np.where(service, 0.98, pick_up[callee_idx])
        self._personal(t, pop[who], callee, p_answer, np.array(self._home_of(pop[who])),
                       follow_up=~service)

        # off-net contacts calling in
        m2 = int(rng.poisson(0.35 * m))
        target = rng.integers(0, n, m2)
        caller = ext[rng.integers(0, len(ext), m2)]
        slot = contacts[target, np.floor(k[target] * rng.random(m2)).astype(np.int64)]
        caller = np.where(slot >= n, book[slot], caller)
        t2 = self.clock.times(_ORDINARY_HOURS, m2)
        itc = np.array([self._trunk(_INTERCONNECT_TRUNKS[i % 3]) for i in range(3)])
        self._personal(t2, caller, pop[target], pick_up[target], itc[caller % 3],
                       follow_up=np.ones(m2, dtype=bool))
        for v in np.unique(np.concatenate([pop[who], caller])).tolist():
            self.classes[_e164(v)] = "ordinary"

    def _home_of(self, numbers: np.ndarray) -> list[int]:
        home = self._home
        return [home[v] for v in numbers.tolist()]

    def _personal(self, t: np.ndarray, caller: np.ndarray, callee: np.ndarray,
                  p_answer: np.ndarray, trunk: np.ndarray, follow_up: np.ndarray) -> None:
        """Person-to-person calls, with returned and retried missed calls."""
        rng = self.rng
        m = len(t)
        answered = rng.random(m) < p_answer
        busy = ~answered & (rng.random(m) < 0.15)
        ring = np.where(answered, np.clip(rng.lognormal(math.log(7), 0.5, m), 1, 40),
                        np.where(busy, rng.uniform(1, 8, m), rng.uniform(8, 45, m)))
        talk = np.where(answered, self._talk(55, 1.15, m), 0)
        disp = np.where(answered, ANSWERED, np.where(busy, BUSY, NO_ANSWER))
        self.calls.add(t, caller, callee, ring, talk, disp, trunk)

        missed = ~answered & follow_up
        u = rng.random(m)
        back = missed & (u < 0.45)
        retry = missed & (u >= 0.45) & (u < 0.7)
        for mask, a, b, tr, delay in (
            (back, callee, caller, None, 900.0),
            (retry, caller, callee, trunk, 600.0),
        ):
            j = int(mask.sum())
            if not j:
                continue
            src = a[mask]
            ok = rng.random(j) < 0.8
            trunks = tr[mask] if tr is not None else np.array(
                [self._mobile_trunk(v) for v in src.tolist()])
            self.calls.add(t[mask] + 30.0 + rng.exponential(delay, j), src, b[mask],
                           np.where(ok, rng.uniform(2, 15, j), rng.uniform(8, 45, j)),
                           np.where(ok, self._talk(60, 1.1, j), 0),
                           np.where(ok, ANSWERED, NO_ANSWER), trunks)

    def _customers(self, n: int, on_net: float) -> np.ndarray:
        rng = self.rng
        k = int(round(n * on_net))
        pick = self.population[rng.integers(0, len(self.population), k)]
        rest = self.external[rng.integers(0, len(self.external), n - k)]
        out = np.concatenate([pick, rest])
        rng.shuffle(out)
        return np.unique(out)

    def _courier(self) -> None:
        rng = self.rng
        [me] = self.numbers.mobile(1, virtual_share=0.05)
        self._label([me], "courier")
        trunk = self._trunk(_MOBILE_TRUNKS[int(rng.integers(0, len(_MOBILE_TRUNKS)))])
        self._home[int(me)] = trunk
        n = int(rng.uniform(40, 150) * self.clock.fraction(_WORK_HOURS))
        if n == 0:
            return
        customers = self._customers(n, rng.uniform(0.5, 0.85))
        n = len(customers)
        # delivery rounds: customers in route order, calls clustered in time
        t = np.sort(self.clock.times(_WORK_HOURS, n))
        p_ans = rng.uniform(0.7, 0.92)
        ans = rng.random(n) < p_ans
        talk = np.clip(self._talk(rng.uniform(20, 35), 0.45, n), 8, 240)
        ring = np.where(ans, rng.uniform(2, 12, n), rng.uniform(12, 35, n))
        self.calls.add(t, me, customers, ring, np.where(ans, talk, 0),
                       np.where(ans, ANSWERED, NO_ANSWER), trunk)
        # one retry of unanswered, a few minutes later
        miss = ~ans & (rng.random(n) < 0.75)
        j = int(miss.sum())
        if j:
            ok = rng.random(j) < 0.6
            self.calls.add(t[miss] + rng.uniform(60, 600, j), me, customers[miss],
                           np.where(ok, rng.uniform(2, 10, j), rng.uniform(12, 35, j)),
                           np.where(ok, self._talk(25, 0.45, j), 0),
                           np.where(ok, ANSWERED, NO_ANSWER), trunk)
        # customers call back (missed call) or call later ("where is my parcel")
        self._callbacks(t[~ans], int(me), customers[~ans], rng.uniform(0.3, 0.6), 0.85, 25, 600)
        self._callbacks(t[ans], int(me), customers[ans], rng.uniform(0.05, 0.15), 0.85, 30,
                        3600)

    def _dispatch(self) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            me = int(self.numbers.fixed(1)[0])
            trunk = self._trunk(_WHOLESALE_TRUNKS[int(rng.integers(0, len(_WHOLESALE_TRUNKS)))])
        else:
            me = int(self.numbers.mobile(1)[0])
            trunk = self._trunk(_MOBILE_TRUNKS[int(rng.integers(0, len(_MOBILE_TRUNKS)))])
        self._label([me], "dispatch")
        self._home[int(me)] = trunk
        frac = self.clock.fraction(_DISPATCH_HOURS)
        drivers = self._customers(int(rng.integers(20, 81)), 0.8)
        weight = 1.0 / np.arange(1, len(drivers) + 1) ** 0.6
        weight /= weight.sum()
        # dispatcher -> drivers, repeatedly
        n = int(rng.uniform(80, 400) * frac)
        t = self.clock.times(_DISPATCH_HOURS, n)
        d = drivers[rng.choice(len(drivers), size=n, p=weight)]
        ans = rng.random(n) < rng.uniform(0.85, 0.97)
        self.calls.add(t, me, d, np.where(ans, rng.uniform(1, 8, n), rng.uniform(10, 30, n)),
                       np.where(ans, np.clip(self._talk(15, 0.7, n), 3, 300), 0),
                       np.where(ans, ANSWERED, NO_ANSWER), trunk)
        # drivers -> dispatcher
        n2 = int(n * rng.uniform(0.3, 0.7))
        src = drivers[rng.choice(len(drivers), size=n2, p=weight)]
        self.calls.add(self.clock.times(_DISPATCH_HOURS, n2), src, me, rng.uniform(1, 6, n2),
                       np.clip(self._talk(20, 0.7, n2), 3, 600), ANSWERED,
                       [self._mobile_trunk(v) for v in src.tolist()])
        # customers -> dispatcher (bookings), dispatcher -> some customers (confirmation)
        n3 = int(rng.uniform(100, 500) * frac)
        cust = self._customers(n3, 0.6)
        tb = self.clock.times(_DISPATCH_HOURS, len(cust))
        ok = rng.random(len(cust)) < 0.9
        self.calls.add(tb, cust, me, np.where(ok, rng.uniform(2, 15, len(cust)), 30.0),
                       np.where(ok, np.clip(self._talk(35, 0.6, len(cust)), 5, 600), 0),
                       np.where(ok, ANSWERED, NO_ANSWER),
                       [self._mobile_trunk(v) for v in cust.tolist()])
        conf = rng.random(len(cust)) < rng.uniform(0.2, 0.5)
        j = int(conf.sum())
        if j:
            a = rng.random(j) < rng.uniform(0.6, 0.85)
            self.calls.add(tb[conf] + rng.uniform(120, 1200, j), me, cust[conf],
                           np.where(a, rng.uniform(2, 10, j), rng.uniform(10, 30, j)),
                           np.where(a, np.clip(self._talk(18, 0.5, j), 5, 120), 0),
                           np.where(a, ANSWERED, NO_ANSWER), trunk)

    def _notice(self) -> None:
        cfg, rng = self.config, self.rng
        me = self.numbers.fixed(1)[0]
        self._label([me], "notice")
        if rng.random() < 0.5:
            trunk = self._trunk(f"pbx-{rng.choice(['school', 'hosp', 'clinic'])}-"
                                f"{rng.integers(1, 20)}", ip=True)
        else:
            trunk = self._trunk(_WHOLESALE_TRUNKS[int(rng.integers(0, len(_WHOLESALE_TRUNKS)))])
        community = self._customers(int(rng.integers(80, 801)), rng.uniform(0.75, 0.95))
        offset = cfg.utc_offset_h * 3600.0
        day0 = math.floor((cfg.start + offset) / 86400.0) * 86400.0 - offset
        slots = (7.25, 7.75, 10.0, 11.5, 12.0, 14.5, 16.0, 16.5, 17.25, 18.5)
        # its usual notice times that fall in the window (or any time, for a short window)
        candidates = [d + h * 3600.0 for d in np.arange(day0, self.end, 86400.0) for h in slots
                      if cfg.start <= d + h * 3600.0 < self.end - 600]
        if not candidates:
            candidates = [float(rng.uniform(cfg.start, max(cfg.start, self.end - 1800)))]
        n_bursts = min(int(rng.integers(1, 4)), len(candidates))
        for pick in sorted(rng.choice(len(candidates), size=n_bursts, replace=False).tolist()):
            t0 = candidates[pick] + rng.uniform(-300, 300)
            share = rng.uniform(0.3, 1.0)
            who = community[rng.random(len(community)) < share]
            n = len(who)
            per_min = rng.uniform(5, 40)
            t = t0 + np.sort(rng.uniform(0, n / per_min * 60.0, n))
            ans = rng.random(n) < rng.uniform(0.5, 0.9)
            talk = np.clip(self._talk(rng.uniform(25, 50), 0.35, n), 5, 180)
            ring = np.where(ans, rng.uniform(2, 15, n), rng.uniform(20, 30, n))
            self.calls.add(t, me, who, ring, np.where(ans, talk, 0),
                           np.where(ans, ANSWERED, NO_ANSWER), trunk)
            retry = ~ans & (rng.random(n) < 0.8)
            j = int(retry.sum())
            if j:
                ok = rng.random(j) < 0.5
                self.calls.add(t[retry] + rng.uniform(300, 900, j), me, who[retry],
                               np.where(ok, rng.uniform(2, 15, j), 25.0),
                               np.where(ok, talk[retry], 0),
                               np.where(ok, ANSWERED, NO_ANSWER), trunk)
            self._callbacks(t, int(me), who, rng.uniform(0.03, 0.12), 0.7, 40, 1200)

    def _enterprise(self, i: int) -> None:
        rng = self.rng
        name = rng.choice(["bank-cc", "insure", "telco-care", "airline", "utility"])
        k = int(rng.integers(1, 4))
        numbers: list[int] = []
        if rng.random() < 0.6:  # a service code of its own, e.g. 95588
            code = int("86" + str(rng.integers(95000, 96000)))
            if code not in self.numbers.used:
                self.numbers.used.add(code)
                numbers.append(code)
        numbers += self.numbers.fixed(k - len(numbers) or 1).tolist()
        labelled = self._label(numbers, "enterprise")
        self.allowlist += labelled
        own = self._trunk(f"ent-{name}-{i + 1}", has_ids=True, ip=True)
        shared = self._trunk(_WHOLESALE_TRUNKS[int(rng.integers(0, len(_WHOLESALE_TRUNKS)))])
        frac = self.clock.fraction(_BUSINESS_HOURS)
        for me in numbers:
            trunk = own if rng.random() < 0.7 else shared
            n = int(math.exp(rng.uniform(math.log(500), math.log(4000))) * frac)
            cust = self._customers(n, rng.uniform(0.4, 0.8))
            n = len(cust)
            t = self.clock.times(_BUSINESS_HOURS, n)
            ans = rng.random(n) < rng.uniform(0.3, 0.6)
            talk = self._talk(rng.uniform(40, 90), 1.0, n, hi=1800)
            short = rng.random(n) < 0.2  # some customers hang up on the bank too
            talk = np.where(short, rng.integers(1, 8, n), talk)
            self.calls.add(t, me, cust, np.where(ans, rng.uniform(3, 15, n),
                                                 rng.uniform(15, 40, n)),
                           np.where(ans, talk, 0), np.where(ans, ANSWERED, NO_ANSWER), trunk)
            # customers call the number (hotline), and some return missed calls
            n_in = int(n * rng.uniform(0.2, 1.5))
            src = self._customers(n_in, 0.6)
            self.calls.add(self.clock.times(_BUSINESS_HOURS, len(src)), src, me,
                           rng.uniform(1, 20, len(src)),
                           self._talk(120, 0.9, len(src), hi=3600), ANSWERED,
                           [self._mobile_trunk(v) for v in src.tolist()])
            self._callbacks(t[~ans], int(me), cust[~ans], rng.uniform(0.05, 0.2), 0.9, 90, 1800)

    def _cover(self, me: int, trunk: int) -> None:
        """Personal calls on a SIM that is also someone's phone: family and friends, both ways."""
        rng = self.rng
        contacts = self.population[rng.integers(0, len(self.population), int(rng.integers(2, 9)))]
        frac = self.clock.fraction(_ORDINARY_HOURS)
        for outgoing, mean in ((True, 6.0), (False, 4.0)):
            n = int(rng.poisson(mean * frac))
            if n == 0:
                continue
            other = contacts[rng.integers(0, len(contacts), n)]
            t = self.clock.times(_ORDINARY_HOURS, n)
            if outgoing:
                self._personal(t, np.full(n, me), other, np.full(n, 0.8), np.full(n, trunk),
                               np.ones(n, dtype=bool))
            else:
                self._personal(t, other, np.full(n, me), np.full(n, 0.8),
                               np.array(self._home_of(other)), np.ones(n, dtype=bool))

    # ----------------------------------------------------------------- abuse

    def _campaign(self, cid: str, cls: str, members: list[str], start: float, end: float,
                  trunk: int | None, **params: float) -> None:
        self.campaigns.append(Campaign(
            cid, cls, members, round(start, 3), round(end, 3),
            self.trunks[trunk] if trunk is not None else None,
            {k: round(float(v), 4) for k, v in params.items()},
        ))

    def _dialer_trunk(self) -> int:
        rng = self.rng
        if rng.random() < 0.5:
            return self._trunk(_WHOLESALE_TRUNKS[int(rng.integers(0, len(_WHOLESALE_TRUNKS)))])
        word = _DIALER_WORDS[int(rng.integers(0, len(_DIALER_WORDS)))]
        return self._trunk(f"gw-{word}-{rng.integers(1, 99):02d}", ip=True)

    def _dialer_numbers(self, k: int) -> np.ndarray:
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            return self.numbers.mobile(k, virtual_share=1.0)
        if kind < 0.7:
            return self.numbers.fixed(k)
        return self.numbers.mobile(k)

    def _bulk_calls(self, t: np.ndarray, me: int, callees: np.ndarray, trunk: int,
                    p_answer: float, p_fail: float, give_up: float, short_share: float) -> None:
        """Dialer-style attempts: failed, rejected, timed out or answered very briefly."""
        rng = self.rng
        n = len(t)
        u = rng.random(n)
        fail = u < p_fail
        ans = ~fail & (u < p_fail + p_answer * (1 - p_fail))
        busy = ~fail & ~ans & (rng.random(n) < 0.2)
        short = rng.random(n) < short_share
        talk = np.where(short, self._talk(rng.uniform(2, 6), 0.6, n, hi=30),
                        self._talk(rng.uniform(15, 45), 0.8, n, hi=600))
        ring = np.where(fail, 0.0, np.where(ans, np.clip(rng.lognormal(math.log(6), 0.5, n), 1,
                                                         give_up),
                                            np.where(busy, rng.uniform(1, 6, n),
                                                     give_up + rng.uniform(-1, 1, n))))
        disp = np.where(fail, FAILED, np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER)))
        self.calls.add(t, me, callees, np.maximum(ring, 0.0), np.where(ans, talk, 0), disp,
                       trunk)

    def _cloud_dialer(self, i: int) -> None:
        rng = self.rng
        k = int(rng.integers(1, 5))
        numbers = self._dialer_numbers(k)
        members = self._label(numbers, "cloud_dialer")
        trunk = self._dialer_trunk()
        start, end = self.clock.window(600, 3 * 3600)
        sequential = bool(rng.random() < 0.3)
        p_answer = rng.uniform(0.05, 0.35)
        for me in numbers.tolist():
            n = int(math.exp(rng.uniform(math.log(300), math.log(3000))))
            s = start + rng.uniform(0, 0.2) * (end - start)
            t = np.sort(rng.uniform(s, end, n))
            callees = self._leaked(n, sequential)
            p_fail = rng.uniform(0.2, 0.5) if sequential else rng.uniform(0.0, 0.12)
            self._bulk_calls(t, me, callees, trunk, p_answer * rng.uniform(0.8, 1.2), p_fail,
                             rng.uniform(8, 30), rng.uniform(0.6, 0.95))
            self._callbacks(t, me, callees, rng.uniform(0.0, 0.03), 0.3, 8, 1800)
        self._campaign(f"cloud_dialer-{i + 1:02d}", "cloud_dialer", members, start, end, trunk,
                       answer_rate=p_answer, sequential=float(sequential))

    def _rotating_pool(self, i: int) -> None:
        rng = self.rng
        k = int(rng.integers(20, 201))
        if rng.random() < 0.5:
            numbers = self.numbers.block(k, claim=True)
        else:
            numbers = self._dialer_numbers(k)
        members = self._label(numbers, "rotating_pool")
        trunk = self._dialer_trunk()
        start, end = self.clock.window(1800, 4 * 3600)
        p_answer = rng.uniform(0.05, 0.3)
        give_up = rng.uniform(8, 25)
        for me in numbers.tolist():
            n = 2 + int(rng.poisson(rng.uniform(1, 10)))
            t = np.sort(rng.uniform(start, end, n))
            self._bulk_calls(t, me, self._leaked(n, False), trunk, p_answer, rng.uniform(0, 0.1),
                             give_up, 0.85)
        self._campaign(f"rotating_pool-{i + 1:02d}", "rotating_pool", members, start, end, trunk,
                       answer_rate=p_answer, numbers=k)

    def _ring_once(self, i: int) -> None:
        rng = self.rng
        international = rng.random() < 0.5
        if international:
            me = int(self.numbers.international(1)[0])
            trunk = self._trunk(_INTL_TRUNKS[int(rng.integers(0, len(_INTL_TRUNKS)))], ip=True)
        else:
            me = int(self.numbers.mobile(1, virtual_share=0.6)[0])
            trunk = self._trunk(_MOBILE_TRUNKS[int(rng.integers(0, len(_MOBILE_TRUNKS)))])
        members = self._label([me], "ring_once")
        start, end = self.clock.window(3600, 6 * 3600)
        n = int(math.exp(rng.uniform(math.log(100), math.log(1500))))
        t = np.sort(rng.uniform(start, end, n))
        callees = self._leaked(n, bool(rng.random() < 0.4))
        fail = rng.random(n) < rng.uniform(0.03, 0.2)
        ans = ~fail & (rng.random(n) < rng.uniform(0.0, 0.05))  # a very quick pick-up
        ring = np.where(fail, 0.0, rng.uniform(1.0, 3.0, n))
        self.calls.add(t, me, callees, ring, np.where(ans, rng.integers(1, 3, n), 0),
                       np.where(fail, FAILED, np.where(ans, ANSWERED, NO_ANSWER)), trunk)
        p_back = rng.uniform(0.01, 0.06)
        self._callbacks(t[~fail], me, callees[~fail], p_back, 0.95, 45, 900)
        self._campaign(f"ring_once-{i + 1:02d}", "ring_once", members, start, end, trunk,
                       calls=n, callback_rate=p_back)

    def _marketing(self, i: int) -> None:
        rng = self.rng
        me = int(self.numbers.mobile(1, virtual_share=0.25)[0])
        trunk = self._trunk(_MOBILE_TRUNKS[int(rng.integers(0, len(_MOBILE_TRUNKS)))])
        self._home[me] = trunk
        members = self._label([me], "marketing_blast")
        if rng.random() < 0.5:
            self._cover(me, trunk)
        per_hour = rng.uniform(40, 300)
        p_answer = rng.uniform(0.2, 0.5)
        sessions = [self.clock.window(1800, 3 * 3600) for _ in range(int(rng.integers(1, 4)))]
        first = min(s for s, _ in sessions)
        for s, e in sessions:
            n = int(rng.poisson(per_hour * (e - s) / 3600.0))
            t = np.sort(rng.uniform(s, e, n))
            callees = self._leaked(n, False)
            redial = rng.random(n) < rng.uniform(0.0, 0.08)
            if n > 1:
                callees = np.where(redial, np.roll(callees, 3), callees)
            ans = rng.random(n) < p_answer
            hang_up = rng.random(n) < rng.uniform(0.6, 0.9)
            talk = np.where(hang_up, self._talk(rng.uniform(3, 7), 0.5, n, hi=20),
                            self._talk(40, 0.8, n, hi=600))
            busy = ~ans & (rng.random(n) < 0.3)
            ring = np.where(ans, rng.uniform(2, 12, n), np.where(busy, rng.uniform(1, 8, n),
                                                                  rng.uniform(15, 35, n)))
            self.calls.add(t, me, callees, ring, np.where(ans, talk, 0),
                           np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER)), trunk)
            self._callbacks(t[~ans], me, callees[~ans], rng.uniform(0.01, 0.06), 0.6, 20, 1200)
        self._campaign(f"marketing_blast-{i + 1:02d}", "marketing_blast", members, first,
                       max(e for _, e in sessions), trunk, per_hour=per_hour,
                       answer_rate=p_answer)

    def _repeat_refused(self, i: int) -> None:
        cfg, rng = self.config, self.rng
        kind = rng.random()
        if kind < 0.15:
            me = int(self.numbers.fixed(1)[0])
            trunk = self._trunk(_WHOLESALE_TRUNKS[int(rng.integers(0, len(_WHOLESALE_TRUNKS)))])
        else:
            me = int(self.numbers.mobile(1, virtual_share=0.2)[0])
            trunk = self._trunk(_MOBILE_TRUNKS[int(rng.integers(0, len(_MOBILE_TRUNKS)))])
            self._home[me] = trunk
        members = self._label([me], "repeat_refused")
        if me in self._home and rng.random() < 0.5:  # a personal SIM
            self._cover(me, trunk)
        targets = self.population[rng.choice(len(self.population),
                                             size=min(int(rng.integers(10, 41)),
                                                      len(self.population)), replace=False)]
        start, end = self.clock.window(2 * 3600, 12 * 3600)
        times: list[np.ndarray] = []
        callees: list[np.ndarray] = []
        answered: list[np.ndarray] = []
        for target in targets.tolist():
            p = rng.uniform(0.05, 0.3)
            for _ in range(int(rng.integers(1, 4))):  # bursts at this person
                k = int(rng.integers(1, 6))
                t0 = rng.uniform(start, end)
                t = t0 + np.cumsum(rng.uniform(40, 300, k))
                a = rng.random(k) < p * 0.7 ** np.arange(k)  # less likely each time
                times.append(t)
                callees.append(np.full(k, target))
                answered.append(a)
        t = np.concatenate(times)
        cal = np.concatenate(callees)
        ans = np.concatenate(answered)
        n = len(t)
        keep = t < min(end + 1800, self.end)
        reject = ~ans & (rng.random(n) < 0.5)
        argue = rng.random(n) < 0.4
        talk = np.where(argue, self._talk(50, 0.7, n, hi=900), self._talk(5, 0.6, n, hi=20))
        ring = np.where(ans, rng.uniform(2, 10, n),
                        np.where(reject, rng.uniform(1, 6, n), rng.uniform(20, 40, n)))
        self.calls.add(t[keep], me, cal[keep], ring[keep], np.where(ans, talk, 0)[keep],
                       np.where(ans, ANSWERED, np.where(reject, BUSY, NO_ANSWER))[keep], trunk)
        self._campaign(f"repeat_refused-{i + 1:02d}", "repeat_refused", members, float(t.min()),
                       float(t.max()), trunk, targets=len(targets), horizon_h=cfg.hours)

    # ----------------------------------------------------------------- finish

    def _finish(self) -> None:
        cfg, rng = self.config, self.rng
        c = self.calls
        t = np.concatenate(c.parts["t"])
        keep = (t >= cfg.start) & (t < self.end)
        cols = {name: np.concatenate(c.parts[name])[keep]
                for name in ("t", "caller", "callee", "ring", "talk", "disp", "trunk")}
        order = np.argsort(cols["t"], kind="stable")
        self.cols = {k: v[order] for k, v in cols.items()}
        self.cols["ring"] = np.round(self.cols["ring"], 1)
        self.cols["t"] = np.round(self.cols["t"], 3)
        del self.calls
        n = len(self.cols["t"])
        # campaign start = its first call actually in the window
        first: dict[int, float] = {}
        for v, tt in zip(self.cols["caller"].tolist(), self.cols["t"].tolist(), strict=True):
            if v not in first:
                first[v] = tt
        # labelled numbers that never called inside the window are not part of the day
        self.classes = {num: cls for num, cls in self.classes.items() if int(num[1:]) in first
                        or (cls == "ordinary")}
        for camp in self.campaigns:
            camp.members = [m for m in camp.members if int(m[1:]) in first]
            if camp.members:
                camp.start = min(first[int(m[1:])] for m in camp.members)
        self.campaigns = [camp for camp in self.campaigns if camp.members]
        # delivery: formats, ids, lateness, duplicates, malformed
        self.fmt_caller = rng.choice(3, size=n, p=[0.6, 0.3, 0.1]).astype(np.int8)
        self.fmt_callee = rng.choice(3, size=n, p=[0.65, 0.3, 0.05]).astype(np.int8)
        self.iso = rng.random(n) < cfg.iso_time_rate
        self.omit_answered = rng.random(n) < 0.15
        has_ids = np.array(self.trunk_has_ids)[self.cols["trunk"]]
        delay = np.where(rng.random(n) < cfg.late_rate, rng.uniform(1, 8, n), 0.0)
        dup = has_ids & (rng.random(n) < cfg.duplicate_rate)
        dup_idx = np.flatnonzero(dup)
        n_bad = int(rng.binomial(n, cfg.malformed_rate))
        bad_idx = rng.integers(0, n, n_bad)
        keys = np.concatenate([self.cols["t"] + delay,
                               self.cols["t"][dup_idx] + rng.uniform(0.5, 60, len(dup_idx)),
                               self.cols["t"][bad_idx] + rng.uniform(0, 5, n_bad)])
        rows = np.concatenate([np.arange(n), dup_idx, bad_idx])
        kind = np.concatenate([np.zeros(n, np.int8), np.ones(len(dup_idx), np.int8),
                               2 + rng.integers(0, len(_DEFECTS), n_bad).astype(np.int8)])
        emit = np.argsort(keys, kind="stable")
        self.emit_rows = rows[emit]
        self.emit_kind = kind[emit]
        self.has_ids = has_ids
        self.labels = Labels(
            classes=dict(sorted(self.classes.items())),
            campaigns=sorted(self.campaigns, key=lambda c: (c.start, c.id)),
            allowlist=sorted(self.allowlist),
            meta={
                "seed": self.seed,
                "config": asdict(cfg),
                "start": cfg.start,
                "end": self.end,
                "calls": n,
                "records": len(rows),
                "duplicates": len(dup_idx),
                "malformed": n_bad,
                "counts": {cls: sum(1 for v in self.classes.values() if v == cls)
                           for cls in ALL_CLASSES},
            },
        )

    # ----------------------------------------------------------------- output

    def __len__(self) -> int:
        return len(self.emit_rows)

    def records(self) -> Iterator[dict[str, Any]]:
        """CONTRACT 1a dicts in delivery order (event time, a few late, duplicates, bad ones)."""
        c = self.cols
        t_col, caller_col, callee_col = c["t"].tolist(), c["caller"].tolist(), c["callee"].tolist()
        ring_col, talk_col, disp_col = c["ring"].tolist(), c["talk"].tolist(), c["disp"].tolist()
        trunk_col = c["trunk"].tolist()
        fmt_a, fmt_b = self.fmt_caller.tolist(), self.fmt_callee.tolist()
        iso, omit, has_ids = self.iso.tolist(), self.omit_answered.tolist(), self.has_ids.tolist()
        tz = timezone(timedelta(hours=self.config.utc_offset_h))
        for i, kind in zip(self.emit_rows.tolist(), self.emit_kind.tolist(), strict=True):
            t = t_col[i]
            disp = disp_col[i]
            trunk = trunk_col[i]
            rec: dict[str, Any] = {
                "caller": _present(caller_col[i], fmt_a[i]),
                "callee": _present(callee_col[i], fmt_b[i]),
                "start": datetime.fromtimestamp(t, tz).isoformat() if iso[i] else t,
                "duration": talk_col[i],
                "answered": disp == ANSWERED,
                "ring": ring_col[i],
                "trunk": self.trunks[trunk],
                "disposition": DISPOSITIONS[disp],
            }
            if omit[i] and disp != ANSWERED:
                del rec["answered"]
            if has_ids[i]:
                rec["id"] = f"{self.trunks[trunk][:3]}{self.seed % 997:03d}-{i:08d}"
            ip = self.trunk_ip[trunk]
            if ip is not None:
                rec["src_ip"] = ip
            if kind >= 2:  # a broken copy of a record, without its id
                rec.pop("id", None)
                rec = _DEFECTS[kind - 2](rec)
            yield rec


def _present(v: int, fmt: int) -> str:
    e = _e164(v)
    if not e.startswith("+86"):
        return e if fmt != 2 else "00" + e[1:]
    if fmt == 0:
        return national(e)
    if fmt == 1:
        return e
    return "00" + e[1:]


def _no_callee(r: dict[str, Any]) -> dict[str, Any]:
    r = dict(r)
    del r["callee"]
    return r


def _anonymous(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "caller": "anonymous"}


def _bad_duration(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "duration": f"{r['duration']}s"}


def _negative_duration(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "duration": -1}


def _local_time(r: dict[str, Any]) -> dict[str, Any]:
    start = r["start"]
    t = datetime.fromisoformat(start) if isinstance(start, str) else datetime.fromtimestamp(
        start, UTC)
    return {**r, "start": t.strftime("%d/%m/%Y %H:%M")}


def _no_start(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "start": None}


_DEFECTS = (_no_callee, _anonymous, _bad_duration, _negative_duration, _local_time, _no_start)


def simulate(config: SimConfig | None = None, seed: int = 0) -> SimulatedDay:
    """Generate a labelled day; the same ``(config, seed)`` always gives the same day."""
    return SimulatedDay(config or SimConfig(), int(seed))


# --------------------------------------------------------------------------- writing


def write_day(day: LabelledDay, out: str | Path, fmt: str = "json", compress: bool = False,
              progress: Any = None) -> dict[str, Path]:
    """Write records to ``out`` and ``out.labels.json`` / ``out.allowlist.txt`` beside it.

    ``progress`` is called with the number of records written so far, now and then.
    """
    write = writer(fmt)  # raises ValueError naming the formats there are
    out = Path(out)
    records: Iterable[dict[str, Any]] = day.records()
    if progress is not None:
        records = _counting(records, progress)
    with open_text_for_writing(out, compress) as stream:
        write(records, stream)
    labels = Path(f"{out}.labels.json")
    allow = Path(f"{out}.allowlist.txt")
    day.labels.write(labels)
    day.labels.write_allowlist(allow)
    return {"records": out, "labels": labels, "allowlist": allow}


def _counting(records: Iterable[dict[str, Any]], progress: Any, every: int = 5000
              ) -> Iterator[dict[str, Any]]:
    n = 0
    for n, rec in enumerate(records, 1):
        if n % every == 0:
            progress(n)
        yield rec
    progress(n)
