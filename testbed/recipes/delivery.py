"""Delivery recipe: from the generated calls to the records a carrier's feed delivers.

:func:`deliver` closes a :class:`~testbed.recipes.context.WorldContext`: it
keeps the calls inside the day, settles the labels (numbers that never
called visibly are not part of the day; a campaign's start is its first
call), and decides how every record arrives: numbers national, E.164 or
``00``-prefixed, start times as epoch seconds or ISO-8601, record ids on
some trunks, withheld callers as ``anonymous`` and its cousins (CONTRACT
1a), no ``trunk`` field where the feed does not name the trunk, records
delivered when the call ends (some trunks in batches, a few very late), a few
delivered twice and a few broken.

The result is a :class:`Day`: ``records()`` yields CONTRACT 1a dicts in
delivery order, ``labels`` is the truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from testbed.recipes.context import WorldContext
from testbed.simulation import (
    _DEFECTS,
    ANSWERED,
    DISPOSITIONS,
    Labels,
    SimConfig,
    _anonymous,
    _present,
)

#: how feeds write a withheld caller (CONTRACT 1a)
WITHHELD_SPELLINGS = ("anonymous", "", "Anonymous", "unknown", "restricted", "private",
                      "UNAVAILABLE")
#: broken records (a withheld caller is not one: it is a valid record)
_BROKEN = tuple(d for d in _DEFECTS if d is not _anonymous)


class Day:
    """A delivered day: ``records()`` in delivery order, ``labels`` the truth."""

    def __init__(self, config: SimConfig, seed: int, labels: Labels, cols: dict[str, np.ndarray],
                 presentation: dict[str, np.ndarray], trunks: dict[str, list[Any]]) -> None:
        self.config = config
        self.seed = seed
        self.labels = labels
        self.cols = cols
        self.presentation = presentation
        self.trunks = trunks

    def __len__(self) -> int:
        return len(self.presentation["rows"])

    def records(self) -> Iterator[dict[str, Any]]:
        """CONTRACT 1a dicts in delivery order, identical on every call."""
        c, p, trunks = self.cols, self.presentation, self.trunks
        t_col, caller_col, callee_col = c["t"].tolist(), c["caller"].tolist(), c["callee"].tolist()
        ring_col, talk_col, disp_col = c["ring"].tolist(), c["talk"].tolist(), c["disp"].tolist()
        trunk_col, hidden = c["trunk"].tolist(), c["hidden"].tolist()
        fmt_a, fmt_b, spelling = (p["fmt_caller"].tolist(), p["fmt_callee"].tolist(),
                                  p["spelling"].tolist())
        iso, omit = p["iso"].tolist(), p["omit_answered"].tolist()
        names, has_ids, ips, named = (trunks["names"], trunks["has_ids"], trunks["ip"],
                                      trunks["named"])
        tz = timezone(timedelta(hours=self.config.utc_offset_h))
        tag = f"{self.seed % 997:03d}"
        for i, kind in zip(p["rows"].tolist(), p["kind"].tolist(), strict=True):
            t, disp, trunk = t_col[i], disp_col[i], trunk_col[i]
            rec: dict[str, Any] = {
                "caller": (WITHHELD_SPELLINGS[spelling[i]] if hidden[i]
                           else _present(caller_col[i], fmt_a[i])),
                "callee": _present(callee_col[i], fmt_b[i]),
                "start": datetime.fromtimestamp(t, tz).isoformat() if iso[i] else t,
                "duration": talk_col[i],
                "answered": disp == ANSWERED,
                "ring": ring_col[i],
                "disposition": DISPOSITIONS[disp],
            }
            if named[trunk]:
                rec["trunk"] = names[trunk]
            if omit[i] and disp != ANSWERED:
                del rec["answered"]
            if has_ids[trunk]:
                rec["id"] = f"{names[trunk][:3]}{tag}-{i:08d}"
            if ips[trunk] is not None:
                rec["src_ip"] = ips[trunk]
            if kind >= 2:  # a broken copy of a record, without its id
                rec.pop("id", None)
                rec = _BROKEN[kind - 2](rec)
            yield rec


def _settle_labels(ctx: WorldContext, cols: dict[str, np.ndarray]) -> tuple[
        dict[str, str], dict[str, str], list[Any]]:
    """Classes, kinds and campaigns of the numbers that made a visible call in the day."""
    seen = cols["caller"][~cols["hidden"]]
    visible = {"+" + str(v) for v in np.unique(seen).tolist()}
    book = ctx.book
    classes = {n: c for n, c in sorted(book.classes.items()) if n in visible}
    kinds = {n: k for n, k in sorted(book.kinds.items()) if n in visible}
    campaigns = []
    for camp in book.campaigns:
        camp.members = [m for m in camp.members if m in visible]
        camp.start = max(camp.start, round(ctx.config.start, 3))
        if camp.members:
            campaigns.append(camp)
    campaigns.sort(key=lambda c: (c.start, c.id))
    for group in book.groups:
        group["members"] = [m for m in group["members"] if m in visible]
    return classes, kinds, campaigns


def _arrival(ctx: WorldContext, cols: dict[str, np.ndarray], rows: np.ndarray,
             kind: np.ndarray) -> np.ndarray:
    """When each emitted row reaches the feed: at the end of its call (some trunks in
    batches of minutes), a share late by up to 15 minutes, duplicates a little after."""
    rng = ctx.rng
    n_trunks = len(ctx.trunks.names)
    batch = np.where(rng.random(n_trunks) < 0.3, rng.uniform(60, 300, n_trunks), 0.0)
    at_end = rng.random(n_trunks) < 0.7
    m = len(rows)
    trunk = cols["trunk"][rows]
    t = cols["t"][rows]
    end = np.where(at_end[trunk], t + cols["ring"][rows] + cols["talk"][rows], t)
    b = batch[trunk]
    end = np.where(b > 0, np.ceil(end / np.maximum(b, 1.0)) * b, end)
    late = rng.random(m) < ctx.prior("delivery", "late_share", 0.002, 0.03)
    return (end + np.where(late, rng.uniform(5, 900, m), 0.0)
            + np.where(kind == 1, rng.uniform(0.5, 60, m), 0.0)
            + np.where(kind >= 2, rng.uniform(0, 5, m), 0.0))


def deliver(ctx: WorldContext, world: str) -> Day:
    """Close the context: settle the labels and decide how every record is delivered."""
    cfg, rng = ctx.config, ctx.rng
    raw = ctx.sink.columns()
    keep = (raw["t"] >= cfg.start - cfg.history_days * 86400.0) & (raw["t"] < ctx.end)
    order = np.argsort(raw["t"][keep], kind="stable")
    cols = {k: v[keep][order] for k, v in raw.items()}
    cols["ring"] = np.round(cols["ring"], 1)
    cols["t"] = np.round(cols["t"], 3)
    n = len(cols["t"])
    classes, kinds, campaigns = _settle_labels(ctx, cols)

    has_ids = np.array(ctx.trunks.has_ids, dtype=bool)[cols["trunk"]]
    dup = np.flatnonzero(has_ids & (rng.random(n) < cfg.duplicate_rate))
    n_bad = int(rng.binomial(n, cfg.malformed_rate))
    bad = rng.integers(0, n, n_bad)
    rows = np.concatenate([np.arange(n), dup, bad])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(len(dup), np.int8),
                           2 + rng.integers(0, len(_BROKEN), n_bad).astype(np.int8)])
    emit = np.argsort(_arrival(ctx, cols, rows, kind), kind="stable")
    presentation = {
        "rows": rows[emit],
        "kind": kind[emit],
        "fmt_caller": rng.choice(3, size=n, p=[0.6, 0.3, 0.1]).astype(np.int8),
        "fmt_callee": rng.choice(3, size=n, p=[0.65, 0.3, 0.05]).astype(np.int8),
        "spelling": rng.integers(0, len(WITHHELD_SPELLINGS), n).astype(np.int8),
        "iso": rng.random(n) < ctx.prior("delivery", "iso_time_share", 0.02, 0.3),
        "omit_answered": rng.random(n) < 0.15,
    }
    trunks: dict[str, list[Any]] = {
        "names": list(ctx.trunks.names), "has_ids": list(ctx.trunks.has_ids),
        "ip": list(ctx.trunks.ip), "named": list(ctx.trunks.named)}
    withheld: Counter[str] = Counter()
    for v in cols["caller"][cols["hidden"]].tolist():
        withheld[ctx.book.classes.get("+" + str(v), "ordinary")] += 1
    labels = Labels(classes=classes, campaigns=campaigns, allowlist=sorted(ctx.book.allowlist),
                    meta={
                        "seed": ctx.seed,
                        "world": world,
                        "config": asdict(cfg),
                        "start": cfg.start,
                        "end": ctx.end,
                        "calls": n,
                        "records": len(rows),
                        "duplicates": len(dup),
                        "malformed": n_bad,
                        "withheld_calls": dict(sorted(withheld.items())),
                        "counts": dict(sorted(Counter(classes.values()).items())),
                        "kinds": kinds,
                        "kind_counts": dict(sorted(Counter(kinds.values()).items())),
                        "groups": ctx.book.groups,
                        "priors": {c: {k: round(v, 4) for k, v in sorted(p.items())}
                                   for c, p in sorted(ctx.priors.items())},
                        "trunks_named": float(np.mean(ctx.trunks.named)),
                        "rate_scale": {"abuse": cfg.abuse_rate_scale,
                                       "legit": cfg.legit_rate_scale},
                        **ctx.meta,
                    })
    return Day(cfg, ctx.seed, labels, cols, presentation, trunks)
