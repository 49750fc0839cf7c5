"""The service model: every long-running lakebook process is a ``Service``.

A Service says how it starts (its command), its port, how to tell it is ready (an HTTP
health probe), how it stops (a signal and a bound), and what it depends on; its output goes
to ``<state dir>/logs/<name>.log``. ``ServiceProcess`` runs one; ``ServiceSet`` runs the
services a workspace enables, in dependency order, records them in the state file for
``lakebook status``, notices one that dies, and stops them in reverse order. ``lakebook up``,
the demo, the benchmarks and the tests all start services through this module.

Invariants: a service process runs in a session of its own (a Ctrl-C in the terminal
reaches only its parent, which stops the services in order) and is stopped by the kernel if
its parent dies (PR_SET_PDEATHSIG, sent when the thread that started it ends: start
services from a long-lived thread); it binds to 127.0.0.1; a service that needs no secrets
gets none in its environment.
"""

from __future__ import annotations

import graphlib
import importlib.util
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ._proc import bindable, free_port, process_alive, stop_process, stop_with_parent, wait_until_answering
from .config import child_environment, environment_value, setting_variable
from .errors import LakebookError, MissingDependency, ServiceError

if TYPE_CHECKING:
    from .workspace import Workspace

log = logging.getLogger("lakebook.services")


# -- ports (free_port, bindable: _proc.py) ---------------------------------------------------------
def choose_port(requested: int | None, default: int, option: str) -> int:
    """``requested`` if free (an error if it is not), else ``default`` if free, else any free port."""
    if requested is not None:
        if not bindable(requested):
            raise ServiceError(f"port {requested} on 127.0.0.1 is in use", hint=f"choose another with {option}")
        return requested
    return free_port(default)


# -- what a service is -------------------------------------------------------------------------
@dataclass
class Launch:
    """One start of a service: its port, its token (if it has one), service options, and
    variables its environment gets beyond this process's (never recorded, never on a command line)."""

    port: int
    token: str | None = None
    options: dict = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    command: Callable[["Workspace", Launch], list[str]]
    default_port: Callable[["Workspace"], int]
    health_path: str
    url: Callable[[Launch], str] = lambda launch: launch.base_url
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 30
    ready_timeout_s: float = 60
    depends_on: tuple[str, ...] = ()
    requires: tuple[tuple[str, str, str], ...] = ()  # (module, package, extra)
    secrets: bool = False  # whether its environment keeps lakebook's secrets
    token_env: str | None = None  # the variable its token is passed in (never on the command line)
    enabled: Callable[["Workspace"], bool] = lambda workspace: True  # whether `lakebook up` runs it
    ray_section: str | None = None  # the settings section of the Ray runtime it starts or joins, if it uses Ray
    uses_ray: Callable[["Workspace"], bool] = lambda workspace: True  # whether it does, with these settings
    start_attempts: int = 1  # starts of a process that exits before it answers

    def check_installed(self) -> None:
        for module, package, extra in self.requires:
            if importlib.util.find_spec(module) is None:
                raise MissingDependency(package, extra)

    def probe_headers(self, launch: Launch) -> dict[str, str]:
        return {"Authorization": f"token {launch.token}"} if launch.token else {}


_SERVICES: dict[str, Service] = {}


def register(service: Service) -> Service:
    _SERVICES[service.name] = service
    return service


def enabled_services(workspace) -> list[str]:
    """The services ``lakebook up`` runs for ``workspace``: those it enables, in registration order."""
    return [name for name, spec in _SERVICES.items() if spec.enabled(workspace)]


def service(name: str) -> Service:
    try:
        return _SERVICES[name]
    except KeyError:
        raise ServiceError(f"no service {name!r}", hint=f"services: {', '.join(_SERVICES)}") from None


# -- running one ---------------------------------------------------------------------------------
class ServiceProcess:
    """One service as a child process; ``start()`` returns at once, ``wait_ready()`` once it answers."""

    def __init__(self, workspace, spec: Service, launch: Launch, *, log_path: Path | None = None,
                 env: dict[str, str] | None = None):
        self.workspace = workspace
        self.spec = spec
        self.launch = launch
        self.log_path = log_path or workspace.log_path(spec.name)
        self._env = env
        self.process: subprocess.Popen | None = None
        self.started_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.launch.port

    @property
    def url(self) -> str:
        return self.spec.url(self.launch)

    @property
    def base_url(self) -> str:
        return self.launch.base_url

    def start(self) -> "ServiceProcess":
        self.spec.check_installed()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        extra = {self.spec.token_env: self.launch.token} if self.spec.token_env and self.launch.token else {}
        extra.update(self.launch.env)
        env = child_environment(self.workspace.root, secrets=self.spec.secrets, extra=extra,
                                environ=self._env)
        with open(self.log_path, "ab") as log_file:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.spec.command(self.workspace, self.launch), cwd=self.workspace.root, env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=stop_with_parent(),
            )
        self.started_at = datetime.now(timezone.utc)
        return self

    def wait_ready(self, timeout_s: float | None = None) -> "ServiceProcess":
        """Return once it answers; one that exits first is started again while its spec allows."""
        for attempt in range(1, self.spec.start_attempts + 1):
            try:
                wait_until_answering(self.process, self.base_url + self.spec.health_path, name=self.spec.title,
                                     log_text=self.log_text, timeout_s=timeout_s or self.spec.ready_timeout_s,
                                     headers=self.spec.probe_headers(self.launch), hint=f"its log is {self.log_path}",
                                     poll_s=0.05)
                return self
            except LakebookError:
                if self.running or attempt == self.spec.start_attempts:
                    raise
                log.warning("%s exited while starting (attempt %d of %d); starting it again", self.spec.title,
                            attempt, self.spec.start_attempts)
                self.start()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float | None = None) -> int | None:
        """A graceful stop (its own signal), SIGKILL after the bound; the exit code."""
        if self.process is None:
            return None
        return stop_process(self.process, self.spec.stop_signal, timeout_s or self.spec.stop_timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.running:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def state(self) -> dict:
        return {"name": self.name, "title": self.spec.title, "pid": self.process.pid if self.process else None,
                "port": self.port, "url": self.url, "health": self.base_url + self.spec.health_path,
                "token": self.launch.token, "log": str(self.log_path),
                "started_at": self.started_at.isoformat() if self.started_at else None}


def start_service(workspace, name: str, *, port: int | None = None, wait: bool = True,
                  log_path: Path | None = None, env: dict[str, str] | None = None, **options) -> ServiceProcess:
    """Start service ``name`` on ``port`` (default: a free one) and wait until it answers."""
    spec = service(name)
    token = secrets.token_urlsafe(24) if spec.token_env else None
    process = ServiceProcess(workspace, spec, Launch(port or free_port(), token, options), log_path=log_path, env=env)
    process.start()
    if wait:
        try:
            process.wait_ready()
        except BaseException:
            process.kill()
            raise
    return process


# -- running a set ---------------------------------------------------------------------------------
class ServiceSet:
    """The services ``lakebook up`` runs: started in dependency order, watched, stopped in reverse."""

    def __init__(self, workspace, launches: dict[str, Launch]):
        self.workspace = workspace
        order = graphlib.TopologicalSorter({n: [d for d in service(n).depends_on if d in launches] for n in launches})
        self.processes = [ServiceProcess(workspace, service(n), launches[n]) for n in order.static_order()]

    def start(self, after_ready: dict[str, Callable[[ServiceProcess], None]] | None = None) -> None:
        """Start each service once the services it depends on answer; return when all answer.
        ``after_ready[name]`` runs once that service answers (e.g. loading sample data)."""
        after_ready = after_ready or {}
        for spec in (p.spec for p in self.processes):
            spec.check_installed()
        ready: set[str] = set()
        for process in self.processes:
            for needed in process.spec.depends_on:
                self._wait(needed, ready, after_ready)
            process.start()
            self.write_state()
        for process in self.processes:
            self._wait(process.name, ready, after_ready)
        self.write_state()  # a service started again while it was waited for has another pid

    def _wait(self, name: str, ready: set[str], after_ready: dict) -> None:
        if name in ready or name not in self.by_name:
            return
        process = self.by_name[name]
        process.wait_ready()
        ready.add(name)
        if name in after_ready:
            after_ready[name](process)

    @property
    def by_name(self) -> dict[str, ServiceProcess]:
        return {p.name: p for p in self.processes}

    def watch(self, poll_s: float = 0.5) -> None:
        """Return never while all run; a service that exits on its own is a ServiceError."""
        while True:
            for process in self.processes:
                if not process.running:
                    raise ServiceError(f"{process.spec.title} exited with {process.returncode}",
                                       hint=f"its log is {process.log_path}")
            time.sleep(poll_s)

    def stop(self) -> dict[str, int | None]:
        """Stop every service, last started first; their exit codes."""
        codes = {}
        for process in reversed(self.processes):
            codes[process.name] = process.stop()
        self.workspace.services_state_path.unlink(missing_ok=True)
        return codes

    def rows(self) -> list[dict]:
        return [{"service": p.name, "url": p.url, "status": "ready" if p.running else f"exited ({p.returncode})",
                 "log": str(p.log_path)} for p in self.processes]

    def write_state(self) -> None:
        path = self.workspace.services_state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"workspace": str(self.workspace.root), "pid": os.getpid(),
                 "services": [p.state() for p in self.processes if p.process is not None]}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the lab's token
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=1)
        tmp.replace(path)


def status(workspace, probe_timeout_s: float = 2.0) -> list[dict]:
    """What ``lakebook up`` runs for this workspace, as recorded in its state file, each
    service checked now: ``ready`` (answers its health probe), ``not answering``, ``exited``."""
    import httpx

    path = workspace.services_state_path
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    supervisor_alive = process_alive(state.get("pid"))
    rows = []
    for entry in state.get("services", []):
        alive = supervisor_alive and process_alive(entry.get("pid"))
        status_text = "exited"
        if alive:
            headers = {"Authorization": f"token {entry['token']}"} if entry.get("token") else {}
            try:
                answer = httpx.get(entry["health"], timeout=probe_timeout_s, headers=headers)
                status_text = "ready" if answer.status_code == 200 else f"not answering ({answer.status_code})"
            except httpx.TransportError:
                status_text = "not answering"
        rows.append({"service": entry["name"], "url": entry["url"], "status": status_text, "pid": entry.get("pid"),
                     "log": entry["log"], "started_at": entry.get("started_at")})
    return rows


# -- the services --------------------------------------------------------------------------------
def _lakebook(workspace, *args: str) -> list[str]:
    return [sys.executable, "-m", "lakebook", "-w", str(workspace.root), *args]


def _ingest_command(verb: str) -> Callable[["Workspace", Launch], list[str]]:
    """The command line of ``lakebook ingest <verb>``: a service that writes to the ingest log."""

    def command(workspace, launch: Launch) -> list[str]:
        interval = launch.options.get("flush_interval_s", workspace.settings.ingest.flush_interval_s)
        return _lakebook(workspace, "ingest", verb, "--port", str(launch.port), "--flush-interval", str(interval))

    return command


def _lab_command(workspace, launch: Launch) -> list[str]:
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={launch.port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={workspace.root}",
        "--ServerApp.jpserver_extensions={\"lakebook\": True}",
        f"--LakebookApp.workspace={workspace.root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


INGEST = register(Service(
    name="ingest", title="ingest server", command=_ingest_command("serve"),
    default_port=lambda ws: ws.settings.ingest.port, health_path="/health",
    url=lambda launch: launch.base_url, stop_signal=signal.SIGINT,  # it flushes the log to the lake on the way out
    stop_timeout_s=60, requires=(("uvicorn", "uvicorn", "ingest"),), secrets=True,
))
MQTT = register(Service(
    name="mqtt", title="MQTT inlet", command=_ingest_command("mqtt"),
    default_port=lambda ws: ws.settings.ingest.mqtt.health_port, health_path="/health",  # 200 once subscribed
    stop_signal=signal.SIGINT, stop_timeout_s=60,
    requires=(("uvicorn", "uvicorn", "ingest"), ("paho.mqtt", "paho-mqtt", "ingest")), secrets=True,
    enabled=lambda ws: ws.settings.ingest.mqtt is not None,
))
def _ray_head_command(workspace, launch: Launch) -> list[str]:
    from .stream.ray_node import head_command, session_root

    cpus = launch.options.setdefault("num_cpus", workspace.settings.stream.ray_num_cpus)
    return head_command(session_root(workspace), cpus, launch.options.setdefault("gcs_port", free_port()), launch.port)


def local_ray_users(workspace) -> dict[str, object]:
    """The services ``lakebook up`` runs that would start a local Ray runtime of their own (no
    ``ray_address``), with the settings section of their runtime."""
    sections = {name: getattr(workspace.settings, spec.ray_section) for name, spec in _SERVICES.items()
                if spec.ray_section and spec.enabled(workspace) and spec.uses_ray(workspace)}
    return {name: section for name, section in sections.items() if not section.ray_address}


def share_ray(workspace, launches: dict[str, Launch]) -> None:
    """Point the services of ``launches`` that would start a Ray runtime each at the ``ray``
    service's head instead: its GCS address and auth mode as overrides of their settings, and,
    with token auth, a token made for this start in RAY_AUTH_TOKEN. The head gets the CPUs they
    would have had in runtimes of their own, and token auth unless every one disables it."""
    head = launches["ray"]
    users = {name: section for name, section in local_ray_users(workspace).items() if name in launches}
    mode = "disabled" if all(s.ray_auth_mode == "disabled" for s in users.values()) else "token"
    token = {"RAY_AUTH_TOKEN": secrets.token_hex(32)} if mode == "token" else {}
    head.options.update(num_cpus=sum(s.ray_num_cpus for s in users.values()), gcs_port=free_port())
    head.env.update(RAY_AUTH_MODE=mode, **token)
    for name in users:
        section = service(name).ray_section
        launches[name].env.update({setting_variable(section, "ray_address"): f"127.0.0.1:{head.options['gcs_port']}",
                                   setting_variable(section, "ray_auth_mode"): mode, **token})


RAY = register(Service(
    name="ray", title="Ray runtime (shared)", command=_ray_head_command,
    default_port=lambda ws: free_port(),  # its dashboard agent's HTTP, where the head's health answers
    health_path="/api/healthz",  # Ray's own, public: 200 once the head's raylet and GCS answer
    url=lambda launch: f"127.0.0.1:{launch.options.get('gcs_port')}",  # the GCS address the services join
    stop_timeout_s=60, ready_timeout_s=180, requires=(("ray", "ray", "stream"),),
    start_attempts=5,  # Ray gives a node's raylet a fixed 30 s to register (ray/_private/node.py), which a loaded
                       # machine can overrun: `ray start` then stops what it started and exits 1
    secrets=True,  # the endpoints' replicas it starts read their tokens from its environment
    enabled=lambda ws: len(local_ray_users(ws)) > 1,
))
STREAM = register(Service(
    name="stream", title="stream (speed layer)", command=lambda ws, launch: _lakebook(ws, "stream", "start", "--port",
                                                                                    str(launch.port)),
    default_port=lambda ws: ws.settings.stream.port, health_path="/health",
    stop_timeout_s=60, ready_timeout_s=180,  # Ray starts in a few seconds; the actors load their checkpoints
    depends_on=("ingest", "ray"), requires=(("ray", "ray", "stream"), ("feast", "feast", "features")),
    enabled=lambda ws: ws.settings.stream.enabled, ray_section="stream",
))
SERVE = register(Service(
    name="serve", title="model endpoints (Ray Serve)",
    command=lambda ws, launch: _lakebook(ws, "serve", "start", "--admin-port", str(launch.port)),
    default_port=lambda ws: ws.settings.serving.admin_port, health_path="/health",
    stop_timeout_s=60, ready_timeout_s=240,  # Ray and Serve start in ~12 s; each endpoint loads its model
    depends_on=("ingest", "ray"), requires=(("ray", "ray", "stream"), ("fastapi", "fastapi", "stream"),
                                             ("mlflow", "mlflow", "ml"), ("feast", "feast", "features")),
    secrets=True,  # the replicas read the endpoints' tokens from the environment Ray starts them with
    enabled=lambda ws: bool(ws.settings.serving.endpoints), ray_section="serving",
))
JOBS = register(Service(
    name="jobs", title="job scheduler",
    command=lambda ws, launch: _lakebook(ws, "jobs", "scheduler", "--port", str(launch.port)),
    default_port=lambda ws: ws.settings.jobs.port, health_path="/health",
    stop_timeout_s=20,  # runs in flight go on in their own processes and record themselves
    depends_on=("ray",),  # with jobs.executor ray, its supervisors join the workspace's shared runtime
    requires=(("papermill", "papermill", "jobs"), ("croniter", "croniter", "jobs"), ("uvicorn", "uvicorn", "ingest")),
    enabled=lambda ws: _has_jobs(ws), ray_section="jobs", uses_ray=lambda ws: ws.settings.jobs.executor == "ray",
))
DASHBOARDS = register(Service(
    name="dashboards", title="dashboard server (Voila)",
    command=lambda ws, launch: _lakebook(ws, "dashboards", "serve", "--port", str(launch.port)),
    default_port=lambda ws: ws.settings.dashboards.port, health_path="/lakebook/health",
    stop_timeout_s=20, ready_timeout_s=120,  # it answers once Voila listens; pools fill after
    requires=(("voila", "voila", "dashboards"),), token_env="DASHBOARD_SERVER_TOKEN",
    enabled=lambda ws: _has_dashboards(ws),
))
MONITOR = register(Service(
    name="monitor", title="monitor (checks and alerts)",
    command=lambda ws, launch: _lakebook(ws, "monitor", "serve", "--port", str(launch.port)),
    default_port=lambda ws: ws.settings.monitor.port, health_path="/health",
    stop_timeout_s=30,  # the evaluation under way finishes: its results and alerts are recorded whole
    requires=(("uvicorn", "uvicorn", "ingest"),), secrets=True,  # its alert channels' secrets come from the environment
    enabled=lambda ws: ws.settings.monitor.enabled,
))
LAB = register(Service(
    name="lab", title="JupyterLab", command=_lab_command, default_port=lambda ws: ws.settings.lab.port,
    health_path="/lakebook/api/catalog",  # answers once the Lake panel's server extension is loaded
    url=lambda launch: f"{launch.base_url}/lab?token={launch.token}", stop_timeout_s=20, ready_timeout_s=180,
    requires=(("jupyterlab", "jupyterlab", "lab"),), token_env="JUPYTER_TOKEN",
))


def _has_jobs(workspace) -> bool:
    from .jobs.definitions import definition_files

    return bool(definition_files(workspace.jobs_dir))


def _has_dashboards(workspace) -> bool:
    from .dashboards import has_dashboards

    return has_dashboards(workspace)


def lab_token() -> str:
    """JupyterLab's token under ``lakebook up``: ``JUPYTER_TOKEN`` if set, else a fresh one."""
    return environment_value("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
