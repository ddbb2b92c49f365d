"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against the app
served by uvicorn on a free local port. An operator logs in, sees a weapon alert arrive live
(with its beep), opens it, toggles the boxes, confirms it, clears another, exports the
incident report, finds both in the history; an engineer finds them in the audit log; the
operator switches to Vietnamese. Screenshots go to tests/artifacts/dashboard/; with
DASHBOARD_DOC_SHOTS=1 the ones the docs show are copied to docs/dashboard/ too (a plain test
run leaves the docs alone)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from dashboard_world import PASSWORD, add_parcel, make_store

from edge.dashboard.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts" / "dashboard"
DOCS = ROOT / "docs" / "dashboard"
DOC_SHOTS = ("login-en", "alerts-en", "parcel-en", "history-en", "audit-en", "stats-en",
             "report-en", "alerts-vi", "parcel-vi", "login-vi")
# Counts the beeps: each beep makes oscillators through the Web Audio API.
COUNT_BEEPS = """
window.__tones = 0;
const make = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.__tones++; return make.call(this); };
"""

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def report_health(store) -> None:
    """The line's components report in, healthy, as the live loop does each second."""
    now = time.time()
    for component, ok, detail in (
            ("scanner", True, {"type": "sim", "capturing": True, "last_block_s": 0.02}),
            ("detector", True, {"name": "parcelnet", "queue": 0, "detect_p50_ms": 31.5}),
            ("plc", True, {"type": "serial", "last_heard_s": 0.08, "commands_lost": 0,
                           "unacked": 0}),
            ("store", True, {"backlog": 0, "parcels": 6, "failures": 0})):
        store.set_health(component, ok, detail, at=now)


@pytest.fixture
def served(tmp_path):
    store = make_store(tmp_path / "store")
    report_health(store)
    now = time.time()
    ids = [add_parcel(store, seq, threat=seq != 3, at=now - 40 * (7 - seq))
           for seq in range(1, 6)]
    server = uvicorn.Server(uvicorn.Config(create_app(store, zone="Asia/Ho_Chi_Minh"),
                                           host="127.0.0.1", port=free_port(),
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield store, f"http://127.0.0.1:{server.config.port}", ids
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: "
                    "apt-get install chromium (make browser)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox",
                                                    "--autoplay-policy=no-user-gesture-required"])
        yield chromium
        chromium.close()


def wait_for(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll ``expression`` from here: Playwright's own wait_for_function evaluates its
    predicate with eval() in the page, which the dashboard's CSP (rightly) forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s:g} s: {expression}"
        time.sleep(0.05)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(f"{base}/")


def test_an_operator_reviews_alerts_end_to_end(served, browser):
    store, base, ids = served
    context = browser.new_context(viewport={"width": 1600, "height": 1000},
                                  locale="en-GB", timezone_id="Asia/Ho_Chi_Minh")
    context.add_init_script(COUNT_BEEPS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{base}/login")
    shoot(page, "login-en")
    log_in(page, base, "olga")
    page.wait_for_selector("#live.on")
    page.click("#sound")

    # A weapon arrives while the queue is open: its row appears, highlighted, with a beep.
    tones_before = page.evaluate("window.__tones")
    weapon = add_parcel(store, 6, weapon=True, tracking="VN000000006HCM")
    row = page.wait_for_selector(f'tr[data-id="{weapon}"]', timeout=5000)
    assert "weapon" in row.get_attribute("class")
    assert page.locator("#alerts tbody tr").first.get_attribute("data-id") == str(weapon)
    wait_for(page, f"window.__tones > {tones_before}", timeout_s=3)
    report_health(store)
    page.wait_for_selector("#health .component.ok >> nth=3")
    shoot(page, "alerts-en")

    # Open it, look at the pictures, hide and show the boxes, confirm the threat.
    page.click(f'tr[data-id="{weapon}"] a.tracking')
    page.wait_for_url(f"{base}/parcels/{weapon}")
    wait_for(page, "document.getElementById('xray').naturalWidth > 0")
    assert page.is_visible("#boxes")
    page.click("#toggle-boxes")
    assert not page.is_visible("#boxes")
    page.click("#toggle-boxes")
    assert page.is_visible("#boxes")
    page.click("[data-toggle=material]")
    assert page.is_visible("#material")
    page.click("[data-toggle=material]")
    page.click("#confirm")
    page.wait_for_selector(".parcel-head .review-confirmed")
    shoot(page, "parcel-en")

    # The incident report: self-contained, the pictures inside it.
    with context.expect_page() as opened:
        page.click("#report-link")
    report = opened.value
    report.wait_for_load_state()
    assert "VN000000006HCM" in report.content()
    assert report.evaluate("[...document.images].every(i => i.src.startsWith('data:') && "
                           "i.naturalWidth > 0)")
    shoot(report, "report-en")
    report.close()

    # Clear another alert.
    other = ids[1]
    page.goto(f"{base}/parcels/{other}")
    page.click("#clear")
    page.wait_for_selector(".parcel-head .review-cleared")

    # Both in the history.
    page.click("header nav >> text=History")
    page.fill("input[name=tracking]", "VN0000000")
    page.click("form.filters button.primary")
    page.wait_for_selector("#results")
    for parcel in (weapon, other):
        assert page.is_visible(f'#results tr[data-id="{parcel}"]')
    shoot(page, "history-en")
    page.goto(f"{base}/history?review=confirmed")
    assert page.locator("#results tbody tr").count() == 1
    page.goto(f"{base}/stats")
    shoot(page, "stats-en")

    # An operator has no audit log; an engineer does, with both decisions and the export.
    assert page.locator("header nav >> text=Audit log").count() == 0
    engineer = browser.new_context(viewport={"width": 1600, "height": 1000},
                                   timezone_id="Asia/Ho_Chi_Minh").new_page()
    log_in(engineer, base, "emil")
    engineer.click("header nav >> text=Audit log")
    audit = engineer.inner_text("#audit")
    for event in ("confirmed", "cleared", "incident report exported", "logged in"):
        assert event in audit, event
    assert engineer.locator(f'#audit a[href="/parcels/{weapon}"]').count() >= 3
    shoot(engineer, "audit-en")
    engineer.context.close()

    # Vietnamese, saved for the user.
    page.goto(f"{base}/")
    page.click("button[name=language][value=vi]")
    page.wait_for_selector("text=Hàng đợi cảnh báo")
    page.wait_for_selector("#live.on")
    assert page.inner_text("html").count("VŨ KHÍ") >= 1
    report_health(store)
    page.wait_for_selector("#health .component.ok >> nth=3")
    shoot(page, "alerts-vi")
    page.goto(f"{base}/parcels/{weapon}")
    wait_for(page, "document.getElementById('xray').naturalWidth > 0")
    assert "Xác nhận nguy hiểm" in page.inner_text(".actions")
    shoot(page, "parcel-vi")
    assert store.user("olga")["language"] == "vi"

    login_vi = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="vi-VN",
                                   extra_http_headers={"Accept-Language": "vi-VN,vi;q=0.9"})
    fresh = login_vi.new_page()
    fresh.goto(f"{base}/login")
    assert "Mật khẩu" in fresh.inner_text("form")
    shoot(fresh, "login-vi")
    login_vi.close()

    assert errors == []
    context.close()
    if os.environ.get("DASHBOARD_DOC_SHOTS") != "1":
        return
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in DOC_SHOTS:
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")


def test_a_logged_out_browser_is_sent_to_the_login_page(served, browser):
    _, base, ids = served
    page = browser.new_page()
    page.goto(f"{base}/parcels/{ids[0]}")
    page.wait_for_url(f"{base}/login?next=/parcels/{ids[0]}")
    page.fill("input[name=name]", "olga")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(f"{base}/parcels/{ids[0]}")
    page.close()


def test_a_live_alert_arrives_from_the_simulated_hub(served, browser, tmp_path):
    """The whole way: the simulated line inspects, the store writer commits, the dashboard's
    feed pushes, the operator's queue shows the alert and its pictures as the hub wrote them."""
    from edge.config import EdgeConfig
    from simulator.harness import SimulatedHub

    store, base, _ = served
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    log_in(page, base, "olga")
    page.wait_for_selector("#live.on")
    config = EdgeConfig(scanner={"seed": 4, "belt_speed_mm_s": 1500, "threat_share": 1.0},
                        plc={"type": "sim", "diverter_distance_mm": 4000},
                        pipeline={"detector": "ground-truth"}, calibration_dir=tmp_path)
    hub = SimulatedHub(config, log=lambda m: None, show=lambda p, v: None)
    hub.keep_records(store)
    line = threading.Thread(target=hub.run, args=(5.0,), daemon=True)
    line.start()
    # A weapon the simulated line found (a parcel it diverted uninspected, on a busy machine,
    # is an alert too, but shows no boxes).
    row = page.wait_for_selector("#alerts tbody tr.weapon:has(a.tracking:text-matches('^EDG'))",
                                 timeout=30_000)
    line.join(60)
    assert not line.is_alive()
    row.query_selector("a.tracking").click()
    wait_for(page, "document.getElementById('xray').naturalWidth > 0")
    assert page.is_visible("#boxes")
    # The diverter's answer reached the store after the verdict: the page shows it.
    assert "acknowledged" in page.inner_text("body")
    shoot(page, "live-hub-parcel")
