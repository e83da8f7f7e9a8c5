"""The page in a real Chromium against cluster mode: two `nnplay serve` replicas, one `nnplay worker`, real
Redis and PostgreSQL. A run started from the page on one replica trains on the worker and is watched live;
the same run opened on the other replica shows the same curves; pause and resume reach the worker; drawing
uses the model the worker saved into the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import Cluster, LiveServer, start_server, stop_server
from tests.frontend.test_browser import DESKTOP, PHONE, browser, draw_seven, load, new_page, shot  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[list[LiveServer]]:
    servers = [start_server(cluster.settings.data_dir, tmp_path / f"web{i}.log", cluster.env) for i in range(2)]
    yield servers
    for server in servers:
        stop_server(server)


def test_the_page_trains_on_a_worker_and_any_replica_shows_the_run(
    browser: Browser,  # noqa: F811
    replicas: list[LiveServer],
    artifacts_dir: Path,
) -> None:
    page, problems = new_page(browser, DESKTOP)
    load(page, replicas[0].url)
    page.select_option("#f-preset", "quick")
    page.fill("#f-name", "cluster-test")
    page.fill("#f-batch_size", "8")  # 625 batches an epoch: long enough to pause in
    page.fill("#f-train_subset", "5000")
    page.fill("#f-epochs", "3")
    page.click("#btn-start")
    expect(page.locator("#run-title")).to_have_text("cluster-test")
    expect(page.locator("#btn-pause")).to_be_enabled()
    page.click("#btn-pause")
    expect(page.locator("#run-state")).to_have_text("paused", timeout=30_000)
    page.click("#btn-resume")
    expect(page.locator("#run-state")).to_have_text("finished", timeout=90_000)
    expect(page.locator("#progress-text")).to_have_text("finished · epoch 3/3")
    assert page.evaluate("window.__nnplay.watcher.charts.epochs.length") == 3
    run_id = page.evaluate("window.__nnplay.watcher.run.id")
    shot(page, artifacts_dir, "20-cluster-finished-1280.png")

    # the other replica: the same run, from the shared database
    other, other_problems = new_page(browser, PHONE)
    load(other, f"{replicas[1].url}/#run={run_id}")
    expect(other.locator("#run-title")).to_have_text("cluster-test")
    expect(other.locator("#run-state")).to_have_text("finished", timeout=30_000)
    assert other.evaluate("window.__nnplay.watcher.charts.epochs.length") == 3
    shot(other, artifacts_dir, "21-cluster-other-replica-390.png")

    # drawing reads with the model the worker stored in PostgreSQL
    draw_seven(page)
    expect(page.locator("#pred-text")).to_have_text(re.compile(r"^Prediction: \d \(\d+% confidence\)$"))
    shot(page, artifacts_dir, "22-cluster-drawn-1280.png")
    assert problems.all() == [] and other_problems.all() == []
