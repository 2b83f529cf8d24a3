"""Replay with the group detector in a process of its own: both detectors at once.

In one process the group detector costs about as much per call as the per-number one
(``benchmarks/bench_replay.py``), so ``dialguard replay`` with rings on ran at about half
the speed of rings off.  The stream workers run the two as separate stages; so can replay.
:class:`GroupProcessChain` is the :class:`~detectors.composite.DetectorChain` of the
engine and the group detector with the group detector moved to a child process
(``python -m streams.group_process``, which imports nothing of the engine): the parent
deduplicates, runs the engine and sends the calls on in batches (MessagePack frames over
the child's stdin); the child runs :meth:`GroupDetector.observe_unique
<detectors.rings.detector.GroupDetector.observe_unique>` on each and sends back its ring
alerts and the ring ids of the numbers the engine alerted.  While the child works on one
batch the parent works on the next.

The alerts are the chain's, in the chain's order: a call's number alerts (tagged with
the ring its caller is in once the group detector has seen that call) then its ring
alerts.  They come out a batch late; :meth:`GroupProcessChain.flush` gives the rest at
the end of the input.  A child that fails ends the replay with :class:`GroupProcessError`.

>>> from detectors.config import load_settings
>>> from detectors.records import Call
>>> chain = GroupProcessChain(load_settings(), batch=4)
>>> out = []
>>> for j in range(10):  # four fresh numbers behind one gateway, an unanswered call each
...     for i in range(4):
...         out += chain.observe(Call(f"+8617100000{i:03d}", f"+86139{j * 5 + i:04d}7777",
...                                   1.7e9 + 60 * j + i, 0, False, trunk="gw-pool"))
>>> out += chain.flush()
>>> chain.close()
>>> [(a.kind, len(a.members)) for a in out], chain.stats.calls
([('ring', 2), ('ring', 4)], 40)
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from detectors.alerts import Alert
from detectors.allowlist import Allowlist
from detectors.config import Settings, build_settings
from detectors.dedup import Deduplicator
from detectors.protocol import DetectorCounts
from detectors.records import Call

#: calls per batch sent to the child (two batches are in flight at most)
BATCH = 4096
_NO_ALERTS: tuple[Alert, ...] = ()
_STOP = b""
_LENGTH = struct.Struct("<I")  # a frame: its length, then its bytes


def _write_frame(stream: IO[bytes], data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream (or in the middle of a frame)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


class _Start(msgspec.Struct, array_like=True):
    """The child's first frame: the settings (as read) and the allowlist."""

    settings: dict[str, Any]
    allowed: list[str]


class _Batch(msgspec.Struct, array_like=True, gc=False):
    """Parent to child: calls, and (index in ``calls``, caller) of each number alert to tag."""

    calls: list[Call]
    tag: list[tuple[int, str]]


class _Result(msgspec.Struct, array_like=True, gc=False):
    """Child to parent: (index, alert JSON) of ring alerts, a ring id (or None) per tag
    asked, and the group detector's counts; or the error that stopped it."""

    rings: list[tuple[int, bytes]]
    tags: list[str | None]
    tracked: int
    expired: int
    alerts: int
    error: str | None = None


class GroupProcessError(RuntimeError):
    """The group detector's process failed or went away."""


@dataclass
class GroupProcessStats:
    """Counts of the split chain: its own calls and duplicates, the engine's alerts and
    expiries as they stand, the group detector's as of the last batch it handed back."""

    engine: DetectorCounts
    calls: int = 0
    duplicates: int = 0
    ring_alerts: int = 0
    group_expired: int = 0

    @property
    def alerts(self) -> int:
        return self.engine.alerts + self.ring_alerts

    @property
    def expired(self) -> int:
        return self.engine.expired + self.group_expired


def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child: group detection over the batches the parent sends, until it sends stop."""
    from detectors.rings.detector import GroupDetector

    first = _read_frame(inp)
    if first is None:
        return
    start = msgspec.msgpack.decode(first, type=_Start)
    group = GroupDetector(build_settings(start.settings), Allowlist(set(start.allowed)))
    decode = msgspec.msgpack.Decoder(_Batch).decode
    encode = msgspec.msgpack.Encoder().encode
    while True:
        data = _read_frame(inp)
        if data is None or data == _STOP:  # the parent went away, or is done
            return
        try:
            result = _group_batch(group, decode(data))
        except Exception as exc:  # reported, not printed: a traceback may quote a number
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            result = _Result([], [], 0, 0, 0, f"{type(exc).__name__} at "
                             f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}")
        _write_frame(out, encode(result))
        if result.error is not None:
            return


def _group_batch(group: Any, batch: _Batch) -> _Result:
    rings: list[tuple[int, bytes]] = []
    tags: list[str | None] = []
    wanted = batch.tag
    next_tag = 0
    observe = group.observe_unique
    for index, call in enumerate(batch.calls):
        alerts = observe(call)
        if alerts:
            rings.extend((index, alert.to_json()) for alert in alerts)
        while next_tag < len(wanted) and wanted[next_tag][0] == index:
            tags.append(group.ring_of(wanted[next_tag][1]))
            next_tag += 1
    return _Result(rings, tags, group.tracked_numbers, group.stats.expired, group.stats.alerts)


def _child_environment() -> dict[str, str]:
    """This environment, with the trees this process imported ``streams`` and ``detectors``
    from first on the child's path (and, by ``-P``, not the working directory): the child
    runs the same code as its parent wherever it is started from."""
    import detectors
    import streams

    roots = [str(Path(package.__file__ or "").resolve().parents[1])
             for package in (streams, detectors)]
    env = dict(os.environ)
    inherited = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        [*roots, *(p for p in inherited.split(os.pathsep) if p)]))
    return env


class GroupProcessChain:
    """The per-number engine here, the group detector in a child process; see the module."""

    def __init__(self, settings: Settings, allowlist: Allowlist | None = None,
                 batch: int = BATCH) -> None:
        from detectors.engine import Detector  # not at the top: the child needs no river

        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.engine = Detector(settings, allowlist)
        self.dedup = Deduplicator(settings.input.dedup_window_s)
        self.stats = GroupProcessStats(self.engine.stats)
        self.batch = batch
        self._calls: list[Call] = []
        #: (index in ``_calls``, alert) of the engine's alerts on the batch being filled
        self._pending: list[tuple[int, Alert]] = []
        #: the engine's alerts on the batch the child has, None when it has none
        self._sent: list[tuple[int, Alert]] | None = None
        self._group_tracked = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(_Result).decode
        self._child = subprocess.Popen([sys.executable, "-P", "-m", "streams.group_process"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       env=_child_environment())
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to_child: IO[bytes] = self._child.stdin
        self._from_child: IO[bytes] = self._child.stdout
        allowed = sorted((allowlist or Allowlist()).numbers)
        self._send(self._encode(_Start(dict(settings.raw), allowed)))

    # ------------------------------------------------------------------ per call

    def observe(self, call: Call) -> Sequence[Alert]:
        """Take one call; the alerts of the batch before, once a batch is full."""
        if call.id is not None and self.dedup.seen(call.id, call.start):
            self.stats.duplicates += 1
            return _NO_ALERTS
        self.stats.calls += 1
        alerts = self.engine.observe_unique(call)
        if alerts:
            index = len(self._calls)
            self._pending.extend((index, alert) for alert in alerts)
        self._calls.append(call)
        if len(self._calls) >= self.batch:
            return self._cycle()
        return _NO_ALERTS

    def flush(self) -> list[Alert]:
        """Every alert not given yet (the end of the input)."""
        out = self._cycle() if self._calls or self._pending else []
        return out + self._collect()

    def _cycle(self) -> list[Alert]:
        """Send the batch being filled; take back the one the child had."""
        out = self._collect()  # first: the child waits for the next batch only then
        tag = [(index, alert.caller) for index, alert in self._pending
               if alert.kind == "number" and alert.ring_id is None and alert.caller]
        self._send(self._encode(_Batch(self._calls, tag)))
        self._sent, self._calls, self._pending = self._pending, [], []
        return out

    def _send(self, data: bytes) -> None:
        try:
            _write_frame(self._to_child, data)
        except OSError as exc:
            raise GroupProcessError(f"the group detector's process went away ({exc}; exit "
                                    f"code {self._exit_code()})") from None

    def _collect(self) -> list[Alert]:
        """The merged alerts of the batch the child has (none if it has none)."""
        sent = self._sent
        if sent is None:
            return []
        self._sent = None
        data = _read_frame(self._from_child)
        if data is None:
            raise GroupProcessError("the group detector's process stopped (exit code "
                                    f"{self._exit_code()})")
        result = self._decode(data)
        if result.error is not None:
            raise GroupProcessError(f"group detection failed: {result.error}")
        self._group_tracked = result.tracked
        self.stats.group_expired = result.expired
        self.stats.ring_alerts = result.alerts
        tags = iter(result.tags)
        for _, alert in sent:
            if alert.kind == "number" and alert.ring_id is None and alert.caller:
                alert.ring_id = next(tags)
        rings = [(index, Alert.from_json(data)) for index, data in result.rings]
        merged: list[Alert] = []
        r = 0
        for index, alert in sent:
            while r < len(rings) and rings[r][0] < index:
                merged.append(rings[r][1])
                r += 1
            merged.append(alert)
        merged.extend(alert for _, alert in rings[r:])
        return merged

    # ------------------------------------------------------------------ housekeeping

    def expire(self, now: float) -> int:
        """Expire the engine's idle numbers (the group detector sweeps by its own event time)."""
        return self.engine.expire(now)

    @property
    def tracked_numbers(self) -> int:
        """The engine's numbers and the group detector's caller records (as of its last batch)."""
        return self.engine.tracked_numbers + self._group_tracked

    def part(self, kind: type) -> object | None:
        """The engine, if asked for (the group detector lives in the child)."""
        return self.engine if isinstance(self.engine, kind) else None

    def _exit_code(self) -> int | None:
        try:
            return self._child.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop the child (what it was working on is dropped: see :meth:`flush`)."""
        if self._child.poll() is None:
            with contextlib.suppress(OSError):
                if self._sent is not None:
                    self._sent = None
                    _read_frame(self._from_child)  # it may be handing its batch over
                _write_frame(self._to_child, _STOP)
            try:
                self._child.wait(10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        for stream in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                stream.close()

    def __enter__(self) -> GroupProcessChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    # frames go to a copy of stdout; anything printed by mistake goes to stderr instead
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, frames)
