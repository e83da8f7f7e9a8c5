"""Two students on one server, each with their own owner cookie: the second can watch the first's run live but
the page offers them no control of it (pause, stop, steer, delete), and says why; the first keeps them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer
from tests.frontend.test_browser import DESKTOP, PHONE, browser, load, new_page, shot  # noqa: F401

pytestmark = pytest.mark.browser


def test_someone_elses_run_is_watched_not_steered(
    browser: Browser,  # noqa: F811
    live_server: LiveServer,
    artifacts_dir: Path,
) -> None:
    owner, owner_problems = new_page(browser, DESKTOP)
    load(owner, live_server.url)
    owner.select_option("#f-preset", "quick")
    owner.fill("#f-name", "mine")
    owner.fill("#f-batch_size", "8")
    owner.fill("#f-train_subset", "5000")
    owner.fill("#f-epochs", "20")
    owner.click("#btn-start")
    expect(owner.locator("#run-state")).to_have_text("running", timeout=30_000)
    expect(owner.locator("#btn-pause")).to_be_enabled()
    run_id = owner.evaluate("window.__nnplay.watcher.run.id")

    other, other_problems = new_page(browser, PHONE)  # a new browser context: another owner
    load(other, f"{live_server.url}/#run={run_id}")
    expect(other.locator("#run-title")).to_have_text("mine")
    expect(other.locator("#run-state")).to_have_text("running", timeout=30_000)
    for button in ("#btn-pause", "#btn-stop", "#steer-apply"):
        expect(other.locator(button)).to_be_disabled()
    expect(other.locator("#run-hint")).to_contain_text("someone else's run")
    item = other.locator(f"#run-list li[data-id={run_id}]")
    expect(item).to_have_count(1)
    expect(item.locator("button[data-role=delete]")).to_have_count(0)
    shot(other, artifacts_dir, "23-someone-elses-run-390.png")

    # the owner still steers it: stop from the owner's page ends it for both
    expect(owner.locator(f"#run-list li[data-id={run_id}] button[data-role=delete]")).to_have_count(1)
    owner.click("#btn-stop")
    expect(owner.locator("#run-state")).to_have_text("stopped", timeout=30_000)
    expect(other.locator("#run-state")).to_have_text("stopped", timeout=30_000)
    assert owner_problems.all() == [] and other_problems.all() == []
