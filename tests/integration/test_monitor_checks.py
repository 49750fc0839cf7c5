"""Checks tripped by real faults on real workspaces, then resolving, their alerts arriving at a
real HTTP webhook receiver on 127.0.0.1 through the alert manager: the flusher stopped
(a real ``lakebook ingest serve``, with the real ``monitor`` service evaluating every second),
30 % invalid events sent to the ingest server, a job whose notebook fails (run with Papermill)."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from events import flight
from ingest_support import ingest_server, make_workspace  # noqa: F401 - the fixture
from lakebook.alerts.receiver import WebhookReceiver
from lakebook.services import start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mailbox():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every message."""
    from aiosmtpd.controller import Controller

    from lakebook._proc import free_port
    from test_alert_delivery import Mailbox

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="lakebook-test")
    controller.start()
    yield box, port
    controller.stop()


def subjects(mailbox) -> list[str]:
    from email import message_from_bytes
    from email.policy import default

    return [message_from_bytes(content, policy=default)["Subject"] for _, _, content in mailbox[0].messages]


@pytest.fixture(scope="module")
def receiver():
    with WebhookReceiver() as found:
        yield found


def workspace_with(root, receiver: WebhookReceiver, checks: str, interval_s: float = 1.0, smtp_port: int | None = None):
    mail = (f", mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, from: lakebook@example.com, "
            f"to: [ops@example.com], timeout_s: 5}}") if smtp_port else ""
    make_workspace(root, f"name: test\nalerts: {{channels: {{hook: {{type: webhook, url: '{receiver.url}', "
                         f"timeout_s: 5}}{mail}}}}}\nmonitor: {{defaults: false, interval_s: {interval_s}}}\n")
    (root / "monitors").mkdir()
    (root / "monitors" / "checks.yaml").write_text(checks)
    return root


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Sender:
    """Posts a new valid flight every 0.3 s to whichever ingest server is current (none: skipped)."""

    def __init__(self):
        self.url: str | None = None
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.3):
            if self.url is None:
                continue
            try:
                httpx.post(f"{self.url}/v1/events/flights", json=[flight(10_000 + self.sent)], timeout=5)
                self.sent += 1
            except httpx.TransportError:
                pass


def test_a_stopped_flusher_fires_freshness_and_its_restart_resolves_it_once(tmp_path, receiver, mailbox,
                                                                             ingest_server):
    root = workspace_with(tmp_path / "ws", receiver, """
checks:
  - check: freshness(raw.flights)
    fail: "> 6s"
""", smtp_port=mailbox[1])
    sender = Sender()
    server = ingest_server(root, flush_interval_s=0.5)
    sender.url = server.url
    monitor = start_service(Workspace.load(root), "monitor", log_path=tmp_path / "monitor.log")
    try:
        status = wait_for(lambda: _checks(monitor, state="ok"), 30, "the check to be ok while events flow")
        assert status["freshness_raw_flights"]["detail"].startswith("newest data")
        sender.url = None
        server.stop()  # SIGINT: the server flushes what it holds and exits; nothing reaches the lake after
        stopped = time.monotonic()
        firing = wait_for(lambda: receiver.of("freshness_raw_flights"), 30, "the firing alert")
        assert time.monotonic() - stopped >= 6
        [(state, alert)] = firing[:1]
        assert (state, alert["severity"], alert["labels"]["table"]) == ("firing", "critical", "raw.flights")
        assert "freshness(raw.flights): newest data" in alert["description"]
        assert _checks(monitor)["freshness_raw_flights"]["state"] == "firing"
        assert _firing_metric(monitor, "freshness_raw_flights") == 1.0  # Prometheus sees the same state
        wait_for(lambda: subjects(mailbox), 15, "the firing alert by email")
        assert subjects(mailbox) == ["[lakebook] critical alertname=freshness_raw_flights: 1 alert firing"]

        server = ingest_server(root, flush_interval_s=0.5)
        sender.url = server.url
        wait_for(lambda: any(s == "resolved" for s, _ in receiver.of("freshness_raw_flights")), 30, "the resolve notice")
        time.sleep(3)  # three more evaluations, all ok
        statuses = [s for s, _ in receiver.of("freshness_raw_flights")]
        assert statuses.count("resolved") == 1 and statuses[-1] == "resolved"
        # evaluated every second while it fired, sent once: nothing again within the repeat interval (4h)
        assert statuses == ["firing", "resolved"]
        assert subjects(mailbox)[1:] == ["[lakebook] critical alertname=freshness_raw_flights: 1 alert resolved"]
        assert _checks(monitor, state="ok") and _firing_metric(monitor, "freshness_raw_flights") == 0.0
    finally:
        sender.stop.set()
        code = monitor.stop()
    assert code == 0 and "Traceback" not in monitor.log_text()  # SIGTERM: a clean stop


def _firing_metric(monitor, check: str) -> float:
    """``lakebook_monitor_check_firing`` of ``check`` on the monitor service's /metrics (summed over levels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{monitor.base_url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "lakebook_monitor_check_firing" and sample.labels["check"] == check)


def _checks(monitor, state: str | None = None) -> dict | None:
    """The monitor service's checks by name (None when one is not in ``state``)."""
    answer = httpx.get(f"{monitor.base_url}/status", timeout=5).json()
    checks = {c["name"]: c for c in answer["checks"]}
    if not checks or (state is not None and any(c["state"] != state for c in checks.values())):
        return None
    return checks


def test_thirty_percent_invalid_events_fire_the_reject_rate(tmp_path, receiver, ingest_server):
    from lakebook.monitor.engine import evaluate

    root = workspace_with(tmp_path / "ws", receiver, """
checks:
  - check: reject_rate(flights)
    warn: "> 1%"
    fail: "> 5%"
    window: 4s
""")
    server = ingest_server(root, flush_interval_s=0.3)
    ws = Workspace.load(root)
    events = [flight(i) for i in range(7)] + [flight(i, origin="XXX") for i in range(7, 10)]
    with server.client() as http:
        assert http.post("/v1/events/flights", json=events).status_code in (200, 207)
        # the flush records the raw file, then the quarantine file: wait for both (all ten events)
        wait_for(lambda: " of 10 flights events" in evaluate(ws).results[0][1].detail, 20, "the events to be flushed")
        second = evaluate(ws).results[0][1]
        assert (second.value, second.level, second.state) == (pytest.approx(30.0), "fail", "firing")
        assert second.detail == "3 of 10 flights events rejected in the last 4s"
        [(state, alert)] = receiver.of("reject_rate_flights")
        assert (state, alert["labels"]["source"], alert["severity"]) == ("firing", "flights", "critical")

        time.sleep(4.1)  # the bad events leave the window; only good ones come in
        assert http.post("/v1/events/flights", json=[flight(i) for i in range(100, 120)]).status_code == 200
        wait_for(lambda: evaluate(ws).results[0][1].state == "ok", 20, "the reject rate to be back to 0")
    statuses = [s for s, _ in receiver.of("reject_rate_flights")]
    assert statuses.count("resolved") == 1 and statuses[-1] == "resolved"


def test_a_failing_job_fires_job_failed_and_a_succeeding_run_resolves_it(tmp_path, receiver):
    from jobs_support import add_job, add_notebooks

    from lakebook.jobs import run_job
    from lakebook.monitor.engine import evaluate

    root = workspace_with(tmp_path / "ws", receiver, "checks: [{check: job_failed(nightly), for: 0}]\n")
    add_notebooks(root)
    add_job(root, "nightly", "notebook: notebooks/fail.ipynb\n")
    ws = Workspace.load(root)
    assert evaluate(ws).results[0][1].state == "unknown"  # no run yet
    run = run_job(ws, "nightly")
    assert run["status"] == "failed"
    result = evaluate(ws).results[0][1]
    assert (result.value, result.state) == (1.0, "firing")
    assert f"run {run['id']} failed in cell" in result.detail and "ValueError: boom 3" in result.detail
    [(state, alert)] = receiver.of("job_failed_nightly")
    assert (state, alert["labels"]["job"]) == ("firing", "nightly") and f"run {run['id']} failed" in alert["text"]

    add_job(root, "nightly", "notebook: notebooks/ok.ipynb\n")  # fixed
    fixed = run_job(Workspace.load(root), "nightly")
    assert fixed["status"] == "succeeded"
    assert evaluate(Workspace.load(root)).results[0][1].state == "ok"
    assert [s for s, _ in receiver.of("job_failed_nightly")] == ["firing", "resolved"]


def test_lakebook_monitor_run_exits_1_on_a_failing_check_and_status_shows_it(tmp_path, receiver):
    import subprocess
    import sys

    root = workspace_with(tmp_path / "ws", receiver, "checks: [{check: row_count(raw.flights), fail: '< 1'}]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    lakebook = [sys.executable, "-m", "lakebook", "-w", str(root)]
    first = subprocess.run([*lakebook, "monitor", "run"], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 1 and "row_count_raw_flights" in first.stdout and "pending" in first.stdout
    status = subprocess.run([*lakebook, "monitor", "status", "--json"], capture_output=True, text=True, env=env,
                            timeout=120)
    [row] = json.loads(status.stdout)
    assert (row["state"], row["value"], row["detail"]) == ("pending", 0.0, "raw.flights holds 0 rows")
