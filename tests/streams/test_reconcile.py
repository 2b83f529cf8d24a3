"""The figures of ``dialguard reconcile`` (the Kafka reads are covered by tests/fault)."""

from __future__ import annotations

from click.testing import CliRunner

from streams.cli import main
from streams.reconcile import Reconciliation, records_in


def test_balanced_pending_redelivered_and_lost() -> None:
    settled = Reconciliation(produced=10, raw_messages=4, ingest_rejected=2, forwarded=8,
                             detected=8, detect_rejected=1)
    assert (settled.processed, settled.rejected, settled.balanced) == (7, 3, True)
    assert "balanced: produced = processed + rejected" in settled.render()
    pending = Reconciliation(produced=10, ingest_rejected=2, forwarded=6, detected=4,
                             pending_calls=2, pending_raw_messages=1)
    assert pending.pending and not pending.balanced and pending.lost == 0
    # the group stage not done with its input: not settled, though every call was detected
    grouping = Reconciliation(produced=10, raw_messages=4, ingest_rejected=2, forwarded=8,
                              detected=8, pending_group_batches=3)
    assert grouping.pending and not grouping.balanced and "3 group batches" in grouping.render()
    again = Reconciliation(produced=10, ingest_rejected=2, forwarded=9, detected=9)
    assert (again.redelivered, again.lost, again.balanced) == (1, 0, False)
    short = Reconciliation(produced=10, ingest_rejected=2, forwarded=7, detected=7)
    assert short.lost == 1 and "NOT balanced: 1 record(s) lost" in short.render()
    assert short.to_dict()["lost"] == 1


def test_records_are_counted_as_ingest_counts_them() -> None:
    assert records_in(None) == 1
    assert records_in(b"[]") == 0
    assert records_in(b'[{"a": 1}, {"b": 2}]') == 2
    assert records_in(b"[" * 5000 + b"]" * 5000) == 1  # too deep to parse: one reject


def test_reconcile_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["reconcile", "--help"])
    assert result.exit_code == 0 and "--app-id" in result.output
