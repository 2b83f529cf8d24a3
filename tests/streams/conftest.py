"""Fixtures of the broker-free stream tests: a pipeline on a fake broker, captured sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import pytest

from streams.app import Pipeline, create_pipeline
from streams.metrics import DialguardMetrics
from streams.options import WorkerOptions

from .helpers import FakeBatchProducer, Sent


@pytest.fixture
def sent() -> Iterator[Sent]:
    captured: Sent = []

    def fake_send(topic: Any, **kwargs: Any) -> None:
        captured.append((topic.get_topic_name(), kwargs))

    with patch("faust.topics.Topic.send", autospec=True, side_effect=fake_send):
        yield captured


@pytest.fixture
def make_pipeline() -> Callable[..., Pipeline]:
    def make(partitions: int = 1, **kwargs: Any) -> Pipeline:
        options = WorkerOptions(broker="kafka://127.0.0.1:1", partitions=partitions,
                                control_consumer=False, lag_interval=0, ingest="faust",
                                **kwargs)
        pipeline = create_pipeline(options, DialguardMetrics())
        pipeline.app.conf.store = "memory://"  # type: ignore[assignment]
        pipeline.app.finalize()
        pipeline.app.flow_control.resume()
        fake = FakeBatchProducer()
        pipeline.changelog._producer = lambda: fake  # type: ignore[method-assign]
        pipeline.changelog_sent = fake.sent  # type: ignore[attr-defined]
        refs = FakeBatchProducer()
        pipeline.references_changelog._producer = lambda: refs  # type: ignore[method-assign]
        pipeline.references_sent = refs.sent  # type: ignore[attr-defined]
        if pipeline.group_changelog is not None:
            groups = FakeBatchProducer()
            pipeline.group_changelog._producer = lambda: groups  # type: ignore[method-assign]
            pipeline.group_changelog_sent = groups.sent  # type: ignore[attr-defined]
        return pipeline

    return make
