"""Dashboards in a real browser: `lakebook up` on a workspace with a published dashboard (so it
runs the dashboard server, a standalone Voila with a pre-heated kernel, next to JupyterLab with
the built extension), driven by Playwright with Debian's Chromium. The dashboard has an Altair
chart (the v5 Vega-Lite mimetype, rendered by Voila's own Vega renderer, no CDN) and an
ipywidgets Dropdown that redraws a chart and a text in an Output widget. One `lakebook up` for
the module."""

from __future__ import annotations

import re
import time

import pytest

from browser_support import ARTIFACTS, lab_environment, lakebook_up, open_lab, open_side_panel
from dashboard_support import expired_share, write_dashboard
from ingest_support import make_workspace
from lakebook.dashboards import publish, revoke, share, take_snapshot
from lakebook.services import free_port
from lakebook.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

READY = "airport-dashboard-ready"
CODE = [
    f"print('{READY}')",
    "import altair as alt\nimport pandas as pd\nimport ipywidgets as widgets\nfrom IPython.display import display\n"
    "alt.renderers.enable('mimetype')\n"
    "DELAYS = {'JFK': [3, 5, 2, 8], 'LGA': [9, 1, 4, 2], 'EWR': [1, 1, 7, 3]}\n"
    "def chart(airport):\n"
    "    frame = pd.DataFrame({'hour': list(range(4)), 'delay': DELAYS[airport]})\n"
    "    return alt.Chart(frame, title=f'delays at {airport}').mark_bar().encode(x='hour:O', y='delay:Q')\n"
    "chart('JFK')",
    "choice = widgets.Dropdown(options=list(DELAYS), value='JFK', description='airport')\n"
    "shown = widgets.Output()\n"
    "def show(change=None):\n"
    "    with shown:\n"
    "        shown.clear_output(wait=True)\n"
    "        print(f'mean delay at {choice.value}: {sum(DELAYS[choice.value]) / 4:.2f} min')\n"
    "        display(chart(choice.value))\n"
    "choice.observe(show, names='value')\n"
    "show()\n"
    "display(choice, shown)",
]
VEGA = ".vega-embed .marks"  # the svg or canvas Vega draws a chart on (not the menu's icons)
OUTPUT_CHART = ".widget-output .vega-embed .marks"


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """`lakebook up` on a workspace with dashboard ``airport`` (a snapshot taken) and share
    tokens: (lab base URL, lab token, dashboard server URL, tokens by kind)."""
    started = time.monotonic()
    port = free_port()
    root = make_workspace(tmp_path_factory.mktemp("dash-browser") / "ws", f"name: dash\ndashboards:\n  port: {port}\n")
    ws = Workspace.load(root)
    publish(ws, write_dashboard(root, "notebooks/airport.ipynb", code=CODE))
    take_snapshot(ws, "airport")
    tokens = {"valid": share(ws, "airport", "1h"), "revoked": share(ws, "airport", "1h")}
    revoke(ws, tokens["revoked"]["id"])
    tokens = {kind: link["url"].split("share=", 1)[1] for kind, link in tokens.items()}
    tokens["expired"] = expired_share(ws, "airport")
    env = lab_environment(tmp_path_factory.mktemp("home"))
    with lakebook_up(root, env, options=("--no-sample",)) as (base, token):
        yield base, token, f"http://127.0.0.1:{port}", tokens
    print(f"\ndashboards browser module: {time.monotonic() - started:.1f} s")


def _rendered(page, timeout_ms: float = 180_000) -> None:
    """The dashboard page is complete: the printed text, both charts drawn, the dropdown live."""
    page.get_by_text(READY).wait_for(timeout=timeout_ms)
    page.get_by_text("mean delay at JFK: 4.50 min").wait_for(timeout=timeout_ms)
    page.locator(".widget-dropdown select").wait_for(timeout=timeout_ms)
    page.wait_for_function(f"document.querySelectorAll('{VEGA}').length == 2", timeout=timeout_ms)
    assert page.get_by_text("Javascript Error").count() == 0


def _drawn(page) -> str:
    """What the Output widget's chart shows, as an image (Vega draws on a canvas here)."""
    return page.eval_on_selector(OUTPUT_CHART, "marks => marks.toDataURL ? marks.toDataURL() : marks.outerHTML")


def _settled(page) -> str:
    """The chart's image once two looks 300 ms apart agree (Vega draws over several frames)."""
    before = _drawn(page)
    for _ in range(100):
        page.wait_for_timeout(300)
        now = _drawn(page)
        if now == before:
            return now
        before = now
    raise AssertionError("the chart kept changing for 30 s")


def test_a_share_link_renders_the_charts_and_the_dropdown_redraws_them(up, page):
    _, _, server, tokens = up
    answer = page.goto(f"{server}/d/airport?share={tokens['valid']}")
    assert answer.status == 200
    _rendered(page)
    assert page.url == f"{server}/voila/render/notebooks/airport.ipynb"  # the token left the address
    jfk = _settled(page)
    page.select_option(".widget-dropdown select", "LGA")
    page.get_by_text("mean delay at LGA: 4.00 min").wait_for(timeout=60_000)
    page.wait_for_function(f"document.querySelectorAll('{OUTPUT_CHART}').length == 1")
    page.wait_for_function(  # Vega draws on the next frames: wait until the image is another one
        "([selector, old]) => { const m = document.querySelector(selector);"
        " return m !== null && (m.toDataURL ? m.toDataURL() : m.outerHTML) !== old; }",
        arg=[OUTPUT_CHART, jfk], timeout=30_000)
    assert _settled(page) != jfk  # the chart was drawn again with LGA's delays
    assert page.locator(".widget-output").get_by_text("mean delay at JFK").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"))


@pytest.mark.parametrize("which", [None, "expired", "revoked"])
def test_without_a_valid_token_the_page_is_403(up, page, which):
    _, _, server, tokens = up
    query = f"?share={tokens[which]}" if which else ""
    for path in ("/d/airport", "/voila/render/notebooks/airport.ipynb", "/snapshots/airport/latest"):
        answer = page.goto(server + path + query)
        assert answer.status == 403, (path, which)
        assert answer.json()["error"]["status"] == 403
    assert page.locator(VEGA).count() == 0


def test_the_snapshot_view_renders_without_a_kernel(up, page):
    _, _, server, tokens = up
    kernel_traffic: list[str] = []
    page.on("request", lambda request: kernel_traffic.append(request.url) if "/api/kernels" in request.url else None)
    page.on("websocket", lambda socket: kernel_traffic.append(socket.url))
    answer = page.goto(f"{server}/snapshots/airport/latest?share={tokens['valid']}")
    assert answer.status == 200
    page.get_by_text(READY).wait_for()
    assert re.fullmatch(r"snapshot of \d{4}-\d\d-\d\d \d\d:\d\d UTC · live",
                        page.locator("#lakebook-bar").inner_text().strip())
    assert page.get_by_text("alt.renderers.enable").count() == 0  # outputs without code
    page.wait_for_load_state("networkidle")
    assert kernel_traffic == []
    page.screenshot(path=str(ARTIFACTS / "dashboard-snapshot.png"))


def test_the_labs_dashboards_panel_lists_it_and_open_opens_it_authenticated(up, page):
    base, token, server, _ = up
    open_lab(page, base, token)
    panel = open_side_panel(page, "lakebook-dashboards-panel")
    row = panel.locator('[data-dashboard="airport"]')
    row.wait_for()
    assert row.locator('[data-cell="notebook"]').inner_text() == "notebooks/airport.ipynb"
    assert re.fullmatch(r"snapshot (just now|\d+ min ago)", row.locator('[data-cell="snapshot"]').inner_text())
    panel.locator('[data-server="running"]').wait_for()

    with page.context.expect_page() as opened:
        row.locator('[data-action="open"]').click()
    dashboard = opened.value
    dashboard.set_default_timeout(60_000)
    dashboard.bring_to_front()  # a background tab does not lay the page out
    _rendered(dashboard)
    assert dashboard.url == f"{server}/voila/render/notebooks/airport.ipynb"
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard-opened-from-lab.png"))

    row.locator('[data-field="expires"]').select_option("1d")
    row.locator('[data-action="share"]').click()
    link = row.locator('[data-cell="link"]')
    link.wait_for()
    assert link.input_value().startswith(f"{server}/d/airport?share=lbs1.")
    assert re.search(r"link valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                     row.locator('[data-cell="link-note"]').inner_text())
    page.screenshot(path=str(ARTIFACTS / "dashboards-panel.png"))
