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

    assert list(up_launches(Workspace.load(workspace_dir), {})) == ["ingest", "monitor", "lab"]
    (workspace_dir / "lakebook.yaml").write_text("name: test\nstream:\n  enabled: true\n  port: 9100\n")
    enabled = Workspace.load(workspace_dir)
    launches = up_launches(enabled, {})
    assert list(launches) == ["ingest", "stream", "monitor", "lab"] and launches["stream"].token is None
    stream = service("stream")
    assert stream.command(enabled, Launch(9100)) == [sys.executable, "-m", "lakebook", "-w", str(enabled.root),
                                                     "stream", "start", "--port", "9100"]
    assert (stream.depends_on, stream.secrets, stream.health_path) == (("ingest", "ray"), False, "/health")
    order = [p.name for p in ServiceSet(enabled, launches).processes]
    assert order.index("ingest") < order.index("stream")


BOTH_USE_RAY = ("name: test\nstream:\n  enabled: true\n"
                "serving:\n  endpoints:\n    delay: {model: 'models:/m@champion'}\n")


def test_one_service_alone_keeps_its_own_ray_runtime(workspace_dir):
    from lakebook.up import up_launches
    from lakebook.workspace import Workspace

    for config in ("name: test\nstream:\n  enabled: true\n", BOTH_USE_RAY.replace("enabled: true", "enabled: false"),
                   BOTH_USE_RAY + "  ray_address: 10.0.0.5:6379\n"):  # the endpoints on a cluster: the stream alone
        (workspace_dir / "lakebook.yaml").write_text(config)
        launches = up_launches(Workspace.load(workspace_dir), {})
        assert "ray" not in launches and not [n for n, launch in launches.items() if launch.env], config


def test_the_stream_and_the_endpoints_join_one_ray_head_with_a_token_made_for_the_start(workspace_dir):
    from lakebook.up import up_launches
    from lakebook.workspace import Workspace

    (workspace_dir / "lakebook.yaml").write_text(BOTH_USE_RAY)
    ws = Workspace.load(workspace_dir)
    launches = up_launches(ws, {})
    head = launches["ray"]
    assert [p.name for p in ServiceSet(ws, launches).processes][0] == "ray"  # started first, stopped last
    token = head.env["RAY_AUTH_TOKEN"]
    assert head.env["RAY_AUTH_MODE"] == "token" and len(token) == 64 and head.options["num_cpus"] == 4
    address = f"127.0.0.1:{head.options['gcs_port']}"
    assert launches["stream"].env == {"LAKEBOOK_STREAM__RAY_ADDRESS": address,
                                      "LAKEBOOK_STREAM__RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    assert launches["serve"].env["LAKEBOOK_SERVING__RAY_ADDRESS"] == address
    command = service("ray").command(ws, head)
    assert token not in " ".join(command) and command[1:4] == ["start", "--block", "--node-ip-address"]
    assert ["--head", "--port", str(head.options["gcs_port"])] == command[command.index("--head"):][:3]
    assert command[command.index("--dashboard-agent-listen-port") + 1] == str(head.port)  # where its health answers
    assert command[command.index("--temp-dir") + 1].endswith("/ray") and "--include-dashboard" in command
    assert service("ray").url(head) == address and service("ray").secrets  # its replicas read the serving tokens
    assert token != up_launches(ws, {})["ray"].env["RAY_AUTH_TOKEN"]
    joined = Workspace.load(workspace_dir, environ={**os.environ, **launches["stream"].env})
    assert joined.settings.stream.ray_address == address


def test_the_job_scheduler_joins_the_shared_head_only_with_the_ray_executor(workspace_dir):
    from jobs_support import add_job, add_notebooks

    from lakebook.up import up_launches
    from lakebook.workspace import Workspace

    add_notebooks(workspace_dir)
    add_job(workspace_dir, "report", "notebook: notebooks/ok.ipynb\n")
    stream_and_jobs = "name: test\nstream:\n  enabled: true\njobs:\n  executor: {}\n"
    (workspace_dir / "lakebook.yaml").write_text(stream_and_jobs.format("local"))
    launches = up_launches(Workspace.load(workspace_dir), {})
    assert "ray" not in launches and launches["jobs"].env == {}
    (workspace_dir / "lakebook.yaml").write_text(stream_and_jobs.format("ray"))
    launches = up_launches(Workspace.load(workspace_dir), {})
    address = f"127.0.0.1:{launches['ray'].options['gcs_port']}"
    assert launches["jobs"].env["LAKEBOOK_JOBS__RAY_ADDRESS"] == address
    assert launches["jobs"].env["RAY_AUTH_TOKEN"] == launches["stream"].env["RAY_AUTH_TOKEN"]


def test_the_shared_head_runs_without_auth_only_when_every_user_disables_it(workspace_dir):
    from lakebook.up import up_launches
    from lakebook.workspace import Workspace

    (workspace_dir / "lakebook.yaml").write_text(BOTH_USE_RAY + "  ray_auth_mode: disabled\n")
    assert up_launches(Workspace.load(workspace_dir), {})["ray"].env["RAY_AUTH_MODE"] == "token"
    both_disabled = BOTH_USE_RAY.replace("enabled: true", "enabled: true\n  ray_auth_mode: disabled")
    (workspace_dir / "lakebook.yaml").write_text(both_disabled + "  ray_auth_mode: disabled\n")
    launches = up_launches(Workspace.load(workspace_dir), {})
    assert launches["ray"].env == {"RAY_AUTH_MODE": "disabled"}
    assert launches["serve"].env["LAKEBOOK_SERVING__RAY_AUTH_MODE"] == "disabled"


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


def test_a_service_that_exits_while_starting_is_started_again_as_its_spec_allows(workspace, monkeypatch):
    """The shared Ray head's `ray start` exits 1 when its raylet overruns Ray's fixed 30 s to register."""
    started = []

    class Exited:  # the first start exits at once, the next ones run
        def __init__(self, command, **kwargs):
            started.append(command)
            self.pid, self.code = len(started), 1 if len(started) == 1 else None

        def poll(self):
            return self.code

    def answering(process, url, **kwargs):
        if process.poll() is not None:
            raise ServiceError(f"exited with {process.poll()}")

    monkeypatch.setattr(services.subprocess, "Popen", Exited)
    monkeypatch.setattr(services, "wait_until_answering", answering)
    head = ServiceProcess(workspace, service("ray"), Launch(9003, options={"gcs_port": 9004, "num_cpus": 2}))
    assert head.start().wait_ready().process.pid == 2 and len(started) == 2
    started.clear()
    once = ServiceProcess(workspace, service("stream"), Launch(9005)).start()
    with pytest.raises(ServiceError, match="exited with 1"):
        once.wait_ready()
    assert len(started) == 1
