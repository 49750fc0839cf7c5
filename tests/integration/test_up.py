"""`lakebook up` as a user runs it: the services (a real ingest server and a real JupyterLab)
started through the service model, sample data loaded into an empty lake, the Lake panel's
API answering with the token it prints, `lakebook status` seeing them from another process,
a service that dies reported, and Ctrl-C stopping everything cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import json

import httpx
import psutil
import pytest

from ingest_support import make_workspace
from lakebook.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LAB_URL = re.compile(r"^lab\s+(?P<base>http://127\.0\.0\.1:\d+)/lab\?token=(?P<token>\S+)\s+ready\s")


class Output:
    """The lines a child process prints, read on a thread so waiting for one can time out."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def _lines(self, timeout_s: float):
        """The next lines as they come, until the output ends or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)
            yield line

    def wait_for(self, pattern: re.Pattern, timeout_s: float) -> re.Match:
        for line in self._lines(timeout_s):
            if match := pattern.search(line):
                return match
        raise AssertionError(f"no line matching {pattern.pattern!r} within {timeout_s} s:\n{self.text()}")

    def drain(self, timeout_s: float = 10) -> str:
        """Everything printed until the process closed its output."""
        for _ in self._lines(timeout_s):
            pass
        return self.text()

    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def up_workspace(tmp_path) -> Path:
    """An empty workspace with the flights and weather contracts (`lakebook up` fills it)."""
    return make_workspace(tmp_path / "ws", "name: up\n")


def test_up_serves_the_lake_in_jupyterlab_and_stops_on_ctrl_c(up_workspace, tmp_path, isolated_env):
    lab_port, ingest_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}  # HOME, JUPYTER_*, IPYTHONDIR in tmp_path
    assert env["JUPYTER_CONFIG_DIR"].startswith(str(isolated_env))
    stderr = open(tmp_path / "up.stderr", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(up_workspace), "up", "--port", str(lab_port),
         "--ingest-port", str(ingest_port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
    )
    children: list[psutil.Process] = []
    try:
        output = Output(up.stdout)
        found = output.wait_for(LAB_URL, timeout_s=240)
        assert "sample data: 3,000 flights, 2,000 weather events" in output.text()
        assert found["base"] == f"http://127.0.0.1:{lab_port}"
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 2, [c.cmdline() for c in children]

        auth = {"Authorization": f"token {found['token']}"}
        catalog = httpx.get(f"{found['base']}/lakebook/api/catalog", headers=auth, timeout=30)
        assert catalog.status_code == 200, catalog.text
        doc = catalog.json()
        assert doc["workspace"] == "up"
        raw = {t["name"]: t for z in doc["zones"] if z["name"] == "raw" for t in z["tables"]}
        assert raw["raw.flights"]["row_count"] == 3000 and raw["raw.weather"]["row_count"] == 2000
        assert raw["raw.flights"]["last_updated"] and raw["raw.flights"]["columns"]
        assert httpx.get(f"{found['base']}/lakebook/api/catalog", timeout=30).status_code == 403
        assert httpx.get(f"{found['base']}/lab", headers=auth, timeout=30).status_code == 200

        health = httpx.get(f"http://127.0.0.1:{ingest_port}/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert re.search(rf"^ingest\s+http://127\.0\.0\.1:{ingest_port}\s+ready\s+\S+ingest\.log$", output.text(), re.M)

        status = lakebook(up_workspace, "status", "--json", env=env)
        rows = {r["service"]: r for r in json.loads(status.stdout)}
        assert set(rows) == {"ingest", "monitor", "lab"} and {r["status"] for r in rows.values()} == {"ready"}, \
            status.stdout
        checks = httpx.get(f"{rows['monitor']['url']}/status", timeout=30).json()["checks"]  # the contracts' defaults
        assert {"freshness_raw_flights", "reject_rate_weather"} <= {c["name"] for c in checks}
        assert rows["ingest"]["url"] == f"http://127.0.0.1:{ingest_port}"
        assert rows["lab"]["pid"] in {c.pid for c in children}
        table = lakebook(up_workspace, "status", env=env).stdout
        assert re.search(rf"^lab\s+{re.escape(found['base'])}/lab\?token=\S+\s+ready\s", table, re.M), table

        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, output.drain() + (tmp_path / "up.stderr").read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        stderr.close()
        survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        for child in survivors:  # whatever outlived `lakebook up` must not outlive the test
            child.kill()
    assert "stopped." in output.drain()
    assert not survivors, [c.cmdline() for c in survivors]
    for port in (lab_port, ingest_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    after = lakebook(up_workspace, "status", env=env)
    assert "no services running" in after.stdout, after.stdout


def lakebook(workspace: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(workspace), *args], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


@contextmanager
def up_running(workspace: Path, env: dict):
    """`lakebook up --no-sample` on free ports, ready, its output read as it comes, and its
    direct children; whatever is left of them is killed at the end."""
    up = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(workspace), "up", "--no-sample",
         "--port", str(free_port()), "--ingest-port", str(free_port())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    children: list[psutil.Process] = []
    try:
        output = Output(up.stdout)
        output.wait_for(LAB_URL, timeout_s=240)
        children.extend(psutil.Process(up.pid).children(recursive=False))
        yield up, output, children
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for child in children:
            if child.is_running():
                child.kill()


def test_a_service_that_dies_is_reported_and_the_rest_stopped(up_workspace, isolated_env):
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    with up_running(up_workspace, env) as (up, output, children):
        rows = {r["service"]: r for r in json.loads(lakebook(up_workspace, "status", "--json", env=env).stdout)}
        os.kill(rows["ingest"]["pid"], signal.SIGKILL)
        assert up.wait(90) == 2
        text = output.drain()
        assert "error: ingest server exited with -9" in text and "hint: its log is" in text, text
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [c.cmdline() for c in alive]
        assert "no services running" in lakebook(up_workspace, "status", env=env).stdout


def test_what_up_started_stops_when_up_is_killed(up_workspace, isolated_env):
    """kill -9 of `lakebook up` runs none of its code: the kernel stops its children."""
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    with up_running(up_workspace, env) as (up, _, children):
        assert len(children) == 3, [c.cmdline() for c in children]  # ingest, monitor, lab
        up.kill()
        up.wait()
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, [c.cmdline() for c in alive]


def _processes_of(pid: int, word: str, recursive: bool = False) -> list[psutil.Process]:
    return [c for c in psutil.Process(pid).children(recursive=recursive) if word in " ".join(c.cmdline())]


def _files_holding(folder: Path, secrets: tuple[str, ...]) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


@pytest.mark.parametrize("variable", ["LAKEBOOK_INGEST__TOKENS", "LAKEBOOK_INGEST"])
def test_up_keeps_ingest_tokens_out_of_the_lab_its_kernels_the_output_and_the_logs(up_workspace, tmp_path, isolated_env,
                                                                                   variable):
    env_token, file_token = "tok-from-env-7f3a9c", "tok-from-file-41d2e8"
    tokens = tmp_path / "tokens.yaml"  # outside the workspace, as a secret should be
    tokens.write_text(f"weather: {file_token}\n")
    (up_workspace / "lakebook.yaml").write_text(f"name: up\ningest:\n  tokens_file: {tokens}\n")
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    flights = {"flights": [env_token]}  # the tokens setting, or the whole ingest section, as one variable
    env[variable] = json.dumps(flights if variable.endswith("TOKENS") else {"tokens": flights})
    ingest_port = free_port()
    stderr = open(tmp_path / "up.stderr", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(up_workspace), "up", "--port", str(free_port()),
         "--ingest-port", str(ingest_port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
    )
    secrets = (env_token, file_token)
    try:
        output = Output(up.stdout)
        found = output.wait_for(LAB_URL, timeout_s=240)
        assert "sample data: 3,000 flights, 2,000 weather events" in output.text()  # sent with the tokens
        auth = {"Authorization": f"token {found['token']}"}
        kernel = httpx.post(f"{found['base']}/api/kernels", headers=auth, json={"name": "python3"}, timeout=60)
        assert kernel.status_code == 201, kernel.text
        (lab,) = _processes_of(up.pid, "jupyterlab")
        kernels = wait_until(lambda: _processes_of(lab.pid, kernel.json()["id"], True), 60, "the kernel process")

        ingest = f"http://127.0.0.1:{ingest_port}"
        as_source = httpx.post(f"{ingest}/v1/events/{env_token}", content=b"{}", timeout=30,
                               headers={"content-type": "application/json", "authorization": f"Bearer {env_token}"})
        assert as_source.status_code == 404 and env_token not in as_source.text  # even echoing it back is masked
        assert httpx.post(f"{ingest}/v1/events/flights", content=b"{}", timeout=30, headers={
            "content-type": "application/json", "authorization": f"Bearer {file_token}x"}).status_code == 401

        (server,) = _processes_of(up.pid, "ingest serve")
        assert env_token in server.environ()[variable]  # the one service that needs it has it
        for process in (lab, *kernels):
            environ = process.environ()
            assert not [s for s in secrets if s in " ".join(environ.values())], process.cmdline()
            assert variable not in environ and environ["LAKEBOOK_WORKSPACE"] == str(up_workspace)
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        stderr.close()
    printed = output.drain() + (tmp_path / "up.stderr").read_text()
    assert "stopped." in printed and not [s for s in secrets if s in printed]
    logs = up_workspace / ".lakebook" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["ingest.log", "lab.log", "monitor.log"]
    assert _files_holding(up_workspace, secrets) == []  # logs, state, lake, catalog: nowhere

    broken = dict(env, LAKEBOOK_INGEST=f"[{env_token}]")  # a rejected setting that holds a token
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(up_workspace), "status"], capture_output=True,
                          text=True, env=broken, timeout=60)
    assert done.returncode == 2 and "error: invalid configuration" in done.stderr, done.stderr
    assert env_token not in done.stderr + done.stdout


def wait_until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.2)
    return value
