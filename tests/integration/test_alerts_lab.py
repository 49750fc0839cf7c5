"""The lab alert channel end to end: a job whose notebook fails, run by `lakebook jobs run` (no
scheduler: Papermill on a real kernel in the command), leaves a critical alert in the inbox,
which the Jupyter server extension answers (pytest-jupyter's real server) and `lakebook alerts
list --json` prints; reading it over REST clears it from both."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jobs_support import add_job, add_notebooks

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jp_server_cleanup"), pytest.mark.timeout(300)]


@pytest.fixture
def lab_ws(workspace):
    config = workspace.root / "lakebook.yaml"
    config.write_text(config.read_text() + "\nalerts:\n  channels:\n    lab: {type: lab}\n")
    add_notebooks(workspace.root)
    add_job(workspace.root, "nightly", "notebook: notebooks/fail.ipynb\nalerts: {on: [failure], to: [lab]}\n")
    return workspace


@pytest.fixture
def jp_root_dir(lab_ws):
    return lab_ws.root


@pytest.fixture
def jp_server_config(lab_ws) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}},
                   "LakebookApp": {"workspace": str(lab_ws.root)}})


def lakebook(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), *args], capture_output=True,
                          text=True, timeout=180)


async def call(jp_fetch, *parts, post: bool = False, **kwargs) -> tuple[int, dict]:
    """(status, JSON body) of a request to /lakebook/api/alerts/..."""
    if post:
        kwargs.update(method="POST", body="")
    try:
        response = await jp_fetch("lakebook", "api", "alerts", *parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


async def test_a_failed_job_run_leaves_a_critical_alert_the_lab_and_the_cli_read(jp_fetch, lab_ws):
    ran = lakebook(lab_ws, "jobs", "run", "nightly")
    assert ran.returncode == 1 and "failed" in ran.stdout, ran.stdout + ran.stderr
    run_id = int(ran.stdout.split("run ")[1].split()[0])

    status, answer = await call(jp_fetch)
    assert status == 200 and answer["unread"] == 1, answer
    [alert] = answer["alerts"]
    assert (alert["channel"], alert["severity"], alert["status"], alert["read"]) == ("lab", "critical", "firing", False)
    assert alert["title"] == f"job nightly: run {run_id} failure"
    assert alert["labels"] == {"job": "nightly", "run": str(run_id), "event": "failure", "trigger": "manual"}
    assert "ValueError" in alert["text"] and alert["created_at"].endswith("Z")

    listed = lakebook(lab_ws, "alerts", "inbox", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(a["id"], a["title"], a["severity"]) for a in json.loads(listed.stdout)] == [
        (alert["id"], alert["title"], "critical")]

    assert await call(jp_fetch, params={"after": alert["id"]}) == (200, {"alerts": [], "unread": 1})
    assert await call(jp_fetch, str(alert["id"]), "read", post=True) == (200, {"marked": 1, "unread": 0})
    assert json.loads(lakebook(lab_ws, "alerts", "inbox", "--json").stdout) == []
    status, answer = await call(jp_fetch, params={"unread": "true"})
    assert (status, answer["alerts"], answer["unread"]) == (200, [], 0)


async def test_bad_requests_get_lakebooks_error_shape(jp_fetch, lab_ws):
    status, body = await call(jp_fetch, "999", "read", post=True)
    assert status == 404 and body["error"]["message"] == "no alert 999 in the inbox", body
    assert "lakebook alerts inbox --all" in body["error"]["hint"]
    status, body = await call(jp_fetch, params={"limit": "0"})
    assert status == 422 and body["error"]["message"].startswith("invalid parameters: limit:"), body
    status, body = await call(jp_fetch, params={"afterr": "3"})
    assert status == 422 and "afterr" in body["error"]["message"], body
    assert await call(jp_fetch, "read", post=True) == (200, {"marked": 0, "unread": 0})
