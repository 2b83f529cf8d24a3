"""Abuse recipes: the operations a carrier wants found, each a campaign in the labels.

Every parameter is drawn around the seed's prior for the class (ranges that
span a factor of three or more, chosen from what carriers report, not from
any detector's thresholds):

* ``cloud_dialer``: one number, or one operation spread over several numbers
  behind one gateway, including the sequential-scan dialer ("5000 calls for 26
  yuan") sweeping a number block over a handful of numbers;
* ``rotating_pool``: 10 to 500 numbers, each used for a few calls and retired,
  a few at a time; through its own gateway or an ingress shared with
  legitimate traffic, in feeds with and without a trunk field, some calls
  with the caller withheld;
* ``ring_once`` (wangiri): rings of a second or three, callees who call back;
* ``marketing_blast``: SIM farms at low rates over a working day to a leaked
  list, about half answered, tens of seconds of talk, nobody calls back;
* ``debt_collection``: a borrower's circle (household, friends, colleagues:
  people who call each other) called a few times each across the day;
* ``repeat_refused``: harassment of people who refused, again and again.

>>> from testbed.simulation import SimConfig
>>> from testbed.recipes.context import WorldContext
>>> from testbed.recipes.population import leaked_lists, network
>>> ctx = WorldContext(SimConfig.preset("small", subscribers=600), seed=4)
>>> network(ctx); leaked_lists(ctx)
>>> rotating_pool(ctx)
>>> [c.cls for c in ctx.book.campaigns], len(ctx.book.campaigns[0].members) >= 10
(['rotating_pool'], True)
"""

from __future__ import annotations

import math

import numpy as np

from testbed.recipes.context import WorldContext
from testbed.recipes.population import contacts_of, cover
from testbed.simulation import (
    _BUSINESS_HOURS,
    _DIALER_WORDS,
    _INTERCONNECT_TRUNKS,
    _INTL_TRUNKS,
    _MOBILE_TRUNKS,
    _WHOLESALE_TRUNKS,
    ANSWERED,
    BUSY,
    FAILED,
    NO_ANSWER,
)
from testbed.worlds import _EVENING_HOURS


def _gateway(ctx: WorldContext) -> int:
    rng = ctx.rng
    return ctx.trunks.get(f"gw-{ctx.pick(_DIALER_WORDS)}-{rng.integers(1, 99):02d}", ip=True)


def _dialer_numbers(ctx: WorldContext, k: int) -> np.ndarray:
    u = ctx.rng.random()
    if u < 0.35:
        return ctx.numbers.mobile(k, virtual_share=1.0)
    if u < 0.7:
        return ctx.numbers.fixed(k)
    return ctx.numbers.mobile(k)


def _withheld(ctx: WorldContext, cls: str) -> float:
    """The share of an operation's calls that withhold the caller (most operations: none)."""
    if not ctx.chance(ctx.prior(cls, "withholding_operations", 0.05, 0.4)):
        return 0.0
    return float(ctx.rng.uniform(0.05, 0.6))


def _origin(ctx: WorldContext, k: int, simbox: bool = True) -> tuple[np.ndarray, int, str]:
    """Numbers and ingress of an operation: its own gateway, a wholesale SBC shared with
    legitimate callers, an interconnect (numbers not ours), or a SIM box on a mobile trunk."""
    u = ctx.rng.random()
    if u < 0.4:
        return _dialer_numbers(ctx, k), _gateway(ctx), "gateway"
    if u < 0.65:
        return _dialer_numbers(ctx, k), ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS)), "wholesale"
    if u < 0.8 or not simbox:
        return (ctx.numbers.mobile(k, virtual_share=0.2),
                ctx.trunks.get(ctx.pick(_INTERCONNECT_TRUNKS)), "interconnect")
    numbers = _sim_box(ctx, k)
    return numbers, ctx.home_trunk(int(numbers[0])), "simbox"


def _sim_box(ctx: WorldContext, k: int) -> np.ndarray:
    """SIM cards in a box: numbers homed on the mobile switch the box sits behind."""
    numbers = ctx.numbers.mobile(k, virtual_share=0.3)
    trunk = ctx.trunks.get(ctx.pick(_MOBILE_TRUNKS + (ctx.meta["city_switch"]["trunk"],)))
    for v in numbers.tolist():
        ctx.people.home[v] = trunk
    return numbers


def cloud_dialer(ctx: WorldContext) -> None:
    """A cloud dialer: hundreds to thousands of short attempts an hour, from one number,
    spread over several numbers, or scanning a number block over a handful of numbers."""
    rng = ctx.rng
    style = str(rng.choice(["single", "spread", "sequential_scan"], p=[0.4, 0.35, 0.25]))
    k = {"single": 1, "spread": int(rng.integers(3, 13)), "sequential_scan":
         int(rng.integers(3, 9))}[style]
    if style == "sequential_scan":
        numbers, trunk, origin = _dialer_numbers(ctx, k), _gateway(ctx), "gateway"
    else:
        numbers, trunk, origin = _origin(ctx, k, simbox=False)
    members = ctx.book.label(numbers, "cloud_dialer", f"cloud_dialer/{style}")
    start, end = ctx.clock.window(ctx.vary(ctx.prior("cloud_dialer", "minutes", 10, 60)) * 60,
                                  ctx.vary(ctx.prior("cloud_dialer", "max_hours", 1, 4)) * 3600)
    per_hour = ctx.vary(ctx.prior("cloud_dialer", "calls_per_hour", 100, 800))
    p_answer = ctx.vary(ctx.prior("cloud_dialer", "answer_rate", 0.05, 0.35), 1.3, hi=0.6)
    talk = ctx.vary(ctx.prior("cloud_dialer", "talk_median_s", 4, 30))
    give_up = ctx.vary(ctx.prior("cloud_dialer", "give_up_s", 8, 30))
    short = ctx.prior("cloud_dialer", "hang_up_share", 0.3, 0.95, log=False)
    hidden = _withheld(ctx, "cloud_dialer")
    sequential = style == "sequential_scan" or ctx.chance(0.2)
    p_fail = rng.uniform(0.2, 0.6) if sequential else rng.uniform(0.0, 0.12)
    times = []
    if style == "sequential_scan":  # one block, the next number to the next line
        n = max(k, int(per_hour * k * (end - start) / 3600.0))
        t = start + np.cumsum(rng.exponential(3600.0 / (per_hour * k), n))
        block = ctx.numbers.block(n)
        line = np.arange(n) % k
        for j, me in enumerate(numbers.tolist()):
            mine = (line == j) & (t < end)
            times.append(t[mine])
            ctx.bulk(t[mine], me, block[mine], trunk, p_answer, p_fail, give_up, short, talk,
                     ctx.hidden_share(int(mine.sum()), hidden))
    else:
        for me in numbers.tolist():
            s = start + rng.uniform(0, 0.2) * (end - start)
            n = max(1, int(rng.poisson(ctx.vary(per_hour, 1.3) * (end - s) / 3600.0)))
            t = np.sort(rng.uniform(s, end, n))
            callees = ctx.leaked(n, sequential)
            times.append(t)
            withheld = np.asarray(ctx.hidden_share(n, hidden)) | np.zeros(n, dtype=bool)
            ctx.bulk(t, me, callees, trunk, p_answer, p_fail, give_up, short, talk, withheld)
            # a curious few call back, those who saw the number
            ctx.callbacks(t[~withheld], me, callees[~withheld], rng.uniform(0.0, 0.03), 0.3, 8,
                          1800)
    ctx.book.campaign("cloud_dialer", members, times, ctx.trunks.names[trunk], numbers=k,
                      per_hour=per_hour, answer_rate=p_answer, sequential=float(sequential),
                      withheld=hidden, origin_gateway=float(origin == "gateway"))


def rotating_pool(ctx: WorldContext) -> None:
    """A rotating pool: 10 to 500 numbers, each used for a few calls then retired, a few
    active at a time, all calling the same leaked list."""
    rng = ctx.rng
    size = int(math.exp(rng.uniform(math.log(10), math.log(500))))
    if ctx.chance(0.3):
        numbers, trunk, origin = ctx.numbers.block(size, claim=True), _gateway(ctx), "gateway"
    else:
        numbers, trunk, origin = _origin(ctx, size)
    members = ctx.book.label(numbers, "rotating_pool", f"rotating_pool/{origin}")
    per_number = ctx.prior("rotating_pool", "calls_per_number", 2, 12)
    rate = ctx.vary(ctx.prior("rotating_pool", "calls_per_hour_per_number", 20, 200))
    hours = ctx.vary(ctx.prior("rotating_pool", "hours", 1, 8))
    # as many numbers at a time as it takes to get through the pool in those hours
    concurrent = max(1, math.ceil(size * per_number / rate / hours))
    p_answer = ctx.vary(ctx.prior("rotating_pool", "answer_rate", 0.05, 0.4), 1.3, hi=0.6)
    talk = ctx.prior("rotating_pool", "talk_median_s", 4, 30)
    give_up = rng.uniform(8, 25)
    hidden = _withheld(ctx, "rotating_pool")
    which = int(rng.integers(0, len(ctx.leaked_lists)))
    start = float(ctx.clock.times(_BUSINESS_HOURS, 1)[0])
    times = []
    for j, me in enumerate(numbers.tolist()):
        n = max(1, int(rng.poisson(per_number)))
        turn = n / rate * 3600.0
        s = start + (j // concurrent) * turn * rng.uniform(0.8, 1.2)
        t = np.sort(s + rng.uniform(0, turn, n))
        t = t[t < ctx.end]
        if len(t) == 0:
            continue
        times.append(t)
        ctx.bulk(t, me, ctx.leaked(len(t), which=which), trunk, p_answer, rng.uniform(0, 0.1),
                 give_up, 0.8, talk, ctx.hidden_share(len(t), hidden))
    shared = origin in ("wholesale", "interconnect", "simbox")
    ctx.book.campaign("rotating_pool", members, times, ctx.trunks.names[trunk], numbers=size,
                      calls_per_number=per_number, concurrent=concurrent, answer_rate=p_answer,
                      shared_ingress=float(shared), trunk_field=float(ctx.trunks.named[trunk]),
                      withheld=hidden)


def ring_once(ctx: WorldContext) -> None:
    """Wangiri: a ring of a second or three to many numbers, hoping for call-backs to a
    premium number; international or from domestic SIMs."""
    rng = ctx.rng
    if ctx.chance(0.5):
        numbers = ctx.numbers.international(1)
        trunk = ctx.trunks.get(ctx.pick(_INTL_TRUNKS), ip=True)
        style = "international"
    else:
        numbers = _sim_box(ctx, int(rng.integers(1, 6)))
        trunk = ctx.home_trunk(int(numbers[0]))
        style = "sim"
    members = ctx.book.label(numbers, "ring_once", f"ring_once/{style}")
    start, end = ctx.clock.window(3600, ctx.vary(ctx.prior("ring_once", "max_hours", 2, 10)) *
                                  3600, _EVENING_HOURS)
    total = int(ctx.vary(ctx.prior("ring_once", "calls", 100, 2000)))
    ring_hi = ctx.prior("ring_once", "ring_hi_s", 1.5, 5.0)
    p_back = ctx.vary(ctx.prior("ring_once", "call_back", 0.01, 0.1))
    times = []
    for me in numbers.tolist():
        n = max(1, int(total / len(numbers) * rng.uniform(0.6, 1.4)))
        t = np.sort(ctx.clock.between(_EVENING_HOURS, start, end, n))
        callees = ctx.leaked(n, ctx.chance(0.3))
        fail = rng.random(n) < rng.uniform(0.02, 0.2)
        pick = ~fail & (rng.random(n) < rng.uniform(0.0, 0.06))
        ctx.sink.add(t, me, callees, np.where(fail, 0.0, rng.uniform(0.8, ring_hi, n)),
                     np.where(pick, rng.integers(1, 4, n), 0),
                     np.where(fail, FAILED, np.where(pick, ANSWERED, NO_ANSWER)), trunk)
        times.append(t)
        ctx.callbacks(t[~fail], me, callees[~fail], p_back, 0.95, 60, 900)
    ctx.book.campaign("ring_once", members, times, ctx.trunks.names[trunk], calls=total,
                      ring_hi=ring_hi, call_back=p_back)


def marketing_sim_farm(ctx: WorldContext) -> None:
    """Marketing from a SIM farm at low rates: a few to a few dozen calls an hour per SIM
    over a working day to a leaked list, about half answered, tens of seconds of talk,
    nobody calls back; some SIMs are also someone's phone."""
    rng, clock = ctx.rng, ctx.clock
    k = max(1, int(ctx.vary(ctx.prior("marketing_blast", "sims", 1, 12), 2.0)))
    numbers = _sim_box(ctx, k)
    members = ctx.book.label(numbers, "marketing_blast", "marketing_blast/sim_farm")
    day_from, _ = clock.local(ctx.vary(ctx.prior("marketing_blast", "start_hour", 8, 11), 1.1))
    hours = ctx.vary(ctx.prior("marketing_blast", "working_hours", 3, 10), 1.3)
    day_to = min(ctx.end, day_from + hours * 3600)
    per_hour = ctx.prior("marketing_blast", "calls_per_hour", 3, 40)
    p_answer = ctx.vary(ctx.prior("marketing_blast", "answer_rate", 0.25, 0.75, log=False), 1.2,
                        hi=0.9)
    pitch = ctx.vary(ctx.prior("marketing_blast", "talk_median_s", 10, 60))
    hang_up = ctx.prior("marketing_blast", "hang_up_share", 0.1, 0.6, log=False)
    which = int(rng.integers(0, len(ctx.leaked_lists)))
    times = []
    for me in numbers.tolist():
        trunk = ctx.home_trunk(me)
        if ctx.chance(0.5):
            cover(ctx, me, trunk)
        n = int(rng.poisson(ctx.vary(per_hour) * max(0.0, day_to - day_from) / 3600.0))
        if n == 0:
            continue
        t = np.sort(clock.between(_BUSINESS_HOURS, day_from, day_to, n))
        callees = ctx.leaked(n, which=which)
        ans = rng.random(n) < p_answer
        short = rng.random(n) < hang_up
        talk = np.where(short, ctx.talk(5, 0.5, n, hi=15), ctx.talk(pitch, 0.7, n, hi=900))
        busy = ~ans & (rng.random(n) < 0.3)
        ctx.sink.add(t, me, callees, np.where(ans, rng.uniform(2, 12, n), np.where(
            busy, rng.uniform(1, 8, n), rng.uniform(15, 35, n))), np.where(ans, talk, 0),
            np.where(ans, ANSWERED, np.where(busy, BUSY, NO_ANSWER)), trunk)
        times.append(t)
        ctx.callbacks(t, me, callees, rng.uniform(0.0, 0.02), 0.5, 20, 1800)
    ctx.book.campaign("marketing_blast", members, times,
                      ctx.trunks.names[ctx.home_trunk(int(numbers[0]))], sims=k,
                      per_hour=per_hour, answer_rate=p_answer, talk_median_s=pitch)


def debt_collection(ctx: WorldContext) -> None:
    """A debt collector working through a borrower's circle: household, friends and
    colleagues (who know and call each other), a few calls each across the day, many
    answered (arguing), some refused."""
    rng, people = ctx.rng, ctx.people
    k = int(rng.integers(1, 4))
    if ctx.chance(0.3):
        numbers = ctx.numbers.fixed(k)
        trunk = ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))
        trunks = [trunk] * k
    else:
        numbers = _sim_box(ctx, k)
        trunks = [ctx.home_trunk(v) for v in numbers.tolist()]
    members = ctx.book.label(numbers, "debt_collection", "debt_collection/circle")
    borrower = int(rng.integers(0, len(people.numbers)))
    circle = contacts_of(ctx, borrower)
    reach = int(ctx.vary(ctx.prior("debt_collection", "second_degree", 1, 6), 1.5))
    for friend in rng.choice(people.contacts[borrower], size=reach).tolist():
        if friend < len(people.numbers):
            circle = np.union1d(circle, contacts_of(ctx, friend))
    circle = np.union1d(circle, people.numbers[borrower:borrower + 1])
    start, end = ctx.clock.window(ctx.vary(ctx.prior("debt_collection", "hours", 3, 10)) * 3600,
                                  12 * 3600, _BUSINESS_HOURS)
    per_target = ctx.prior("debt_collection", "calls_per_target", 1, 5)
    p_answer = ctx.vary(ctx.prior("debt_collection", "answer_rate", 0.25, 0.8, log=False), 1.2,
                        hi=0.95)
    talk = ctx.prior("debt_collection", "talk_median_s", 20, 120)
    times = []
    for j, me in enumerate(numbers.tolist()):
        mine = circle[j::k]
        n_each = 1 + rng.poisson(max(per_target - 1, 0.0), len(mine))
        callees = np.repeat(mine, n_each)
        t = np.sort(rng.uniform(start, end, len(callees)))
        rng.shuffle(callees)
        ans = ctx.place(t, me, callees, trunks[j], p_answer, talk, 0.9,
                        short_share=rng.uniform(0.1, 0.4))
        times.append(t)
        ctx.callbacks(t[ans], me, callees[ans], rng.uniform(0.0, 0.15), 0.7, 60, 3600)
    ctx.book.campaign("debt_collection", members, times, ctx.trunks.names[trunks[0]],
                      targets=len(circle), borrower=float(people.numbers[borrower]),
                      calls_per_target=per_target, answer_rate=p_answer)


def repeat_refused(ctx: WorldContext) -> None:
    """Harassment of people who refused: the same few people called again and again in
    bursts, less and less answered, refusals within seconds."""
    rng, people = ctx.rng, ctx.people
    if ctx.chance(0.25):
        me = int(ctx.numbers.fixed(1)[0])
        trunk = ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))
    else:
        me = int(_sim_box(ctx, 1)[0])
        trunk = ctx.home_trunk(me)
        if ctx.chance(0.5):
            cover(ctx, me, trunk)
    members = ctx.book.label([me], "repeat_refused", "repeat_refused/harass")
    n_targets = max(2, int(ctx.vary(ctx.prior("repeat_refused", "targets", 3, 30))))
    targets = people.numbers[rng.choice(len(people.numbers), size=min(n_targets,
                                        len(people.numbers)), replace=False)]
    start, end = ctx.clock.window(3600, ctx.vary(ctx.prior("repeat_refused", "hours", 2, 12)) *
                                  3600)
    burst = ctx.prior("repeat_refused", "burst_calls", 2, 8)
    gap = ctx.prior("repeat_refused", "gap_s", 30, 600)
    parts_t, parts_c, parts_a = [], [], []
    for target in targets.tolist():
        p = rng.uniform(0.05, 0.35)
        for _ in range(int(rng.integers(1, 5))):
            m = 1 + int(rng.poisson(burst - 1))
            t = rng.uniform(start, end) + np.cumsum(rng.exponential(gap, m))
            parts_t.append(t)
            parts_c.append(np.full(m, target))
            parts_a.append(rng.random(m) < p * 0.7 ** np.arange(m))
    t, cal, ans = np.concatenate(parts_t), np.concatenate(parts_c), np.concatenate(parts_a)
    n = len(t)
    reject = ~ans & (rng.random(n) < 0.5)
    talk = np.where(rng.random(n) < 0.4, ctx.talk(50, 0.7, n, hi=900), ctx.talk(5, 0.6, n, hi=20))
    ctx.sink.add(t, me, cal, np.where(ans, rng.uniform(2, 10, n), np.where(
        reject, rng.uniform(1, 6, n), rng.uniform(20, 40, n))), np.where(ans, talk, 0),
        np.where(ans, ANSWERED, np.where(reject, BUSY, NO_ANSWER)), trunk)
    ctx.book.campaign("repeat_refused", members, [t], ctx.trunks.names[trunk],
                      targets=len(targets), burst_calls=burst, gap_s=gap)
