"""The service model without starting anything: ports, the services' command lines and
environments, dependency order, and `lakebook status` on a state file whose processes are gone.
Starting and stopping real services is in tests/integration/test_up.py and every ingest test."""

import json
import os
import socket
import sys

import pytest

from lakebook import services
from lakebook.errors import ServiceError
from lakebook.services import Launch, ServiceProcess, ServiceSet, choose_port, free_port, service, status


def test_free_port_prefers_the_one_asked_for_if_free():
    port = free_port()
    assert free_port(port) == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        assert free_port(port) != port
        with pytest.raises(ServiceError, match=f"port {port} on 127.0.0.1 is in use") as info:
            choose_port(port, 8888, "--lab-port")
        assert info.value.hint == "choose another with --lab-port"
        assert choose_port(None, port, "--lab-port") != port


def test_ingest_and_lab_command_lines(workspace):
    ingest = service("ingest").command(workspace, Launch(9001, options={"flush_interval_s": 0.5}))
    assert ingest == [sys.executable, "-m", "lakebook", "-w", str(workspace.root), "ingest", "serve",
                      "--port", "9001", "--flush-interval", "0.5"]
    default = service("ingest").command(workspace, Launch(9001))
    assert default[-1] == str(workspace.settings.ingest.flush_interval_s)
    lab = service("lab").command(workspace, Launch(9002, "tok"))
    assert "--ServerApp.ip=127.0.0.1" in lab and "--ServerApp.port=9002" in lab and "tok" not in " ".join(lab)
    assert service("lab").url(Launch(9002, "tok")) == "http://127.0.0.1:9002/lab?token=tok"
    assert service("ingest").default_port(workspace) == 8787 and service("lab").default_port(workspace) == 8888
    with pytest.raises(ServiceError, match="no service 'labb'"):
        service("labb")


def test_lakebook_up_runs_the_stream_when_the_workspace_enables_it(workspace_dir):
    from lakebook.up import up_launches
    from lakebook.workspace import Workspace

    assert list(up_launches(Workspace.load(workspace_dir), {})) == ["ingest", "lab"]
    (workspace_dir / "lakebook.yaml").write_text("name: test\nstream:\n  enabled: true\n  port: 9100\n")
    enabled = Workspace.load(workspace_dir)
    launches = up_launches(enabled, {})
    assert list(launches) == ["ingest", "stream", "lab"] and launches["stream"].token is None
    stream = service("stream")
    assert stream.command(enabled, Launch(9100)) == [sys.executable, "-m", "lakebook", "-w", str(enabled.root),
                                                     "stream", "start", "--port", "9100"]
    assert (stream.depends_on, stream.secrets, stream.health_path) == (("ingest",), False, "/health")
    order = [p.name for p in ServiceSet(enabled, launches).processes]
    assert order.index("ingest") < order.index("stream")


def test_the_lab_gets_its_token_and_no_lakebook_secrets(workspace, monkeypatch):
    seen = {}

    class Recorder:
        def __init__(self, command, **kwargs):
            seen.update(kwargs["env"])
            self.pid = 1

    monkeypatch.setattr(services.subprocess, "Popen", Recorder)
    env = {"PATH": os.environ["PATH"], "LAKEBOOK_INGEST__TOKENS": '{"flights": ["s3cret"]}', "OTHER": "1"}
    ServiceProcess(workspace, service("lab"), Launch(9002, "tok"), env=env).start()
    assert seen["JUPYTER_TOKEN"] == "tok" and seen["LAKEBOOK_WORKSPACE"] == str(workspace.root)
    assert "LAKEBOOK_INGEST__TOKENS" not in seen and seen["OTHER"] == "1"
    seen.clear()
    ServiceProcess(workspace, service("ingest"), Launch(9001), env=env).start()
    assert seen["LAKEBOOK_INGEST__TOKENS"] == '{"flights": ["s3cret"]}'


def test_a_set_starts_in_dependency_order(workspace, monkeypatch):
    monkeypatch.setitem(services._SERVICES, "after", services.Service(
        name="after", title="after", command=lambda ws, launch: [], default_port=lambda ws: 1, health_path="/",
        depends_on=("ingest",)))
    launches = {"after": Launch(1), "lab": Launch(2), "ingest": Launch(3)}
    order = [p.name for p in ServiceSet(workspace, launches).processes]
    assert order.index("ingest") < order.index("after")


def test_status_reads_the_state_file_and_sees_dead_processes(workspace):
    assert status(workspace) == []
    workspace.services_state_path.parent.mkdir(parents=True, exist_ok=True)
    gone = _dead_pid()
    workspace.services_state_path.write_text(json.dumps({"pid": os.getpid(), "services": [
        {"name": "ingest", "pid": gone, "url": "http://127.0.0.1:1", "health": "http://127.0.0.1:1/health",
         "log": "/x/ingest.log", "started_at": None}]}))
    [row] = status(workspace)
    assert row["service"] == "ingest" and row["status"] == "exited" and row["log"] == "/x/ingest.log"


def _dead_pid() -> int:
    """A process id no process can have (above the kernel's largest)."""
    with open("/proc/sys/kernel/pid_max") as handle:
        return int(handle.read()) + 1
