"""Population recipes: the network, a clustered social graph and ordinary subscribers.

The social graph has real clusters: every subscriber lives in a household
(1-6 people), most of working age belong to a workplace (a few to a few
hundred people), everyone to a circle of friends; contacts are drawn from
those groups (and from off-net numbers), so the people close to one person
also know, and call, each other.  All sizes, rates and answer and talk
profiles are seed-level priors.

>>> from testbed.simulation import SimConfig
>>> from testbed.recipes.context import WorldContext
>>> ctx = WorldContext(SimConfig.preset("small", subscribers=500), seed=2)
>>> network(ctx)
>>> ctx.people.contacts.shape[0] == 500 and len(ctx.sink) == 0
True
>>> subscribers(ctx)
>>> len(ctx.sink) > 100
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from testbed.recipes.context import Population, WorldContext
from testbed.recipes.parts import DayClock
from testbed.simulation import (
    _INTERCONNECT_TRUNKS,
    _MOBILE_TRUNKS,
    _ORDINARY_HOURS,
    _SERVICE_NUMBERS,
    _WHOLESALE_TRUNKS,
    ANSWERED,
    BUSY,
    NO_ANSWER,
)

_CITIES = ("gz", "sz", "fs", "dg", "zh", "st", "hz", "nb")
#: contact columns per category, closest first: household, friends, colleagues, off-net
_PER_GROUP = 4
_GROUPS = 4


def _group_ids(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Assign ``n`` people (in random order) to consecutive groups of the given sizes."""
    ids = np.repeat(np.arange(len(sizes)), sizes)[:n]
    out = np.empty(n, dtype=np.int64)
    out[rng.permutation(n)] = ids
    return out


def _sizes(n: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """Group sizes from ``draw`` until they hold ``n`` people."""
    sizes: list[np.ndarray] = []
    total = 0
    while total < n:
        batch = np.asarray(draw(max(16, n // 4)), dtype=np.int64)
        sizes.append(batch)
        total += int(batch.sum())
    return np.concatenate(sizes)


def _members(group: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """For each person, ``k`` random members of the same group (may repeat; -1 for self)."""
    n = len(group)
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    starts = np.searchsorted(sorted_groups, group, side="left")
    ends = np.searchsorted(sorted_groups, group, side="right")
    size = ends - starts
    pick = starts[:, None] + (rng.random((n, k)) * size[:, None]).astype(np.int64)
    out = order[pick]
    return np.where(out == np.arange(n)[:, None], -1, out)


def network(ctx: WorldContext) -> None:
    """Trunks, the subscribers, their home switches and their clustered contacts.

    A share of the subscribers (seed prior, up to all of them) sits behind one
    city mobile switch; the rest are spread over the other mobile trunks.
    """
    cfg, rng = ctx.config, ctx.rng
    n = cfg.subscribers
    city = f"msc-{ctx.pick(_CITIES)}-01"
    main = ctx.trunks.get(city, has_ids=True)
    others = [ctx.trunks.get(name, has_ids=True) for name in _MOBILE_TRUNKS]
    for name in _INTERCONNECT_TRUNKS:
        ctx.trunks.get(name, has_ids=ctx.chance(0.6))
    for name in _WHOLESALE_TRUNKS:
        ctx.trunks.get(name, ip=True)
    numbers = ctx.numbers.mobile(n, virtual_share=ctx.prior("ordinary", "virtual_share",
                                                            0.01, 0.08))
    external = ctx.numbers.mobile(max(10, n // 2), virtual_share=0.03)
    on_main = rng.random(n) < ctx.prior("network", "city_switch_share", 0.3, 1.0, log=False)
    home = np.where(on_main, main, np.array(others)[rng.integers(0, len(others), n)])
    ctx.meta["city_switch"] = {"trunk": city, "subscribers": int(on_main.sum())}

    household = _group_ids(_sizes(n, lambda k: 1 + rng.poisson(
        ctx.prior("ordinary", "household_mean", 1.6, 4.5) - 1, k).clip(0, 5)), n, rng)
    employed = rng.random(n) < ctx.prior("ordinary", "employed_share", 0.3, 0.9, log=False)
    work_median = ctx.prior("ordinary", "workplace_median", 5, 60)
    workplace = _group_ids(_sizes(n, lambda k: np.clip(
        rng.lognormal(math.log(work_median), 1.0, k), 2, 500).astype(np.int64)), n, rng)
    circle = _group_ids(_sizes(n, lambda k: 4 + rng.poisson(
        ctx.prior("ordinary", "circle_mean", 4, 16), k)), n, rng)
    hh = _members(household, _PER_GROUP, rng)
    friends = _members(circle, _PER_GROUP, rng)
    work = _members(workplace, _PER_GROUP, rng)
    colleagues = np.where(employed[:, None] & (work >= 0) & employed[work.clip(0)], work, -1)
    offnet = n + rng.integers(0, len(external), (n, _PER_GROUP))
    offnet = np.where(rng.random((n, _PER_GROUP)) < ctx.prior("ordinary", "offnet_share", 0.1,
                                                              0.6), offnet, -1)
    contacts = np.concatenate([hh, friends, colleagues, offnet], axis=1)
    # a missing contact (self, no workplace, no off-net friend) becomes a friend
    fill = np.repeat(friends[:, :1], contacts.shape[1], axis=1)
    contacts = np.where(contacts < 0, fill, contacts)
    contacts = np.where(contacts < 0, (np.arange(n)[:, None] + 1) % n, contacts)
    ctx.population = Population(numbers, external,
                                dict(zip(numbers.tolist(), home.tolist(), strict=True)),
                                contacts)
    ctx.meta["graph"] = {"households": int(household.max()) + 1,
                         "workplaces": int(len(np.unique(workplace[employed]))),
                         "circles": int(circle.max()) + 1}


def leaked_lists(ctx: WorldContext) -> None:
    """The leaked target lists on sale this day: part subscribers, part other numbers."""
    rng, people = ctx.rng, ctx.people
    scale = ctx.config.subscribers / 38_000
    for _ in range(int(rng.integers(2, 7))):
        size = max(200, int(ctx.vary(ctx.prior("abuse", "leaked_list_size", 2000, 20000), 2.0)
                            * scale))
        on_net = min(size, int(size * rng.uniform(0.3, 0.9)), len(people.numbers))
        mine = people.numbers[rng.choice(len(people.numbers), size=on_net, replace=False)]
        target = np.concatenate([mine, ctx.random_mobiles(size - on_net)])
        rng.shuffle(target)
        ctx.leaked_lists.append(target)


def personal(ctx: WorldContext, t: np.ndarray, caller: np.ndarray, callee: np.ndarray,
             p_answer: np.ndarray, trunk: np.ndarray, follow_up: np.ndarray,
             hidden: np.ndarray | bool = False) -> None:
    """Person-to-person calls, with missed calls returned or retried (seed priors)."""
    rng = ctx.rng
    m = len(t)
    answered = rng.random(m) < p_answer
    busy = ~answered & (rng.random(m) < 0.15)
    ring = np.where(answered, np.clip(rng.lognormal(math.log(7), 0.5, m), 1, 40),
                    np.where(busy, rng.uniform(1, 8, m), rng.uniform(8, 45, m)))
    talk_median = ctx.prior("ordinary", "talk_median_s", 30, 150)
    talk = np.where(answered, ctx.talk(talk_median, 1.1, m), 0)
    ctx.sink.add(t, caller, callee, ring, talk,
                 np.where(answered, ANSWERED, np.where(busy, BUSY, NO_ANSWER)), trunk, hidden)
    # nobody can return a withheld call
    missed = ~answered & follow_up & ~np.asarray(hidden, dtype=bool)
    u = rng.random(m)
    p_back = ctx.prior("ordinary", "return_missed", 0.2, 0.65, log=False)
    back = missed & (u < p_back)
    retry = missed & (u >= p_back) & (u < p_back + 0.25)
    for mask, src, dst, trunks, delay in ((back, callee, caller, None, 900.0),
                                          (retry, caller, callee, trunk, 600.0)):
        j = int(mask.sum())
        if not j:
            continue
        ok = rng.random(j) < 0.8
        ctx.sink.add(t[mask] + 30.0 + rng.exponential(delay, j), src[mask], dst[mask],
                     np.where(ok, rng.uniform(2, 15, j), rng.uniform(8, 45, j)),
                     np.where(ok, ctx.talk(talk_median, 1.1, j), 0),
                     np.where(ok, ANSWERED, NO_ANSWER),
                     trunks[mask] if trunks is not None else ctx.home_trunks(src[mask]))


def subscribers(ctx: WorldContext) -> None:
    """Ordinary subscribers calling their contacts (closest most), off-net friends calling in,
    service numbers now and then; a seed-level share of people withhold their number."""
    rng, people = ctx.rng, ctx.people
    n = len(people.numbers)
    book = people.book
    contacts = people.contacts
    rate = np.clip(rng.lognormal(math.log(ctx.prior("ordinary", "calls_per_day", 0.8, 4.0)),
                                 ctx.prior("ordinary", "rate_sigma", 0.6, 1.3, log=False), n),
                   0.05, 80.0)
    per = rng.poisson(rate * ctx.clock.fraction(_ORDINARY_HOURS))
    who = np.repeat(np.arange(n), per)
    m = len(who)
    t = ctx.clock.times(_ORDINARY_HOURS, m)
    # closeness: household, friends, colleagues, off-net (seed-level weights)
    weights = np.array([ctx.prior("ordinary", f"weight_{g}", 0.5, 2.0)
                        for g in ("household", "friends", "colleagues", "offnet")])
    group = rng.choice(_GROUPS, size=m, p=weights / weights.sum())
    column = group * _PER_GROUP + rng.integers(0, _PER_GROUP, m)
    callee_idx = contacts[who, column]
    callee = book[callee_idx]
    service = rng.random(m) < 0.03
    callee = np.where(service, np.array([int("86" + s) for s in _SERVICE_NUMBERS])[
        rng.integers(0, len(_SERVICE_NUMBERS), m)], callee)
    pick_up = np.concatenate([rng.beta(7, 2.5, n), rng.beta(7, 2.5, len(people.external))])
    p_answer = np.where(service, 0.98, pick_up[callee_idx])
    withheld = rng.random(m) < ctx.prior("ordinary", "withheld_share", 0.001, 0.02)
    personal(ctx, t, people.numbers[who], callee, p_answer, ctx.home_trunks(people.numbers[who]),
             follow_up=~service, hidden=withheld)
    # off-net friends calling in over the interconnects
    m2 = int(rng.poisson(0.35 * m))
    target = rng.integers(0, n, m2)
    slot = contacts[target, (_GROUPS - 1) * _PER_GROUP + rng.integers(0, _PER_GROUP, m2)]
    caller = np.where(slot >= n, book[slot], people.external[rng.integers(
        0, len(people.external), m2)])
    personal(ctx, ctx.clock.times(_ORDINARY_HOURS, m2), caller, people.numbers[target],
             pick_up[target], ctx.home_trunks(caller), follow_up=np.ones(m2, dtype=bool))
    ctx.book.label(np.unique(np.concatenate([people.numbers[who], caller])), "ordinary")


def history(ctx: WorldContext) -> None:
    """``config.history_days`` days before the day of the same subscribers calling their
    contacts (:func:`subscribers`, with the seed's priors): who knows whom, as a carrier's
    records of the weeks before show it.  Drawn from a generator of its own, so the day
    itself is the day without history."""
    days = ctx.config.history_days
    if days <= 0:
        return
    rng, clock = ctx.rng, ctx.clock
    ctx.rng = np.random.default_rng([ctx.seed, 0x4849])
    try:
        for back in range(days, 0, -1):
            shift = back * 86400.0
            ctx.clock = DayClock(clock.start - shift, clock.end - shift, clock.offset / 3600.0,
                                 ctx.rng)
            subscribers(ctx)
    finally:
        ctx.rng, ctx.clock = rng, clock


def cover(ctx: WorldContext, me: int, trunk: int) -> None:
    """Personal calls on a SIM that is also someone's phone: family and friends, both ways."""
    rng, people = ctx.rng, ctx.people
    friends = people.numbers[rng.integers(0, len(people.numbers), int(rng.integers(2, 9)))]
    frac = ctx.clock.fraction(_ORDINARY_HOURS)
    for outgoing, mean in ((True, 6.0), (False, 4.0)):
        k = int(rng.poisson(mean * frac))
        if k == 0:
            continue
        other = friends[rng.integers(0, len(friends), k)]
        t = ctx.clock.times(_ORDINARY_HOURS, k)
        if outgoing:
            personal(ctx, t, np.full(k, me), other, np.full(k, 0.8), np.full(k, trunk),
                     np.ones(k, dtype=bool))
        else:
            personal(ctx, t, other, np.full(k, me), np.full(k, 0.8), ctx.home_trunks(other),
                     np.ones(k, dtype=bool))


def contacts_of(ctx: WorldContext, person: int) -> np.ndarray:
    """The numbers a subscriber (index) knows: household, friends, colleagues, off-net."""
    people = ctx.people
    return np.unique(people.book[people.contacts[person]])
