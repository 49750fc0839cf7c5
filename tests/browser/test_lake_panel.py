"""The Lake panel in a real browser: `lakebook up` on free loopback ports (real ingest server,
real JupyterLab with the built extension, sample data loaded through the ingest server), driven
by Playwright with Debian's Chromium (no browser download). Screenshots go to
test-artifacts/browser/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ingest_support import make_workspace
from lakebook.services import free_port
from test_up import LAB_URL, Output

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`lakebook up` on an empty workspace with a notebook in it: (base URL, token, workspace)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `make sysdeps` installs it")
    root = make_workspace(tmp_path_factory.mktemp("browser") / "ws", "name: browser\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("answer = 6 * 7")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "scratch.ipynb")

    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LAKEBOOK_"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / ".local/share/jupyter/runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               IPYTHONDIR=str(home / ".ipython"), MLFLOW_DISABLE_TELEMETRY="true")
    up = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(root), "up", "--port", str(free_port()),
         "--ingest-port", str(free_port())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    output = Output(up.stdout)
    try:
        found = output.wait_for(LAB_URL, timeout_s=300)
        yield found["base"], found["token"], root
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, output.drain()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"))
    context.close()
    assert not [e for e in errors if "lakebook" in e.lower()], errors


def open_lab(page, base: str, token: str, path: str = "") -> None:
    """JupyterLab in a layout workspace of this test's own (nothing restored from another test)."""
    workspace = re.sub(r"\W+", "-", os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0])[-60:]
    page.goto(f"{base}/lab/workspaces/{workspace}{'/tree/' + path if path else ''}?token={token}")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=180_000)


def open_lake_panel(page):
    """Open the Lake panel with its sidebar tab; a click while the layout is still being set up
    can be undone by it, so click until the panel stays open."""
    tab = page.locator('.jp-SideBar [data-id="lakebook-lake-panel"]')
    tab.wait_for()
    panel = page.locator("#lakebook-lake-panel")
    for _ in range(10):
        if not panel.is_visible():
            tab.click()
        page.wait_for_timeout(500)
        if panel.is_visible():
            return panel
    raise AssertionError("the Lake panel did not open")


def test_the_lake_panel_lists_the_example_tables_and_their_columns(lab, page):
    base, token, _ = lab
    open_lab(page, base, token)
    panel = open_lake_panel(page)
    flights = panel.locator('[data-table="raw.flights"]')
    flights.wait_for()
    assert panel.locator('[data-table="raw.weather"]').count() == 1
    assert "raw" in panel.locator("[data-zone]").evaluate_all("els => els.map(e => e.dataset.zone)")
    assert "3,000" in flights.inner_text() or "3000" in flights.inner_text()
    assert re.search(r"updated (just now|\d+ min ago)", flights.inner_text()), flights.inner_text()

    flights.locator(".lakebook-table-header").click()
    carrier = flights.locator('[data-column="carrier"]')
    carrier.wait_for()
    assert "string" in carrier.inner_text()
    shown = flights.locator("[data-column]").evaluate_all("els => els.map(e => e.dataset.column)")
    assert {"carrier", "origin", "dep_delay", "sched_dep_at"} <= set(shown)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lake-panel.png"))

    panel.locator(".lakebook-search").fill("humid")  # a column of raw.weather only
    panel.locator('[data-table="raw.flights"]').wait_for(state="detached")
    assert panel.locator('[data-table="raw.weather"] [data-column="humid"]').count() == 1


def test_insert_query_adds_a_lake_cell_that_runs(lab, page):
    base, token, _ = lab
    open_lab(page, base, token, "scratch.ipynb")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    notebook.locator(".jp-Cell").first.wait_for()
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()

    panel = open_lake_panel(page)
    flights = panel.locator('[data-table="raw.flights"]')
    flights.locator(".lakebook-table-header").click()
    flights.locator(".lakebook-insert-query").click()

    cells = notebook.locator(".jp-Cell")
    page.wait_for_function("n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length === n",
                           arg=2)
    inserted = cells.nth(1)
    assert "%%lake" in inserted.locator(".cm-content").inner_text()
    assert "SELECT * FROM raw.flights LIMIT 100" in inserted.locator(".cm-content").inner_text()
    assert "jp-mod-active" in (inserted.get_attribute("class") or "")
    # highlighted as SQL: CodeMirror names the language of each editor; the Python cell is not SQL
    assert inserted.locator(".cm-content").get_attribute("data-language") == "sql"
    assert notebook.locator(".jp-Cell").first.locator(".cm-content").get_attribute("data-language") != "sql"

    inserted.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    result = inserted.locator(".jp-OutputArea-output table.lakebook-result")
    result.wait_for(timeout=120_000)
    assert result.locator("tbody tr").count() >= 1
    assert "carrier" in result.locator("thead").inner_text()
    footer = inserted.locator(".lakebook-footer").inner_text()
    assert "100 rows" in footer and "raw.flights" in footer, footer
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "insert-query.png"))


def test_preview_shows_the_first_rows(lab, page):
    base, token, _ = lab
    open_lab(page, base, token)
    panel = open_lake_panel(page)
    weather = panel.locator('[data-table="raw.weather"]')
    weather.locator(".lakebook-table-header").click()
    weather.locator(".lakebook-preview").click()
    table = page.locator(".lakebook-preview-table")
    table.wait_for()
    assert table.locator("tbody tr").count() == 100
    assert "humid" in table.locator("thead").inner_text()
