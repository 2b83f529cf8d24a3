"""streams.metrics: names, labels, bounds and buckets, read back from a scrape."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from detectors.alerts import Alert
from detectors.records import REJECT_REASONS
from streams.metrics import (
    DETECTION_LATENCY_BUCKETS,
    EVENT_TIME_LAG_BUCKETS,
    MAX_TRUNKS,
    REASONS,
    DialguardMetrics,
    looks_like_phone_number,
    safe_label,
)

# Anything with 7+ digits (separators allowed) could be a subscriber number.
PHONE = re.compile(r"\+?\d(?:[\s\-().]?\d){6,}")


def scrape(m: DialguardMetrics) -> list[tuple[str, dict[str, str], float]]:
    text = m.exposition().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def number_alert(i: int, *, profile: str = "cloud_dialer", trunk: str | None = "gw-cloud",
                 model_score: float | None = None) -> Alert:
    caller = f"+86138{i:08d}"
    return Alert(kind="number", caller=caller, score=2.0, reasons=[f"{caller} made 400 calls"],
                 detected_at=1.7e9 + i, first_seen=1.7e9, profile=profile, trunk=trunk,
                 model_score=model_score)


def test_own_registry_by_default_and_global_only_when_asked() -> None:
    a, b = DialguardMetrics(), DialguardMetrics()  # would raise on a shared registry
    assert a.registry is not b.registry and a.registry is not REGISTRY
    reg = CollectorRegistry()
    m = DialguardMetrics(registry=reg)
    m.record_read(5, "kafka")
    assert reg.get_sample_value("dialguard_cdrs_read_total", {"source": "kafka"}) == 5


def test_required_metric_names_units_and_types() -> None:
    m = DialguardMetrics()
    types = {
        f.name: f.type for f in text_string_to_metric_families(m.exposition().decode())
    }
    expected = {
        "dialguard_cdrs_read": "counter",
        "dialguard_cdrs_rejected": "counter",
        "dialguard_alerts": "counter",
        "dialguard_trunk_alerts": "counter",
        "dialguard_numbers_tracked": "gauge",
        "dialguard_duplicates": "counter",
        "dialguard_detection_latency_seconds": "histogram",
        "dialguard_event_time_lag_seconds": "histogram",
        "dialguard_consumer_lag_messages": "gauge",
        "dialguard_model_score": "histogram",
        "dialguard_last_event_time_seconds": "gauge",
        "dialguard_last_record_wall_time_seconds": "gauge",
        "dialguard_config_changes": "counter",
    }
    for name, kind in expected.items():
        assert types.get(name) == kind, (name, types.get(name))
    names = m.metric_names()
    for counter in [n for n, k in expected.items() if k == "counter"]:
        assert f"{counter}_total" in names
    assert "dialguard_detection_latency_seconds_bucket" in names
    assert "dialguard_consumer_lag_messages" in names  # labelled, no sample yet


def test_counts_land_on_the_right_series() -> None:
    m = DialguardMetrics()
    m.record_read(10, "file")
    m.record_read(7, "kafka")
    m.record_read(0, "kafka")
    m.record_rejected("bad_number", 3)
    m.record_rejected("malformed")
    m.record_rejected("no such reason")  # never a new label value
    m.duplicate(2)
    m.set_tracked(1234)
    m.config_change(True)
    m.config_change(False)
    m.config_change(False)
    m.set_consumer_lag("cdr.raw", 3, 1500)
    m.partition_stall("groups")
    m.partition_stall("dialguard.calls")  # a topic name is not a stage
    assert m.value("dialguard_partition_stalls_total", stage="groups") == 1
    assert m.value("dialguard_partition_stalls_total", stage="other") == 1
    assert m.value("dialguard_cdrs_read_total", source="file") == 10
    assert m.value("dialguard_cdrs_read_total", source="kafka") == 7
    assert m.value("dialguard_cdrs_rejected_total", reason="bad_number") == 3
    assert m.value("dialguard_cdrs_rejected_total", reason="malformed") == 1
    assert m.value("dialguard_cdrs_rejected_total", reason="other") == 1
    assert m.value("dialguard_duplicates_total") == 2
    assert m.value("dialguard_numbers_tracked") == 1234
    assert m.value("dialguard_config_changes_total", result="applied") == 1
    assert m.value("dialguard_config_changes_total", result="rejected") == 2
    assert m.value("dialguard_consumer_lag_messages", topic="cdr.raw", partition="3") == 1500
    reasons = {lab["reason"] for name, lab, _ in scrape(m)
               if name == "dialguard_cdrs_rejected_total"}
    assert reasons == set(REASONS) | {"other"}
    assert set(REJECT_REASONS) < set(REASONS)


def test_closed_label_sets_are_precreated_at_zero() -> None:
    """A counter Prometheus first sees at 1 has no increase(); series must exist at 0."""
    m = DialguardMetrics(profiles=["cloud_dialer", "my_profile"])
    for kind in ("number", "ring"):
        for profile in ("cloud_dialer", "my_profile", "model", "reach"):
            assert m.value("dialguard_alerts_total", kind=kind, profile=profile) == 0
    assert m.value("dialguard_cdrs_read_total", source="kafka") == 0
    assert m.value("dialguard_partition_stalls_total", stage="detect") == 0
    assert m.value("dialguard_alerts_total", kind="number", profile="ring_once") is None
    m.set_profiles(["ring_once"])
    assert m.value("dialguard_alerts_total", kind="number", profile="ring_once") == 0


def test_the_profiles_known_before_any_config_are_the_shipped_ones() -> None:
    from detectors.config import load_settings
    from streams.metrics import DEFAULT_PROFILES, JUDGEMENTS

    assert list(DEFAULT_PROFILES) == list(load_settings().rules)
    assert set(JUDGEMENTS) == {"reach", "model"}  # what the engine raises beside rule profiles
    m = DialguardMetrics()
    for profile in (*DEFAULT_PROFILES, *JUDGEMENTS):
        assert m.value("dialguard_alerts_total", kind="number", profile=profile) == 0


def test_no_label_value_looks_like_a_phone_number() -> None:
    m = DialguardMetrics()
    for i in range(200):
        m.alert_raised(number_alert(i, model_score=0.7), arrival_wall_time=1.0, now_wall=1.01)
    # hostile input: numbers where infrastructure names belong
    m.alert_raised(number_alert(1, trunk="+8613800000001"), 1.0, 1.0)
    m.alert_raised(number_alert(2, trunk="0086 138 0000 0002"), 1.0, 1.0)
    m.alert_raised(number_alert(3, profile="13800000003"), 1.0, 1.0)
    ring = Alert(kind="ring", members=["+8613800000001", "+8613800000002"], score=3.0,
                 reasons=["pool"], detected_at=1.7e9, first_seen=1.7e9, profile="cloud_dialer")
    m.alert_raised(ring, 1.0, 1.5)
    m.set_consumer_lag("+8613800000009", 1, 5)
    samples = scrape(m)
    assert samples
    for name, labels, _ in samples:
        for key, value in labels.items():
            if key == "le":
                continue
            assert not PHONE.search(value), (name, key, value)
    assert b"13800000" not in m.exposition()
    # and the alerts were still counted
    assert m.value("dialguard_alerts_total", kind="number", profile="cloud_dialer") == 202
    assert m.value("dialguard_alerts_total", kind="number", profile="other") == 1
    assert m.value("dialguard_alerts_total", kind="ring", profile="cloud_dialer") == 1
    assert m.value("dialguard_trunk_alerts_total", trunk="other") == 2
    assert m.value("dialguard_trunk_alerts_total", trunk="none") == 1


def test_trunk_labels_stay_bounded() -> None:
    m = DialguardMetrics()
    for i in range(1000):
        m.alert_raised(number_alert(i, trunk=f"gw{i}"), 1.0, 1.0)
    trunks = [lab["trunk"] for name, lab, _ in scrape(m) if name == "dialguard_trunk_alerts_total"]
    assert len(trunks) == MAX_TRUNKS + 1 <= 51
    assert set(trunks) == {f"gw{i}" for i in range(MAX_TRUNKS)} | {"other"}
    assert m.value("dialguard_trunk_alerts_total", trunk="gw0") == 1
    assert m.value("dialguard_trunk_alerts_total", trunk="other") == 1000 - MAX_TRUNKS
    # a trunk seen first keeps its name afterwards
    m.alert_raised(number_alert(5000, trunk="gw7"), 1.0, 1.0)
    assert m.value("dialguard_trunk_alerts_total", trunk="gw7") == 2


def test_profile_and_partition_labels_stay_bounded() -> None:
    m = DialguardMetrics()
    for i in range(500):
        m.alert_raised(number_alert(i, profile=f"profile_{i}"), 1.0, 1.0)
        m.set_consumer_lag(f"topic{i % 3}", i, 10)
    profiles = {lab["profile"] for name, lab, _ in scrape(m) if name == "dialguard_alerts_total"}
    assert len(profiles) <= 64 + 4  # and the reserved reach, model, ring, other
    partitions = [lab for name, lab, _ in scrape(m) if name == "dialguard_consumer_lag_messages"]
    assert len(partitions) == 500  # under MAX_PARTITIONS, all kept
    m.set_consumer_lag("cdr.raw", "not-a-partition", 1)
    assert m.value("dialguard_consumer_lag_messages", topic="cdr.raw", partition="other") == 1


def bucket_bounds(m: DialguardMetrics, metric: str) -> list[float]:
    return sorted(
        float(lab["le"]) for name, lab, _ in scrape(m) if name == f"{metric}_bucket"
    )


def test_histogram_buckets() -> None:
    m = DialguardMetrics()
    lat = bucket_bounds(m, "dialguard_detection_latency_seconds")
    assert lat[0] == pytest.approx(0.001) and lat[-2] == 60 and lat[-1] == float("inf")
    assert lat[:-1] == sorted(DETECTION_LATENCY_BUCKETS)
    lag = bucket_bounds(m, "dialguard_event_time_lag_seconds")
    assert lag[0] == pytest.approx(0.1) and lag[-2] == 86400 and lag[-1] == float("inf")
    assert lag[:-1] == sorted(EVENT_TIME_LAG_BUCKETS)
    score = bucket_bounds(m, "dialguard_model_score")
    assert score[:-1] == pytest.approx([0.1 * i for i in range(1, 11)])


def test_latency_lag_and_score_observations() -> None:
    m = DialguardMetrics()
    m.alert_raised(number_alert(1, model_score=0.93), arrival_wall_time=100.0, now_wall=100.003)
    m.alert_raised(number_alert(2), arrival_wall_time=100.0, now_wall=99.0)  # clock step: 0
    assert m.value("dialguard_detection_latency_seconds_count") == 2
    assert m.value("dialguard_detection_latency_seconds_bucket", le="0.001") == 1
    assert m.value("dialguard_detection_latency_seconds_bucket", le="0.005") == 2
    assert m.value("dialguard_alert_model_score_bucket", le="0.9") == 0
    assert m.value("dialguard_alert_model_score_bucket", le="1.0") == 1

    m.observe_batch(500, newest_event_time=1_000.0, now_wall=1_030.0)
    m.observe_batch(500, newest_event_time=900.0, now_wall=1_031.0)  # older batch
    m.observe_batch(0, newest_event_time=None, now_wall=2_000.0)  # empty: no effect
    assert m.value("dialguard_last_event_time_seconds") == 1_000.0
    assert m.value("dialguard_last_record_wall_time_seconds") == 1_031.0
    assert m.value("dialguard_event_time_lag_seconds_count") == 2
    assert m.value("dialguard_event_time_lag_seconds_bucket", le="30.0") == 1
    assert m.value("dialguard_event_time_lag_seconds_bucket", le="300.0") == 2

    for s in (0.05, 0.55, 0.55, 0.99):
        m.model_scored(s)
    assert m.value("dialguard_model_score_bucket", le="0.1") == 1
    assert m.value("dialguard_model_score_bucket", le="0.6") == 3
    assert m.value("dialguard_model_score_count") == 4


def test_serve_on_loopback() -> None:
    m = DialguardMetrics()
    m.record_read(42, "file")
    server = m.serve(0, addr="127.0.0.1")
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert 'dialguard_cdrs_read_total{source="file"} 42.0' in body
    finally:
        m.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("gw-cloud", "gw-cloud"), ("trunk7", "trunk7"), ("10.0.0.12:5060", "10.0.0.12:5060"),
     ("+8613812345678", "other"), ("138-1234-5678", "other"), ("", "other"),
     ("x" * 65, "other"), ("bad value", "other"), ("sip:+12025550143@gw", "other")],
)
def test_safe_label(value: str, expected: str) -> None:
    assert safe_label(value) == expected
    assert not looks_like_phone_number(safe_label(value))
