"""The figures of ``dialguard reconcile`` (the Kafka reads are covered by tests/fault)."""

from __future__ import annotations

from click.testing import CliRunner

from detectors.records import Call
from detectors.rings.detector import Membership
from streams.cli import main
from streams.ingest import IN, OUT, encode_batch
from streams.memberships import encode_by_partition
from streams.reconcile import Reconciliation, count_calls, records_in


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


def test_ring_memberships_in_the_calls_topic_are_pending_until_committed_never_calls() -> None:
    call = Call("+8613800000001", "+8613900000002", 1.7e9, 0, False)
    calls = encode_batch([(OUT | IN, call), (OUT, call)], 1.0)
    [[news]] = encode_by_partition([Membership(call.caller, "ring-0123456789ab", 1.7e9)],
                                   1).values()
    messages: list[tuple[int, int, bytes | None]] = [(0, 0, calls), (0, 1, news),
                                                    (0, 2, b"junk"), (0, 3, news)]
    result = Reconciliation(produced=2)
    count_calls(result, messages, {0: 2})
    assert (result.forwarded, result.detected, result.bad_batches) == (2, 2, 1)
    assert (result.membership_messages, result.pending_membership_messages) == (2, 1)
    assert result.pending and "1 ring-membership messages" in result.render()
    done = Reconciliation(produced=2)
    count_calls(done, messages, {0: 4})
    assert done.balanced and done.pending_membership_messages == 0
