"""``dialguard replay`` end to end on a simulated day (CONTRACT section 3)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from testbed.simulation import Labels

SEED = 4242  # a world no threshold was tuned on


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("day") / "day.jsonl"
    result = CliRunner().invoke(main, ["simulate", str(out), "--seed", str(SEED), "--size",
                                       "small", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def replay(*args: str, input: bytes | None = None) -> tuple[int, list[dict], str]:
    proc = subprocess.run([sys.executable, "-m", "streams", "replay", *args], input=input,
                          capture_output=True, timeout=300)
    alerts = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc.returncode, alerts, proc.stderr.decode()


def test_replay_finds_the_abusers_and_no_one_else(day: Path) -> None:
    labels = Labels.read(f"{day}.labels.json")
    code, alerts, summary = replay(str(day), "--allowlist", f"{day}.allowlist.txt")
    assert code == 0, summary
    assert alerts, summary
    callers = {a["caller"] for a in alerts if a["kind"] == "number"}
    callers |= {m for a in alerts if a["kind"] == "ring" for m in a["members"]}
    classes = {labels.class_of(c) for c in callers}
    legit = {"ordinary", "courier", "dispatch", "notice", "enterprise"}
    assert not classes & legit, classes
    assert len(callers) >= 0.9 * len({n for c in ("cloud_dialer", "ring_once",
                                                   "marketing_blast", "repeat_refused")
                                       for n in labels.members(c)})
    for alert in alerts:  # CONTRACT section 2
        if alert["kind"] == "ring":
            assert alert["ring_id"] and alert["members"]
            assert set(alert["new_members"]) <= set(alert["members"])
        else:
            assert alert["kind"] == "number" and alert["caller"].startswith("+")
        assert alert["reasons"] and alert["score"] > 0
        assert alert["first_seen"] <= alert["detected_at"]
    assert "rejected" in summary and "alerts" in summary


def test_one_alert_per_number_per_cooldown(day: Path) -> None:
    _, alerts, _ = replay(str(day))
    by_caller: dict[str, list[float]] = {}
    for alert in alerts:
        if alert["kind"] == "number":
            by_caller.setdefault(alert["caller"], []).append(alert["detected_at"])
    for times in by_caller.values():
        assert all(b - a >= 3600 for a, b in zip(times, times[1:], strict=False))


def test_allowlist_is_honoured(day: Path, tmp_path: Path) -> None:
    _, alerts, _ = replay(str(day))
    victim = next(a["caller"] for a in alerts if a["kind"] == "number")
    allow = tmp_path / "allow.txt"
    allow.write_text(f"# registered\n{victim}\n")
    _, again, _ = replay(str(day), "--allowlist", str(allow))
    assert victim not in {a.get("caller") for a in again}
    assert victim not in {m for a in again for m in a.get("members", ())}


def test_rings_can_be_switched_off(day: Path) -> None:
    _, alerts, summary = replay(str(day))
    assert any(a["kind"] == "ring" for a in alerts), summary
    _, without, _ = replay(str(day), "--no-rings")
    untagged = [{k: v for k, v in a.items() if k != "ring_id"} for a in alerts
                if a["kind"] == "number"]
    assert without == untagged


def test_group_detection_in_its_own_process_gives_the_same_alerts(day: Path) -> None:
    code, split, summary = replay(str(day), "--group-process")
    assert code == 0, summary
    _, together, _ = replay(str(day), "--no-group-process")
    assert any(a["kind"] == "ring" for a in together)
    assert split == together
    code, _, err = replay(str(day), "--group-process", "--no-rings")
    assert code == 2 and "--group-process needs group detection" in err


def test_group_process_by_default_only_with_rings_two_cores_and_files() -> None:
    from streams.commands.replay import group_process_by_default

    assert group_process_by_default(("a.jsonl",), rings=True, cores=2)
    assert not group_process_by_default(("a.jsonl",), rings=False, cores=8)
    assert not group_process_by_default(("a.jsonl",), rings=True, cores=1)
    assert not group_process_by_default(("a.jsonl", "-"), rings=True, cores=8)


def test_asterisk_gzip_and_stdin_give_the_same_verdicts(day: Path, tmp_path: Path) -> None:
    csv = tmp_path / "day.csv.gz"
    result = CliRunner().invoke(main, ["simulate", str(csv), "--seed", str(SEED), "--size",
                                       "small", "--format", "asterisk", "--no-progress"])
    assert result.exit_code == 0, result.output
    _, from_json, _ = replay(str(day))
    code, from_csv, summary = replay("--format", "asterisk", "-",
                                     input=gzip.decompress(csv.read_bytes()))
    assert code == 0, summary
    json_callers = {a["caller"] for a in from_json if a["kind"] == "number"}
    csv_callers = {a["caller"] for a in from_csv if a["kind"] == "number"}
    # Asterisk keeps whole seconds only; verdicts may differ at the margins, not wholesale.
    assert len(json_callers & csv_callers) >= 0.9 * len(json_callers | csv_callers)


def test_rejects_are_written_with_reasons_and_counts_add_up(day: Path, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    summary_json = tmp_path / "summary.json"
    code, _, _ = replay(str(day), "--rejects", str(rejects), "--summary-json",
                        str(summary_json), "--alerts", str(tmp_path / "alerts.jsonl"))
    assert code == 0
    summary = json.loads(summary_json.read_text())
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == sum(summary["rejected"].values()) > 0
    assert all(r["reason"] and r["detail"] and r["source"].startswith("day.jsonl:")
               for r in lines)
    assert summary["read"] == summary["calls"] + summary["duplicates"] + len(lines)
    labels = json.loads(Path(f"{day}.labels.json").read_text())
    assert summary["read"] == labels["meta"]["records"]


def test_bad_invocations_fail_with_a_clear_message(tmp_path: Path) -> None:
    code, _, err = replay(str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\ncooldown = 1\n")
    code, _, err = replay("-", "--config", str(bad), input=b"")
    assert code == 2 and "unknown setting alerts.cooldown" in err
    allow = tmp_path / "allow.txt"
    allow.write_text("13800000001\nnot a number\n")
    code, _, err = replay("-", "--allowlist", str(allow), input=b"")
    assert code == 2 and "allow.txt:2" in err


def test_garbage_input_is_rejected_not_fatal() -> None:
    data = b"\x00\xff garbage\n{\"caller\": 1}\n[]\n"
    code, alerts, summary = replay("-", "--format", "json", input=data)
    assert code == 0 and alerts == []
    assert "rejected 2" in summary
    code, alerts, err = replay("-", input=data)  # auto cannot tell: it asks, it does not guess
    assert code == 1 and alerts == [] and "give --format" in err
