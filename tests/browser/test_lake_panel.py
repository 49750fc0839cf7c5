"""The Lake panel in a real browser: `lakebook up` on free loopback ports (real ingest server,
real JupyterLab with the built extension, sample data loaded through the ingest server), driven
by Playwright with Debian's Chromium (no browser download). Screenshots go to
test-artifacts/browser/."""

from __future__ import annotations

import re

import nbformat
import pytest

from browser_support import ARTIFACTS, lab_environment, lakebook_up, open_lab, open_side_panel
from ingest_support import make_workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`lakebook up` on an empty workspace with a notebook in it: (base URL, token, workspace)."""
    root = make_workspace(tmp_path_factory.mktemp("browser") / "ws", "name: browser\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("answer = 6 * 7")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "scratch.ipynb")

    with lakebook_up(root, lab_environment(tmp_path_factory.mktemp("home"))) as (base, token):
        yield base, token, root


def open_lake_panel(page):
    return open_side_panel(page, "lakebook-lake-panel")


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
