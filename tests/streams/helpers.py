"""What the broker-free stream tests share: captured sends, a stand-in changelog producer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

Sent = list[tuple[str, dict[str, Any]]]


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, timestamp: None) -> bool:
        self.records.append((key, value))
        return True


class FakeBatchProducer:
    """Stands in for the aiokafka producer the changelog writer uses; keeps what it got, and
    notes ``"state saved"`` in ``order`` (if given) at every batch it sends."""

    def __init__(self, order: list[str] | None = None) -> None:
        self.sent: list[tuple[str, int, bytes, bytes | None]] = []
        self.order = order

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        if self.order is not None:
            self.order.append("state saved")
        self.sent.extend((topic, partition, k, v) for k, v in batch.records)
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic_partition=(topic, partition), offset=0))
        return future


def of(sent: Sent, topic: str) -> list[dict[str, Any]]:
    return [kw for name, kw in sent if name == topic]
