"""Running the ingest stage for a worker: in its process, or in processes of its own.

:class:`IngestSupervisor` starts :meth:`Ingest.run <streams.ingest.Ingest.run>` inside the
worker (``ingest_processes=0``) or ``N`` :func:`~streams.ingest.ingest_process_main`
processes, forwards their count reports to the worker's metrics, and stops the
worker (``crash``) when ingest cannot go on: a batch not delivered, or a process
that died.  Their offsets then stay uncommitted, so whoever takes over re-reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from streams.ingest import Ingest, IngestNotDelivered, apply_report, ingest_process_main
from streams.metrics import PipelineMetrics
from streams.options import WorkerOptions

log = logging.getLogger("dialguard.worker")


class IngestSupervisor:
    """Runs and watches the ingest stage of one worker.

    ``ready()`` is awaited before the first fetch (control replayed, detect group
    joined); ``crash(exc)`` stops the worker with an error.
    """

    def __init__(self, options: WorkerOptions, ingest: Ingest, region: str,
                 metrics: PipelineMetrics, counts: dict[str, int],
                 ready: Callable[[], Awaitable[Any]],
                 crash: Callable[[BaseException], Awaitable[Any]]) -> None:
        self.options = options
        self.ingest = ingest
        self.region = region
        self.metrics = metrics
        self.counts = counts
        self.ready = ready
        self.crash = crash

    async def run_here(self) -> None:
        """Ingest inside this process, for the life of the app."""
        try:
            await self.ingest.run(self.ready)
        except IngestNotDelivered as exc:
            log.error("ingest: %s; stopping", exc)
            await self.crash(exc)

    async def run_processes(self) -> None:
        """Ingest in ``options.ingest_processes`` processes of its own, for the life of the app.

        Their counts arrive as reports and go to this worker's metrics; a process
        that dies stops the worker (its offsets stay uncommitted, as in-process).
        """
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        child_options = replace(self.options, settings=None, allowlist=None)
        children = []
        for i in range(self.options.ingest_processes):
            parent_end, child_end = context.Pipe()
            proc = context.Process(target=ingest_process_main, name=f"dialguard-ingest-{i}",
                                   args=(child_options, self.region, child_end), daemon=True)
            proc.start()
            children.append((proc, parent_end))
        log.info("ingest: %d process(es) started", len(children))
        try:
            await self.ready()
            for _, conn in children:
                with contextlib.suppress(OSError):  # a dead process is reported just below
                    conn.send("start")
            while True:
                await asyncio.sleep(0.25)
                for proc, conn in children:
                    self.drain_reports(conn)
                    if not proc.is_alive():
                        error = RuntimeError(f"ingest process {proc.name} exited "
                                             f"({proc.exitcode}); stopping")
                        log.error("%s", error)
                        await self.crash(error)
                        return
        finally:
            await self._stop(children)

    async def _stop(self, children: list[tuple[Any, Any]]) -> None:
        for proc, _ in children:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 15
        while any(p.is_alive() for p, _ in children) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc, conn in children:
            if proc.is_alive():
                proc.kill()
            self.drain_reports(conn)
            proc.join(1)

    def drain_reports(self, conn: Any) -> None:
        """Apply the reports waiting on one process's pipe."""
        with contextlib.suppress(EOFError, OSError):
            while conn.poll():
                report = conn.recv()
                if "error" in report:
                    log.error("ingest process: %s", report["error"])
                else:
                    apply_report(report, self.metrics, self.counts)
