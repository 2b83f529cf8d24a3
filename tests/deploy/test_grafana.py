"""deploy/grafana: the dashboard is well-formed, points at the provisioned datasource,
and every metric it (or an alerting rule) queries is one DialguardMetrics exports.

The dashboard's PromQL is also parsed by promtool (as recording rules, with the
Grafana variables substituted), so a query Prometheus would refuse fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import DialguardMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

#: Series Prometheus itself provides, allowed in queries besides ours.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
#: PromQL words that look like identifiers but are not metric names.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
#: Values for Grafana's variables when handing a query to promtool.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
                     "$instance": ".*"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels removed)."""
    e = _STRING.sub('""', expr)
    e = _MATCHERS.sub(" ", e)
    e = _RANGE.sub(" ", e)
    e = _GROUPING.sub(" ", e)
    e = _OFFSET.sub(" ", e)
    return {m for m in _IDENT.findall(e) if m not in KEYWORDS}


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in all_panels(dash["panels"]) for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        text = q.get("query", "") if isinstance(q, dict) else (q or "")
        exprs += [f"{m}" for m in _LABEL_VALUES.findall(text)]
    return exprs


def rule_docs() -> list[dict[str, Any]]:
    return [r for path in RULES for g in yaml.safe_load(path.read_text())["groups"]
            for r in g["rules"]]


def provisioned_datasource_uids() -> set[str]:
    uids = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            uids.add(ds["uid"])
    return uids


def test_the_parser_finds_metric_names_and_only_those() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, instance) (rate(foo_seconds_bucket'
            '{job="x", instance=~"$instance"}[$__rate_interval]))) / on (instance) '
            'group_left bar_total offset 5m > 1e3 and baz:rec:5m or vector(0)')
    assert metric_names_in(expr) == {"foo_seconds_bucket", "bar_total", "baz:rec:5m"}
    assert metric_names_in('sum(dialgard_alerts_total)') == {"dialgard_alerts_total"}
    assert metric_names_in('time() - max(x_seconds{a="b c"})') == {"x_seconds"}


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["dialguard.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_schema(path: Path) -> None:
    dash = load_dashboard(path)
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = list(all_panels(dash["panels"]))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    uids = provisioned_datasource_uids()
    assert uids
    occupied: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert {"x", "y", "w", "h"} <= g.keys(), p["title"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"panel {p['title']!r} overlaps another"
        occupied |= cells
        assert p.get("title"), p["id"]
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] in uids, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t["datasource"]["uid"] in uids, p["title"]
    for var in dash["templating"]["list"]:
        if "datasource" in var:
            assert var["datasource"]["uid"] in uids


def test_dashboard_covers_what_analysts_asked_for() -> None:
    (path,) = DASHBOARDS
    text = " ".join(dashboard_exprs(load_dashboard(path)))
    for metric in ("dialguard_cdrs_read_total", "dialguard_cdrs_rejected_total",
                   "dialguard_alerts_total", "dialguard_detection_latency_seconds_bucket",
                   "dialguard_event_time_lag_seconds_bucket", "dialguard_consumer_lag_messages",
                   "dialguard_trunk_alerts_total", "dialguard_numbers_tracked",
                   "dialguard_model_score_bucket", "dialguard_rings_found_total",
                   "dialguard_ring_members_bucket"):
        assert metric in text, metric
    assert "histogram_quantile(0.99" in text and "topk(" in text


def test_dashboard_provider_and_datasource_provisioning() -> None:
    (prov,) = (GRAFANA / "provisioning" / "dashboards").glob("*.yml")
    provider = yaml.safe_load(prov.read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]
    (ds_file,) = (GRAFANA / "provisioning" / "datasources").glob("*.yml")
    (ds,) = yaml.safe_load(ds_file.read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"


def test_every_queried_metric_is_exported() -> None:
    exported = DialguardMetrics().metric_names()
    recorded = {r["record"] for r in rule_docs() if "record" in r}
    sources: dict[str, list[str]] = {}
    for path in DASHBOARDS:
        sources[path.name] = dashboard_exprs(load_dashboard(path))
    sources["rules"] = [r["expr"] for r in rule_docs()]
    seen: set[str] = set()
    for where, exprs in sources.items():
        for expr in exprs:
            for name in metric_names_in(expr):
                seen.add(name)
                if ":" in name:
                    assert name in recorded, f"{where}: {name} is no recording rule ({expr})"
                elif name not in PROMETHEUS_BUILTINS:
                    assert name in exported, f"{where}: {name} is not exported ({expr})"
    # the check saw the real thing, not an empty list
    assert {"dialguard_alerts_total", "dialguard_alerts_created",
            "dialguard:alerts:new5m", "up"} <= seen


def test_dashboard_queries_parse_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found; install it with: sudo scripts/install-prometheus.sh")
    rules = []
    for path in DASHBOARDS:
        for i, t in enumerate(t for p in all_panels(load_dashboard(path)["panels"])
                              for t in p.get("targets", [])):
            expr = t["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"unknown Grafana variable in {t['expr']}"
            rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    assert len(rules) >= 10
    file = tmp_path / "dashboard_queries.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
