"""Opening CDR files: plain or gzip, ``-`` for stdin, a UTF-8 byte-order mark skipped.

A file in UTF-16 is refused at once with a message saying so (every line of it
would otherwise be rejected with no hint why).  A gzip file that ends early is
told apart from bad records: reading it raises :class:`TruncatedInput`.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class InputError(ValueError):
    """A file that cannot be read as CDRs at all; the message says why and what to do."""


class TruncatedInput(InputError):
    """A compressed file that ends before its end-of-stream marker."""


def open_binary(path: str | Path) -> IO[bytes]:
    """A path (``-`` for stdin) opened for reading bytes: gunzipped, BOM skipped, peekable.

    Raises :class:`InputError` for UTF-16 text.
    """
    if str(path) == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        stream = open(path, "rb")  # noqa: SIM115 - the caller closes it
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]
    result: IO[bytes] = buffered
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        result = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
    try:
        head = result.peek(4)[:4]  # type: ignore[attr-defined]
    except (OSError, EOFError, zlib.error) as exc:
        result.close()
        raise InputError(f"{_name(path)}: not a readable gzip file ({exc})") from None
    if head[:2] in _UTF16_BOMS or (len(head) >= 4 and (head[1:4:2] == b"\0\0"
                                                       or head[0:4:2] == b"\0\0")):
        result.close()
        raise InputError(f"{_name(path)}: the text is UTF-16, not UTF-8; convert it first "
                         f"(iconv -f UTF-16 -t UTF-8)")
    if head[:3] == _UTF8_BOM:
        result.read(3)
    return result


def lines_of(stream: IO[bytes], name: str) -> Iterator[bytes]:
    """The lines of ``stream``; a gzip stream cut short raises :class:`TruncatedInput`."""
    if not isinstance(stream, gzip.GzipFile):
        return iter(stream)  # only decompression can fail part way: no wrapper per line
    return _gzip_lines(stream, name)


def _gzip_lines(stream: IO[bytes], name: str) -> Iterator[bytes]:
    try:
        yield from stream
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise TruncatedInput(f"{name}: the compressed file ends early ({exc}); "
                             f"the records before that point were read") from None


def _name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else Path(path).name


def open_text_for_writing(path: str | Path, compress: bool) -> IO[str]:
    """A text stream writing UTF-8 to ``path`` (gzip when ``compress``); the caller closes it.

    The gzip header carries no time stamp, so the same records give the same bytes.
    """
    if compress:
        raw = gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - caller closes
