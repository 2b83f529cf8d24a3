"""A Faust sensor that watches the worker's offset commits.

Faust commits a stage's acknowledged offsets about once a second, after flushing
its producer (table changelogs, alerts).  When a flush never completes the stage
goes on acknowledging and nothing is committed: from outside the worker looks
idle, and Faust itself says so only after five minutes.  :class:`CommitWatch`
counts commit rounds through Faust's sensor hooks so that the worker can say, in
its log, that a commit has been in progress for a while.

>>> watch = CommitWatch(clock=lambda: 10.0)
>>> state = watch.on_commit_initiated(None)
>>> watch.in_progress_for(now=40.0)  # started at 10.0
30.0
>>> watch.on_commit_completed(None, state)
>>> watch.in_progress_for(now=50.0), watch.completed
(0.0, 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from faust.sensors.base import Sensor


class CommitWatch(Sensor):
    """Counts Faust's commit rounds and knows since when the current one has run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.completed = 0
        #: when the round in progress started, else None (a round that raised ends at the
        #: next one's start)
        self.started_at: float | None = None

    def on_commit_initiated(self, consumer: Any) -> Any:
        self.started_at = self.clock()
        return None

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.completed += 1
        self.started_at = None

    def in_progress_for(self, now: float | None = None) -> float:
        """Seconds the current commit round has been running (0 when none is)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.clock() if now is None else now) - self.started_at)
