"""Reading CDR files: open, tell the format, decode, order by event time.

>>> import tempfile, os
>>> from detectors.numbers import NumberNormaliser
>>> with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
...     _ = f.write('{"caller": "13800000001", "callee": "13900000002", "start": 1.7e9, '
...                 '"duration": 3}\\n')
>>> [c.duration for c in read_paths([f.name], "auto", NumberNormaliser("CN"))]
[3]
>>> os.unlink(f.name)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from formats.fields import Decoded, reject
from formats.files import TruncatedInput, lines_of, open_binary
from formats.ordering import event_time_order, merge_by_time
from formats.registry import make_reader
from formats.sniff import sniff_stream

if TYPE_CHECKING:
    from detectors.config import InputSettings


def read_path(path: str | Path, fmt: str, normaliser: Callable[[str], str],
              settings: InputSettings | None = None) -> Iterator[Decoded]:
    """All records of one file in file order (``fmt`` a registry name or ``auto``).

    Raises :class:`~formats.files.InputError` for a file that is not CDR text at
    all (UTF-16, a format ``auto`` cannot tell); a compressed file that ends early
    ends with one ``truncated`` rejection after the records before the cut.
    """
    name = "<stdin>" if str(path) == "-" else Path(path).name
    stream = open_binary(path)
    try:
        if fmt == "auto":
            fmt = sniff_stream(stream, name)
        reader = make_reader(fmt, normaliser, settings)
        try:
            yield from reader.read(lines_of(stream, name), name)
        except TruncatedInput as exc:
            yield reject("truncated", str(exc), b"", name)
    finally:
        if str(path) != "-":
            stream.close()


def read_paths(paths: Iterable[str | Path], fmt: str, normaliser: Callable[[str], str],
               settings: InputSettings | None = None, slack_s: float = 300.0
               ) -> Iterator[Decoded]:
    """Several files merged into one event-time ordered stream (each re-ordered within slack)."""
    return merge_by_time([event_time_order(read_path(p, fmt, normaliser, settings), slack_s)
                          for p in paths])
