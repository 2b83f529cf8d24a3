"""The history-of-circles ceiling: its counts on a small day with history."""

from __future__ import annotations

from .helpers import benchmark

circle_history = benchmark("circle_history")


def test_connected_strangers_per_class_on_a_small_day_with_history() -> None:
    per_class = circle_history.connected_strangers(7, history_days=2, min_strangers=3,
                                                   size="small")
    rows = [row for found in per_class.values() for row in found]
    assert rows and all(0 <= linked <= n and n >= 3 for linked, n in rows)
    assert "ordinary" in per_class
    # debt collectors call a circle of people who know each other: some of theirs are linked
    assert sum(linked for linked, _ in per_class.get("debt_collection", [])) > 0
    lines = circle_history.report(per_class)
    assert lines[0].split()[0] in per_class and any("C=5 S=0.3" in line for line in lines)
