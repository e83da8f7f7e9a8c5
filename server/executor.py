"""Where a run executes: one thread per running run in this process. NumPy's matrix products and ufuncs
release the GIL, so a training thread leaves the event loop free; the data set's floats are shared instead of
copied per process. A cluster executor (workers on other machines) would offer the same ``start``/``join``.

Each run's matrix products use one BLAS thread. They were given cores // running runs, but a second thread
that waits for a core another process holds makes every product many times slower, and a batch's products
are small: with the machine's two cores shared (load ~5.7), one epoch of the dense default took 1.0-1.2 s on
one thread and 9-41 s on two; one epoch of the cnn preset 5.0 s against 56 s.

A network with convolution or pooling still uses two cores: the engine cuts each batch into two shards and
runs the second on its helper thread (engine/parallel.py). Its waits block instead of spinning, and a shard
the helper has not started (another run holds it) is run by the run's own thread, so runs sharing the cores
slow each other down no more than their work does."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from threadpoolctl import threadpool_limits

BLAS_THREADS = 1  # per run, whatever the number of cores (see the module's docstring)
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
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")

    async def join(self, run_id: str, timeout: float) -> None:
        thread = self.threads.get(run_id)
        if thread is not None:
            await asyncio.to_thread(thread.join, timeout)
