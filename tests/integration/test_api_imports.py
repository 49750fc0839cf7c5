"""Imports against a real HTTP API (tests/api_support.py, a threaded server on 127.0.0.1):
pages through the ingest log and the airport_status contract into the lake, retries, a
refused token, incremental runs, a run killed with SIGKILL and resumed, and an import job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from api_support import TOKEN, StatusAPI, statuses
from events import lake_table
from lakebook.errors import ImportFailed
from lakebook.imports import ImportStore, run_import
from lakebook.ingest import flush_ingest_log_to_raw

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ENV = "STATUS_API_TOKEN"


@pytest.fixture
def status_ws(workspace, monkeypatch):
    """The test workspace with the airport_status contract, the API's token in the environment."""
    shutil.copy(REPO / "contracts" / "airport_status.yaml", workspace.contracts_dir)
    monkeypatch.setenv(ENV, TOKEN)
    return workspace


BEARER = f"{{header: Authorization, scheme: Bearer, env: {ENV}}}"


def add_import(ws, url: str, pagination: str = "{type: next_link, path: links.next}", records: str = "data",
               limit: int = 10, auth: str = BEARER) -> None:
    (ws.root / "imports").mkdir(exist_ok=True)
    (ws.root / "imports" / "statuses.yaml").write_text(textwrap.dedent(f"""\
        source: airport_status
        url: {url}
        params: {{limit: {limit}}}
        auth: {auth}
        pagination: {pagination}
        records: {records}
        incremental: {{cursor_field: reported_at, param: since}}
        map: {{code: faa}}
        retries: {{max: 3, backoff: 0.05}}
        timeout: 5s
        """))


def lake_rows(ws, zone: str = "raw") -> list[dict]:
    table = lake_table(ws, zone, "airport_status")
    return table.to_pylist() if table is not None else []


def lakebook(ws, *args: str, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "lakebook", "-w", str(ws.root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_pages_land_once_through_429_and_500_with_bad_records_quarantined_and_reruns_add_nothing(status_ws):
    data = statuses(45, bad_every=10)  # 4 bad records
    with StatusAPI(data, throttle={2}, retry_after="1", fail_once={20}) as api:
        add_import(status_ws, f"{api.url}/linked/status")
        first = run_import(status_ws, "statuses")
        throttled = next(i for i, r in enumerate(api.requests) if r["status"] == 429)
        waited = api.requests[throttled + 1]["at"] - api.requests[throttled]["at"]
        again = run_import(status_ws, "statuses")
        api.add(statuses(5, start=45))
        third = run_import(status_ws, "statuses")
        flush_ingest_log_to_raw(status_ws)
        full = run_import(status_ws, "statuses", full=True)
        since_sent = [r["query"].get("since") for r in api.requests if r["status"] == 200]
    assert (first.pages, first.records, first.accepted, first.rejected, first.retries) == (5, 45, 41, 4, 2)
    assert api.statuses_answered().count(500) == 1 and waited >= 0.95  # Retry-After: 1 honoured
    assert first.cursor == data[-1]["reported_at"] and first.duplicates == 0
    assert (again.records, third.records, third.accepted) == (0, 5, 5)  # incremental: only what is new
    assert since_sent[:5] == [None] * 5 and since_sent[5:7] == [data[-1]["reported_at"]] * 2  # the stored cursor, sent
    assert third.cursor == statuses(1, start=49)[0]["reported_at"]
    assert (full.records, full.accepted, full.duplicates) == (50, 46, 46)  # --full: from the start, all in the lake
    flush_ingest_log_to_raw(status_ws)
    raw = lake_rows(status_ws)
    assert len(raw) == 46 and len({r["_event_id"] for r in raw}) == 46  # the full rerun's duplicates dropped
    assert {r["faa"] for r in raw} == {"EWR", "JFK", "LGA"}  # map: code -> faa
    quarantined = lake_rows(status_ws, "quarantine")
    assert any("status: 'on fire' is not one of" in reason for r in quarantined for reason in r["reasons"])


@pytest.mark.parametrize("kind, pagination, records", [
    ("header", "{type: next_link}", "data"),
    ("cursor", "{type: cursor, param: cursor, path: meta.next_cursor}", "data"),
    ("paged", "{type: page, param: page, start: 1}", "$.results"),
])
def test_each_pagination_kind_reads_every_page(status_ws, kind, pagination, records):
    with StatusAPI(statuses(25)) as api:
        add_import(status_ws, f"{api.url}/{kind}/status", pagination, records)
        summary = run_import(status_ws, "statuses")
    assert (summary.records, summary.accepted) == (25, 25)
    assert summary.pages == (4 if kind == "paged" else 3)  # numbered pages end on an empty one


def test_a_wrong_token_fails_at_once_with_the_reason_and_never_shows_the_token(status_ws):
    wrong = "wrong-token-5d1e9b0a"
    with StatusAPI(statuses(5)) as api:
        add_import(status_ws, f"{api.url}/linked/status")
        done = lakebook(status_ws, "import", "run", "statuses", env={**os.environ, ENV: wrong})
        out, err = done.communicate(timeout=60)
    assert done.returncode == 2 and len(api.requests) == 1  # a 401 is not retried
    assert "error: import statuses: " in err and ('answered 401 Unauthorized: {"error": "invalid or missing token"}' in err)
    assert f"hint: the API did not accept the credential: check the value of ${ENV} (auth.env)" in err
    assert wrong not in out + err and "Traceback" not in err
    with ImportStore(status_ws) as store:
        assert store.state("statuses").last_status == "failed"


def test_a_next_link_to_another_host_is_refused_and_gets_no_credential(status_ws):
    """The import is defined on localhost; the API's Link header names 127.0.0.1 (another origin
    for a browser and for lakebook): the credential is not sent there."""
    with StatusAPI(statuses(25)) as api:
        add_import(status_ws, f"{api.url.replace('127.0.0.1', 'localhost')}/header/status",
                   "{type: next_link}")
        with pytest.raises(ImportFailed) as refused:
            run_import(status_ws, "statuses")
    assert "the credential is sent only there" in refused.value.message
    assert "http://127.0.0.1:" in refused.value.message and len(api.requests) == 1
    with ImportStore(status_ws) as store:
        assert store.state("statuses").last_status == "failed"


def test_retries_used_up_fail_naming_the_url_without_its_credential(status_ws):
    with StatusAPI(statuses(5), throttle={1, 2, 3, 4}, retry_after="0") as api:
        add_import(status_ws, f"{api.url}/linked/status", auth=f"{{param: api_key, env: {ENV}}}")
        with pytest.raises(ImportFailed) as failed:
            run_import(status_ws, "statuses")
    assert "still failing after 4 attempts: 429 Too Many Requests" in failed.value.message
    assert "api_key=***" in failed.value.message and TOKEN not in str(failed.value)


def test_an_import_killed_mid_run_resumes_where_it_stopped_and_lands_every_record_once(status_ws):
    data = statuses(60)
    with StatusAPI(data, page_size=5, delay_s=0.15) as api:
        add_import(status_ws, f"{api.url}/linked/status", limit=5)
        first = lakebook(status_ws, "import", "run", "statuses")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(r["status"] == 200 for r in api.requests) < 5:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        with ImportStore(status_ws) as store:
            left = store.state("statuses")
        second = lakebook(status_ws, "import", "run", "statuses")
        out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert left.resume is not None and left.cursor is None  # killed mid-run: a page to resume at, no cursor yet
    assert f"resuming an unfinished run at page {left.resume['request']['page']}" in out
    flush_ingest_log_to_raw(status_ws)
    raw = lake_rows(status_ws)
    assert sorted(r["_event_id"] for r in raw) == sorted(set(r["_event_id"] for r in raw)) and len(raw) == 60
    with ImportStore(status_ws) as store:
        done = store.state("statuses")
    assert (done.cursor, done.resume, done.last_status) == (data[-1]["reported_at"], None, "succeeded")


def test_an_import_job_runs_through_the_job_runner_with_history_and_retries(status_ws):
    from jobs_support import add_job
    from lakebook.jobs import JobStore

    with StatusAPI(statuses(12)) as api:
        add_import(status_ws, f"{api.url}/linked/status")
        add_job(status_ws.root, "pull", "import: statuses\nretries: {max: 1, backoff: 0.1}")
        add_job(status_ws.root, "denied", "import: statuses\nretries: {max: 1, backoff: 0.1}")
        ok = lakebook(status_ws, "jobs", "run", "pull")
        ok_out, ok_err = ok.communicate(timeout=120)
        bad = lakebook(status_ws, "jobs", "run", "denied", env={**os.environ, ENV: "nope"})
        bad.communicate(timeout=120)
    assert ok.returncode == 0, ok_err
    with JobStore(status_ws) as store:
        [pull], [denied] = store.runs("pull"), store.runs("denied")
    assert (pull["status"], pull["attempt"]) == ("succeeded", 1)
    assert "import statuses: 2 pages, 12 records: 12 accepted" in Path(pull["run_dir"], "runner.log").read_text()
    assert (denied["status"], denied["attempt"]) == ("failed", 2), denied["history"]
    assert "answered 401 Unauthorized" in denied["reason"] and "nope" not in denied["reason"]


def test_the_demo_step_pulls_the_airport_statuses_and_a_rerun_pulls_nothing_new(status_ws):
    import io

    from rich.console import Console

    from lakebook.demo_imports import run_import_step

    (status_ws.root / "imports").mkdir()
    shutil.copy(REPO / "imports" / "airport_status.yaml", status_ws.root / "imports")
    outputs = []
    for _ in range(2):
        console = Console(file=io.StringIO(), width=100)
        figures = run_import_step(status_ws, console)
        outputs.append(console.file.getvalue())
    assert figures["import"]["records"] == 0 and figures["import"]["lake"] == {"raw": 70, "quarantined": 2}
    assert "  pulled 2 pages, 72 records: 70 accepted, 2 rejected (" in outputs[0]
    assert "  pulled 1 pages, 0 records: 0 accepted, 0 rejected (" in outputs[1]
    assert "  raw.airport_status: 70 rows, quarantine.airport_status: 2 rows\n" in outputs[1]
    assert max(len(line) for out in outputs for line in out.splitlines()) <= 80  # the demo's width
