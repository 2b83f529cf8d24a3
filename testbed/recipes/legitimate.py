"""Legitimate-caller recipes: the busy callers a carrier must not flag.

One function per class or kind, each ``recipe(ctx)`` adding one caller (or
one group of numbers) to the day with its parameters drawn around the seed's
priors.  Classes: ``courier``, ``dispatch``, ``notice`` (school notices,
hospital reminder lines), ``privacy_number`` (delivery and ride-hailing
virtual numbers bound to orders), ``customer_service`` (agents calling back
customers who rang the hotline), ``enterprise`` (registered, on the
allowlist).

>>> from testbed.simulation import SimConfig
>>> from testbed.recipes.context import WorldContext
>>> from testbed.recipes.population import network
>>> ctx = WorldContext(SimConfig.preset("small", subscribers=400), seed=5)
>>> network(ctx)
>>> privacy_pool(ctx)
>>> [g["class"] for g in ctx.book.groups]
['privacy_number']
"""

from __future__ import annotations

import math

import numpy as np

from testbed.recipes.context import WorldContext
from testbed.simulation import (
    _BUSINESS_HOURS,
    _DISPATCH_HOURS,
    _MOBILE_TRUNKS,
    _WHOLESALE_TRUNKS,
    _WORK_HOURS,
)
from testbed.worlds import _EVENING_HOURS, _MEAL_HOURS


def _mobile_home(ctx: WorldContext, number: int) -> int:
    trunk = ctx.trunks.get(ctx.pick(_MOBILE_TRUNKS))
    ctx.people.home[number] = trunk
    return trunk


def courier(ctx: WorldContext) -> None:
    """A parcel courier: delivery rounds to tens of customers, most answer, short talk,
    one retry of the unanswered, customers call back."""
    rng = ctx.rng
    me = int(ctx.numbers.mobile(1, virtual_share=0.05)[0])
    ctx.book.label([me], "courier", "courier/parcel")
    trunk = _mobile_home(ctx, me)
    n = int(ctx.vary(ctx.prior("courier", "customers_per_day", 30, 200)) *
            ctx.clock.fraction(_WORK_HOURS))
    if n == 0:
        return
    customers = ctx.customers(n, rng.uniform(0.5, 0.9))
    t = np.sort(ctx.clock.times(_WORK_HOURS, len(customers)))
    p_answer = ctx.vary(ctx.prior("courier", "answer_rate", 0.5, 0.95, log=False), 1.15, hi=0.98)
    ans = ctx.place(t, me, customers, trunk, p_answer,
                    ctx.vary(ctx.prior("courier", "talk_median_s", 8, 40)), 0.5,
                    retry=ctx.prior("courier", "retry", 0.3, 0.9, log=False), hi=240)
    ctx.callbacks(t[~ans], me, customers[~ans], ctx.prior("courier", "call_back_missed", 0.15,
                                                           0.6), 0.85, 25, 600)
    ctx.callbacks(t[ans], me, customers[ans], ctx.prior("courier", "call_later", 0.03, 0.15),
                  0.85, 30, 3600)


def dispatch(ctx: WorldContext) -> None:
    """A taxi dispatcher: calls a fixed pool of drivers again and again, drivers and
    customers call in, some customers are called to confirm."""
    rng = ctx.rng
    if ctx.chance(0.5):
        me = int(ctx.numbers.fixed(1)[0])
        trunk = ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))
    else:
        me = int(ctx.numbers.mobile(1)[0])
        trunk = _mobile_home(ctx, me)
    ctx.book.label([me], "dispatch", "dispatch/radio_taxi")
    frac = ctx.clock.fraction(_DISPATCH_HOURS)
    drivers = ctx.customers(int(ctx.vary(ctx.prior("dispatch", "drivers", 15, 80))), 0.8)
    weight = 1.0 / np.arange(1, len(drivers) + 1) ** 0.6
    weight /= weight.sum()
    n = int(ctx.vary(ctx.prior("dispatch", "calls_per_day", 80, 400)) * frac)
    t = ctx.clock.times(_DISPATCH_HOURS, n)
    ctx.place(t, me, drivers[rng.choice(len(drivers), size=n, p=weight)], trunk,
              ctx.prior("dispatch", "answer_rate", 0.7, 0.97, log=False),
              ctx.prior("dispatch", "talk_median_s", 8, 30), 0.7, hi=300)
    k = int(n * rng.uniform(0.3, 0.7))
    ctx.inbound(ctx.clock.times(_DISPATCH_HOURS, k), drivers[rng.choice(len(drivers), size=k,
                                                                         p=weight)], me, 20)
    bookings = ctx.customers(int(ctx.vary(ctx.prior("dispatch", "bookings", 100, 500)) * frac),
                             0.6)
    tb = ctx.clock.times(_DISPATCH_HOURS, len(bookings))
    ctx.inbound(tb, bookings, me, 35)
    confirm = rng.random(len(bookings)) < rng.uniform(0.2, 0.5)
    ctx.place(tb[confirm] + rng.uniform(120, 1200, int(confirm.sum())), me, bookings[confirm],
              trunk, 0.75, 18, 0.5, hi=120)


def _notice_trunk(ctx: WorldContext, word: str) -> int:
    if ctx.chance(0.5):
        return ctx.trunks.get(f"pbx-{word}-{ctx.rng.integers(1, 40)}", ip=True)
    return ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))


def school_notice(ctx: WorldContext) -> None:
    """School notices: one to three recorded bursts a day to the parents, one retry."""
    rng, clock = ctx.rng, ctx.clock
    me = int(ctx.numbers.fixed(1)[0])
    ctx.book.label([me], "notice", "notice/school")
    trunk = _notice_trunk(ctx, "school")
    community = ctx.customers(int(ctx.vary(ctx.prior("notice", "school_community", 80, 1000))),
                              rng.uniform(0.75, 0.95))
    slots = (7.0, 7.5, 8.0, 11.5, 12.0, 15.5, 16.0, 16.5, 17.0, 19.5)
    candidates = [float(d) + h * 3600.0 for d in clock.local_day_starts() for h in slots
                  if clock.start <= float(d) + h * 3600.0 < clock.end - 600]
    if not candidates:
        candidates = [float(rng.uniform(clock.start, max(clock.start, clock.end - 1800)))]
    p_answer = ctx.vary(ctx.prior("notice", "school_answer_rate", 0.25, 0.9, log=False), 1.2,
                        hi=0.97)
    for pick in rng.choice(len(candidates), size=min(int(rng.integers(1, 4)), len(candidates)),
                           replace=False).tolist():
        who = community[rng.random(len(community)) < rng.uniform(0.3, 1.0)]
        per_min = ctx.vary(ctx.prior("notice", "school_per_min", 5, 60))
        t = candidates[pick] + rng.uniform(-300, 300) + np.sort(
            rng.uniform(0, len(who) / per_min * 60.0, len(who)))
        ans = ctx.place(t, me, who, trunk, p_answer,
                        ctx.prior("notice", "school_talk_s", 15, 60), 0.35,
                        retry=ctx.prior("notice", "school_retry", 0.2, 0.9, log=False), hi=180)
        ctx.callbacks(t[~ans], me, who[~ans], rng.uniform(0.03, 0.15), 0.7, 40, 1200)


def hospital_reminder(ctx: WorldContext) -> None:
    """A hospital's appointment reminders: a queue of patients worked through business
    hours, "press 1 to confirm", patients call back to reschedule.  Some hospitals
    withhold their number on part of these calls (then nobody can call back)."""
    rng, clock = ctx.rng, ctx.clock
    me = int(ctx.numbers.fixed(1)[0])
    ctx.book.label([me], "notice", "notice/hospital_reminder")
    trunk = _notice_trunk(ctx, "hosp")
    n = int(ctx.vary(ctx.prior("notice", "hospital_patients", 100, 800)) *
            clock.fraction(_BUSINESS_HOURS))
    if n == 0:
        return
    patients = ctx.customers(n, 0.8)
    runs = int(rng.integers(1, 5))
    edges = np.sort(rng.integers(0, len(patients) + 1, runs - 1))
    parts = []
    for chunk in np.split(np.arange(len(patients)), edges):
        if len(chunk):
            per_min = ctx.vary(ctx.prior("notice", "hospital_per_min", 2, 20))
            parts.append(float(clock.times(_BUSINESS_HOURS, 1)[0]) + np.sort(
                rng.uniform(0, len(chunk) / per_min * 60, len(chunk))))
    t = np.concatenate(parts)
    withheld = rng.uniform(0.2, 1.0) if ctx.chance(0.3) else 0.0
    hidden = ctx.hidden_share(len(t), withheld)
    ctx.place(t, me, patients, trunk,
                    ctx.vary(ctx.prior("notice", "hospital_answer_rate", 0.35, 0.85, log=False),
                             1.15, hi=0.97),
                    ctx.vary(ctx.prior("notice", "hospital_talk_s", 8, 40)), 0.4,
                    short_share=rng.uniform(0.1, 0.3),
                    retry=ctx.prior("notice", "hospital_retry", 0.2, 0.7, log=False), hi=180,
                    hidden=hidden)
    seen = ~np.asarray(hidden, dtype=bool) | np.zeros(len(t), dtype=bool)
    ctx.callbacks(t[seen], me, patients[seen],
                  ctx.prior("notice", "hospital_call_back", 0.04, 0.25), 0.8, 60, 2400)


def privacy_pool(ctx: WorldContext) -> None:
    """A delivery or ride-hailing platform's privacy numbers: virtual numbers bound to
    orders, so rider and customer never see each other's number.  The rider calls the
    customer through the bound number (answered, listened to), the customer calls it
    back; each number serves order after order all day, within one platform trunk."""
    rng, clock = ctx.rng, ctx.clock
    style = "delivery" if ctx.chance(0.5) else "ride_hailing"
    scale = ctx.config.subscribers / 38_000
    size = max(5, int(ctx.vary(ctx.prior("privacy_number", "pool_size", 20, 300)) * scale))
    numbers = (ctx.numbers.block(size, claim=True) if ctx.chance(0.6)
               else ctx.numbers.mobile(size, virtual_share=1.0))
    trunk = ctx.trunks.get(f"vnum-{style}-{rng.integers(1, 20):02d}", ip=True)
    members = ctx.book.label(numbers, "privacy_number", f"privacy_number/{style}")
    ctx.book.group("privacy_number", f"privacy_number/{style}", members, ctx.trunks.names[trunk],
                   numbers=len(members))
    profile = _MEAL_HOURS if style == "delivery" else _DISPATCH_HOURS
    per_number = ctx.vary(ctx.prior("privacy_number", "orders_per_number", 5, 60))
    orders = int(per_number * len(numbers) * clock.fraction(profile))
    if orders == 0:
        return
    t = np.sort(clock.times(profile, orders))
    bound = numbers[rng.integers(0, len(numbers), orders)]
    customers = ctx.customers(orders, 0.8)
    customers = customers[rng.integers(0, len(customers), orders)]
    p_answer = ctx.vary(ctx.prior("privacy_number", "answer_rate", 0.6, 0.95, log=False), 1.1,
                        hi=0.98)
    talk = ctx.prior("privacy_number", "talk_median_s", 10, 60)
    calls_first = rng.random(orders) < ctx.prior("privacy_number", "rider_calls_first", 0.4, 0.95,
                                                 log=False)
    for me in np.unique(bound[calls_first]).tolist():
        mine = calls_first & (bound == me)
        ctx.place(t[mine], me, customers[mine], trunk, p_answer, talk, 0.6, retry=0.6, hi=300)
    back = rng.random(orders) < ctx.prior("privacy_number", "customer_calls", 0.2, 0.7,
                                          log=False)
    back |= ~calls_first
    when = t[back] + rng.exponential(600.0, int(back.sum())) * calls_first[back]
    for me in np.unique(bound[back]).tolist():
        mine = bound[back] == me
        ctx.inbound(when[mine], customers[back][mine], me, talk, 0.95)


def customer_service(ctx: WorldContext) -> None:
    """A company's customer service (not registered): customers ring the hotline, agents
    call many of them back minutes to hours later, and talk for minutes."""
    rng, clock = ctx.rng, ctx.clock
    agents = int(ctx.vary(ctx.prior("customer_service", "agents", 2, 20), 1.5, lo=1))
    if ctx.chance(0.5):
        trunk = ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))
    else:
        trunk = ctx.trunks.get(f"cc-{ctx.pick(('care', 'service', 'support'))}-"
                               f"{rng.integers(1, 60):02d}", ip=True)
    hotline = int(ctx.numbers.fixed(1)[0])
    lines = ctx.numbers.fixed(agents)
    members = ctx.book.label([hotline, *lines.tolist()], "customer_service",
                             "customer_service/call_back")
    ctx.book.group("customer_service", "customer_service/call_back", members,
                   ctx.trunks.names[trunk], agents=agents)
    n = int(ctx.vary(ctx.prior("customer_service", "calls_in_per_day", 100, 1500)) *
            clock.fraction(_BUSINESS_HOURS))
    if n == 0:
        return
    callers = ctx.customers(n, 0.7)
    t = np.sort(clock.times(_BUSINESS_HOURS, len(callers)))
    ctx.inbound(t, callers, hotline, ctx.prior("customer_service", "hotline_talk_s", 60, 300),
                0.85)
    later = rng.random(len(callers)) < ctx.prior("customer_service", "call_back_share", 0.2, 0.7,
                                                 log=False)
    delay = rng.exponential(ctx.prior("customer_service", "delay_s", 300, 3 * 3600), int(
        later.sum()))
    agent = lines[rng.integers(0, agents, int(later.sum()))]
    tc = t[later] + 60 + delay
    p_answer = ctx.prior("customer_service", "answer_rate", 0.5, 0.92, log=False)
    talk = ctx.prior("customer_service", "talk_median_s", 60, 300)
    for me in np.unique(agent).tolist():
        mine = agent == me
        ans = ctx.place(tc[mine], me, callers[later][mine], trunk, p_answer, talk, 0.9, retry=0.5,
                        short_share=0.1)
        ctx.callbacks(tc[mine][~ans], me, callers[later][mine][~ans], 0.2, 0.9, 120, 1800)


def enterprise(ctx: WorldContext) -> None:
    """A registered enterprise (a bank's card centre): high outbound volume to distinct
    customers over business hours, heavy inbound; all its numbers on the allowlist."""
    rng, clock = ctx.rng, ctx.clock
    name = ctx.pick(("bank-cc", "insure", "telco-care", "airline", "utility"))
    numbers = ctx.numbers.fixed(int(rng.integers(1, 4))).tolist()
    code = int("86" + str(rng.integers(95000, 96000)))
    if ctx.chance(0.6) and code not in ctx.numbers.used:
        ctx.numbers.used.add(code)
        numbers.append(code)
    labelled = ctx.book.label(numbers, "enterprise", "enterprise/registered")
    ctx.book.allowlist += labelled
    own = ctx.trunks.get(f"ent-{name}-{len(ctx.book.allowlist)}", has_ids=True, ip=True)
    shared = ctx.trunks.get(ctx.pick(_WHOLESALE_TRUNKS))
    frac = clock.fraction(_BUSINESS_HOURS)
    for me in numbers:
        trunk = own if ctx.chance(0.7) else shared
        n = int(math.exp(rng.uniform(math.log(300), math.log(4000))) * frac)
        cust = ctx.customers(n, rng.uniform(0.4, 0.8))
        t = clock.times(_BUSINESS_HOURS, len(cust))
        ans = ctx.place(t, me, cust, trunk,
                        ctx.prior("enterprise", "answer_rate", 0.25, 0.7, log=False),
                        ctx.prior("enterprise", "talk_median_s", 30, 120), 1.0,
                        short_share=0.2)
        src = ctx.customers(int(len(cust) * rng.uniform(0.2, 1.5)), 0.6)
        ctx.inbound(clock.times(_BUSINESS_HOURS, len(src)), src, me, 120, 1.0)
        ctx.callbacks(t[~ans], me, cust[~ans], rng.uniform(0.05, 0.2), 0.9, 90, 1800)


def ride_confirm(ctx: WorldContext) -> None:
    """A booking desk (designated driver, airport transfer) confirming one-off customers
    by a few seconds' call each, little inbound traffic."""
    rng, clock = ctx.rng, ctx.clock
    me = int(ctx.numbers.mobile(1)[0])
    trunk = _mobile_home(ctx, me)
    ctx.book.label([me], "dispatch", "dispatch/app_confirm")
    n = int(ctx.vary(ctx.prior("dispatch", "confirmations", 100, 700)) *
            clock.fraction(_EVENING_HOURS))
    if n == 0:
        return
    customers = ctx.customers(n, 0.7)
    t = np.sort(clock.times(_EVENING_HOURS, len(customers)))
    ans = ctx.place(t, me, customers, trunk,
                    ctx.prior("dispatch", "confirm_answer_rate", 0.5, 0.9, log=False),
                    ctx.prior("dispatch", "confirm_talk_s", 5, 20), 0.5, retry=0.5, hi=300)
    ctx.callbacks(t[~ans], me, customers[~ans], rng.uniform(0.15, 0.4), 0.9, 25, 600)
