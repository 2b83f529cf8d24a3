"""The ``wide`` world: a carrier day whose every parameter is drawn per seed from wide priors.

Built from recipes (:mod:`testbed.recipes`) over one shared context, not by
subclassing: :data:`RECIPES` says which recipe runs how many times for a day
the size of :class:`~testbed.simulation.SimConfig`.  What one seed looks like
(how fast the marketing SIMs dial, how large the rotating pools are, how many
people live in a household, whether the feed names trunks at all) is drawn
once per seed (``labels.meta["priors"]``), so one seed is one carrier on one
day and another seed another carrier; the worst seed is the figure that counts.

Classes (``labels.classes``; finer kinds in ``labels.meta["kinds"]``):

* abuse (:data:`WIDE_ABUSE_CLASSES`): ``cloud_dialer`` (single, spread over
  numbers, sequential scan), ``rotating_pool``, ``ring_once`` (wangiri),
  ``marketing_blast`` (SIM farms at low rates), ``debt_collection`` (a
  borrower's circle), ``repeat_refused`` (harassment of people who refused);
* legitimate (:data:`WIDE_LEGIT_CLASSES`): ``ordinary`` (a clustered social
  graph), ``courier``, ``dispatch`` (radio taxi, booking confirmations),
  ``notice`` (school notices, hospital reminder lines), ``privacy_number``
  (delivery and ride-hailing virtual numbers), ``customer_service`` (call-backs),
  ``enterprise`` (registered, allowlisted);
* withheld callers (legitimate and abusive) are records, not numbers: counted
  per class of the hidden caller in ``labels.meta["withheld_calls"]``.

``SimConfig.history_days`` adds days of the same subscribers calling their contacts
before the day (who knows whom, as a carrier's earlier records show it); the day itself
is the same (see ``benchmarks/circle_history.py``).

Campaigns (``labels.campaigns``) hold every member of an operation, pools and
multi-number dialers included; legitimate groups (privacy pools, a company's
lines) are in ``labels.meta["groups"]``.

>>> from testbed.simulation import SimConfig
>>> day = simulate_wide(SimConfig.preset("small"), seed=7)
>>> day.labels.meta["world"], sorted(set(day.labels.classes.values())) == sorted(WIDE_CLASSES)
('wide', True)
>>> list(day.records())[:20] == list(simulate_wide(SimConfig.preset("small"), 7).records())[:20]
True
"""

from __future__ import annotations

from collections.abc import Callable

from testbed.recipes import abuse, legitimate, population
from testbed.recipes.context import WorldContext
from testbed.recipes.delivery import Day, deliver
from testbed.simulation import SimConfig

WIDE_ABUSE_CLASSES: tuple[str, ...] = ("cloud_dialer", "rotating_pool", "ring_once",
                                       "marketing_blast", "debt_collection", "repeat_refused")
WIDE_LEGIT_CLASSES: tuple[str, ...] = ("ordinary", "courier", "dispatch", "notice",
                                       "privacy_number", "customer_service", "enterprise")
WIDE_CLASSES: tuple[str, ...] = WIDE_LEGIT_CLASSES + WIDE_ABUSE_CLASSES

Recipe = Callable[[WorldContext], None]


def _count(config: SimConfig, field: str | None, per_day: float) -> Callable[[WorldContext], int]:
    """How many times a recipe runs: the config's count for its class where it has one,
    else ``per_day`` scaled by the population; at least one, varied per seed."""

    def count(ctx: WorldContext) -> int:
        base = float(getattr(config, field)) if field else per_day * config.subscribers / 38_000
        return max(1, round(ctx.vary(max(base, 1.0), 1.5)))

    return count


def recipes(config: SimConfig) -> list[tuple[Recipe, Callable[[WorldContext], int]]]:
    """The wide world's recipes in the order they run, each with how often."""
    once: Callable[[WorldContext], int] = lambda ctx: 1  # noqa: E731
    return [
        (population.network, once),
        (population.leaked_lists, once),
        (population.subscribers, once),
        (population.history, once),
        (legitimate.courier, _count(config, "couriers", 0)),
        (legitimate.dispatch, _count(config, None, 5)),
        (legitimate.ride_confirm, _count(config, None, 3)),
        (legitimate.school_notice, _count(config, None, 4)),
        (legitimate.hospital_reminder, _count(config, None, 4)),
        (legitimate.privacy_pool, _count(config, None, 3)),
        (legitimate.customer_service, _count(config, None, 4)),
        (legitimate.enterprise, _count(config, "enterprise", 0)),
        (abuse.cloud_dialer, _count(config, "cloud_dialer", 0)),
        (abuse.rotating_pool, _count(config, "rotating_pool", 0)),
        (abuse.ring_once, _count(config, "ring_once", 0)),
        (abuse.marketing_sim_farm, _count(config, "marketing_blast", 0)),
        (abuse.debt_collection, _count(config, None, 12)),
        (abuse.repeat_refused, _count(config, "repeat_refused", 0)),
    ]


def simulate_wide(config: SimConfig | None = None, seed: int = 0) -> Day:
    """A labelled wide-prior day; the same ``(config, seed)`` always gives the same day."""
    config = config or SimConfig()
    ctx = WorldContext(config, seed)
    # some feeds carry no trunk field at all; the others name most trunks
    ctx.trunks.named_share = 0.0 if ctx.chance(0.3) else float(ctx.rng.uniform(0.8, 1.0))
    ctx.meta["abuse_classes"] = list(WIDE_ABUSE_CLASSES)
    ctx.meta["legit_classes"] = list(WIDE_LEGIT_CLASSES)
    ctx.meta["feed_has_trunk"] = ctx.trunks.named_share > 0
    for recipe, count in recipes(config):
        for _ in range(count(ctx)):
            recipe(ctx)
    return deliver(ctx, "wide")
