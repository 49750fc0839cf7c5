"""The Jobs panel's REST API on a real Jupyter server (pytest-jupyter) whose root is a workspace
with jobs: "Run now" without a scheduler hands the run to a process of its own that runs
Papermill on a real kernel and records it; history, output, logs, cancel, enable/disable and
"schedule this notebook" go through the routes as the Lab calls them."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jobs_support import add_report_job
from lakebook._proc import process_alive

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jp_server_cleanup"), pytest.mark.timeout(300)]

FINISHED = ("succeeded", "failed", "timed_out", "cancelled")


@pytest.fixture
def jobs_ws(workspace):
    add_report_job(workspace.root)
    return workspace


@pytest.fixture
def jp_root_dir(jobs_ws):
    """The Lab runs in the workspace, as `lakebook up` starts it."""
    return jobs_ws.root


@pytest.fixture
def jp_server_config(jobs_ws) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}},
                   "LakebookApp": {"workspace": str(jobs_ws.root)}})


async def call(jp_fetch, *parts, body=None, **kwargs) -> tuple[int, dict]:
    """(status, JSON body) of a request to /lakebook/api/jobs/...; POST when there is a body."""
    if body is not None:
        kwargs.update(method="POST", body=body if isinstance(body, str) else json.dumps(body))
    try:
        response = await jp_fetch("lakebook", "api", "jobs", *parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    assert response.headers["Content-Type"].startswith("application/json")
    return response.code, json.loads(response.body)


async def finished_run(jp_fetch, name: str, run_id: int, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, history = await call(jp_fetch, name, "runs")
        run = next(r for r in history["runs"] if r["id"] == run_id)
        if run["status"] in FINISHED:
            return run
        await asyncio.sleep(0.3)  # the server answers on this loop: never block it
    raise AssertionError(f"run {run_id} did not finish in {timeout_s:.0f} s")


async def test_run_now_without_a_scheduler_runs_in_a_process_of_its_own(jp_fetch, jobs_ws):
    status, listing = await call(jp_fetch)
    assert status == 200 and listing["scheduler"] is None and listing["problems"] == {}
    [row] = listing["jobs"]
    assert (row["name"], row["schedule"], row["timezone"], row["enabled"], row["last_status"]) == (
        "report", "0 6 * * *", "Europe/Paris", True, None)

    started = time.monotonic()
    status, answer = await call(jp_fetch, "report", "runs", body={"parameters": {"n": 5}})
    answered_s = time.monotonic() - started
    assert status == 202 and answer["runner"] == "lab" and answer["run"]["status"] == "queued", answer
    run_id = answer["run"]["id"]
    print(f"run now answered in {answered_s * 1000:.0f} ms")

    run = await finished_run(jp_fetch, "report", run_id)
    assert (run["status"], run["trigger"], run["parameters"], run["attempt"]) == ("succeeded", "manual", {"n": 5}, 1)
    assert run["has_output"] and run["started_at"].endswith("Z") and run["finished_at"] >= run["started_at"]
    assert run["tables_written"] == ["warehouse.job_out"]
    lab_log = jobs_ws.log_path("lab-jobs").read_text()
    assert f"run {run_id} of report: succeeded" in lab_log, lab_log

    status, output = await call(jp_fetch, "report", "runs", str(run_id), "output")
    assert status == 200 and "n 50 x" in output["html"]  # the value 5 reached the kernel
    assert output["notebook"] is None  # under the hidden state folder: the Lab gets the HTML
    status, logs = await call(jp_fetch, "report", "runs", str(run_id), "logs")
    assert status == 200 and "stdout.log" in logs["logs"] and "n 50 x" in logs["logs"]
    status, cancelled = await call(jp_fetch, "report", "runs", str(run_id), "cancel", body={})
    assert status == 200 and cancelled["run"]["status"] == "succeeded"  # a finished run stays as it is
    _, detail = await call(jp_fetch, "report")
    assert detail["job"]["last_status"] == "succeeded" and detail["runs"][0]["id"] == run_id
    assert detail["notebook"] == "notebooks/ok.ipynb" and detail["definition"]["parameters"] == {"n": 2}


async def test_refusals_are_the_house_error_json(jp_fetch, jobs_ws):
    status, disabled = await call(jp_fetch, "report", "disable", body={})
    assert status == 200 and disabled["enabled"] is False
    status, error = await call(jp_fetch, "report", "runs", body={})
    assert status == 400 and error["error"]["message"] == "job report is disabled"
    assert error["error"]["hint"] == "lakebook jobs enable report"
    assert (await call(jp_fetch, "report", "enable", body={}))[1]["enabled"] is True

    status, error = await call(jp_fetch, "report", "runs", body={"parameters": {"n": "five"}})
    assert (status, error["error"]["message"]) == (400, "parameters.n: 'five' is not of type int")
    status, error = await call(jp_fetch, "report", "runs", body="[")
    assert (status, error["error"]["message"]) == (400, "the request body is not JSON")
    status, error = await call(jp_fetch, "reprot", "runs")
    assert status == 404 and "did you mean 'report'?" in error["error"]["hint"]
    status, error = await call(jp_fetch, "report", "runs", "99", "output")
    assert status == 404 and error["error"]["message"] == "no run 99"
    status, error = await call(jp_fetch, "report", "runs", params={"limit": 0})
    assert status == 422 and "limit" in error["error"]["message"]
    status, error = await call(jp_fetch, "report", "runs", body={}, headers={"Authorization": ""})
    assert status == 403 and error["error"]["status"] == 403
    assert (await call(jp_fetch, "report", "runs"))[1]["runs"] == []  # nothing refused was queued


async def test_schedule_this_notebook_writes_a_definition_the_list_shows(jp_fetch, jobs_ws):
    status, found = await call(jp_fetch, "notebook-parameters", params={"path": "notebooks/ok.ipynb"})
    assert status == 200 and [(p["name"], p["type"]) for p in found["parameters"]] == [("n", "int"), ("label", "str")]

    form = {"name": "nightly", "notebook": "notebooks/ok.ipynb", "cron": "30 2 * * *", "timezone": "UTC",
            "parameters": {"n": 3}}
    status, row = await call(jp_fetch, body=form)
    assert status == 201 and (row["name"], row["schedule"], row["notebook"]) == (
        "nightly", "30 2 * * *", "notebooks/ok.ipynb")
    assert (jobs_ws.jobs_dir / "nightly.yaml").is_file()
    assert {j["name"] for j in (await call(jp_fetch))[1]["jobs"]} == {"nightly", "report"}

    status, error = await call(jp_fetch, body=form)
    assert status == 409 and error["error"]["message"].startswith("name: job nightly exists")
    status, error = await call(jp_fetch, body={**form, "name": "other", "cron": "0 25 * * *"})
    assert status == 400 and error["error"]["message"].startswith("jobs/other.yaml: schedule.cron:")
    status, error = await call(jp_fetch, body={k: v for k, v in form.items() if k != "cron"})
    assert status == 422 and "cron: Field required" in error["error"]["message"]
    status, error = await call(jp_fetch, body={**form, "name": "sneaky"}, headers={"Authorization": ""})
    assert status == 403
    assert sorted(p.name for p in jobs_ws.jobs_dir.iterdir()) == ["nightly.yaml", "report.yaml"]
    status, _ = await call(jp_fetch, body={**form, "cron": "0 7 * * *", "overwrite": True})
    assert status == 201 and "0 7 * * *" in (jobs_ws.jobs_dir / "nightly.yaml").read_text()
