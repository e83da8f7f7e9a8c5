"""Steering in the page, in a real Chromium against the real server: change the learning rate while a run
trains and see the change marked on the curve and listed; pause, step 5 batches and see exactly 5 batches more;
the health panel shows its charts and warns in words about a network that cannot learn."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer
from tests.frontend.test_browser import DESKTOP, PHONE, browser, load, new_page, shot, wait_js

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with test_browser

SLOW = {  # long enough to steer: 60 epochs of 20 small batches
    "name": "steer-me",
    "layers": [{"type": "dense", "units": 32, "activation": "relu", "dropout": 0}],
    "batch_size": 100,
    "epochs": 60,
    "train_subset": 2000,
    "learning_rate": 0.001,
}


def test_change_mid_run_is_marked_then_step_five_batches(
    browser: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    page, problems = new_page(browser, DESKTOP)
    load(page, live_server.url)
    page.evaluate("(config) => window.__nnplay.form.setConfig(config)", SLOW)
    page.click("#btn-start")
    expect(page.locator("#run-state")).to_have_text("running", timeout=30_000)
    wait_js(page, "window.__nnplay.watcher.charts.epochs.length >= 1", timeout=60)
    expect(page.locator("#steer-apply")).to_be_enabled()
    page.fill("#steer-learning_rate", "0.01")
    page.click("#steer-apply")
    expect(page.locator("#steer-note")).to_contain_text("Applied from the next batch")
    expect(page.locator("#change-list li")).to_have_count(1, timeout=15_000)
    expect(page.locator("#change-list li").first).to_contain_text("learning rate 0.001 → 0.01")
    wait_js(page, "window.__nnplay.watcher.charts.changes.length === 1")
    # the marker: a purple dashed line drawn at the change, and hovering it names the change
    at = page.evaluate("window.__nnplay.watcher.charts.changes[0].at")
    box = page.locator("#chart-loss .u-over").bounding_box()
    assert box is not None
    x = page.evaluate("(at) => window.__nnplay.watcher.charts.loss.plot.valToPos(at, 'x')", at)
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    expect(page.locator(".change-hover")).to_contain_text("learning rate 0.001 → 0.01")
    shot(page, artifacts_dir, "12-steer-marker-1280.png", full_page=False)

    page.click("#btn-pause")
    expect(page.locator("#run-state")).to_have_text("paused", timeout=15_000)
    expect(page.locator("#btn-step")).to_be_enabled()
    run_id = page.evaluate("window.__nnplay.watcher.run.id")
    before = page.evaluate("window.__nnplay.watcher.stepCount")
    page.fill("#step-batches", "5")
    page.click("#btn-step")
    expect(page.locator("#steer-note")).to_contain_text("Training 5 batches")
    wait_js(page, f"window.__nnplay.watcher.stepCount === {before} + 5 && window.__nnplay.watcher.state === 'paused'")
    assert page.evaluate("window.__nnplay.watcher.run.id") == run_id
    # health: charts drawn, table filled
    expect(page.locator("#health-table tr")).to_have_count(3)  # header + hidden layer + output layer
    assert page.locator("#chart-ratio canvas").count() >= 1
    page.click("#btn-stop")
    expect(page.locator("#run-state")).to_have_text("stopped", timeout=15_000)
    assert not problems.all(), problems.all()
    page.context.close()


def test_health_warns_in_words_about_the_seed_article_at_batch_128(
    browser: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    page, problems = new_page(browser, PHONE)
    load(page, live_server.url)
    config = {
        "name": "seed-article-128",
        "layers": [{"type": "dense", "units": 128, "activation": "sigmoid", "dropout": 0}],
        "output_activation": "sigmoid",
        "loss": "mse",
        "init": "naive",
        "optimizer": {"name": "sgd"},
        "learning_rate": 0.01,
        "batch_size": 128,
        "epochs": 40,
        "train_subset": 5000,
    }
    page.evaluate("(config) => window.__nnplay.form.setConfig(config)", config)
    page.click("#btn-start")
    expect(page.locator("#health-warnings li").first).to_contain_text(
        re.compile(r"layer 1: each step moves the weights by only .* learns slowly"), timeout=60_000
    )
    page.locator("#health-warnings").scroll_into_view_if_needed()
    shot(page, artifacts_dir, "13-health-warning-390.png", full_page=False)
    page.click("#btn-stop")
    assert not problems.all(), problems.all()
    page.context.close()
