"""The ``dialguard`` command line (CONTRACT section 3).

Each command lives in its own module under ``streams/commands/`` and
registers itself on :data:`main`; this file only assembles them.
"""

from __future__ import annotations

import importlib

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dialguard")
def main() -> None:
    """dialguard: streaming call-record anomaly detection for carriers."""


_COMMAND_MODULES = ("replay", "simulate", "evaluate", "worker", "produce", "demo")

for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"streams.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"streams.commands.{_name}":
            raise
