"""The 2-D playground in a real Chromium against the real server: open it from a link, press play and read the
losses the page shows until spiral and circle are learnt (the times are printed), step, reset to the same
initial weights, change the learning rate live, take screenshots of the diagram mid-training at 1280 and 390 px
wide into artifacts/, and drive it by keyboard. No console error, no CSP violation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import LiveServer, start_server, stop_server
from tests.frontend.test_browser import DESKTOP, PHONE, browser, new_page, wait_js  # noqa: F401

pytestmark = pytest.mark.browser

COMMON = "&noise=0&layers=8,8&activation=tanh&optimizer=sgd&learning_rate=0.03&batch_size=10"
SPIRAL = "#mode=2d&problem=classification&dataset=spiral&features=x1,x2,sin_x1,sin_x2" + COMMON
CIRCLE = "#mode=2d&problem=classification&dataset=circle&features=x1,x2" + COMMON


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("play")
    live = start_server(tmp / "data", tmp / "server.log")  # no MNIST needed: the 2-D sets are generated
    yield live
    stop_server(live)


def open_playground(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("html[data-ready=true]")
    wait_js(page, "document.getElementById('p-stepn').textContent === '0' && !!window.__nnplay.playground.frame")


def loss_shown(page: Page) -> float:
    text = page.locator("#p-test-loss").text_content() or "–"
    return float(text) if text not in ("–", "") else float("inf")


def train_until(page: Page, target: float, limit: float = 60) -> float:
    page.click("#p-play")
    started = time.monotonic()
    while loss_shown(page) >= target:
        assert time.monotonic() - started < limit, f"test loss {loss_shown(page)} not below {target}"
        time.sleep(0.05)
    seconds = time.monotonic() - started
    page.click("#p-play")  # pause
    return seconds


def test_spiral_and_circle_learnt_from_the_page(browser: Browser, server: LiveServer, artifacts_dir: Path) -> None:  # noqa: F811
    page, problems = new_page(browser, DESKTOP)
    open_playground(page, server.url + "/" + SPIRAL)
    assert page.locator("#p-columns .node.neuron").count() == 8 + 8 + 1
    assert page.locator("#p-links path").count() == 4 * 8 + 8 * 8 + 8
    # mid-training picture
    page.click("#p-play")
    wait_js(page, "Number(document.getElementById('p-stepn').textContent) > 1500")
    page.screenshot(path=str(artifacts_dir / "playground-spiral-1280.png"), full_page=True)
    page.click("#p-play")
    page.click("#p-reset")
    wait_js(page, "document.getElementById('p-stepn').textContent === '0'")
    spiral_s = train_until(page, 0.05)
    spiral_loss = loss_shown(page)
    print(f"\nspiral: test loss {spiral_loss} shown after {spiral_s:.2f} s of play")

    open_playground(page, server.url + "/" + CIRCLE)
    wait_js(page, "document.querySelectorAll('#p-columns .node.feature.on').length === 2")
    circle_s = train_until(page, 0.02)
    print(f"circle: test loss {loss_shown(page)} shown after {circle_s:.2f} s of play")
    assert not problems.all(), problems.all()
    page.context.close()  # the page deletes its paused run: the server's training slots are free again


def test_step_reset_live_rate_and_the_phone(browser: Browser, server: LiveServer, artifacts_dir: Path) -> None:  # noqa: F811
    page, problems = new_page(browser, DESKTOP)
    open_playground(page, server.url + "/" + SPIRAL)
    first = page.evaluate("window.__nnplay.playground.frame.weights")
    page.click("#p-step")
    wait_js(page, "document.getElementById('p-stepn').textContent === '1'")
    page.click("#p-step")
    wait_js(page, "document.getElementById('p-stepn').textContent === '2'")
    page.click("#p-reset")
    wait_js(page, "document.getElementById('p-stepn').textContent === '0' && !!window.__nnplay.playground.frame")
    assert page.evaluate("window.__nnplay.playground.frame.weights") == first  # same seed, same weights
    page.click("#p-play")
    wait_js(page, "Number(document.getElementById('p-stepn').textContent) > 100")
    page.select_option("#p-learning_rate", "0.1")
    wait_js(page, "window.__nnplay.playground.frame.learning_rate === 0.1")
    assert page.evaluate("window.__nnplay.playground.marks.length") == 1
    wait_js(page, "location.hash.includes('learning_rate=0.1&')")  # the link follows (written 250 ms later)
    page.click("#p-play")
    # a change to the network: a new paused run with 3 hidden layers
    page.click("#p-add-layer")
    wait_js(page, "window.__nnplay.playground.frame && window.__nnplay.playground.frame.neurons.length === 3")
    wait_js(page, "location.hash.includes('layers=8,8,8&')")
    # hover a link: its weight is shown
    page.locator("#p-links path").nth(40).hover(force=True)
    wait_js(page, "document.getElementById('p-hover').textContent.startsWith('Weight')")
    # keyboard: tab to a neuron, its picture shows large
    page.focus("#p-columns .node.neuron")
    assert page.locator("#p-zoom").is_visible()

    assert not problems.all(), problems.all()
    page.context.close()
    phone, phone_problems = new_page(browser, PHONE)
    open_playground(phone, server.url + "/" + SPIRAL)
    phone.click("#p-play")
    wait_js(phone, "Number(document.getElementById('p-stepn').textContent) > 1500")
    phone.screenshot(path=str(artifacts_dir / "playground-spiral-390.png"), full_page=True)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width} px"
    phone.click("#p-play")
    assert not phone_problems.all(), phone_problems.all()
    phone.context.close()
