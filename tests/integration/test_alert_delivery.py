"""Alerts delivered to real receivers on 127.0.0.1: an SMTP server (aiosmtpd) that checks the
login, and an HTTP server that records each request; and what a failing receiver or an
unreachable one gives back, within a bounded time."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from lakebook._proc import free_port
from lakebook.alerts import Alert, notify
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

SECRET = "Bearer hook-secret-5f2c"
PASSWORD = "smtp-secret-91ad"
ALERT = Alert(title="nightly_batch failed", text="cell 4 raised KeyError: 'origin'", severity="critical",
              labels={"job": "nightly_batch", "run": "17"}, status="firing", url="http://127.0.0.1:8888/lab/run/17")


class Receiver:
    """An HTTP server in a thread: records every request and answers ``status``; a refusal
    echoes the request's Authorization header, as a careless receiver might."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = b"ok" if receiver.status < 300 else f"denied {self.headers['Authorization']}".encode()
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", self.path + "/elsewhere")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/T0/B0/path-secret"


class Mailbox:
    """aiosmtpd's handler: keeps each message and the logins it was given."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=(auth_data.password.decode() == PASSWORD))


@pytest.fixture(scope="module")
def receiver():
    found = Receiver()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture(scope="module")
def smtp():
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate,
                            auth_require_tls=False, server_hostname="lakebook-test")
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def ws(tmp_path, receiver, smtp, monkeypatch):
    receiver.requests.clear()
    receiver.status = 200
    smtp[0].messages.clear()
    monkeypatch.setenv("LAKEBOOK_ALERTS__CHANNELS__OPS__HEADERS", json.dumps({"Authorization": SECRET}))
    monkeypatch.setenv("LAKEBOOK_ALERTS__CHANNELS__ONCALL__PASSWORD", PASSWORD)
    (tmp_path / "lakebook.yaml").write_text(f"""\
alerts:
  channels:
    ops: {{type: webhook, url: '{receiver.url}', timeout_s: 5}}
    oncall: {{type: email, host: 127.0.0.1, port: {smtp[1]}, from: lakebook@example.com,
              to: [ops@example.com, data@example.com], username: lakebook, timeout_s: 5}}
    dead_mail: {{type: email, host: 127.0.0.1, port: {free_port()}, from: lakebook@example.com,
                 to: [ops@example.com], timeout_s: 2}}
""")
    return Workspace.load(tmp_path)


def test_both_channels_deliver_what_the_receivers_expect(ws, receiver, smtp):
    assert notify(ws, ["ops", "oncall"], ALERT) == {"ops": None, "oncall": None}

    [request] = receiver.requests
    assert request["path"] == "/hooks/T0/B0/path-secret" and request["headers"]["Authorization"] == SECRET
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert {k: body[k] for k in ("title", "description", "severity", "labels", "status", "url")} == {
        "title": "nightly_batch failed", "description": "cell 4 raised KeyError: 'origin'", "severity": "critical",
        "labels": {"job": "nightly_batch", "run": "17"}, "status": "firing", "url": "http://127.0.0.1:8888/lab/run/17"}
    assert body["text"].startswith("[FIRING] critical: nightly_batch failed\n\ncell 4 raised KeyError")

    mailbox, _ = smtp
    [(sender, recipients, content)] = mailbox.messages
    assert (sender, recipients) == ("lakebook@example.com", ["ops@example.com", "data@example.com"])
    assert mailbox.logins[-1] == ("lakebook", PASSWORD)
    message = message_from_bytes(content, policy=default)
    assert message["Subject"] == "[lakebook] critical nightly_batch failed"
    text = message.get_content().replace("\r\n", "\n")  # as it travelled: CRLF line ends
    assert "cell 4 raised KeyError: 'origin'" in text and "labels:\n  job: nightly_batch\n  run: 17" in text
    assert message.get_content_type() == "text/plain"


def test_a_refusing_receiver_is_tried_twice_and_reported_without_the_secret(ws, receiver, caplog):
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="lakebook.alerts"):
        outcome = notify(ws, ["ops", "oncall"], ALERT)
    assert len(receiver.requests) == 2  # one retry of a 5xx
    assert outcome["oncall"] is None  # the other channel is still served
    assert outcome["ops"] == f"http://127.0.0.1:{receiver.server.server_port} answered HTTP 500: denied ***"
    assert "not delivered to channel ops (after 2 attempts)" in caplog.text and "denied ***" in caplog.text
    assert "hook-secret" not in caplog.text + outcome["ops"] and "path-secret" not in caplog.text


@pytest.mark.parametrize("status", [403, 307])
def test_a_refusal_or_a_redirect_is_not_tried_again(ws, receiver, status):
    receiver.status = status
    assert notify(ws, ["ops"], ALERT)["ops"].endswith(f"answered HTTP {status}: denied ***")
    assert len(receiver.requests) == 1  # the redirect is not followed: the headers stay with this receiver


def test_an_unreachable_smtp_server_is_an_error_in_bounded_time(ws):
    started = time.monotonic()
    outcome = notify(ws, ["dead_mail"], ALERT)
    assert outcome["dead_mail"].startswith("cannot deliver through SMTP server 127.0.0.1:")
    assert "Connection refused" in outcome["dead_mail"]
    assert time.monotonic() - started < 2 * 2 + 1  # two attempts of at most timeout_s, and the pause


def test_a_receiver_that_never_answers_is_given_up_on_after_its_timeout(tmp_path):
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        (tmp_path / "lakebook.yaml").write_text(
            f"alerts:\n  channels:\n    slow: {{type: webhook, url: 'http://127.0.0.1:{silent.getsockname()[1]}/', "
            "timeout_s: 0.5}\n")
        started = time.monotonic()
        outcome = notify(Workspace.load(tmp_path), ["slow"], ALERT)
        elapsed = time.monotonic() - started
    assert "timed out" in outcome["slow"] and 1.0 <= elapsed < 4  # 2 x 0.5 s and the 0.5 s pause, with slack


def test_a_failing_job_alerts_its_channels_on_each_retry_and_on_the_failure(ws, receiver, smtp):
    """A job run for real (Papermill, no scheduler) whose notebook fails on both attempts: the
    webhook hears the retry and the failure, the mailbox the failure, each naming job and run."""
    from jobs_support import add_job, add_notebooks

    from lakebook.jobs import run_job

    add_notebooks(ws.root)
    add_job(ws.root, "nightly", """
        notebook: notebooks/fail.ipynb
        retries: {max: 1, backoff: 0}
        alerts: {on: [retry, failure], to: [ops]}
    """)
    add_job(ws.root, "nightly_mail", "notebook: notebooks/fail.ipynb\nalerts: {on: [failure], to: [oncall]}\n")
    run = run_job(ws, "nightly")
    assert (run["status"], run["attempt"]) == ("failed", 2)

    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert [(b["labels"]["event"], b["labels"]["job"], b["labels"]["run"], b["severity"]) for b in bodies] == [
        ("retry", "nightly", str(run["id"]), "warning"), ("failure", "nightly", str(run["id"]), "critical")]
    assert "ValueError" in bodies[1]["description"] and bodies[1]["status"] == "firing"

    mailed = run_job(ws, "nightly_mail")
    [(_, _, content)] = smtp[0].messages
    message = message_from_bytes(content, policy=default)
    assert message["Subject"] == f"[lakebook] critical job nightly_mail: run {mailed['id']} failure"
    assert "ValueError" in message.get_content()
