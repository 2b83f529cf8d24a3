"""Registered callers that are never alerted as kind ``number`` (CONTRACT section 3).

>>> from detectors.numbers import NumberNormaliser
>>> allow = Allowlist.parse(["# bank card centre", "95588", "+86 138 0000 0001  # courier hub"],
...                         NumberNormaliser("CN"))
>>> "+8695588" in allow, "+8613800000001" in allow, len(allow)
(True, True, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from detectors.numbers import BadNumber


class AllowlistError(ValueError):
    """An allowlist line that is not a number; the message names file and line."""


class Allowlist:
    """A set of normalised numbers, read from ``one number per line`` text."""

    def __init__(self, numbers: Iterable[str] = ()) -> None:
        self._numbers = frozenset(numbers)

    @classmethod
    def parse(
        cls, lines: Iterable[str], normaliser: Callable[[str], str], source: str = "allowlist"
    ) -> Allowlist:
        numbers = []
        for lineno, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                numbers.append(normaliser(text))
            except BadNumber as exc:
                raise AllowlistError(f"{source}:{lineno}: {exc}") from None
        return cls(numbers)

    @classmethod
    def load(cls, path: str | Path, normaliser: Callable[[str], str]) -> Allowlist:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise AllowlistError(f"cannot read allowlist {path}: {exc.strerror or exc}") from exc
        return cls.parse(text.splitlines(), normaliser, str(path))

    def with_numbers(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> Allowlist:
        return Allowlist((self._numbers | frozenset(added)) - frozenset(removed))

    @property
    def numbers(self) -> frozenset[str]:
        return self._numbers

    def __contains__(self, number: object) -> bool:
        return number in self._numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._numbers))
