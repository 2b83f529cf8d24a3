"""Where alerts go: a small protocol and the Kafka topic sink the workers use.

A stage hands every alert it raised to an :class:`AlertSink`; the worker's sink
is :class:`TopicAlertSink` (``dialguard.alerts``, keyed by the alerted number or
ring id).  Tests collect alerts with :class:`ListAlertSink`.

>>> import asyncio
>>> from detectors.alerts import Alert
>>> sink = ListAlertSink()
>>> alert = Alert(kind="number", caller="+8613800000001", score=1.0, reasons=["x"],
...               detected_at=1.7e9, first_seen=1.7e9)
>>> asyncio.run(sink.emit(alert))
>>> [a.caller for a in sink.alerts]
['+8613800000001']
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from detectors.alerts import Alert


class AlertSink(Protocol):
    async def emit(self, alert: Alert) -> None:
        """Deliver (or queue for delivery) one alert."""
        ...

    async def delivered(self) -> None:
        """Return once every alert emitted so far is delivered (raise if one failed)."""
        ...


def alert_key(alert: Alert) -> bytes | None:
    """The message key of an alert: its number, else its ring id (keeps one key's alerts
    in order on one partition)."""
    key = alert.caller or getattr(alert, "ring_id", None)
    return key.encode() if key else None


class TopicAlertSink:
    """Sends alerts (CONTRACT section 2, JSON) to a Faust topic, at once (``force``).

    The stages wait for :meth:`delivered` before they save the states that raised the
    alerts: a crash in between then sends an alert twice rather than never.
    """

    def __init__(self, topic: Any) -> None:
        self.topic = topic
        self._pending: list[asyncio.Future[Any]] = []

    async def emit(self, alert: Alert) -> None:
        sent = await self.topic.send(key=alert_key(alert), value=alert.to_json(), force=True)
        if isinstance(sent, asyncio.Future):
            self._pending.append(sent)

    async def delivered(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


class ListAlertSink:
    """Keeps alerts in a list (tests, embedding)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def delivered(self) -> None:
        pass
