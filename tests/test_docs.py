"""The README documents what the code does: every setting, every command."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from detectors.catalogue import readme_table
from detectors.config import FEATURES, default_mapping
from streams.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `([a-z_.A-Z<>]+)`", README, flags=re.M))
    combined = re.findall(r"^\| (`(?:model|rings)\.[^|]+)\|", README, re.M)
    documented |= {k.strip("` ") for row in combined for k in row.split(",")}
    defaults = default_mapping()
    for section in ("input", "features", "alerts", "model", "rings", "reach", "circles"):
        for key in defaults[section]:
            assert f"{section}.{key}" in documented, f"{section}.{key} missing from README"
    for key in ("horizon_s", "weight", "enabled", "description"):
        assert f"rules.NAME.{key}" in documented


def test_the_readme_table_states_the_defaults() -> None:
    """A row's first default (``| `section.key` | `value` |``) is the shipped one."""
    defaults = default_mapping()
    rows = re.findall(r"^\| `([a-z_]+)\.([a-z_]+)`(?:, `[a-z_.]+`)* \| `([^`]*)`", README, re.M)
    assert len(rows) > 50
    for section, key, stated in rows:
        shipped = defaults.get(section, {}).get(key)
        if shipped is None or isinstance(shipped, list):
            continue
        if isinstance(shipped, bool | str):
            assert stated.strip('"').lower() == str(shipped).lower(), f"{section}.{key}"
        else:
            assert float(stated) == float(shipped), f"{section}.{key}: README {stated}"


def test_every_feature_is_listed() -> None:
    for feature in FEATURES:
        assert f"`{feature}`" in README


def test_the_feature_table_is_the_catalogues() -> None:
    assert readme_table() in README, "regenerate the README table from detectors.catalogue"


def test_every_command_is_documented() -> None:
    for name in main.commands:
        assert f"dialguard {name}" in README, name
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
