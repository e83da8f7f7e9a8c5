"""The page in a real Chromium (Debian's, driven by Playwright) against the real server: build a small
network in the form, train it live over the WebSocket, pause and resume, draw a digit, reload and reopen the
run, restart the server and reopen it again, and check the phone layout; build conv networks in the layer
builder (sizes and refusals from POST /api/architecture), round-trip the form through its link (old links too)
and check that defaults and bounds are the server's. Every step leaves a screenshot in artifacts/. The page
must log no console error and trigger no Content-Security-Policy violation."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, ViewportSize, expect, sync_playwright

from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Runs before any page script: records CSP violations (they are events, not always console messages) and
# every text the state / progress elements show, so short-lived states ("running" between resume and the
# end of a 3-second run) cannot slip between two polls of the test.
INIT_SCRIPT = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});
window.__seen = {};
const watchText = () => {
  for (const id of ['run-state', 'progress-text']) {
    const node = document.getElementById(id);
    if (!node) continue;
    window.__seen[id] = [];
    new MutationObserver(() => window.__seen[id].push(node.textContent)).observe(node, {
      childList: true, characterData: true, subtree: true,
    });
  }
};
document.addEventListener('DOMContentLoaded', watchText);
"""


class Problems:
    """Console errors, uncaught exceptions and CSP violations of one page."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" or "Content Security Policy" in msg.text:
            self.errors.append(f"console.{msg.type}: {msg.text}")

    def all(self) -> list[str]:
        violations = self.page.evaluate("window.__csp || []") if not self.page.is_closed() else []
        return self.errors + [f"CSP violation: {v}" for v in violations]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests use Debian's Chromium (apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def new_page(browser: Browser, viewport: ViewportSize) -> tuple[Page, Problems]:
    context = browser.new_context(viewport=viewport)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page, Problems(page)


def load(page: Page, url: str) -> float:
    """Open the page and wait until presets and options are in and the form is enabled; returns that time."""
    page.goto(url)
    page.wait_for_selector("html[data-ready=true]")
    expect(page.locator("#form-fields")).to_be_enabled()
    return float(page.evaluate("window.__nnplayReadyMs"))


def record_dialogs(page: Page, accept: bool) -> list[str]:
    """Answer every alert/confirm of the page (accept or dismiss) and keep their messages."""
    seen: list[str] = []

    def handle(dialog: Dialog) -> None:
        seen.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", handle)
    return seen


def wait_js(page: Page, expression: str, timeout: float = 15) -> None:
    """Poll a JS expression until it is truthy. Not Page.wait_for_function: Playwright builds that predicate with
    eval, which this page's CSP (script-src 'self') rightly refuses; page.evaluate goes through the devtools
    protocol and is not subject to it."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {expression}")
        time.sleep(0.1)


def shot(page: Page, artifacts: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(artifacts / name), full_page=full_page)


def coloured_pixels(page: Page, selector: str) -> int:
    """Pixels of a canvas whose red, green and blue differ (an overlay's colour, not the grey digit)."""
    return int(
        page.evaluate(
            """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d')
                  .getImageData(0, 0, c.width, c.height).data; let n = 0;
                  for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - d[i + 2]) > 30) n++; return n; }""",
            selector,
        )
    )


def canvas_ink(page: Page, selector: str) -> int:
    """How many pixels of a canvas are not blank (not transparent and not white)."""
    return int(
        page.evaluate(
            """(sel) => {
              const c = document.querySelector(sel);
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] > 0 && (d[i] < 230 || d[i + 1] < 230 || d[i + 2] < 230)) n++;
              }
              return n;
            }""",
            selector,
        )
    )


def draw_seven(page: Page) -> None:
    """A '7' with the mouse: the top bar, then the diagonal down to the bottom left."""
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.28 * w, y0 + 0.22 * h)
    page.mouse.down()
    page.mouse.move(x0 + 0.72 * w, y0 + 0.22 * h, steps=12)
    page.mouse.move(x0 + 0.45 * w, y0 + 0.82 * h, steps=16)
    page.mouse.up()


def draw_small_seven(page: Page) -> None:
    """The same 7, about 45 px tall on the 280 px pad (1/6 of it), with the page's 20 px pen."""
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x0, y0, w, h = box["x"] + 0.4 * box["width"], box["y"] + 0.4 * box["height"], box["width"], box["height"]
    k = 45 / 280 / 0.6  # the large 7 spans 0.6 of the pad's height
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 0.44 * w * k, y0, steps=8)
    page.mouse.move(x0 + 0.17 * w * k, y0 + 0.6 * h * k, steps=8)
    page.mouse.up()


def test_build_train_draw_reload(browser: Browser, live_server: LiveServer, artifacts_dir: Path) -> None:
    started = time.monotonic()
    page, problems = new_page(browser, DESKTOP)
    ready_ms = load(page, live_server.url)
    shot(page, artifacts_dir, "01-loaded-1280.png")
    expect(page.locator("#health")).to_contain_text("MNIST ready")

    # ---- build: a small network through the form --------------------------------------------------
    page.select_option("#f-preset", "quick")
    page.fill("#f-name", "browser-test")
    layers = page.locator("#layers li.layer")
    while layers.count() > 1:
        layers.last.locator("button[data-remove]").click()
    if layers.count() == 0:
        page.click("#add-layer")
    page.locator("#layers [data-k=units]").first.fill("32")
    page.select_option("#f-optimizer", "adam")
    page.fill("#f-learning_rate", "0.002")
    page.fill("#f-batch_size", "8")  # 625 batches an epoch: long enough for progress messages
    page.fill("#f-train_subset", "5000")
    # an invalid value is caught in the form: inline message, Start disabled
    page.fill("#f-epochs", "0")
    expect(page.locator("#e-epochs")).to_contain_text("at least 1")
    expect(page.locator("#btn-start")).to_be_disabled()
    page.fill("#f-epochs", "4")
    expect(page.locator("#e-epochs")).to_be_empty()
    # a legal but bad choice gets a warning, and Start stays enabled
    page.fill("#f-learning_rate", "2")
    expect(page.locator("#warnings")).to_contain_text("Adam")
    expect(page.locator("#btn-start")).to_be_enabled()
    page.fill("#f-learning_rate", "0.002")
    expect(page.locator("#warnings")).to_be_empty()
    # 784*32+32 + 32*10+10
    expect(page.locator("#param-count")).to_have_text("25,450")
    expect(page.locator("#f-preset")).to_have_value("custom")
    wait_js(page, "location.hash.includes('layers=dense:32:relu:0')")
    shot(page, artifacts_dir, "02-form-1280.png")

    # ---- train: start, pause at once (the trainer honours it before its first batch), resume --------
    page.click("#btn-start")
    expect(page.locator("#run-title")).to_have_text("browser-test")
    expect(page.locator("#btn-pause")).to_be_enabled()
    page.click("#btn-pause")
    expect(page.locator("#run-state")).to_have_text("paused", timeout=30_000)
    expect(page.locator("#btn-resume")).to_be_enabled()
    shot(page, artifacts_dir, "03-paused-1280.png", full_page=False)
    page.click("#btn-resume")
    expect(page.locator("#run-state")).to_have_text("finished", timeout=60_000)
    states = page.evaluate("window.__seen['run-state']")
    assert "running" in states[states.index("paused") :], states
    progress_texts = page.evaluate("window.__seen['progress-text']")
    assert any(t.startswith("epoch 1/4") for t in progress_texts), progress_texts
    assert any(re.search(r"batch \d+/625", t) for t in progress_texts), "no progress message reached the page"
    expect(page.locator("#progress-text")).to_have_text("finished · epoch 4/4")
    expect(page.locator("#run-summary")).to_contain_text("After epoch 4/4")

    # live charts: uPlot canvases, 4 epoch points and the per-batch loss points of the progress messages
    assert page.locator("#chart-loss canvas").count() >= 1
    assert page.locator("#chart-acc canvas").count() >= 1
    assert page.evaluate("window.__nnplay.watcher.charts.epochs.length") == 4
    assert page.evaluate("window.__nnplay.watcher.charts.bx.length") >= 1
    # histograms: 2 dense layers x (weights, biases, gradients), each drawn
    expect(page.locator("#histograms canvas.hist-canvas")).to_have_count(6)
    assert canvas_ink(page, "#histograms canvas.hist-canvas") > 100
    # first-layer filters (32 units -> a 6x6 grid), confusion matrix and misclassified digits
    assert page.evaluate("document.getElementById('filters').width") == 6 * 29 - 1
    expect(page.locator("#confusion tbody td")).to_have_count(100)
    assert page.locator("#misclassified figure").count() > 0
    expect(page.locator("#misclassified figcaption").first).to_have_text(re.compile(r"^\d→\d$"))
    shot(page, artifacts_dir, "04-finished-1280.png")

    # ---- draw: no default model on the test server, so the run's own model is picked ---------------
    expect(page.locator("#model-picker option")).to_have_count(1)
    expect(page.locator("#model-note")).to_contain_text("default model")
    draw_seven(page)
    expect(page.locator("#pred-text")).to_have_text(re.compile(r"^Prediction: \d \(\d+% confidence\)$"))
    expect(page.locator("#pred-digit")).to_have_text(re.compile(r"^\d$"))
    expect(page.locator("#pred-bars li")).to_have_count(10)
    assert canvas_ink(page, "#pred-input") > 20, "the 28x28 preview of what the network saw is empty"
    predicted = page.locator("#pred-digit").text_content()
    # why this digit: saliency is the default overlay, coloured over the grey digit; top 3 and one line of text
    expect(page.locator("#top3 li")).to_have_count(3)
    expect(page.locator("#top3 li").first).to_have_text(re.compile(rf"^{predicted}: "))
    expect(page.locator("#explain-text")).to_contain_text("Saliency")
    assert coloured_pixels(page, "#pred-input") > 5, "no saliency overlay on what the network saw"
    page.check("input[name=overlay][value=none]")
    assert coloured_pixels(page, "#pred-input") == 0
    page.check("input[name=overlay][value=integrated_gradients]")
    expect(page.locator("#explain-text")).to_contain_text("Integrated gradients")
    assert coloured_pixels(page, "#pred-input") > 5
    shot(page, artifacts_dir, "05-drawn-1280.png")
    page.click("#btn-clear")
    expect(page.locator("#pred-digit")).to_have_text("?")

    # ---- reload: the URL keeps the config; the run is in the list with its curves -------------------
    page.reload()
    page.wait_for_selector("html[data-ready=true]")
    expect(page.locator("#f-train_subset")).to_have_value("5000")
    expect(page.locator("#layers [data-k=units]").first).to_have_value("32")
    item = page.locator("#run-list li", has_text="browser-test")
    expect(item).to_have_count(1)
    expect(item.locator(".run-config")).to_have_text("784-32-10 relu adam lr 0.002")
    expect(item.locator(".state")).to_have_text("finished")
    expect(item.locator("a[data-role=download]")).to_have_attribute("href", re.compile(r"/api/runs/r[0-9a-f]+/model"))
    item.locator("button[data-role=open]").click()
    expect(page.locator("#run-state")).to_have_text("finished")
    wait_js(page, "window.__nnplay.watcher.charts.epochs.length === 4")
    expect(page.locator("#histograms canvas.hist-canvas")).to_have_count(6)
    shot(page, artifacts_dir, "06-reloaded-1280.png")
    run_id = item.get_attribute("data-id")

    desktop_problems = problems.all()
    page.context.close()

    # ---- phone: one column, nothing wider than the screen ------------------------------------------
    phone, phone_problems = new_page(browser, PHONE)
    load(phone, f"{live_server.url}/#run={run_id}")
    expect(phone.locator("#run-state")).to_have_text("finished")
    wait_js(phone, "window.__nnplay.watcher.charts.epochs.length === 4")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    columns = phone.evaluate("getComputedStyle(document.querySelector('.layout')).gridTemplateColumns")
    assert len(columns.split()) == 1, columns
    shot(phone, artifacts_dir, "07-phone-390.png")
    phone_all = phone_problems.all()
    phone.context.close()

    elapsed = time.monotonic() - started
    metrics = {
        "ready_ms": ready_ms,
        "console_errors": len(desktop_problems) + len(phone_all),
        "predicted_digit_for_drawn_7": predicted,
        "scenario_seconds": round(elapsed, 1),
    }
    (artifacts_dir / "browser-metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nnnplay browser metrics: {metrics}")
    assert not desktop_problems, desktop_problems
    assert not phone_all, phone_all


def train(server: LiveServer, config: dict[str, Any], http: httpx.Client | None = None) -> str:
    """Start a run through the API and wait until it is over; returns its id. Made with `http`, the run's owner is
    whoever holds that client's owner cookie."""
    response = (http or httpx).post(f"{server.url}/api/runs", json=config)
    assert response.status_code == 201, response.text
    run_id = str(response.json()["id"])
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/api/runs/{run_id}").json()["state"] in ("queued", "running", "paused"):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    return run_id


def test_runs_survive_a_server_restart(browser: Browser, live_server: LiveServer, artifacts_dir: Path) -> None:
    """Finished runs come back from the store after a restart (same data dir): open one, overlay two, delete one."""
    small: dict[str, Any] = {"layers": [{"units": 16}], "batch_size": 100, "epochs": 2, "train_subset": 2000}
    script = httpx.Client()  # the runs' owner: the browser gets its owner cookie, so it may delete them
    train(live_server, {**small, "name": "restart-a"}, script)
    train(live_server, {**small, "name": "restart-b", "learning_rate": 0.01, "optimizer": {"name": "momentum"}}, script)
    owner = next(value for name, value in script.cookies.items() if name.startswith("nnplay-owner-"))
    stop_server(live_server)
    again = start_server(live_server.data_dir, live_server.log_path)
    try:
        page, problems = new_page(browser, DESKTOP)
        # the cookie is signed with the data dir's secret: still valid after the restart (named by the new port)
        port = again.url.rsplit(":", 1)[1]
        page.context.add_cookies([{"name": f"nnplay-owner-{port}", "value": owner, "url": again.url}])
        load(page, again.url)
        item_a = page.locator("#run-list li", has_text="restart-a")
        item_b = page.locator("#run-list li", has_text="restart-b")
        expect(item_a.locator(".state")).to_have_text("finished")
        expect(item_b.locator(".run-config")).to_have_text("784-16-10 relu momentum lr 0.01")
        item_a.locator("button[data-role=open]").click()
        expect(page.locator("#run-summary")).to_contain_text("After epoch 2/2")
        wait_js(page, "window.__nnplay.watcher.charts.epochs.length === 2")

        # overlay both runs' curves
        item_a.locator("input[data-role=compare]").check()
        item_b.locator("input[data-role=compare]").check()
        expect(page.locator("#compare-hint")).to_have_text("Comparing 2 runs.")
        expect(page.locator("#chart-compare .u-legend .u-series")).to_have_count(3)  # epoch + 2 runs
        expect(page.locator("#chart-compare .u-legend")).to_contain_text("restart-b")
        page.select_option("#compare-metric", "test_loss")
        expect(page.locator("#chart-compare .u-legend .u-series")).to_have_count(3)
        shot(page, artifacts_dir, "08-after-restart-compare-1280.png")

        # delete, after a confirm dialog
        dialogs = record_dialogs(page, accept=True)
        item_b.locator("button[data-role=delete]").click()
        expect(item_b).to_have_count(0)
        assert dialogs and "restart-b" in dialogs[0], dialogs
        assert [r["name"] for r in httpx.get(f"{again.url}/api/runs").json()] == ["restart-a"]
        assert not problems.all(), problems.all()
        page.context.close()
    finally:
        stop_server(again)


def test_run_name_is_shown_as_text(browser: Browser, live_server: LiveServer) -> None:
    """A run name that looks like HTML stays text in the run list and the run title: no element appears."""
    evil = "<img src=x onerror=alert(1)>"
    config = {"name": evil, "layers": [{"units": 8}], "batch_size": 50, "epochs": 1, "train_subset": 500}
    response = httpx.post(f"{live_server.url}/api/runs", json=config)
    assert response.status_code == 201, response.text
    page, problems = new_page(browser, DESKTOP)
    dialogs = record_dialogs(page, accept=False)
    load(page, live_server.url)
    name = page.locator("#run-list .run-name").first
    expect(name).to_have_text(evil)
    assert page.locator("#run-list img").count() == 0
    page.locator("#run-list button[data-role=open]").first.click()
    expect(page.locator("#run-title")).to_have_text(evil)
    assert page.locator("#run-title img, #chart-compare img").count() == 0
    assert page.locator("img").count() == 1  # the logo only
    assert not dialogs, dialogs
    assert not problems.all(), problems.all()
    page.context.close()


# ---------------------------------------------------------------------------------------------------------------
# The layer builder, the State behind the form, and what the server says about a network


def clear_layers(page: Page) -> None:
    rows = page.locator("#layers li.layer")
    while rows.count():
        rows.first.locator("button[data-remove]").click()
    expect(page.locator("#layers .no-layers")).to_be_visible()


def add_layer(page: Page, layer_type: str) -> None:
    page.select_option("#add-layer-type", layer_type)
    page.click("#add-layer")


def layer_info(page: Page, number: int) -> str:
    return str(page.locator("#layers li.layer").nth(number - 1).locator(".layer-info").text_content())


def form_values(page: Page) -> dict[str, str]:
    """Every input and select of the build form by id (layer rows included), for comparing two pages."""
    return dict(
        page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#build-form input, #build-form select')]
                 .filter((e) => e.id).map((e) => [e.id, e.value]))"""
        )
    )


def test_build_a_conv_network(browser: Browser, live_server: LiveServer, artifacts_dir: Path) -> None:
    """conv 4@3x3 -> maxpool 2 -> dense 10: every row shows the shape, parameters and multiply-adds that
    POST /api/architecture gives for the same layers, and every layer input is labelled with its layer number."""
    page, problems = new_page(browser, DESKTOP)
    load(page, live_server.url)
    clear_layers(page)
    add_layer(page, "conv2d")
    page.get_by_label("Layer 1 Filters").fill("4")
    expect(page.get_by_label("Layer 1 Kernel")).to_have_value("3")  # the schema's default
    add_layer(page, "maxpool2d")
    add_layer(page, "dense")
    page.get_by_label("Layer 3 Units").fill("10")
    layers = [
        {"type": "conv2d", "filters": 4, "kernel": 3, "stride": 1, "padding": "same", "activation": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "dense", "units": 10, "activation": "relu", "dropout": 0},
    ]
    answer = httpx.post(f"{live_server.url}/api/architecture", json={"layers": layers}).json()
    expect(page.locator("#param-count")).to_have_text(f"{answer['parameters']:,}")
    assert answer["layers"][1]["output_shape"] == [14, 14, 4]
    expect(page.locator("#layers li.layer").nth(0).locator(".layer-info")).to_contain_text("28×28×4")
    expect(page.locator("#layers li.layer").nth(1).locator(".layer-info")).to_have_text(
        re.compile(r"^14×14×4 · 0 params · 0 MACs$")
    )
    conv = answer["layers"][0]
    assert layer_info(page, 1) == f"28×28×4 · {conv['parameters']:,} params · {conv['macs'] / 1000:.3g}k MACs"
    expect(page.locator("#output-info")).to_contain_text(f"{answer['layers'][-1]['parameters']:,} params")
    expect(page.locator("#btn-start")).to_be_enabled()
    # every layer input is named after its layer, not just "Units"
    names = page.evaluate(
        """() => [...document.querySelectorAll('#layers [data-k]')].map((e) => e.labels[0].textContent)"""
    )
    assert names and all(re.match(r"^Layer [1-3] \w", n) for n in names), names
    shot(page, artifacts_dir, "10-conv-builder-1280.png", full_page=False)
    page.locator("#build").screenshot(path=str(artifacts_dir / "10-conv-builder-panel-1280.png"))

    # a config with conv layers (the coming `cnn` preset's shape) renders from the State, sizes and all
    cnn = [
        {"type": "conv2d", "filters": 8, "kernel": 5},
        {"type": "maxpool2d", "size": 2},
        {"type": "conv2d", "filters": 16, "kernel": 5},
        {"type": "maxpool2d"},
    ]
    page.evaluate("(layers) => window.__nnplay.form.setConfig({ layers })", cnn)
    expect(page.locator("#layers li.layer")).to_have_count(4)
    expect(page.get_by_label("Layer 3 Filters")).to_have_value("16")
    expect(page.locator("#layers li.layer").nth(3).locator(".layer-info")).to_contain_text("7×7×16")
    assert not problems.all(), problems.all()
    page.context.close()

    phone, phone_problems = new_page(browser, PHONE)
    load(phone, live_server.url)
    phone.evaluate("(layers) => window.__nnplay.form.setConfig({ layers })", cnn)
    expect(phone.locator("#layers li.layer").nth(3).locator(".layer-info")).to_contain_text("7×7×16")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.locator("#build").screenshot(path=str(artifacts_dir / "11-conv-builder-390.png"))
    assert not phone_problems.all(), phone_problems.all()
    phone.context.close()


def test_server_explains_a_network_that_cannot_work(browser: Browser, live_server: LiveServer) -> None:
    """A conv layer after a dense layer: the server's reason shows next to that row and Start is disabled
    until the layers are put in an order that works. Rules between fields are the server's, not the page's."""
    page, problems = new_page(browser, DESKTOP)
    load(page, live_server.url)
    clear_layers(page)
    add_layer(page, "dense")
    add_layer(page, "conv2d")
    second = page.locator("#layers li.layer").nth(1)
    expect(second.locator(".err")).to_contain_text("put convolution and pooling layers before dense layers")
    expect(second.locator(".err")).to_contain_text("layer 2 (conv2d)")
    expect(page.locator("#btn-start")).to_be_disabled()
    expect(page.locator("#param-count")).to_have_text("–")
    page.get_by_role("button", name="Move layer 2 up").click()
    expect(page.locator("#layers li.layer .err")).to_have_count(2)
    for err in page.locator("#layers li.layer .err").all():
        expect(err).to_be_empty()
    expect(page.locator("#layers li.layer").first.locator(".layer-name")).to_have_text("1 · Convolution")
    expect(page.locator("#btn-start")).to_be_enabled()

    # cross-entropy needs a softmax or sigmoid output: the server says so; the page has no copy of the rule
    page.select_option("#f-output_activation", "linear")
    expect(page.locator("#e-params")).to_contain_text("cross_entropy needs a softmax or sigmoid output")
    expect(page.locator("#btn-start")).to_be_disabled()
    page.select_option("#f-loss", "mse")
    expect(page.locator("#e-params")).to_be_empty()
    expect(page.locator("#btn-start")).to_be_enabled()
    # a limit of this server: 28x28x64 into 2048 units is far over max_parameters
    page.get_by_label("Layer 1 Filters").fill("64")
    page.get_by_label("Layer 2 Units").fill("2048")
    expect(page.locator("#e-params")).to_contain_text("exceeds the limit max_parameters")
    expect(page.locator("#btn-start")).to_be_disabled()
    page.get_by_label("Layer 2 Units").fill("16")
    expect(page.locator("#e-params")).to_be_empty()
    expect(page.locator("#btn-start")).to_be_enabled()
    # Chromium logs every 4xx answer as a console error; here the 422s of /api/architecture are the point
    refused = "Failed to load resource: the server responded with a status of 422"
    assert [p for p in problems.all() if refused not in p] == [], problems.all()
    page.context.close()


def test_link_round_trip_and_old_links(browser: Browser, live_server: LiveServer) -> None:
    """Set fields, copy the link, open it in a fresh page: the same form. A link in the format from before
    typed layers (#config=<base64url JSON>) still opens, and the rest of its fields get their defaults."""
    page, problems = new_page(browser, DESKTOP)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    load(page, live_server.url)
    page.fill("#f-name", "round trip, 1+1 & more")
    clear_layers(page)
    add_layer(page, "conv2d")
    page.get_by_label("Layer 1 Filters").fill("6")
    page.get_by_label("Layer 1 Kernel").fill("5")
    page.get_by_label("Layer 1 Stride").fill("2")
    page.get_by_label("Layer 1 Padding").select_option("valid")
    add_layer(page, "avgpool2d")
    add_layer(page, "batchnorm")
    add_layer(page, "dense")
    page.get_by_label("Layer 4 Units").fill("20")
    page.get_by_label("Layer 4 Activation").select_option("tanh")
    page.get_by_label("Layer 4 Dropout").fill("0.2")
    page.select_option("#f-optimizer", "momentum")
    page.fill("#f-momentum", "0.8")
    page.fill("#f-learning_rate", "0.03")
    page.select_option("#f-schedule", "step")
    page.fill("#f-step_size", "3")
    page.fill("#f-batch_size", "32")
    page.fill("#f-epochs", "2")
    page.fill("#f-train_subset", "3000")
    expect(page.locator("#layers li.layer").nth(3).locator(".layer-info")).not_to_be_empty()
    before = form_values(page)
    page.click("#btn-copy-link")
    expect(page.locator("#copy-note")).to_contain_text("Link copied")
    link = str(page.evaluate("navigator.clipboard.readText()"))
    assert "layers=conv2d:6:5:2:valid:relu,avgpool2d:2,batchnorm,dense:20:tanh:0.2" in link, link
    assert problems.all() == [], problems.all()
    page.context.close()

    again, again_problems = new_page(browser, DESKTOP)
    load(again, link)
    expect(again.locator("#copy-note")).to_have_text("Settings loaded from the link.")
    expect(again.locator("#layers li.layer").nth(3).locator(".layer-info")).not_to_be_empty()
    assert form_values(again) == before

    # the old format: the whole config as base64url JSON, untyped (dense) layers
    old = {
        "name": "old-link",
        "layers": [{"units": 48, "activation": "tanh", "dropout": 0.1}, {"units": 24}],
        "learning_rate": 0.005,
        "optimizer": {"name": "sgd"},
        "epochs": 2,
        "train_subset": 3000,
    }
    text = base64.urlsafe_b64encode(json.dumps(old).encode()).decode().rstrip("=")
    again.goto(f"{live_server.url}/#config={text}")
    again.reload()
    again.wait_for_selector("html[data-ready=true]")
    expect(again.locator("#f-name")).to_have_value("old-link")
    expect(again.locator("#layers li.layer")).to_have_count(2)
    expect(again.get_by_label("Layer 1 Units")).to_have_value("48")
    expect(again.get_by_label("Layer 1 Activation")).to_have_value("tanh")
    expect(again.get_by_label("Layer 1 Dropout")).to_have_value("0.1")
    expect(again.get_by_label("Layer 2 Units")).to_have_value("24")
    expect(again.locator("#f-optimizer")).to_have_value("sgd")
    expect(again.locator("#f-learning_rate")).to_have_value("0.005")
    expect(again.locator("#f-train_subset")).to_have_value("3000")
    expect(again.locator("#f-batch_size")).to_have_value("128")  # not in the link: the schema's default
    expect(again.locator("#param-count")).to_have_text(f"{784 * 48 + 48 + 48 * 24 + 24 + 24 * 10 + 10:,}")
    # once open, the address is rewritten in the readable format
    wait_js(again, "location.hash.includes('layers=dense:48:tanh:0.1,dense:24:relu:0')")
    assert not again_problems.all(), again_problems.all()
    again.context.close()


def test_defaults_and_bounds_come_from_the_server(browser: Browser, live_server: LiveServer) -> None:
    """A link that names only the layers leaves every other field at its default: the form shows exactly the
    defaults of run_config_schema, and the inputs' bounds are the schema's, capped by the server's limits."""
    options = httpx.get(f"{live_server.url}/api/options").json()
    schema = options["run_config_schema"]
    props = schema["properties"]
    defs = schema["$defs"]
    mnist = next(d for d in httpx.get(f"{live_server.url}/api/datasets").json() if d["name"] == "mnist")
    page, problems = new_page(browser, DESKTOP)
    load(page, f"{live_server.url}/#layers=dense:32")

    def shown(field: str) -> float:
        return float(page.locator(f"#f-{field}").input_value())

    for field in ("learning_rate", "batch_size", "epochs", "l2", "seed"):
        assert shown(field) == props[field]["default"], field
    expect(page.locator("#f-name")).to_have_value(props["name"]["default"])
    expect(page.locator("#f-train_subset")).to_have_value("")  # null: all images
    for field in ("output_activation", "loss", "init"):
        expect(page.locator(f"#f-{field}")).to_have_value(props[field]["default"])
    opt = defs["OptimizerConfig"]["properties"]
    expect(page.locator("#f-optimizer")).to_have_value(opt["name"]["default"])
    assert shown("beta1") == opt["beta1"]["default"] and shown("beta2") == opt["beta2"]["default"]
    expect(page.locator("#f-schedule")).to_have_value(defs["ScheduleConfig"]["properties"]["name"]["default"])
    dense = defs["DenseConfig"]["properties"]
    expect(page.get_by_label("Layer 1 Activation")).to_have_value(dense["activation"]["default"])
    assert float(page.get_by_label("Layer 1 Dropout").input_value()) == dense["dropout"]["default"]
    # a new conv layer gets the conv defaults
    add_layer(page, "conv2d")
    conv = defs["Conv2DConfig"]["properties"]
    for field in ("filters", "kernel", "stride"):
        assert int(page.get_by_label(f"Layer 2 {field.title()}").input_value()) == conv[field]["default"]

    # bounds: the schema's, or the configured limit where that is lower; the training set from /api/datasets
    limits = options["limits"]
    expect(page.locator("#f-epochs")).to_have_attribute("max", str(limits["max_epochs"]))
    expect(page.locator("#f-batch_size")).to_have_attribute("max", str(limits["max_batch_size"]))
    expect(page.locator("#f-train_subset")).to_have_attribute("max", str(mnist["train_size"]))
    expect(page.locator("#f-train_subset")).to_have_attribute("placeholder", f"all {mnist['train_size']:,}")
    expect(page.get_by_label("Layer 1 Units")).to_have_attribute("max", str(limits["max_units"]))
    expect(page.get_by_label("Layer 2 Kernel")).to_have_attribute("max", str(conv["kernel"]["maximum"]))
    expect(page.locator("#f-optimizer option")).to_have_count(len(options["optimizers"]))
    expect(page.locator("#add-layer-type option")).to_have_count(len(options["layer_types"]))
    assert not problems.all(), problems.all()
    page.context.close()


def test_histograms_label_conv_and_batchnorm_layers(browser: Browser, live_server: LiveServer) -> None:
    """Epoch histograms of a conv network (pool layers have none, so layer numbers skip) get one row per layer,
    titled by layer number and type. Fed to the view directly: the conv engine is not on this branch yet."""
    page, problems = new_page(browser, DESKTOP)
    load(page, live_server.url)
    hist = {"edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "counts": [1, 5, 7, 2]}
    layers = [
        {"layer": 0, "type": "conv2d", "shape": [5, 5, 1, 8]},
        {"layer": 2, "type": "batchnorm", "shape": [8]},
        {"layer": 4, "type": "dense", "shape": [392, 10]},
    ]
    history = [
        {"epoch": e, "histograms": [{**h, "weights": hist, "biases": hist, "gradients": hist} for h in layers]}
        for e in (1, 2)
    ]
    page.evaluate("(history) => window.__nnplay.watcher.histograms.setHistory(history)", history)
    titles = page.locator("#histograms h4")
    expect(titles).to_have_text(
        ["Layer 1 · conv2d 5×5×1×8", "Layer 3 · batchnorm 8", "Layer 5 (output) · dense 392×10"]
    )
    expect(page.locator("#histograms canvas.hist-canvas")).to_have_count(9)
    wait_js(page, "window.__nnplay.watcher.histograms.frame === 0")
    assert canvas_ink(page, "#histograms .hist-layer:nth-child(2) canvas.hist-canvas") > 50
    assert not problems.all(), problems.all()
    page.context.close()


def test_train_a_conv_net_see_its_filters_and_maps_then_draw(
    browser: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    """Builds a conv network in the page, trains it on a subset, sees every conv layer's kernels and the feature
    maps of the fixed test digit, then draws a 7 that it reads right, with the drawing's feature maps."""
    page, problems = new_page(browser, DESKTOP)
    load(page, live_server.url)
    config = {
        "name": "small-conv",
        "layers": [
            {"type": "conv2d", "filters": 8, "kernel": 5, "stride": 2},
            {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2},
        ],
        "batch_size": 64,
        "epochs": 2,
        "learning_rate": 0.003,
        "train_subset": 12000,
    }
    page.evaluate("(config) => window.__nnplay.form.setConfig(config)", config)
    expect(page.locator("#btn-start")).to_be_enabled()
    page.click("#btn-start")
    expect(page.locator("#run-state")).to_have_text("finished", timeout=120_000)
    expect(page.locator("#histograms h4").first).to_contain_text("conv2d")
    views = page.locator("#conv-views figure.conv-view")
    expect(views).to_have_count(2)
    expect(views.first.locator("figcaption").first).to_contain_text("Layer 1 · conv2d: 8 filters")
    expect(views.nth(1).locator("figcaption").first).to_contain_text("8 filters × 8 channels")
    expect(views.first.locator("canvas.fmap")).to_have_count(8)
    assert canvas_ink(page, "#conv-views canvas.filters") > 20
    draw_seven(page)
    expect(page.locator("#pred-digit")).to_have_text("7")
    expect(page.locator("#feature-maps canvas.fmap")).to_have_count(16)
    large = np.array(page.evaluate("window.__nnplay.pad.last.input"))
    page.click("#btn-clear")
    draw_small_seven(page)  # sent as strokes and redrawn at MNIST's proportions: read as well as a large one
    expect(page.locator("#pred-digit")).to_have_text("7")
    wait_js(page, "window.__nnplay.pad.last && !window.__nnplay.pad.inFlight")
    small = np.array(page.evaluate("window.__nnplay.pad.last.input"))
    # the network sees the same digit: as an image, the 20 px pen made the small 7's strokes ~3x as thick
    assert abs(small.sum() - large.sum()) < 0.15 * large.sum(), (small.sum(), large.sum())
    page.locator("#conv-views").scroll_into_view_if_needed()
    shot(page, artifacts_dir, "14-conv-views-1280.png", full_page=False)
    assert not problems.all(), problems.all()
    page.context.close()
