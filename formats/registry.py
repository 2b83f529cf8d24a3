"""The one table of CDR formats: names to readers and writers.

>>> sorted(WRITERS)
['asterisk', 'json']
>>> writer("xml")
Traceback (most recent call last):
...
ValueError: unknown format 'xml': asterisk or json
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any

from formats.asterisk import write_asterisk_csv
from formats.json_lines import write_json_lines

Writer = Callable[[Iterable[dict[str, Any]], IO[str]], int]

#: format name -> writer of the simulator's canonical record dicts
WRITERS: dict[str, Writer] = {"json": write_json_lines, "asterisk": write_asterisk_csv}


def writer(name: str) -> Writer:
    """The writer registered under ``name``."""
    try:
        return WRITERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}: {' or '.join(sorted(WRITERS))}") from None
