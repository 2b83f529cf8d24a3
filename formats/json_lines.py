"""JSON lines (CONTRACT 1a): one object per line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import orjson


def write_json_lines(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One JSON object per line (CONTRACT 1a); returns the number written.

    >>> import io
    >>> buf = io.StringIO()
    >>> write_json_lines([{"caller": "1", "duration": 0}], buf), buf.getvalue()
    (1, '{"caller":"1","duration":0}\\n')
    """
    n = 0
    for rec in records:
        out.write(orjson.dumps(rec).decode())
        out.write("\n")
        n += 1
    return n
