"""The ``dialguard`` command line (CONTRACT section 3).

Each command lives in its own module under ``streams/commands/`` and
registers itself on :data:`main`; this file only assembles them.
"""

from __future__ import annotations

import importlib

import click

from detectors.allowlist import Allowlist, AllowlistError
from detectors.config import ConfigError, Settings, load_settings
from detectors.numbers import NumberNormaliser


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dialguard")
def main() -> None:
    """dialguard: streaming call-record anomaly detection for carriers."""


def load_detection_setup(
    config_path: str | None, allowlist_path: str | None
) -> tuple[Settings, NumberNormaliser, Allowlist]:
    """Settings, number normaliser and allowlist, or a usage error naming what is wrong."""
    try:
        settings = load_settings(config_path)
        normaliser = NumberNormaliser(settings.input.region)
        allowlist = Allowlist.load(allowlist_path, normaliser) if allowlist_path else Allowlist()
    except (ConfigError, AllowlistError) as exc:
        raise click.UsageError(str(exc)) from None
    return settings, normaliser, allowlist


_COMMAND_MODULES = ("replay", "simulate", "evaluate", "worker", "produce", "demo", "reconcile")

for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"streams.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"streams.commands.{_name}":
            raise
