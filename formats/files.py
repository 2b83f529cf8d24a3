"""Opening CDR files for reading and writing: plain or gzip, ``-`` for stdin."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO


def open_text_for_writing(path: str | Path, compress: bool) -> IO[str]:
    """A text stream writing UTF-8 to ``path`` (gzip when ``compress``); the caller closes it.

    The gzip header carries no time stamp, so the same records give the same bytes.
    """
    if compress:
        raw = gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - caller closes
