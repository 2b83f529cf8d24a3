"""The one table of CDR formats: each name to its reader class and its writers.

``replay``, ``produce``, ``evaluate``, ``simulate``, the worker's ingest and
``auto`` all take their format names and classes from here.

>>> list(FORMATS), READ_CHOICES[0]
(['json', 'asterisk', 'freeswitch', 'csv'], 'auto')
>>> WRITE_CHOICES[:3], WRITE_CHOICES[-3:]
(('json', 'asterisk', 'asterisk16'), ('freeswitch', 'freeswitch-default', 'csv'))
>>> writer("xml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown format 'xml': json, asterisk, ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Protocol

from formats.asterisk import COLUMN_COUNTS, Asterisk, AsteriskWriter
from formats.fields import Decoded, Limits
from formats.freeswitch import DEFAULT, EXAMPLE, FreeSwitch, FreeSwitchWriter, parse_template
from formats.header_csv import HeaderCsv, write_header_csv
from formats.json_lines import JsonLines, write_json_lines

if TYPE_CHECKING:
    from detectors.config import InputSettings

#: ``write(records, out)``: canonical record dicts to a text stream; returns rows written
Write = Callable[[Iterable[dict[str, Any]], IO[str]], int]


class Reader(Protocol):
    name: str

    def read(self, lines: Iterable[bytes | str], source: str = "") -> Iterator[Decoded]: ...

    def decode(self, data: bytes | str, source: str = "") -> list[Decoded]: ...


@dataclass(frozen=True)
class Format:
    """One format: how to build its reader from ``[input]`` settings, and its writers."""

    reader: Callable[[Callable[[str], str], InputSettings], Reader]
    #: writer variant name -> a factory of its write function
    writers: Mapping[str, Callable[[], Write]]
    summary: str


def _limits(s: InputSettings) -> Limits:
    return Limits(min_year=s.min_year, max_year=s.max_year, max_call_s=s.max_call_s)


def _freeswitch(normaliser: Callable[[str], str], s: InputSettings) -> Reader:
    template = parse_template(s.freeswitch_template) if s.freeswitch_template else None
    return FreeSwitch(normaliser, s.timezone, _limits(s), template)


FORMATS: dict[str, Format] = {
    "json": Format(
        lambda n, s: JsonLines(n, _limits(s)),
        {"json": lambda: write_json_lines},
        "CONTRACT 1a JSON, one object per line"),
    "asterisk": Format(
        lambda n, s: Asterisk(n, s.timezone, _limits(s)),
        {"asterisk": lambda: AsteriskWriter(18).write,
         **{f"asterisk{c}": partial(lambda c: AsteriskWriter(c).write, c)
            for c in COLUMN_COUNTS}},
        "Asterisk Master.csv (cdr_csv), 16 to 21 columns"),
    "freeswitch": Format(
        _freeswitch,
        {"freeswitch": lambda: FreeSwitchWriter(EXAMPLE).write,
         "freeswitch-default": lambda: FreeSwitchWriter(DEFAULT).write},
        "FreeSWITCH Master.csv (mod_cdr_csv), example or default template"),
    "csv": Format(
        lambda n, s: HeaderCsv(n, s.csv_columns, s.timezone, s.csv_time_format, _limits(s)),
        {"csv": lambda: write_header_csv},
        "CSV with a header row, columns mapped by input.csv_columns"),
}

#: ``--format`` choices of the commands that read CDRs
READ_CHOICES: tuple[str, ...] = ("auto", *FORMATS)
#: ``--format`` choices of ``dialguard simulate``
WRITE_CHOICES: tuple[str, ...] = tuple(w for f in FORMATS.values() for w in f.writers)


def make_reader(name: str, normaliser: Callable[[str], str],
                settings: InputSettings | None = None) -> Reader:
    """The reader of format ``name`` configured by ``settings`` (defaults when None)."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}: {', '.join(FORMATS)}")
    if settings is None:
        from detectors.config import InputSettings

        settings = InputSettings()
    return FORMATS[name].reader(normaliser, settings)


def writer(name: str) -> Write:
    """The write function of writer variant ``name`` (one of :data:`WRITE_CHOICES`)."""
    for fmt in FORMATS.values():
        if name in fmt.writers:
            return fmt.writers[name]()
    raise ValueError(f"unknown format {name!r}: {', '.join(WRITE_CHOICES)}")
