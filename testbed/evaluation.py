"""Scoring detectors against a labelled day, and comparing dialguard with the baselines.

A detector is run over the calls of a day in arrival order (as a stream would
see them); its alerts are then scored against :class:`~testbed.simulation.Labels`:

* **precision**: alerted numbers that are abuse (any abuse class) over all
  alerted numbers.  A kind ``ring`` alert counts each of its members.
* **recall** per abuse class: alerted members over members.  ``rotating_pool``
  is reported but marked ``ring issue``: its numbers make a few calls each, so
  a per-number detector is not expected to catch them and they are left out of
  the overall recall (they still count as true positives for precision).
* overall **recall** over the members of the other abuse classes, and **F1**.
* **false positives** per legitimate class (ordinary, courier, dispatch,
  notice, enterprise, and the wide world's others): alerted numbers of that
  class, and their share.
* **time to detect** per campaign: first alert on any member minus the
  campaign's first call (event time); median per class.
* **rings**: per rotating pool, the share of its members named in ring alerts
  within 15 minutes (:data:`POOL_WINDOW_S`) of the pool's first call (also:
  ever, and within 15 minutes of each member's own first call), and the worst
  pool; for cloud-dialer campaigns spread over several numbers, the time from
  the campaign's first call to its first alert (number or ring), median over
  the campaigns (one never alerted counts as never), also by origin (the
  operation's own gateway, or an ingress shared with legitimate traffic), each
  beside how many calls the campaign had made :data:`OPENING_S` after its first
  (all its numbers together, and its busiest number): what any detector could
  have seen by the one-minute mark.

The classes come from the day's labels (``meta["abuse_classes"]`` and
``meta["legit_classes"]``, as the wide world writes them), else the standard
world's.

>>> from detectors.alerts import Alert
>>> from testbed.simulation import Campaign, Labels
>>> labels = Labels(classes={"+1": "cloud_dialer", "+2": "cloud_dialer", "+3": "courier"},
...                 campaigns=[Campaign("c1", "cloud_dialer", ["+1", "+2"], 100.0, 900.0)],
...                 allowlist=[])
>>> alerts = [Alert("number", 2.0, [], 160.0, 100.0, caller="+1"),
...           Alert("number", 1.0, [], 500.0, 300.0, caller="+3")]
>>> m = score_alerts(alerts, labels)
>>> m["precision"], m["recall"], m["time_to_detect"]["cloud_dialer"]["median_s"]
(0.5, 0.5, 60.0)
"""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

from detectors.alerts import Alert
from detectors.records import Call
from testbed.simulation import ABUSE_CLASSES, LEGIT_CLASSES, Campaign, Labels

#: abuse classes a per-number detector is expected to catch (rotating pools are a ring problem)
REQUIRED_CLASSES: tuple[str, ...] = tuple(c for c in ABUSE_CLASSES if c != "rotating_pool")


def abuse_classes(labels: Labels) -> tuple[str, ...]:
    """The abuse classes of a labelled day: its world's own list, else the standard one.

    >>> abuse_classes(Labels({}, [], [], meta={"abuse_classes": ["ring_once"]}))
    ('ring_once',)
    >>> abuse_classes(Labels({}, [], [])) == ABUSE_CLASSES
    True
    """
    return tuple(labels.meta.get("abuse_classes") or ABUSE_CLASSES)


def legit_classes(labels: Labels) -> tuple[str, ...]:
    """The legitimate classes of a labelled day (its world's own list, else the standard)."""
    return tuple(labels.meta.get("legit_classes") or LEGIT_CLASSES)


def required_classes(labels: Labels) -> tuple[str, ...]:
    """The abuse classes a per-number detector is expected to catch on this day."""
    return tuple(c for c in abuse_classes(labels) if c != "rotating_pool")


class Observer(Protocol):
    def observe(self, call: Call) -> Sequence[Alert]: ...


@dataclass
class Run:
    """A detector's alerts over a day, with how long it took (wall clock, for information)."""

    name: str
    alerts: list[Alert] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0
    error: str | None = None


def recording(make: Callable[[], Observer], sink: list[Alert]) -> Callable[[], Observer]:
    """The same detector, its alerts also kept in ``sink``."""

    def build() -> Observer:
        inner = make().observe

        def observe(call: Call) -> Sequence[Alert]:
            found = inner(call)
            if found:
                sink.extend(found)
            return found

        return SimpleNamespace(observe=observe)

    return build


def run_detector(name: str, detector: Observer, calls: Iterable[Call]) -> Run:
    """Feed every call to ``detector`` in order and collect its alerts.

    >>> from testbed.baselines import VolumeRuleBaseline
    >>> calls = [Call("+8613800000001", f"+86139{i:08d}", 1.7e9 + i, 0, False) for i in range(20)]
    >>> run = run_detector("pike", VolumeRuleBaseline(max_calls=10), calls)
    >>> run.calls, len(run.alerts)
    (20, 1)
    """
    run = Run(name)
    observe = detector.observe
    alerts = run.alerts
    began = time.perf_counter()
    for call in calls:
        run.calls += 1
        found = observe(call)
        if found:
            alerts.extend(found)
    run.seconds = time.perf_counter() - began
    return run


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


#: a rotating pool's members count as found when a ring alert names them this soon (event time)
POOL_WINDOW_S = 900.0
#: a campaign's opening: the calls it had made this long after its first (event time)
OPENING_S = 60.0


def is_multi_number_dialer(cls: str, members: int) -> bool:
    """A campaign of class ``cls`` with ``members`` numbers is a cloud dialer spread over
    several (a campaign here, its scored row in :func:`testbed.report.pool_seeds`)."""
    return cls == "cloud_dialer" and members > 1


def dialer_origin(camp: Campaign) -> str | None:
    """``own`` (a gateway the operation rents), ``shared`` (an ingress it shares with
    legitimate traffic), or None where the world does not say."""
    own = camp.params.get("origin_gateway")
    return None if own is None else ("own" if own else "shared")


def opening_calls(calls: Iterable[Call], labels: Labels) -> dict[str, tuple[int, int]]:
    """Per multi-number cloud-dialer campaign: the calls it had made :data:`OPENING_S`
    after its first call, all its numbers together and its busiest number.

    >>> from testbed.simulation import Campaign
    >>> lab = Labels({}, [Campaign("c", "cloud_dialer", ["+1", "+2"], 0.0, 900.0)], [])
    >>> calls = [Call("+1", "+9", t, 0, False) for t in (10.0, 20.0, 40.0, 90.0)]
    >>> opening_calls(calls + [Call("+2", "+9", 75.0, 0, False)], lab)
    {'c': (3, 3)}
    """
    owner = {m: c.id for c in labels.campaigns if is_multi_number_dialer(c.cls, len(c.members))
             for m in c.members}
    times: dict[str, dict[str, list[float]]] = {}
    for call in calls:
        campaign = owner.get(call.caller)
        if campaign is not None:
            times.setdefault(campaign, {}).setdefault(call.caller, []).append(call.start)
    out = {}
    for campaign, by_number in times.items():
        end = min(min(t) for t in by_number.values()) + OPENING_S
        made = [sum(1 for x in t if x <= end) for t in by_number.values()]
        out[campaign] = (sum(made), max(made))
    return out


def _first_alerts(alerts: Iterable[Alert]) -> tuple[int, dict[str, float], dict[str, float]]:
    """(alerts, first alert per number of any kind, first ring alert per number)."""
    first: dict[str, float] = {}
    first_ring: dict[str, float] = {}
    n_alerts = 0
    for alert in alerts:
        n_alerts += 1
        ring = alert.kind == "ring"
        numbers = list(alert.members or []) if ring else [alert.caller]
        for number in numbers:
            if number is None:
                continue
            if alert.detected_at < first.get(number, math.inf):
                first[number] = alert.detected_at
            if ring and alert.detected_at < first_ring.get(number, math.inf):
                first_ring[number] = alert.detected_at
    return n_alerts, first, first_ring


def pool_coverage(labels: Labels, first_ring: dict[str, float],
                  first_calls: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per rotating pool: the share of its members in ring alerts within
    :data:`POOL_WINDOW_S` of the pool's first call, ever, and (given each member's first
    call) within that window of the member's own first call.

    >>> from testbed.simulation import Campaign
    >>> lab = Labels({"+1": "rotating_pool", "+2": "rotating_pool"},
    ...              [Campaign("p", "rotating_pool", ["+1", "+2"], 0.0, 9000.0)], [])
    >>> [(p["share_15min"], p["share_ever"]) for p in pool_coverage(lab, {"+1": 600.0,
    ...                                                                 "+2": 4000.0})]
    [(0.5, 1.0)]
    """
    out = []
    for camp in labels.campaigns:
        if camp.cls != "rotating_pool":
            continue
        members = camp.members
        soon = sum(1 for m in members if first_ring.get(m, math.inf) <= camp.start + POOL_WINDOW_S)
        ever = sum(1 for m in members if m in first_ring)
        entry: dict[str, Any] = {"id": camp.id, "members": len(members),
                                 "share_15min": soon / len(members),
                                 "share_ever": ever / len(members),
                                 "shared_ingress": camp.params.get("shared_ingress"),
                                 "trunk_field": camp.params.get("trunk_field")}
        if first_calls is not None:
            own = sum(1 for m in members if first_ring.get(m, math.inf)
                      <= first_calls.get(m, camp.start) + POOL_WINDOW_S)
            entry["share_15min_of_own_first_call"] = own / len(members)
        out.append(entry)
    return out


def score_alerts(alerts: Iterable[Alert], labels: Labels,
                 first_calls: dict[str, float] | None = None,
                 opening: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """The metrics of one detector's alerts against the truth (see the module docstring).

    ``first_calls`` (each number's first call, event time) adds to the rotating-pool
    figures the share of members found within 15 minutes of their own first call;
    ``opening`` (:func:`opening_calls`) adds to each multi-number cloud-dialer campaign
    the calls of its first minute.
    """
    n_alerts, first_alert, first_ring = _first_alerts(alerts)
    alerted = set(first_alert)
    by_class: dict[str, set[str]] = {}
    for number, cls in labels.classes.items():
        by_class.setdefault(cls, set()).add(number)
    abuse_all, required = abuse_classes(labels), required_classes(labels)
    alerted_class = {n: labels.class_of(n) for n in alerted}
    abuse = {n for n, c in alerted_class.items() if c in abuse_all}

    recall_by_class: dict[str, dict[str, Any]] = {}
    for cls in abuse_all:
        members = by_class.get(cls, set())
        hit = len(members & alerted)
        entry: dict[str, Any] = {"members": len(members), "alerted": hit,
                                 "recall": _ratio(hit, len(members))}
        if cls not in required:
            entry["note"] = "ring issue"
        recall_by_class[cls] = entry
    required_members = sum(recall_by_class[c]["members"] for c in required)
    required_hits = sum(recall_by_class[c]["alerted"] for c in required)
    precision = _ratio(len(abuse), len(alerted))
    recall = _ratio(required_hits, required_members)
    f1 = (2 * precision * recall / (precision + recall)
          if precision and recall else 0.0)

    false_positives: dict[str, dict[str, Any]] = {}
    for cls in legit_classes(labels):
        hit = sum(1 for c in alerted_class.values() if c == cls)
        size = len(by_class.get(cls, ()))
        false_positives[cls] = {"members": size, "alerted": hit, "rate": _ratio(hit, size)}

    campaigns = []
    delays: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    spread: list[dict[str, Any]] = []
    for camp in labels.campaigns:
        hits = [first_alert[m] for m in camp.members if m in first_alert]
        ttd = min(hits) - camp.start if hits else None
        counts[camp.cls] = counts.get(camp.cls, 0) + 1
        if ttd is not None:
            delays.setdefault(camp.cls, []).append(ttd)
        row: dict[str, Any] = {"id": camp.id, "class": camp.cls, "start": camp.start,
                               "members": len(camp.members), "alerted_members": len(hits),
                               "time_to_detect_s": ttd}
        if is_multi_number_dialer(camp.cls, len(camp.members)):
            row["origin"] = dialer_origin(camp)
            if opening is not None:
                row["opening_calls"], row["opening_busiest"] = opening.get(camp.id, (0, 0))
            spread.append(row)
        campaigns.append(row)
    time_to_detect = {
        cls: {"campaigns": counts.get(cls, 0), "detected": len(delays.get(cls, [])),
              "median_s": statistics.median(delays[cls]) if delays.get(cls) else None}
        for cls in abuse_all
    }
    pools = pool_coverage(labels, first_ring, first_calls)
    return {
        "alerts": n_alerts,
        "alerted_numbers": len(alerted),
        "true_positives": len(abuse),
        "false_positives": len(alerted) - len(abuse),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_by_class": recall_by_class,
        "false_positives_by_class": false_positives,
        "time_to_detect": time_to_detect,
        "campaigns": campaigns,
        "pools": pools,
        "worst_pool_share_15min": min((p["share_15min"] for p in pools), default=None),
        "multi_number_cloud_dialer": dialer_delays(spread),
    }


def dialer_delays(campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    """Multi-number cloud-dialer campaigns (:func:`score_alerts` entries): how many, how
    many alerted, the median time to first alert (one never alerted counts as never), and
    the median calls of their first minute; the same by origin where the world says it.

    >>> rows = [{"time_to_detect_s": 30.0, "origin": "own", "opening_calls": 40},
    ...         {"time_to_detect_s": None, "origin": "shared", "opening_calls": 3},
    ...         {"time_to_detect_s": 200.0, "origin": "shared", "opening_calls": 5}]
    >>> d = dialer_delays(rows)
    >>> d["median_s"], d["by_origin"]["shared"]["median_s"], d["by_origin"]["shared"]["detected"]
    (200.0, None, 1)
    >>> d["opening_calls_median"], d["by_origin"]["own"]["opening_calls_median"]
    (5, 40)
    """
    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        found = [r["time_to_detect_s"] for r in rows if r["time_to_detect_s"] is not None]
        opening = [r["opening_calls"] for r in rows if "opening_calls" in r]
        return {"campaigns": len(rows), "detected": len(found),
                "median_s": _finite(statistics.median(
                    found + [math.inf] * (len(rows) - len(found)))) if rows else None,
                "opening_calls_median": statistics.median(opening) if opening else None}

    out = summary(campaigns)
    out["by_origin"] = {origin: summary([r for r in campaigns if r.get("origin") == origin])
                        for origin in ("own", "shared")}
    return out


def first_calls_of(calls: Iterable[Call], numbers: set[str]) -> dict[str, float]:
    """The first call (event time) of each of ``numbers`` among ``calls``."""
    first: dict[str, float] = {}
    for call in calls:
        if call.caller in numbers and call.start < first.get(call.caller, math.inf):
            first[call.caller] = call.start
    return first


# --------------------------------------------------------------------------- inputs


def calls_from_records(records: Iterable[dict[str, Any]], normaliser: Callable[[str], str],
                       rejected: dict[str, int] | None = None) -> Iterator[Call]:
    """CONTRACT 1a dicts (e.g. the simulator's) to calls in event-time order (as
    ``dialguard replay`` orders a file), counting rejections by reason."""
    from formats.json_lines import JsonLines
    from formats.ordering import event_time_order

    from_mapping = JsonLines(normaliser).from_mapping
    decoded_all = (from_mapping(record) for record in records)
    for decoded in event_time_order(decoded_all):
        if isinstance(decoded, Call):
            yield decoded
        elif rejected is not None:
            rejected[decoded.reason] = rejected.get(decoded.reason, 0) + 1


def calls_from_files(paths: Iterable[str], fmt: str, normaliser: Any, timezone: str = "UTC",
                     rejected: dict[str, int] | None = None) -> Iterator[Call]:
    """Calls read from CDR files (JSON lines or Asterisk, gzip or not) in event-time order."""
    from detectors.config import InputSettings
    from formats.reading import read_paths

    for decoded in read_paths(list(paths), fmt, normaliser, InputSettings(timezone=timezone)):
        if isinstance(decoded, Call):
            yield decoded
        elif rejected is not None:
            rejected[decoded.reason] = rejected.get(decoded.reason, 0) + 1


# --------------------------------------------------------------------------- comparison


def default_detectors(settings: Any, allowlist: Iterable[str]
                      ) -> list[tuple[str, Callable[[], Observer]]]:
    """dialguard (the per-number Detector and, when ``[rings].enabled``, the group detector, as
    in replay and the workers) and the two baselines, all with the same allowlist and cool-down."""
    from testbed.baselines import AniProfileBaseline, VolumeRuleBaseline

    allow = frozenset(allowlist)
    cooldown = settings.alerts.cooldown_s

    def dialguard() -> Observer:
        from detectors.allowlist import Allowlist
        from detectors.composite import DetectorChain

        return DetectorChain.for_settings(settings, Allowlist(allow))

    return [
        ("dialguard", dialguard),
        ("volume_rule", lambda: VolumeRuleBaseline(cooldown_s=cooldown, allowlist=allow)),
        ("ani_profile", lambda: AniProfileBaseline(cooldown_s=cooldown, allowlist=allow)),
    ]


def compare(calls: list[Call], labels: Labels,
            detectors: list[tuple[str, Callable[[], Observer]]]) -> dict[str, Any]:
    """Run each detector over the same calls and score it; a detector that fails to load
    is reported with its error instead of metrics."""
    report: dict[str, Any] = {"world": {k: v for k, v in labels.meta.items() if k != "config"},
                              "calls": len(calls), "detectors": {}}
    pool_members = {m for c in labels.campaigns if c.cls == "rotating_pool" for m in c.members}
    first_calls = first_calls_of(calls, pool_members)
    opening = opening_calls(calls, labels)
    for name, make in detectors:
        try:
            detector = make()
        except ImportError as exc:
            report["detectors"][name] = {"error": f"not available: {exc}"}
            continue
        run = run_detector(name, detector, calls)
        metrics = score_alerts(run.alerts, labels, first_calls, opening)
        metrics["seconds"] = round(run.seconds, 3)
        metrics["calls_per_s"] = round(run.calls / run.seconds) if run.seconds > 0 else None
        report["detectors"][name] = metrics
    return report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _dur(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}s" if abs(x) < 120 else f"{x / 60:.1f}m"


def render_tables(report: dict[str, Any]) -> list[Any]:
    """rich Tables: the summary, recall and time to detect per class, false positives."""
    from rich.table import Table

    rows = [(n, m) for n, m in report["detectors"].items() if "error" not in m]
    summary = Table(title=f"Detectors on {report['calls']} calls")
    for col in ("detector", "alerted", "TP", "FP", "precision", "recall", "F1", "calls/s"):
        summary.add_column(col, justify="left" if col == "detector" else "right")
    for name, m in report["detectors"].items():
        if "error" in m:
            summary.add_row(name, m["error"], *[""] * 6)
            continue
        summary.add_row(name, str(m["alerted_numbers"]), str(m["true_positives"]),
                        str(m["false_positives"]), _pct(m["precision"]), _pct(m["recall"]),
                        _pct(m["f1"]), str(m.get("calls_per_s") or "-"))

    recall = Table(title="Recall (alerted/members) and median time to detect, per abuse class")
    recall.add_column("class")
    for name, _ in rows:
        recall.add_column(name, justify="right")
    for cls in (rows[0][1]["recall_by_class"] if rows else ()):
        first = rows[0][1]["recall_by_class"][cls]
        label = cls + (" (ring issue)" if first.get("note") else "")
        cells = []
        for _, m in rows:
            r = m["recall_by_class"][cls]
            ttd = m["time_to_detect"][cls]
            cells.append(f"{r['alerted']}/{r['members']} {_pct(r['recall'])}  "
                         f"ttd {_dur(ttd['median_s'])} ({ttd['detected']}/{ttd['campaigns']})")
        recall.add_row(label, *cells)

    fps = Table(title="False positives per legitimate class (alerted/members)")
    fps.add_column("class")
    for name, _ in rows:
        fps.add_column(name, justify="right")
    for cls in (rows[0][1]["false_positives_by_class"] if rows else ()):
        cells = []
        for _, m in rows:
            f = m["false_positives_by_class"][cls]
            cells.append(f"{f['alerted']}/{f['members']}")
        fps.add_row(cls, *cells)

    rings = Table(title="Rings: rotating pools' members in ring alerts within 15 min of the "
                        "pool's first call; multi-number cloud dialers' time to first alert")
    rings.add_column("figure")
    for name, _ in rows:
        rings.add_column(name, justify="right")
    pools = [m["pools"] for _, m in rows]
    rings.add_row("pools (worst pool)", *[
        f"{len(p)} ({_pct(m['worst_pool_share_15min'])})" for p, (_, m) in zip(pools, rows,
                                                                             strict=True)])
    rings.add_row("pool members found in 15 min", *[
        _pct(_ratio(sum(x["share_15min"] * x["members"] for x in p),
                    sum(x["members"] for x in p))) for p in pools])
    rings.add_row("multi-number dialers: median time", *[
        f"{_dur(m['multi_number_cloud_dialer']['median_s'])} "
        f"({m['multi_number_cloud_dialer']['detected']}/"
        f"{m['multi_number_cloud_dialer']['campaigns']})" for _, m in rows])
    return [summary, recall, fps, rings]


def render_text(report: dict[str, Any], width: int = 120) -> str:
    """The tables as plain text."""
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None)
    for table in render_tables(report):
        console.print(table)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()
