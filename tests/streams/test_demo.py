"""``dialguard demo``'s pieces that run without a broker: its feed and how it shows alerts."""

from __future__ import annotations

import itertools

from streams.commands.demo import _alert_line, simulated_feed


def test_an_alert_line_shows_the_number_the_evidence_and_its_ring() -> None:
    number = {"kind": "number", "caller": "+8617100000001", "profile": "cloud_dialer",
              "score": 2.5, "detected_at": 3600.0, "ring_id": "ring-0123456789ab",
              "reasons": ["cloud_dialer: bulk burst", "21 calls in 10 min (>= 20)"]}
    line = _alert_line(number)
    assert "01:00:00 UTC" in line and "+8617100000001" in line and "21 calls" in line
    assert "ring-0123456789ab" in line
    ring = {"kind": "ring", "members": ["+8617100000001", "+8617100000002"], "profile": "ring",
            "score": 2.6, "detected_at": 0.0, "reasons": ["2 numbers"], "ring_id": "ring-ab"}
    assert "2 numbers" in _alert_line(ring)
    del number["ring_id"]
    assert "ring-" not in _alert_line(number)


def test_the_feed_is_contract_records_of_a_seeded_day() -> None:
    first = list(itertools.islice(simulated_feed(7), 50))
    assert first == list(itertools.islice(simulated_feed(7), 50))
    assert all({"caller", "callee", "start"} <= set(record) for record in first)
