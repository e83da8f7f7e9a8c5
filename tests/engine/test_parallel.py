"""The engine's shards (engine/parallel.py): results in order, errors raised, a busy helper never waited for, and
a network trained the same bit for bit on one thread or two."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import engine.parallel as parallel
from engine.model import Model
from engine.spec import Conv2DSpec, ModelSpec, OutputSpec, PoolSpec
from engine.trainer import Dataset, TrainConfig, Trainer


@pytest.fixture
def threads() -> Iterator[None]:
    before = parallel.shards().threads
    yield
    parallel.set_threads(before)


def test_bounds_cut_a_batch_in_two_at_the_same_place_always() -> None:
    assert parallel.bounds(128) == [(0, 64), (64, 128)]
    assert parallel.bounds(5) == [(0, 2), (2, 5)]
    assert parallel.bounds(1) == [(0, 1)]
    assert parallel.bounds(0) == [(0, 0)]


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("count", [1, 2])
def test_map_returns_each_shard_in_order(count: int) -> None:
    parallel.set_threads(count)
    seen = parallel.shards().map(lambda k, lo, hi: (k, lo, hi, threading.current_thread().name), 10)
    assert [s[:3] for s in seen] == [(0, 0, 5), (1, 5, 10)]
    assert seen[0][3] == threading.current_thread().name  # the caller runs the first shard itself


@pytest.mark.usefixtures("threads")
def test_an_error_in_the_helpers_shard_is_raised_after_both_ended() -> None:
    parallel.set_threads(2)
    ended = []

    def shard(k: int, lo: int, hi: int) -> None:
        if k == 1:
            raise ValueError("shard 1 failed")
        ended.append(k)

    with pytest.raises(ValueError, match="shard 1 failed"):
        parallel.shards().map(shard, 4)
    assert ended == [0]


@pytest.mark.usefixtures("threads")
def test_a_busy_helper_is_not_waited_for() -> None:
    """Another run holds the helper: the caller takes its own second shard back and finishes alone."""
    parallel.set_threads(2)
    pool = parallel.shards()
    release, started = threading.Event(), threading.Event()
    holder: list[str] = []

    def hold(k: int, lo: int, hi: int) -> None:
        if k == 0:  # the other caller stays in its own shard until the helper has started the second one
            started.wait(5)
            return
        holder.append(threading.current_thread().name)
        started.set()
        release.wait(10)

    other = threading.Thread(target=pool.map, args=(hold, 2))
    other.start()
    try:
        assert started.wait(5)
        assert holder == ["engine-shard-0"]  # the helper is now inside the other caller's shard
        names = pool.map(lambda k, lo, hi: threading.current_thread().name, 2)
        assert names == [threading.current_thread().name] * 2
    finally:
        release.set()
        other.join(5)


@pytest.mark.usefixtures("threads")
def test_the_helpers_shard_runs_under_the_callers_errstate() -> None:
    """np.errstate is per thread: a diverging run's overflows, ignored by the trainer, must not become warnings
    (or errors) on the helper thread, and an error state asked for must hold there too."""
    parallel.set_threads(2)
    big = np.array([3e38], np.float32)
    threads_seen = []

    def overflow(k: int, lo: int, hi: int) -> None:
        threads_seen.append(threading.current_thread().name)
        time.sleep(0.05)  # long enough for the helper to take the second shard
        big * np.float32(10)

    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        parallel.shards().map(overflow, 2)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel.shards().map(overflow, 2)
    assert "engine-shard-0" in threads_seen


@pytest.mark.usefixtures("threads")
def test_more_threads_than_shards_keep_one_pool() -> None:
    parallel.set_threads(8)
    pool = parallel.shards()
    parallel.set_threads(8)
    assert parallel.shards() is pool and pool.threads == parallel.SHARDS


@pytest.mark.usefixtures("threads")
def test_set_threads_refuses_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parallel.set_threads(0)


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.usefixtures("threads")
def test_single_blas_while_shards_run_then_restored() -> None:
    parallel.set_threads(2)
    before = _blas_threads()
    with parallel.single_blas(True):
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def _train(threads: int) -> dict[str, np.ndarray]:
    parallel.set_threads(threads)
    rng = np.random.default_rng(0)
    data = Dataset(
        rng.random((96, 144), np.float32),
        rng.integers(0, 3, 96),
        rng.random((20, 144), np.float32),
        rng.integers(0, 3, 20),
    )
    spec = ModelSpec(
        (12, 12, 1),
        (Conv2DSpec(4, 3), PoolSpec(2), Conv2DSpec(6, 3), PoolSpec(2), Conv2DSpec(5, 3, stride=2)),
        OutputSpec(3, "softmax"),
        "cross_entropy",
        "he",
    )
    model = Model.build(spec, seed=1)
    assert model.sharded
    Trainer(model, TrainConfig(epochs=2, batch_size=32, seed=3, histogram_bins=0), data).run()
    return {k: v.copy() for k, v in model.state().items()}


@pytest.mark.usefixtures("threads")
def test_a_conv_net_trains_the_same_bit_for_bit_on_one_thread_or_two() -> None:
    one, two = _train(1), _train(2)
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
