"""The commands offer every format of the registry: simulate writes it, replay reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "streams", *args], capture_output=True,
                          timeout=300)


@pytest.mark.parametrize("variant", ["asterisk21"])
def test_simulate_in_a_switch_format_and_replay_it_with_auto(tmp_path: Path,
                                                             variant: str) -> None:
    out = tmp_path / "Master.csv"
    done = run("simulate", str(out), "--size", "small", "--hours", "1", "--seed", "3",
               "--format", variant, "--no-progress")
    assert done.returncode == 0, done.stderr
    summary = tmp_path / "summary.json"
    done = run("replay", str(out), "--summary-json", str(summary))
    assert done.returncode == 0, done.stderr
    figures = json.loads(summary.read_text())
    assert figures["calls"] > 1000 and "malformed" not in figures["rejected"]
    assert figures["withheld"] > 0  # the simulator's anonymous callers


def test_replay_refuses_to_guess_a_header_csv(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("calling,called,when,secs\n13800000001,13900000002,1714521600,3\n")
    done = run("replay", str(path))
    assert done.returncode == 1 and b"give --format" in done.stderr
    done = run("replay", str(path), "--format", "csv")  # the default map names 1a fields
    assert done.returncode == 0 and b"rejected malformed: 1" in done.stderr
