"""The engine's own two-way parallelism, for layers whose work splits over the images of a batch (convolution
and pooling): each half of the batch is a shard, one run by the calling thread, the other by a helper thread.
NumPy's copies, ufuncs and matrix products release the GIL, so the shards run on two cores at once.

Why not BLAS's threads: a convolution's products are many small ones (a block of images each) between copies
and ufuncs that BLAS cannot parallelise; two OpenBLAS threads on them were no faster than one (bench_speed.py's
CNN: 9.1 s an epoch on two, 8.9 s on one). A whole half batch per core is. While shards run, BLAS must use one
thread (``single_blas``), or the two shards' products fight over the same cores for BLAS's spinning threads.

Why two shards always: a gradient summed over the batch (a convolution's dW) is summed per shard and the two
partial sums added, and that rounding must not depend on the machine. So a batch of two or more images is always
cut in two at the same place, and on one core both shards simply run in turn: a run is the same, bit for bit,
whatever the cores.

Waking a sleeping thread costs 20-50 microseconds here (a virtual machine's cross-core wake-up), so shards are
worth it only for work of a millisecond or more: dense layers keep BLAS's own threads. A shard the helper has
not started by the time the caller is done with its own is taken back and run by the caller: a busy helper (two
runs training at once, or another process holding the core) never makes a run wait."""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import numpy as np

SHARDS = 2  # a batch is cut into this many shards, whatever the number of cores (see above)

T = TypeVar("T")


def bounds(n: int) -> list[tuple[int, int]]:
    """The shards of n items: SHARDS contiguous ranges, the first ones shorter by at most one; one range when
    there are fewer items than shards."""
    if n < SHARDS:
        return [(0, n)]
    cuts = [n * i // SHARDS for i in range(SHARDS + 1)]
    return list(itertools.pairwise(cuts))


class _Task(Generic[T]):
    """One shard handed to the helper; whoever claims it first (helper or caller) runs it."""

    __slots__ = ("claimed", "done", "error", "fn", "hi", "lo", "lock", "result", "shard")

    def __init__(self, fn: Callable[[int, int, int], T], shard: int, lo: int, hi: int) -> None:
        self.fn, self.shard, self.lo, self.hi = fn, shard, lo, hi
        self.lock = threading.Lock()
        self.claimed = False
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None

    def claim(self) -> bool:
        with self.lock:
            if self.claimed:
                return False
            self.claimed = True
            return True

    def run(self) -> None:
        try:
            self.result = self.fn(self.shard, self.lo, self.hi)
        except BaseException as exc:  # handed to the caller, which raises it
            self.error = exc
        finally:
            self.done.set()


class Shards:
    """A caller plus `threads - 1` daemon helper threads, shared by every model in the process."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self._queue: queue.SimpleQueue[_Task[object]] = queue.SimpleQueue()
        self._helpers: list[threading.Thread] = []

    def _start_helpers(self) -> None:
        while len(self._helpers) < self.threads - 1:
            helper = threading.Thread(target=self._serve, name=f"engine-shard-{len(self._helpers)}", daemon=True)
            helper.start()
            self._helpers.append(helper)

    def _serve(self) -> None:
        while True:
            task = self._queue.get()
            if task.claim():
                task.run()

    def map(self, fn: Callable[[int, int, int], T], n: int) -> list[T]:
        """[fn(shard, lo, hi) for each shard of n items], the shards after the first offered to the helpers;
        results in shard order. An exception in any shard is raised here, after every shard has ended."""
        parts = bounds(n)
        if len(parts) == 1 or self.threads == 1:
            return [fn(k, lo, hi) for k, (lo, hi) in enumerate(parts)]
        self._start_helpers()
        errors = np.geterr()  # np.errstate is per thread: a helper's shard runs under the caller's

        def under_callers_errstate(k: int, lo: int, hi: int) -> T:
            with np.errstate(**errors):
                return fn(k, lo, hi)

        tasks = [_Task(under_callers_errstate, k, lo, hi) for k, (lo, hi) in enumerate(parts) if k > 0]
        for task in tasks:
            self._queue.put(task)  # type: ignore[arg-type]
        results: list[T] = []
        error: BaseException | None = None
        try:
            results.append(fn(0, *parts[0]))
        except BaseException as exc:
            error = exc
        for task in tasks:
            if task.claim():  # the helper has not started it: run it here rather than wait
                task.run()
            task.done.wait()
            if task.error is not None and error is None:
                error = task.error
            results.append(task.result)  # type: ignore[arg-type]
        if error is not None:
            raise error
        return results


_shards = Shards(min(SHARDS, os.cpu_count() or 1))


def shards() -> Shards:
    return _shards


def set_threads(threads: int) -> None:
    """How many threads run shards: 1 runs them in turn on the caller (a cluster worker holds one core)."""
    global _shards
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    threads = min(threads, SHARDS)  # more threads than shards would have nothing to do
    if threads != _shards.threads:  # a new pool only on a change: each has its helper threads
        _shards = Shards(threads)


@contextmanager
def single_blas(active: bool = True) -> Iterator[None]:
    """BLAS on one thread while shards run (restored after), when shards do run on several threads. Without
    threadpoolctl, or where it cannot read the process's libraries, BLAS is left as it is."""
    if not active or _shards.threads == 1:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=1, user_api="blas")
    except (ImportError, OSError):
        yield
        return
    try:
        yield
    finally:
        limits.restore_original_limits()
