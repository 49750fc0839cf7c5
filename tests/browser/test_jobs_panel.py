"""The Jobs panel in a real browser: `lakebook up` on a workspace with a job (so it runs the
job scheduler as well as the ingest server and JupyterLab with the built extension), driven by
Playwright with Debian's Chromium. "Run now" goes to the scheduler, which runs Papermill on a
real kernel; the run's output opens in the Lab; "Schedule" on a notebook's toolbar writes a
job definition that the panel then lists; a failed run's alert to the workspace's lab channel
appears as a notification whose button opens the run's output."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import yaml

from browser_support import ARTIFACTS, lab_environment, lakebook_up, open_lab, open_side_panel
from ingest_support import make_workspace
from jobs_support import add_job, add_report_job
from lakebook.alerts import Inbox
from lakebook.services import free_port
from lakebook.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`lakebook up` (no sample data) on a workspace with the job ``report`` and the job ``broken``,
    which fails and alerts the lab channel: (base URL, token, root)."""
    root = make_workspace(tmp_path_factory.mktemp("jobs-browser") / "ws", f"name: jobs\njobs:\n  port: {free_port()}\n"
                          "alerts:\n  channels:\n    lab: {type: lab}\n")
    add_report_job(root)
    add_job(root, "broken", "notebook: notebooks/fail.ipynb\nalerts: {on: [failure], to: [lab]}\n")
    with lakebook_up(root, lab_environment(tmp_path_factory.mktemp("home")), options=("--no-sample",)) as (base, token):
        yield base, token, root


def open_jobs_panel(page):
    return open_side_panel(page, "lakebook-jobs-panel")


def test_run_now_runs_the_job_and_its_output_opens(lab, page):
    base, token, _ = lab
    open_lab(page, base, token)
    panel = open_jobs_panel(page)
    row = panel.locator('[data-job="report"]')
    row.wait_for()
    assert row.locator('[data-cell="runs"]').inner_text() == "notebook notebooks/ok.ipynb"
    assert row.locator('[data-cell="schedule"]').inner_text() == "0 6 * * * (Europe/Paris)"
    assert re.fullmatch(r"next in \d+ (h|min)", row.locator('[data-cell="next"]').inner_text())
    assert row.locator('[data-cell="last"]').inner_text() == "never run"
    panel.get_by_text("Scheduler running").wait_for(timeout=120_000)

    row.locator('[data-action="run"]').click()
    run = row.locator('[data-history="report"] [data-run][data-status="succeeded"]')
    run.wait_for(timeout=240_000)
    assert run.locator('[data-cell="trigger"]').inner_text() == "manual"
    assert run.locator('[data-cell="attempt"]').inner_text() == "attempt 1 of 1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", run.locator('[data-cell="ended"]').inner_text())
    row.locator('[data-cell="last"]', has_text="succeeded").wait_for()

    run.locator('[data-action="open-output"]').click()
    frame = page.frame_locator("iframe[data-run-output]")
    frame.get_by_text(re.compile(r"run \d+ n 20 x")).wait_for()  # the job's n=2 printed by the kernel
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jobs-panel.png"))


def test_schedule_on_the_notebook_toolbar_writes_a_job_the_panel_lists(lab, page):
    base, token, root = lab
    open_lab(page, base, token, path="notebooks/tick.ipynb")
    page.locator('[data-jp-item-name="lakebook-schedule"] button').click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator('input[name="name"]').wait_for()
    assert dialog.locator('input[name="name"]').input_value() == "tick"
    assert dialog.locator('[data-parameter="seconds"]').inner_text().startswith("seconds (float)")
    dialog.locator('input[name="name"]').fill("tick_nightly")
    dialog.locator('input[name="cron"]').fill("61 3 * * *")
    dialog.locator('input[name="timezone"]').fill("UTC")
    dialog.locator('input[name="parameter-seconds"]').fill("0.1")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()

    problem = page.locator(".jp-Dialog .lakebook-error-message")  # the server refused: the form is back
    problem.wait_for()
    assert problem.inner_text().startswith("jobs/tick_nightly.yaml: schedule.cron:"), problem.inner_text()
    assert page.locator('.jp-Dialog input[name="parameter-seconds"]').input_value() == "0.1"  # texts kept
    assert not (root / "jobs" / "tick_nightly.yaml").exists()
    page.locator('.jp-Dialog input[name="cron"]').fill("15 3 * * *")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()

    panel = page.locator("#lakebook-jobs-panel")
    row = panel.locator('[data-job="tick_nightly"]')
    row.wait_for()
    assert row.locator('[data-cell="schedule"]').inner_text() == "15 3 * * * (UTC)"
    written = yaml.safe_load((root / "jobs" / "tick_nightly.yaml").read_text())
    assert written == {"notebook": "notebooks/tick.ipynb", "schedule": {"cron": "15 3 * * *", "timezone": "UTC"},
                       "parameters": {"seconds": 0.1}}
    page.screenshot(path=str(ARTIFACTS / "jobs-schedule.png"))


def test_a_failed_runs_alert_is_a_notification_that_opens_the_runs_output(lab, page):
    base, token, root = lab
    open_lab(page, base, token)
    queued = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(root), "jobs", "run", "broken"],
                            capture_output=True, text=True, timeout=120)
    assert queued.returncode == 0 and "queued" in queued.stdout, queued.stdout + queued.stderr
    run_id = int(queued.stdout.split("run ")[1].split()[0])

    toast = page.locator(".Toastify__toast", has_text=f"job broken: run {run_id} failure")
    toast.wait_for(timeout=240_000)
    assert "boom 3" in toast.inner_text(), toast.inner_text()
    toast.get_by_role("button", name="Open output").click()
    page.frame_locator(f'iframe[data-run-output="{run_id}"]').get_by_text("boom 3").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "alert-notification.png"))
    with Inbox(Workspace.load(root)) as inbox:  # shown once: the Lab marked it read
        deadline = time.monotonic() + 30
        while inbox.unread_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(a["title"], a["read"]) for a in inbox.alerts()] == [(f"job broken: run {run_id} failure", True)]
