"""The Endpoints panel in a real browser: `lakebook up` on a copy of the model template (the
example notebook's champion in a real MLflow registry, features in a real Feast online store)
with the endpoint `delay` declared, so it runs the ingest server, the serving service (its own
Ray and Ray Serve) and JupyterLab; driven by Playwright with Debian's Chromium. The serving
token is in the workspace's tokens file: JupyterLab's server reads it, the page never sees it."""

from __future__ import annotations

import re
import shutil

import pytest

from browser_support import ARTIFACTS, lab_environment, lakebook_up, open_lab, open_side_panel
from lakebook.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # the model template trains once (~3 min)

TOKEN = "browser-serving-token-0b7e51"
CHAMPION = "models:/flight_delay@champion"


@pytest.fixture(scope="module")
def lab(model_template, tmp_path_factory):
    """`lakebook up` with an endpoint declared: (base URL, token, workspace)."""
    from lakebook.workspace import Workspace

    folder = tmp_path_factory.mktemp("endpoints")
    root = folder / "ws"
    shutil.copytree(model_template, root, symlinks=True)
    (folder / "serving-tokens.yaml").write_text(f"delay: {TOKEN}\n")
    config = root / "lakebook.yaml"
    config.write_text(config.read_text() + (
        f"serving:\n  port: {free_port()}\n  admin_port: {free_port()}\n"
        f"  tokens_file: {folder / 'serving-tokens.yaml'}\n  endpoints:\n    delay: {{model: '{CHAMPION}'}}\n"))
    with lakebook_up(root, lab_environment(tmp_path_factory.mktemp("home")), timeout_s=600) as (base, token):
        yield base, token, Workspace.load(root)


def champion_version(ws) -> str:
    from lakebook.serving import resolve_model

    return resolve_model(ws, CHAMPION).version


def a_tailnum(ws) -> str:
    from lakebook.query import LakeSession

    return LakeSession(ws).query("SELECT tailnum FROM warehouse.flights_clean WHERE tailnum IS NOT NULL "
                                 "ORDER BY flight_id LIMIT 1").table.column(0)[0].as_py()


def test_the_endpoints_panel_shows_the_endpoint_and_its_try_it_form_predicts(lab, page):
    base, token, ws = lab
    version = champion_version(ws)
    open_lab(page, base, token)
    panel = open_side_panel(page, "lakebook-endpoints-panel")
    row = panel.locator('[data-endpoint="delay"][data-status="RUNNING"]')
    row.wait_for(timeout=120_000)
    assert row.get_attribute("data-version") == version
    assert row.locator('[data-cell="model"]').inner_text() == f"flight_delay v{version}"
    assert re.fullmatch(r"running", row.locator('[data-cell="status"]').inner_text())
    assert "p50" in row.locator('[data-cell="latency"]').inner_text()

    form = row.locator('[data-try-it="delay"]')
    form.locator('[data-field="origin"] input').wait_for()
    assert form.locator('[data-field="origin"] input').input_value() in {"EWR", "JFK", "LGA"}  # the model's example
    assert form.locator('[data-field="distance"] input').input_value() != ""
    form.locator('[data-field="tailnum"] input').fill(a_tailnum(ws))
    with page.expect_response(re.compile(r"/lakebook/api/endpoints/delay/predict")) as relayed:
        form.locator('[data-action="predict"]').click()
    assert relayed.value.status == 200 and TOKEN not in relayed.value.text()
    answer = form.locator(".lakebook-prediction")
    answer.wait_for()
    text = answer.inner_text()
    assert re.search(r"p_late 0\.\d{3}", text) and f"model flight_delay v{version}" in text, text
    assert "feature ages: origin_delays" in text and "missing features:" in text, text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "endpoints-panel.png"))

    # the figures follow: the panel reads them again every few seconds while it is shown
    page.wait_for_function(
        "() => /^[1-9][\\d,]* requests$/.test(document.querySelector("
        "'[data-endpoint=\"delay\"] [data-cell=\"requests\"]')?.textContent ?? '')", timeout=60_000)
    assert TOKEN not in page.content()


def test_a_bad_field_shows_the_endpoints_reason(lab, page):
    base, token, _ = lab
    open_lab(page, base, token)
    panel = open_side_panel(page, "lakebook-endpoints-panel")
    form = panel.locator('[data-try-it="delay"]')
    form.locator('[data-field="distance"] input').wait_for(timeout=120_000)
    form.locator('[data-field="tailnum"] input').fill("N0NE0")
    form.locator('[data-field="sched_weekday"] input').fill("2.5")
    form.locator('[data-action="predict"]').click()
    error = form.locator(".lakebook-prediction-error")
    error.wait_for()
    assert "does not match the model's inputs" in error.inner_text()
    assert "sched_weekday: must be int" in error.inner_text()
