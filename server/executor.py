"""Where a run executes: one thread per running run in this process. NumPy's matrix products and ufuncs
release the GIL, so a training thread leaves the event loop free; the data set's floats are shared instead of
copied per process. A cluster executor (workers on other machines) would offer the same ``start``/``join``.

BLAS threads are rebalanced whenever a run starts or ends (cores // running runs), so two runs on two cores
use one BLAS thread each instead of thrashing."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from threadpoolctl import threadpool_limits

log = logging.getLogger("nnplay.runs")


class ThreadExecutor:
    def __init__(self) -> None:
        self.threads: dict[str, threading.Thread] = {}

    def start(self, run_id: str, job: Callable[[], None]) -> None:
        """Start the job or raise; never leaves a half-started run behind (the caller marks it failed)."""
        thread = threading.Thread(target=self._run, args=(run_id, job), name=f"run-{run_id}", daemon=True)
        self.threads[run_id] = thread
        try:
            self.balance_quietly()
            thread.start()
        except BaseException:
            self.threads.pop(run_id, None)
            raise

    def _run(self, run_id: str, job: Callable[[], None]) -> None:
        try:
            job()
        finally:
            self.threads.pop(run_id, None)

    def balance_quietly(self) -> None:
        """Rebalance if possible: threadpoolctl reads /proc/self/maps, which fails when the process is out of
        descriptors; the run then trains with the BLAS threads as they are rather than not at all."""
        try:
            self.rebalance()
        except OSError as exc:
            log.warning("could not set the BLAS threads: %s", exc)

    def rebalance(self) -> None:
        running = max(1, len(self.threads))
        cores = len(os.sched_getaffinity(0))  # respects cpusets (a container limited to 2 of 64 cores)
        threadpool_limits(limits=max(1, cores // running), user_api="blas")

    async def join(self, run_id: str, timeout: float) -> None:
        thread = self.threads.get(run_id)
        if thread is not None:
            await asyncio.to_thread(thread.join, timeout)
