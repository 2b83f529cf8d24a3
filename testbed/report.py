"""Evaluation over many seeds: each seed one carrier's day, figures per seed, pooled, worst.

:func:`evaluate_seeds` simulates and scores every seed (in parallel processes),
:func:`pool_seeds` adds the seeds up: pooled figures are sums over all seeds
(alerted numbers, members, true positives) and medians over all campaigns;
beside each the **worst seed** is named (lowest precision, lowest recall of
each class).  :data:`SEED_SPLIT` is the one place the seed ranges are fixed:
thresholds may be developed on the ``development`` seeds, figures are
reported on the ``reported`` seeds, which nothing was tuned on.

>>> parse_seeds("1-3,7"), parse_seeds("reported")[:2]
([1, 2, 3, 7], [101, 102])
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.alerts import Alert

if TYPE_CHECKING:
    from testbed.simulation import Labels

#: development seeds (thresholds may be tuned on them) and reported seeds (never tuned on)
SEED_SPLIT: dict[str, tuple[int, ...]] = {
    "development": tuple(range(1, 21)),
    "reported": tuple(range(101, 121)),
}

#: what a per-seed report keeps of the world's metadata (the rest is per number)
_WORLD_KEYS = ("seed", "world", "calls", "records", "duplicates", "malformed", "counts",
               "kind_counts", "withheld_calls", "priors", "feed_has_trunk", "city_switch",
               "rate_scale")


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"1-20"``, ``"1,4,9"``, a mix, or a name in :data:`SEED_SPLIT`.

    >>> parse_seeds("5")
    [5]
    >>> parse_seeds("3-1")
    Traceback (most recent call last):
    ...
    ValueError: bad seed range '3-1': the end is below the start
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if part in SEED_SPLIT:
            seeds += SEED_SPLIT[part]
            continue
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ValueError(f"bad seeds {part!r}: a number, a range like 1-20, or one of "
                             f"{', '.join(SEED_SPLIT)}") from None
        if b < a:
            raise ValueError(f"bad seed range {part!r}: the end is below the start")
        seeds += range(a, b + 1)
    if not seeds:
        raise ValueError("no seeds given")
    return list(dict.fromkeys(seeds))


def split_of(seeds: Iterable[int]) -> str | None:
    """The name of the seed range these seeds are, if they are exactly one."""
    chosen = tuple(seeds)
    return next((name for name, split in SEED_SPLIT.items() if split == chosen), None)


@dataclass(frozen=True)
class SeedJob:
    """One seed to evaluate (all a worker process needs, picklable)."""

    world: str
    seed: int
    size: str = "day"
    hours: float | None = None
    subscribers: int | None = None
    config_path: str | None = None
    abuse_rate_scale: float | None = None
    legit_rate_scale: float | None = None


def evaluate_seed(job: SeedJob) -> dict[str, Any]:
    """Simulate one seed's day, run dialguard and the baselines over it, score them."""
    from detectors.config import load_settings
    from detectors.numbers import NumberNormaliser
    from testbed.evaluation import calls_from_records, compare, default_detectors, recording
    from testbed.simulation import SimConfig
    from testbed.worlds import kind_breakdown, simulate_world

    settings = load_settings(job.config_path)
    normaliser = NumberNormaliser(settings.input.region)
    config = SimConfig.preset(job.size, hours=job.hours, subscribers=job.subscribers,
                              abuse_rate_scale=job.abuse_rate_scale,
                              legit_rate_scale=job.legit_rate_scale)
    day = simulate_world(job.world, config, job.seed)
    labels = day.labels
    rejected: dict[str, int] = {}
    calls = list(calls_from_records(day.records(), normaliser, rejected))
    sinks: dict[str, list[Alert]] = {}
    detectors = []
    for name, make in default_detectors(settings, [normaliser(n) for n in labels.allowlist]):
        sinks[name] = []
        detectors.append((name, recording(make, sinks[name])))
    report = compare(calls, labels, detectors)
    report["world"] = {k: labels.meta[k] for k in _WORLD_KEYS if k in labels.meta}
    report["seed"] = job.seed
    report["rejected"] = rejected
    if labels.meta.get("kinds"):
        ran = [n for n, m in report["detectors"].items() if "error" not in m]
        report["kinds"] = kind_breakdown({n: alerted_numbers(sinks[n]) for n in ran}, labels)
    if "dialguard" in sinks:
        report["false_positive_alerts"] = false_positive_rows(sinks["dialguard"], labels)
    return report


def false_positive_rows(alerts: Iterable[Alert], labels: Labels) -> list[dict[str, Any]]:
    """Each legitimate number alerted, with the alert that named it first: what to look at
    when precision drops (simulated numbers only: the labels say who they are).

    >>> from testbed.simulation import Labels
    >>> labels = Labels({"+861": "courier", "+862": "cloud_dialer"}, [], [],
    ...                 {"legit_classes": ["ordinary", "courier"]})
    >>> ring = Alert(kind="ring", score=3.0, reasons=["3 numbers", "all via gw-1"],
    ...              detected_at=60.0, first_seen=0.0, members=["+861", "+862"], profile="ring")
    >>> [(r["number"], r["class"], r["alert"], r["profile"]) for r in
    ...  false_positive_rows([ring, ring], labels)]
    [('+861', 'courier', 'ring', 'ring')]
    """
    from testbed.evaluation import legit_classes
    from testbed.worlds import kind_of

    legit = set(legit_classes(labels))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for alert in alerts:
        for number in named_numbers(alert):
            cls = labels.class_of(number)
            if number in seen or cls not in legit:
                continue
            seen.add(number)
            rows.append({"number": number, "class": cls,
                         "kind": kind_of(labels.meta, number, cls), "alert": alert.kind,
                         "profile": alert.profile, "detected_at": alert.detected_at,
                         "reasons": alert.reasons[:4]})
    return rows


def named_numbers(alert: Alert) -> list[str]:
    """The numbers an alert names: the caller of a number alert, the members of a ring."""
    named = [alert.caller] if alert.kind == "number" else (alert.members or [])
    return [n for n in named if n is not None]


def alerted_numbers(alerts: Iterable[Alert]) -> set[str]:
    """Every number the alerts name (:func:`named_numbers`)."""
    out: set[str] = set()
    for a in alerts:
        out.update(named_numbers(a))
    return out


class SeedFailed(RuntimeError):
    """A seed's evaluation raised: which seed, and what."""


def _run(job: SeedJob) -> dict[str, Any]:
    try:
        return evaluate_seed(job)
    except Exception as exc:  # a broken seed is named, not lost in a pool's traceback
        raise SeedFailed(f"{job.world} world, seed {job.seed}: {type(exc).__name__}: {exc}"
                         ) from exc


def evaluate_seeds(jobs: list[SeedJob], processes: int = 2, progress: Any = None
                   ) -> list[dict[str, Any]]:
    """Per-seed reports in seed order; ``processes`` > 1 runs seeds in parallel processes.
    ``progress`` is called with each finished seed; a seed that fails raises
    :class:`SeedFailed` naming it."""
    if processes <= 1 or len(jobs) <= 1:
        out = []
        for job in jobs:
            out.append(_run(job))
            if progress is not None:
                progress(job.seed)
        return out
    with ProcessPoolExecutor(max_workers=processes) as pool:
        futures = [pool.submit(_run, job) for job in jobs]
        results = []
        for future in futures:
            results.append(future.result())
            if progress is not None:
                progress(results[-1]["seed"])
    return results


# --------------------------------------------------------------------------- pooling


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _worst(values: list[tuple[float | None, int]]) -> dict[str, Any] | None:
    known = [(v, s) for v, s in values if v is not None]
    if not known:
        return None
    value, seed = min(known)
    return {"value": value, "seed": seed}


def _pool_detector(name: str, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    from testbed.evaluation import dialer_delays, is_multi_number_dialer

    runs = [(r["seed"], r["detectors"][name]) for r in per_seed
            if "error" not in r["detectors"].get(name, {"error": 1})]
    if not runs:
        return {"error": "did not run"}
    first = runs[0][1]
    alerted = sum(m["alerted_numbers"] for _, m in runs)
    tp = sum(m["true_positives"] for _, m in runs)
    recall_by_class = {}
    for cls in first["recall_by_class"]:
        members = sum(m["recall_by_class"][cls]["members"] for _, m in runs)
        hit = sum(m["recall_by_class"][cls]["alerted"] for _, m in runs)
        delays = [c["time_to_detect_s"] for _, m in runs for c in m["campaigns"]
                  if c["class"] == cls and c["time_to_detect_s"] is not None]
        campaigns = sum(m["time_to_detect"][cls]["campaigns"] for _, m in runs)
        recall_by_class[cls] = {
            "members": members, "alerted": hit, "recall": _ratio(hit, members),
            "worst_seed": _worst([(m["recall_by_class"][cls]["recall"], s) for s, m in runs]),
            "time_to_detect": {"campaigns": campaigns, "detected": len(delays),
                               "median_s": statistics.median(delays) if delays else None},
        }
        if "note" in first["recall_by_class"][cls]:
            recall_by_class[cls]["note"] = first["recall_by_class"][cls]["note"]
    required = [c for c, e in recall_by_class.items() if "note" not in e]
    false_positives = {}
    for cls in first["false_positives_by_class"]:
        members = sum(m["false_positives_by_class"][cls]["members"] for _, m in runs)
        hit = sum(m["false_positives_by_class"][cls]["alerted"] for _, m in runs)
        false_positives[cls] = {"members": members, "alerted": hit, "rate": _ratio(hit, members)}
    pools = [dict(p, seed=s) for s, m in runs for p in m["pools"]]
    spread = [c for _, m in runs for c in m["campaigns"]
              if is_multi_number_dialer(c["class"], c["members"])]
    worst_pool = min(pools, key=lambda p: p["share_15min"]) if pools else None
    return {
        "seeds": len(runs),
        "alerted_numbers": alerted,
        "true_positives": tp,
        "false_positives": alerted - tp,
        "precision": _ratio(tp, alerted),
        "worst_seed_precision": _worst([(m["precision"], s) for s, m in runs]),
        "recall": _ratio(sum(recall_by_class[c]["alerted"] for c in required),
                         sum(recall_by_class[c]["members"] for c in required)),
        "worst_seed_recall": _worst([(m["recall"], s) for s, m in runs]),
        "recall_by_class": recall_by_class,
        "false_positives_by_class": false_positives,
        "pools": {
            **_pool_share(pools),
            "worst_pool": worst_pool,
            # pools that share an ingress with legitimate traffic or not, in feeds that name
            # the trunk or not
            "by_ingress": {name: _pool_share([p for p in pools if p.get("shared_ingress") == v])
                           for name, v in (("shared", 1.0), ("own", 0.0))},
            "by_trunk_field": {name: _pool_share([p for p in pools if p.get("trunk_field") == v])
                               for name, v in (("named", 1.0), ("absent", 0.0))},
        },
        "multi_number_cloud_dialer": dialer_delays(spread),
        "per_seed": [_seed_row(s, m) for s, m in runs],
    }


def _dialers(d: dict[str, Any]) -> str:
    """``76s (108/110), 1st min 14 calls``: median to first alert, detected/campaigns, and
    the median calls of a campaign's first minute (what there was to see)."""
    opening = d.get("opening_calls_median")
    return (f"{_dur(d['median_s'])} ({d['detected']}/{d['campaigns']})"
            + ("" if opening is None else f", 1st min {opening:g} calls"))


def _pool_share(pools: list[dict[str, Any]]) -> dict[str, Any]:
    """Pools, their members, and the share of those members in rings within 15 minutes of
    the pool's first call, ever, and (where measured) within 15 minutes of their own first
    call: a pool that works through its numbers for hours cannot have its later numbers
    found within 15 minutes of its first call, so the last is the one that measures delay."""
    members = sum(p["members"] for p in pools)
    out = {"pools": len(pools), "members": members}
    for key in ("share_15min", "share_ever", "share_15min_of_own_first_call"):
        if all(key in p for p in pools):
            out[key] = _ratio(sum(p[key] * p["members"] for p in pools), members)
    return out


def _seed_row(seed: int, m: dict[str, Any]) -> dict[str, Any]:
    return {"seed": seed, "precision": m["precision"], "recall": m["recall"],
            "alerted": m["alerted_numbers"], "false_positives": m["false_positives"],
            "recall_by_class": {c: e["recall"] for c, e in m["recall_by_class"].items()},
            "time_to_detect_s": {c: e["median_s"] for c, e in m["time_to_detect"].items()},
            "worst_pool_share_15min": m["worst_pool_share_15min"]}


def _pool_kinds(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for report in per_seed:
        for kind, entry in report.get("kinds", {}).items():
            into = out.setdefault(kind, {"class": entry["class"], "members": 0, "alerted": {}})
            into["members"] += entry["members"]
            for name, hit in entry["alerted"].items():
                into["alerted"][name] = into["alerted"].get(name, 0) + hit
    return dict(sorted(out.items()))


def pool_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds added up, per detector, with the worst seed named beside each figure."""
    names = list(dict.fromkeys(n for r in per_seed for n in r["detectors"]))
    seeds = [r["seed"] for r in per_seed]
    return {
        "seeds": seeds,
        "split": split_of(seeds),
        "calls": sum(r["calls"] for r in per_seed),
        "detectors": {name: _pool_detector(name, per_seed) for name in names},
        "kinds": _pool_kinds(per_seed),
        "false_positives_by_judgement": _pool_false_positives(per_seed),
    }


def _pool_false_positives(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """dialguard's false positives counted by legitimate kind and the judgement that named
    them first (a number alert's profile, or ``ring``)."""
    out: dict[str, dict[str, int]] = {}
    for report in per_seed:
        for row in report.get("false_positive_alerts", []):
            by = out.setdefault(row["kind"], {})
            by[row["profile"]] = by.get(row["profile"], 0) + 1
    return {kind: dict(sorted(by.items())) for kind, by in sorted(out.items())}


# --------------------------------------------------------------------------- rendering


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _dur(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}s" if abs(x) < 120 else f"{x / 60:.1f}m"


def _recall_cell(entry: dict[str, Any]) -> str:
    ttd = entry["time_to_detect"]
    return (f"{entry['alerted']}/{entry['members']} {_pct(entry['recall'])}, "
            f"{_dur(ttd['median_s'])} ({ttd['detected']}/{ttd['campaigns']})")


def _worst_cell(w: dict[str, Any] | None) -> str:
    return "-" if w is None else f"{_pct(w['value'])} (seed {w['seed']})"


def render_pooled(pooled: dict[str, Any], world: str) -> list[Any]:
    """rich Tables: pooled figures with the worst seed beside, and dialguard per seed."""
    from rich.table import Table

    rows = [(n, m) for n, m in pooled["detectors"].items() if "error" not in m]
    split = f", the {pooled['split']} seeds" if pooled["split"] else ""
    seeds = pooled["seeds"]
    title = (f"{world} world, {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}{split}), "
             f"{pooled['calls']} calls: pooled | worst seed")
    table = Table(title=title, caption="recall: alerted/members, share, median time to detect "
                                       "(campaigns detected/campaigns)")
    table.add_column("figure", no_wrap=True)
    for name, _ in rows:
        table.add_column(f"{name} pooled", justify="right")
        table.add_column("worst seed", justify="right")
    table.add_row("precision", *[c for _, m in rows for c in (
        _pct(m["precision"]), _worst_cell(m["worst_seed_precision"]))])
    table.add_row("recall (required classes)", *[c for _, m in rows for c in (
        _pct(m["recall"]), _worst_cell(m["worst_seed_recall"]))])
    for cls, first in rows[0][1]["recall_by_class"].items() if rows else ():
        label = f"recall {cls}" + (" (ring issue)" if first.get("note") else "")
        table.add_row(label, *[c for _, m in rows for c in (
            _recall_cell(m["recall_by_class"][cls]),
            _worst_cell(m["recall_by_class"][cls]["worst_seed"]))])
    for cls in rows[0][1]["false_positives_by_class"] if rows else ():
        table.add_row(f"false positives {cls}", *[c for _, m in rows for c in (
            f"{m['false_positives_by_class'][cls]['alerted']}/"
            f"{m['false_positives_by_class'][cls]['members']}", "")])
    table.add_row("pool members in rings: ever", *[c for _, m in rows for c in (
        _pct(m["pools"].get("share_ever")), "")])
    table.add_row("  within 15 min of their own first call", *[c for _, m in rows for c in (
        _pct(m["pools"].get("share_15min_of_own_first_call")), "")])
    for label, key, part in (("    pools sharing an ingress", "by_ingress", "shared"),
                             ("    pools on their own ingress", "by_ingress", "own"),
                             ("    pools in feeds without trunk", "by_trunk_field", "absent")):
        table.add_row(label, *[c for _, m in rows for c in (
            f"{_pct(m['pools'][key][part].get('share_15min_of_own_first_call'))} "
            f"({m['pools'][key][part]['pools']} pools)", "")])
    table.add_row("  within 15 min of the pool's first call", *[c for _, m in rows for c in (
        _pct(m["pools"]["share_15min"]),
        "-" if m["pools"]["worst_pool"] is None else
        f"{_pct(m['pools']['worst_pool']['share_15min'])} (seed "
        f"{m['pools']['worst_pool']['seed']}, {m['pools']['worst_pool']['id']})")])
    table.add_row("multi-number dialers: to first alert", *[c for _, m in rows for c in (
        _dialers(m["multi_number_cloud_dialer"]), "")])
    for origin, label in (("own", "  on their own gateway"), ("shared", "  on a shared ingress")):
        if any(m["multi_number_cloud_dialer"]["by_origin"][origin]["campaigns"] for _, m in rows):
            table.add_row(label, *[c for _, m in rows for c in (
                _dialers(m["multi_number_cloud_dialer"]["by_origin"][origin]), "")])
    tables = [table]
    if rows:
        name, m = rows[0]
        per = Table(title=f"{name} per seed: precision, recall of each abuse class, worst pool")
        classes = list(m["recall_by_class"])
        for col in ("seed", "alerted", "FP", "precision", *classes, "worst pool"):
            per.add_column(col, justify="right")
        for row in m["per_seed"]:
            per.add_row(str(row["seed"]), str(row["alerted"]), str(row["false_positives"]),
                        _pct(row["precision"]),
                        *[_pct(row["recall_by_class"][c]) for c in classes],
                        _pct(row["worst_pool_share_15min"]))
        tables.append(per)
        ttd = Table(title=f"{name} per seed: median time to detect per abuse class")
        for col in ("seed", *classes):
            ttd.add_column(col, justify="right")
        for row in m["per_seed"]:
            ttd.add_row(str(row["seed"]), *[_dur(row["time_to_detect_s"][c]) for c in classes])
        tables.append(ttd)
    if pooled["kinds"] and rows:
        kinds = Table(title="Alerted/members per kind, pooled (abuse kinds are recall, "
                            "legitimate ones false positives)")
        kinds.add_column("kind")
        for name, _ in rows:
            kinds.add_column(name, justify="right")
        for kind, entry in pooled["kinds"].items():
            kinds.add_row(kind, *[f"{entry['alerted'].get(n, 0)}/{entry['members']}"
                                  for n, _ in rows])
        tables.append(kinds)
    return tables
