"""What a newcomer stumbled on, each checked in a real Chromium against the real server: the first visit, the
wording, the health line, the ended and diverged runs, deleting, the filter grid, the run list and compare, the
model picker and upload, keyboard drawing (a random MNIST test digit), drawings that are not digits, and the
accessibility of the canvases and charts (names, latest values in the legends, tables, forced colours)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.conftest import LiveServer, make_data_dir, start_server, stop_server
from tests.frontend.test_browser import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    canvas_ink,
    load,
    new_page,
    record_dialogs,
    shot,
    train,
    wait_js,
)

pytestmark = pytest.mark.browser

SMALL: dict[str, Any] = {"layers": [{"units": 16}], "batch_size": 100, "epochs": 2, "train_subset": 2000}
# long enough to still be training when the test looks; the test stops it
# 600 batches an epoch, ~0.5 s or more each: progress messages (every 0.33 s) show between epochs; minutes in all
LONG: dict[str, Any] = {"layers": [{"units": 64}], "batch_size": 10, "epochs": 200, "train_subset": 6000}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, as test_browser.py's `browser` fixture launches it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


CLIENTS: dict[str, httpx.Client] = {}


def api(server: LiveServer) -> httpx.Client:
    """One client, so one owner cookie, per server: the runs a test starts are its own, and the pages it opens
    share that identity (page_for), so the page may stop and delete them as their owner."""
    if server.url not in CLIENTS:
        CLIENTS[server.url] = httpx.Client(base_url=server.url, timeout=30)
        CLIENTS[server.url].get("/api/health")  # the first answer sets the owner cookie
    return CLIENTS[server.url]


def page_for(browser: Browser, viewport: ViewportSize, server: LiveServer) -> tuple[Page, Any]:
    page, problems = new_page(browser, viewport)
    cookies = api(server).cookies
    page.context.add_cookies([{"name": name, "value": value, "url": server.url} for name, value in cookies.items()])
    return page, problems


def post_run(server: LiveServer, config: dict[str, Any]) -> str:
    response = api(server).post("/api/runs", json=config)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stop_all(server: LiveServer) -> None:
    for run in api(server).get("/api/runs").json():
        if run["state"] in ("queued", "running", "paused"):
            api(server).post(f"/api/runs/{run['id']}/stop")


def in_viewport(page: Page, selector: str) -> bool:
    """The element's centre is inside the window and it is the element found there (not covered)."""
    return bool(
        page.evaluate(
            """(sel) => { const e = document.querySelector(sel); const r = e.getBoundingClientRect();
                 const x = r.left + r.width / 2, y = r.top + r.height / 2;
                 if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
                 const hit = document.elementFromPoint(x, y); return hit === e || e.contains(hit); }""",
            selector,
        )
    )


# ---------------------------------------------------------------------------------------------------- first visit


def test_first_visit_shows_the_default_model_training_and_start_in_reach(
    chromium: Browser, tmp_path: Path, mnist_source: Path, artifacts_dir: Path
) -> None:
    """Item 1: a server training its default model; a first visit (no link) opens that run, live, and the Start
    button is on screen without scrolling at 1280x800 and 390x844."""
    server = start_server(
        make_data_dir(tmp_path, mnist_source), tmp_path / "server.log", {"NNPLAY_TRAIN_DEFAULT_MODEL": "1"}
    )
    try:
        deadline = time.monotonic() + 20
        while not api(server).get("/api/health").json()["default_model_run"]:
            assert time.monotonic() < deadline, "the default model did not start training"
            time.sleep(0.2)
        for viewport, name in ((DESKTOP, "first-visit-1280.png"), (PHONE, "first-visit-390.png")):
            page, problems = page_for(chromium, viewport, server)
            load(page, server.url)
            expect(page.locator("#run-title")).to_have_text("default model")
            expect(page.locator("#run-state")).to_have_text(re.compile(r"^(running|queued)$"))
            expect(page.locator("#progress-text")).to_contain_text("batch", timeout=30_000)
            assert in_viewport(page, "#btn-start"), f"Start is not reachable without scrolling at {viewport}"
            shot(page, artifacts_dir, name, full_page=False)
            assert not problems.all(), problems.all()
            page.context.close()
    finally:
        stop_all(server)
        stop_server(server)


def test_idle_hint_fits_phone_and_desktop(chromium: Browser, live_server: LiveServer) -> None:
    """Item 2: the empty Train panel does not send a phone user "to the left" (the form is above there)."""
    for viewport in (DESKTOP, PHONE):
        page, problems = page_for(chromium, viewport, live_server)
        load(page, live_server.url)
        hint = page.locator("#run-hint")
        expect(hint).to_contain_text("Build form")
        assert "left" not in str(hint.text_content())
        assert not problems.all(), problems.all()
        page.context.close()


def test_health_line_follows_runs_started_elsewhere(chromium: Browser, live_server: LiveServer) -> None:
    """Item 3: runs started after the page loaded show up in the health line, and it keeps up while they train."""
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    expect(page.locator("#health")).not_to_contain_text("training")
    ids = [post_run(live_server, {**LONG, "name": f"long-{i}"}) for i in range(3)]
    try:
        health = page.locator("#health")
        expect(health).to_contain_text("2 training · 1 queued", timeout=13_000)
        api(live_server).post(f"/api/runs/{ids[2]}/stop")  # the queued one
        expect(health).not_to_contain_text("queued", timeout=4_000)
        expect(health).to_contain_text("2 training")
    finally:
        stop_all(live_server)
    assert not problems.all(), problems.all()
    page.context.close()


# ---------------------------------------------------------------------------------------------- while and after


def test_a_stopped_run_says_how_it_ended(chromium: Browser, live_server: LiveServer) -> None:
    """Item 5: after Stop the progress line says the run was stopped, not the last batch and the time left."""
    post_run(live_server, {**LONG, "name": "to-stop"})
    page, problems = page_for(chromium, DESKTOP, live_server)
    try:
        load(page, live_server.url)  # a first visit opens the run that is training
        expect(page.locator("#run-title")).to_have_text("to-stop")
        expect(page.locator("#progress-text")).to_contain_text("left", timeout=20_000)
        page.click("#btn-stop")
        expect(page.locator("#run-state")).to_have_text("stopped", timeout=20_000)
        text = page.locator("#progress-text")
        ended = r"^stopped( during epoch \d+/200 \(batch \d+/600\))? · (\d+ of 200 epochs|no epoch) complete$"
        expect(text).to_have_text(re.compile(ended))
        time.sleep(1)
        assert "left" not in str(text.text_content())
    finally:
        stop_all(live_server)
    assert not problems.all(), problems.all()
    page.context.close()


def test_a_diverged_adam_run_gets_advice_that_fits_and_its_charts_explained(
    chromium: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    """Item 6: preset quick at learning rate 10 with Adam diverges in its first epoch: the page does not tell an
    Adam run to try Adam, nor say weights were kept when no model was; the charts draw the per-batch losses it
    received, or say why there is nothing to draw, and after a reload say that only epochs are stored."""
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    page.select_option("#f-preset", "quick")
    page.select_option("#f-optimizer", "adam")
    page.fill("#f-learning_rate", "10")
    page.click("#btn-start")
    expect(page.locator("#run-state")).to_have_text("diverged", timeout=30_000)
    hint = page.locator("#run-hint")
    expect(hint).to_contain_text("Adam usually wants 0.001–0.005")
    expect(hint).to_contain_text(re.compile("no model was kept", re.I))
    assert str(hint.text_content()).lower().count("no model was kept") == 1
    assert "try Adam" not in str(hint.text_content())
    assert "weights were kept" not in str(hint.text_content())
    expect(page.locator("#progress-text")).to_contain_text("diverged")
    batch_points = page.evaluate("window.__nnplay.watcher.charts.bx.length")
    note = page.locator("#chart-note")
    if batch_points:
        expect(note).to_contain_text("per-batch loss this page received live")
    else:
        expect(note).to_contain_text("Nothing to draw")
    shot(page, artifacts_dir, "diverged-1280.png", full_page=False)
    page.reload()
    page.wait_for_selector("html[data-ready=true]")
    expect(page.locator("#run-state")).to_have_text("diverged")
    expect(note).to_contain_text("Only finished epochs are kept")
    assert not problems.all(), problems.all()
    page.context.close()


def test_deleting_the_open_run_keeps_the_notice(chromium: Browser, live_server: LiveServer) -> None:
    """Item 7: "That run was deleted." stays in the Train panel after deleting the open run."""
    train(live_server, {**SMALL, "name": "to-delete"}, http=api(live_server))
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    item = page.locator("#run-list li", has_text="to-delete")
    item.locator("button[data-role=open]").click()
    expect(page.locator("#run-state")).to_have_text("finished")
    record_dialogs(page, accept=True)
    item.locator("button[data-role=delete]").click()
    expect(item).to_have_count(0)
    expect(page.locator("#run-hint")).to_contain_text("That run was deleted.")
    time.sleep(1.5)
    expect(page.locator("#run-hint")).to_contain_text("That run was deleted.")
    assert not problems.all(), problems.all()
    page.context.close()


def test_filter_grid_says_how_many_units_it_shows(chromium: Browser, live_server: LiveServer) -> None:
    """Item 8: 100 first-layer units, 64 drawn: the caption says "first 64 of 100 units"."""
    run_id = train(
        live_server, {**SMALL, "layers": [{"units": 100}], "epochs": 1, "name": "wide"}, http=api(live_server)
    )
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, f"{live_server.url}/#run={run_id}")
    expect(page.locator("#filters-note")).to_have_text("(first 64 of 100 units)")
    assert not problems.all(), problems.all()
    page.context.close()


# ----------------------------------------------------------------------------------------------------------- runs


def test_compare_is_labelled_zoomed_and_says_what_differs(chromium: Browser, live_server: LiveServer) -> None:
    """Item 9: the compare box has a visible label; the compare chart's y axis fits the curves; the settings
    that differ between the compared runs are listed."""
    ids = [
        train(live_server, {**SMALL, "epochs": 3, "name": "cmp-a", "learning_rate": 0.002}),
        train(
            live_server,
            {**SMALL, "epochs": 3, "name": "cmp-b", "learning_rate": 0.01, "optimizer": {"name": "momentum"}},
        ),
    ]
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    for name in ("cmp-a", "cmp-b"):
        item = page.locator("#run-list li", has_text=name)
        label = item.locator("label.compare-label")
        expect(label).to_be_visible()
        expect(label).to_contain_text("compare")
        box = label.bounding_box()
        assert box and box["width"] > 20 and box["height"] > 8, box
        label.click()  # the label ticks its box
        expect(item.locator("input[data-role=compare]")).to_be_checked()
    expect(page.locator("#compare-hint")).to_have_text("Comparing 2 runs.")
    diff = page.locator("#compare-diff")
    # newest first, as in the list
    expect(diff).to_contain_text("(cmp-b / cmp-a)")
    expect(diff).to_contain_text("learning rate: 0.01 / 0.002")
    expect(diff).to_contain_text("optimizer: momentum / adam")
    assert "momentum: 0.9" not in str(diff.text_content())
    assert "epochs" not in str(diff.text_content())
    wait_js(page, "window.__nnplay.runs.chart.chart?.plot.series.length === 3")
    accs = [100 * h["test_accuracy"] for i in ids for h in api(live_server).get(f"/api/runs/{i}").json()["history"]]
    lo, hi = min(accs), max(accs)
    y = page.evaluate("(() => { const s = window.__nnplay.runs.chart.chart.plot.scales.y; return [s.min, s.max]; })()")
    room = 0.2 * (hi - lo) + 0.5
    assert lo - room <= y[0] <= lo and hi <= y[1] <= hi + room, (y, lo, hi)
    assert not problems.all(), problems.all()
    page.context.close()


def test_edited_presets_get_their_own_names_and_enter_does_not_start(
    chromium: Browser, live_server: LiveServer
) -> None:
    """Item 9: a run from an edited preset is named by what changed, a repeat is numbered; Enter in a number
    field does not start a run."""
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    page.select_option("#f-preset", "quick")
    page.fill("#f-learning_rate", "0.01")
    page.locator("#f-epochs").focus()
    page.keyboard.press("Enter")
    page.locator("#layers [data-k=units]").first.press("Enter")
    time.sleep(1)
    assert api(live_server).get("/api/runs").json() == [], "Enter in a field started a run"
    try:
        page.click("#btn-start")
        expect(page.locator("#run-title")).to_have_text("quick · lr 0.01")
        page.click("#btn-start")
        expect(page.locator("#run-title")).to_have_text("quick · lr 0.01 #2")
        page.select_option("#f-preset", "quick")
        page.click("#btn-start")
        expect(page.locator("#run-title")).to_have_text("quick")
    finally:
        stop_all(live_server)
    names = sorted(r["name"] for r in api(live_server).get("/api/runs").json())
    assert names == ["quick", "quick · lr 0.01", "quick · lr 0.01 #2"], names
    assert not problems.all(), problems.all()
    page.context.close()


def test_near_chance_models_are_flagged_and_a_model_can_be_uploaded(
    chromium: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    """Item 9: a model at about 10% is offered with a warning; an .npz file can be uploaded from the page."""
    poor = train(
        live_server,
        {
            **SMALL,
            "epochs": 1,
            "name": "poor",
            "optimizer": {"name": "sgd"},
            "learning_rate": 1e-6,
            "train_subset": 500,
        },
    )
    accuracy = api(live_server).get(f"/api/runs/{poor}").json()["test_accuracy"]
    assert accuracy < 0.2, accuracy
    model = tmp_path / "mine.npz"
    model.write_bytes(api(live_server).get(f"/api/runs/{poor}/model").content)
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    expect(page.locator("#model-picker option", has_text="poor")).to_contain_text("near chance")
    expect(page.locator("#model-note")).to_contain_text("about what guessing gets")
    page.set_input_files("#model-upload", str(model))
    expect(page.locator("#model-note")).to_contain_text("Uploaded “mine”")
    expect(page.locator("#model-picker option:checked")).to_contain_text("mine (uploaded)")
    assert [m["source"] for m in api(live_server).get("/api/models").json()].count("upload") == 1
    assert not problems.all(), problems.all()
    page.context.close()


def test_phone_run_list_grows_with_the_page(chromium: Browser, live_server: LiveServer) -> None:
    """Item 9: on a phone the run list does not scroll inside the scrolling page (it cut rows in two)."""
    page, problems = page_for(chromium, PHONE, live_server)
    load(page, live_server.url)
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.getElementById('run-list'));"
        " return [s.maxHeight, s.overflowY]; })()"
    )
    assert style == ["none", "visible"], style
    assert not problems.all(), problems.all()
    page.context.close()


# -------------------------------------------------------------------------------------------------------- drawing


def test_keyboard_users_can_try_a_real_test_digit(chromium: Browser, live_server: LiveServer) -> None:
    """Item 10: "Try a random test digit" (keyboard only) shows an MNIST test digit with its true label, and the
    network's answer for it, right or wrong."""
    train(live_server, {**SMALL, "name": "reader"}, http=api(live_server))
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    expect(page.locator("#model-picker option")).to_have_count(1)
    page.focus("#btn-sample")
    page.keyboard.press("Enter")
    note = page.locator("#sample-note")
    expect(note).to_have_text(re.compile(r"^MNIST test digit #\d+; its true label is \d\.$"))
    label = re.search(r"label is (\d)", str(note.text_content()))
    assert label
    expect(page.locator("#pred-text")).to_have_text(
        re.compile(rf"^Prediction: \d \(\d+% confidence\) · (right|wrong): the true label is {label.group(1)}$")
    )
    assert canvas_ink(page, "#pad") > 500, "the test digit is not shown on the pad"
    assert canvas_ink(page, "#pred-input") > 20
    assert not problems.all(), problems.all()
    page.context.close()


def stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """One pointer stroke through points given as fractions of the pad (a single point is a tap: a dot)."""
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_a_drawing_that_is_no_digit_is_called_so(
    chromium: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    """Item 11: a dot, a horizontal line and a dense scribble are flagged as unlike any MNIST digit (ink share or
    bounding box outside the range of all 70,000), with the entropy of the answer; a drawn 7 and a real test
    digit are not flagged."""
    from tests.frontend.test_browser import draw_seven

    train(live_server, {**SMALL, "name": "reader"}, http=api(live_server))
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, live_server.url)
    expect(page.locator("#model-picker option")).to_have_count(1)
    doubt = page.locator("#pred-doubt")
    unsure = re.compile(r"Uncertainty: \d\.\d\d of at most 3\.32 bits")
    shapes = {
        "dot": [(0.5, 0.5)],
        "line": [(0.15, 0.5), (0.85, 0.5)],
        "scribble": [(0.3 + 0.4 * (i % 2), 0.3 + 0.4 * i / 16) for i in range(17)],
    }
    for name, points in shapes.items():
        page.click("#btn-clear")
        stroke(page, points)
        expect(doubt).to_contain_text("can only answer 0–9", timeout=10_000)
        expect(doubt).to_contain_text(unsure)
        expect(doubt).to_have_class(re.compile("far"))
        if name == "line":
            expect(doubt).to_contain_text("times as wide as tall")
            shot(page, artifacts_dir, "not-a-digit-line-1280.png", full_page=False)
    page.click("#btn-clear")
    expect(doubt).to_be_empty()
    draw_seven(page)
    expect(doubt).to_contain_text(unsure)
    expect(doubt).not_to_contain_text("can only answer")
    page.click("#btn-sample")
    expect(page.locator("#pred-text")).to_contain_text("true label")
    expect(doubt).to_contain_text(unsure)
    expect(doubt).not_to_contain_text("can only answer")
    assert not problems.all(), problems.all()
    page.context.close()


# -------------------------------------------------------------------------------------------------- accessibility


def test_canvases_and_charts_can_be_read_without_a_mouse(
    chromium: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    """Item 12: the drawing pad has a role and a name; the chart legends show the newest values without a hover;
    every chart's numbers are in a table under it."""
    run_id = train(live_server, {**SMALL, "name": "readable"}, http=api(live_server))
    page, problems = page_for(chromium, DESKTOP, live_server)
    load(page, f"{live_server.url}/#run={run_id}")
    expect(page.get_by_role("application", name=re.compile("^Drawing area"))).to_have_count(1)
    wait_js(page, "window.__nnplay.watcher.charts.epochs.length === 2")
    acc_values = page.locator("#chart-acc .u-legend .u-value")
    expect(acc_values.nth(1)).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    expect(acc_values.nth(2)).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    expect(acc_values.nth(0)).to_have_text("2")
    expect(page.locator("#chart-loss .u-legend .u-value").nth(2)).to_have_text(re.compile(r"^\d\.\d+$"))
    loss_table = page.locator("#chart-loss + details.chart-numbers")
    loss_table.locator("summary").click()
    expect(loss_table.locator("tbody tr")).to_have_count(2)
    expect(loss_table.locator("thead th")).to_have_text(["epoch", "train loss", "test loss"])
    acc_rows = page.locator("#chart-acc + details.chart-numbers tbody tr")
    expect(acc_rows).to_have_count(2)
    expect(acc_rows.nth(1).locator("td").nth(1)).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    page.locator("#run-list li", has_text="readable").locator("input[data-role=compare]").check()
    compare_rows = page.locator("#chart-compare + details.chart-numbers tbody tr")
    expect(compare_rows).to_have_count(2)
    expect(page.locator("#chart-compare + details.chart-numbers thead th").nth(1)).to_have_text("readable")
    shot(page, artifacts_dir, "chart-tables-1280.png", full_page=False)
    assert not problems.all(), problems.all()
    page.context.close()


def test_forced_colours_draw_canvas_text_in_system_colours(
    chromium: Browser, live_server: LiveServer, artifacts_dir: Path
) -> None:
    """Item 12: in forced-colours mode (dark palette) the chart axes and the histogram labels are drawn in
    CanvasText, not in fixed dark greys that vanish on the forced black."""
    run_id = train(live_server, {**SMALL, "name": "contrast"}, http=api(live_server))
    context = chromium.new_context(viewport=DESKTOP, forced_colors="active", color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(15_000)
    load(page, f"{live_server.url}/#run={run_id}")
    wait_js(page, "window.__nnplay.watcher.charts.epochs.length === 2")
    canvas_text = page.evaluate(
        """(() => { const s = document.createElement('span'); document.body.append(s); s.style.color = 'CanvasText';
             const c = getComputedStyle(s).color; s.remove(); return c; })()"""
    )
    rgb = [int(v) for v in re.findall(r"\d+", canvas_text)[:3]]
    assert min(rgb) > 180, f"expected a light CanvasText in the dark forced palette, got {canvas_text}"
    stroke = page.evaluate(
        "(() => { const u = window.__nnplay.watcher.charts.acc.plot; return u.axes[1].stroke(u, 1); })()"
    )
    assert stroke == canvas_text, stroke
    expect(page.locator("#histograms canvas.hist-canvas")).to_have_count(6)
    light = page.evaluate(
        """(() => { const c = document.querySelector('#histograms canvas.hist-canvas');
             const h = c.height, d = c.getContext('2d').getImageData(0, h - 12, c.width, 12).data; let n = 0;
             for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && Math.min(d[i], d[i + 1], d[i + 2]) > 180) n++;
             return n; })()"""
    )
    assert light > 10, f"histogram labels are not drawn in a light colour ({light} light pixels)"
    page.locator("#histograms").scroll_into_view_if_needed()
    shot(page, artifacts_dir, "forced-colours-1280.png", full_page=False)
    context.close()
