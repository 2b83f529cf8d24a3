"""Live tuning of running workers: control messages on ``dialguard.control``.

A control message is one JSON object:

* ``{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": 60}``:
  one settings key (validated by :func:`detectors.config.with_override`; keys
  fixed at start are refused);
* ``{"op": "allow", "numbers": ["+8695588", ...]}`` /
  ``{"op": "disallow", "numbers": [...]}``: add numbers to / remove numbers
  from the allowlist (normalised with the configured region).

A message that is not valid changes nothing: :meth:`Tuning.apply` raises
:class:`ControlError` and leaves settings and allowlist as they were.  The
messages of a :class:`ControlError` never contain subscriber numbers (digit
runs are masked), so they can be logged.

>>> from detectors.config import load_settings
>>> t = Tuning(load_settings())
>>> t.apply(b'{"op": "set", "key": "rules.cloud_dialer.min_attempts", "value": 60}')
'set rules.cloud_dialer.min_attempts'
>>> t.settings.rules["cloud_dialer"].min["attempts"]
60.0
>>> t.apply(b'{"op": "allow", "numbers": ["13800000001"]}'), "+8613800000001" in t.allowlist
('allow 1 number(s)', True)
>>> t.apply(b'{"op": "set", "key": "alerts.min_attempts", "value": "13812345678"}')
Traceback (most recent call last):
...
streams.control.ControlError: alerts.min_attempts must be a number, got '<number>'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from detectors.allowlist import Allowlist
from detectors.config import ConfigError, Settings, with_override
from detectors.numbers import BadNumber, NumberNormaliser

log = logging.getLogger("dialguard.worker")

#: Most numbers one allow/disallow message may carry (a bigger list is a mistake).
MAX_NUMBERS = 100_000
OPS = ("set", "allow", "disallow")

# Five or more digits in a row (separators allowed): possibly a subscriber number.
_DIGITS = re.compile(r"\+?\d(?:[\s\-().]?\d){4,}")


class ControlError(ValueError):
    """A control message that was refused; the text carries no subscriber numbers."""


def redact(text: str) -> str:
    """``text`` with anything that could be a telephone number masked.

    >>> redact("bad number '+86 138 1234 5678' at line 3")
    "bad number '<number>' at line 3"
    """
    return _DIGITS.sub("<number>", text)


def parse_control(data: bytes | str) -> dict[str, Any]:
    """Decode and shape-check one control message; raises :class:`ControlError`."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ControlError("control message is not JSON") from None
    if not isinstance(message, dict):
        raise ControlError("control message must be a JSON object")
    op = message.get("op")
    if op not in OPS:
        raise ControlError(f"control op must be one of {', '.join(OPS)}")
    if op == "set":
        key = message.get("key")
        if not isinstance(key, str) or not key:
            raise ControlError("'set' needs a dotted settings 'key'")
        if "value" not in message:
            raise ControlError(f"'set' of {redact(key)} needs a 'value'")
        extra = set(message) - {"op", "key", "value"}
    else:
        numbers = message.get("numbers")
        if not isinstance(numbers, list) or not numbers:
            raise ControlError(f"'{op}' needs a non-empty list 'numbers'")
        if len(numbers) > MAX_NUMBERS:
            raise ControlError(f"'{op}' carries {len(numbers)} numbers (at most {MAX_NUMBERS})")
        if not all(isinstance(n, str) for n in numbers):
            raise ControlError(f"'{op}': every number must be a string")
        extra = set(message) - {"op", "numbers"}
    if extra:
        fields = redact(", ".join(sorted(extra)))
        raise ControlError(f"unknown field(s) in control message: {fields}")
    return message


class Tuning:
    """The settings and allowlist a worker currently runs with, changed by control messages."""

    def __init__(self, settings: Settings, allowlist: Allowlist | None = None) -> None:
        self.settings = settings
        self.allowlist = allowlist if allowlist is not None else Allowlist()
        self.normaliser = NumberNormaliser(settings.input.region)
        #: control messages applied / refused so far
        self.applied = 0
        self.refused = 0

    def apply(self, data: bytes | str) -> str:
        """Apply one control message; returns a short description (no numbers).

        Raises :class:`ControlError` (and changes nothing) if the message is invalid.
        """
        try:
            message = parse_control(data)
            if message["op"] == "set":
                try:
                    settings = with_override(self.settings, message["key"], message["value"])
                except ConfigError as exc:
                    raise ControlError(redact(str(exc))) from None
                self.settings = settings
                description = f"set {redact(message['key'])}"
            else:
                try:
                    numbers = [self.normaliser(n) for n in message["numbers"]]
                except BadNumber:
                    raise ControlError(
                        f"'{message['op']}': a value in 'numbers' is not a telephone number"
                    ) from None
                if message["op"] == "allow":
                    self.allowlist = self.allowlist.with_numbers(added=numbers)
                else:
                    self.allowlist = self.allowlist.with_numbers(removed=numbers)
                description = f"{message['op']} {len(numbers)} number(s)"
        except ControlError:
            self.refused += 1
            raise
        self.applied += 1
        return description


class ControlReader:
    """Reads every partition of the control topic from the start, for the life of a worker.

    A group-less aiokafka consumer, so every worker sees every message; ``apply`` is
    called with each message value, and ``ready`` is set once the messages that were
    there at start have been applied (a restarted worker re-applies earlier tuning
    before it processes calls).  ``declare`` creates the topic if it is missing.
    """

    def __init__(self, bootstrap: list[str], topic: str, apply: Callable[[bytes], Any],
                 ready: asyncio.Event,
                 declare: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.apply = apply
        self.ready = ready
        self.declare = declare

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            if self.declare is not None:
                with contextlib.suppress(Exception):
                    await self.declare()
            partitions = await self._partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            positions = {tp: 0 for tp in tps}
            applied = 0
            while True:
                if not self.ready.is_set() and all(positions[tp] >= ends[tp] for tp in tps):
                    log.info("control: %d earlier message(s) replayed", applied)
                    self.ready.set()
                batch = await consumer.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    for msg in messages:
                        positions[tp] = msg.offset + 1
                        if msg.value is not None:
                            self.apply(msg.value)
                            applied += 1
                for tp in tps:
                    with contextlib.suppress(Exception):
                        positions[tp] = max(positions[tp], await consumer.position(tp))
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: Any) -> set[int]:
        while True:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                return set(partitions)
            await asyncio.sleep(0.5)
