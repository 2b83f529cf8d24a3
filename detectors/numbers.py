"""Telephone number normalisation to E.164, and pseudonyms for logs.

The same subscriber arrives as ``13812345678``, ``+8613812345678`` or
``0086 138 1234 5678``; detection state must see one key.  The rules of the
configured home region (its country code, international and national
prefixes) come from libphonenumber's metadata, so any region works; the hot
path is plain string work plus a bounded cache, because a bulk dialer's
callees are mostly numbers seen once.

>>> n = NumberNormaliser("CN")
>>> n("13812345678"), n("+8613812345678"), n("0086 138-1234-5678")
('+8613812345678', '+8613812345678', '+8613812345678')
>>> n("010 1234 5678")
'+861012345678'
>>> NumberNormaliser("US")("(202) 555-0143")
'+12025550143'
>>> n("hello")
Traceback (most recent call last):
...
detectors.numbers.BadNumber: not a telephone number: 'hello'

What a PBX writes that is not a subscriber number is told apart from garbage:
a dialplan name (``s``, ``h``, ``t``), a feature code (``*97``) or an internal
extension of at most four digits with no prefix (``100``, ``8001``) raises
:class:`NotDialable`.  Five digits and more are service codes (``10086``,
``95588``) and normalise like any national number.

>>> n("8001")
Traceback (most recent call last):
...
detectors.numbers.NotDialable: not a dialable number (internal extension): '8001'
>>> n("10086")
'+8610086'
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

_SEPARATORS = str.maketrans("", "", " -().\t/")
_MIN_DIGITS = 3  # short codes such as 110 or 12321 are real callers
_MAX_DIGITS = 15  # E.164 limit
#: A prefix-less digit string this short is a PBX extension, not a subscriber.
MAX_EXTENSION_DIGITS = 4
#: Asterisk's special extensions; a feature code is digits with ``*`` or ``#``.
_DIALPLAN_NAMES = frozenset({"a", "e", "h", "i", "o", "s", "t", "T", "fax", "talk"})
_FEATURE_CODE = re.compile(r"[0-9]*[*#][0-9*#]*")


class BadNumber(ValueError):
    """A value that is not a telephone number in any accepted notation."""


class NotDialable(BadNumber):
    """A PBX dialplan name, feature code or internal extension: not garbage, not a number."""


class NumberNormaliser:
    """Turns national, ``00``-international or E.164 notation into E.164.

    ``region`` is the ISO 3166 code of the network whose national numbers the
    input uses (default CN).  ``cache_size`` bounds memory: the cache is
    dropped whole when full, which keeps the hot path a single dict lookup.
    """

    def __init__(self, region: str = "CN", cache_size: int = 500_000) -> None:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {region!r} (ISO 3166 alpha-2, e.g. CN, GB, US)")
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        assert metadata is not None
        self.region = region
        self.country_code = str(phonenumbers.country_code_for_region(region))
        self._intl_prefix = re.compile(f"(?:{metadata.international_prefix})")
        self._national_prefix = metadata.national_prefix or ""
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def __call__(self, raw: str) -> str:
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        number = self._normalise(raw)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[raw] = number
        return number

    def _normalise(self, raw: str) -> str:
        if not isinstance(raw, str):
            raise BadNumber(f"not a telephone number: {raw!r}")
        if raw.isdigit() and raw.isascii():
            text = raw  # the common case needs no clean-up
        elif raw[:1] == "+" and raw[1:].isdigit() and raw.isascii():
            if _MIN_DIGITS < len(raw) - 1 <= _MAX_DIGITS and raw[1] != "0":
                return raw
            raise BadNumber(f"not a telephone number: {raw!r}")
        else:
            text = raw.strip().translate(_SEPARATORS)
            if not text.isascii():
                raise _not_a_number(raw)
        if text.startswith("+"):
            digits = text[1:]
        else:
            digits = text
            match = self._intl_prefix.match(digits) if digits.isdigit() else None
            if match and match.end() < len(digits):
                digits = digits[match.end() :]
            elif digits.isdigit():
                if len(digits) <= MAX_EXTENSION_DIGITS:
                    raise NotDialable(f"not a dialable number (internal extension): {raw!r}")
                if self._national_prefix and digits.startswith(self._national_prefix):
                    digits = digits[len(self._national_prefix) :]
                if len(digits) < _MIN_DIGITS:
                    raise BadNumber(f"not a telephone number: {raw!r}")
                digits = self.country_code + digits
        if not digits.isdigit() or not digits.isascii():
            raise _not_a_number(raw)
        if not _MIN_DIGITS < len(digits) <= _MAX_DIGITS or digits[0] == "0":
            raise BadNumber(f"not a telephone number: {raw!r}")
        return "+" + digits


def _not_a_number(raw: str) -> BadNumber:
    """Why ``raw`` (which has something other than ASCII digits) is not a number."""
    text = raw.strip()
    if text in _DIALPLAN_NAMES or _FEATURE_CODE.fullmatch(text):
        return NotDialable(f"not a dialable number (dialplan name or feature code): {raw!r}")
    if any(ch.isdigit() and not ch.isascii() for ch in text):
        return BadNumber(f"not a telephone number (digits must be ASCII 0-9): {raw!r}")
    return BadNumber(f"not a telephone number: {raw!r}")


def pseudonym(number: str, salt: str = "") -> str:
    """A short stable pseudonym for a number, for logs and evidence that need no number.

    >>> pseudonym("+8613812345678") == pseudonym("+8613812345678")
    True
    >>> pseudonym("+8613812345678").startswith("n:")
    True
    """
    digest = hashlib.blake2b(number.encode(), digest_size=6, key=salt.encode()[:64]).hexdigest()
    return "n:" + digest
