"""The stream as a service: Ray connected, the job started, and its status over HTTP on
127.0.0.1 (``GET /health``, ``GET /status``, ``GET /metrics`` in Prometheus's format) until
SIGINT or SIGTERM, which stop the job (the batches in flight finish, the speed rows are
written) and the Ray runtime it started.

The running stream is recorded in ``<state dir>/stream/service.json`` (its pid and port) for
``lakebook stream status`` and ``lakebook stream stop``. It reads only the bus, the lake and
the feature store: it needs no ingest token.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from .._proc import free_port, process_alive, running_record
from ..config import set_ray_environment
from ..errors import ServiceError

log = logging.getLogger("lakebook.stream")
ROUTES = "GET /health, GET /status, GET /metrics"
STATE_FILE = "service.json"


def connect_ray(workspace, settings=None) -> str:
    """Connect this process to Ray: the runtime it is connected to already (a notebook's, a
    test session's), the cluster at ``ray_address``, or a new local runtime on 127.0.0.1 with
    ``ray_num_cpus`` CPUs, no dashboard, its files in the workspace's ray dir; those settings
    from ``settings`` (default: the ``stream`` section). Where it connected. Call it before the
    process imports ray: Ray reads ``RAY_AUTH_MODE`` then."""
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return "the Ray runtime this process already uses"
    settings = settings or workspace.settings.stream
    set_ray_environment(ray_temp_dir(workspace.ray_dir), settings.ray_auth_mode)  # read when ray is imported
    import ray

    if settings.ray_address:
        _join_cluster(ray, settings.ray_address)
        return settings.ray_address
    _agent_on_a_free_port()
    _start_local_runtime(ray, settings.ray_num_cpus)
    return "a local Ray runtime"


CLIENT_CONNECT_ATTEMPTS = 3
CLIENT_RETRY_PAUSE_S = 2.0
# How the head says its client server for this connection did not start: it reported the
# failure, or the process died while the head was still waiting for it (Ray then reads the
# command line of a zombie and gives up)
CLIENT_SERVER_DIED = ("Starting Ray client server failed", "ZombieProcess")


def _join_cluster(ray, address: str, pause_s: float = CLIENT_RETRY_PAUSE_S) -> None:
    """``ray.init`` of the cluster at ``address``. Through Ray Client the head starts a client
    server process for each connection; on a loaded head that start can fail ("Starting Ray
    client server failed", or the process died while the head waited for it) while the next one
    succeeds, so that failure is tried again. Any other failure (a refused token shows as a
    timeout) is an error naming what to check."""
    for attempt in range(1, CLIENT_CONNECT_ATTEMPTS + 1):
        try:
            ray.init(address=address, configure_logging=False)
            return
        except ConnectionError as exc:
            if any(m in str(exc) for m in CLIENT_SERVER_DIED) and attempt < CLIENT_CONNECT_ATTEMPTS:
                log.warning("the Ray head could not start a client server for this connection (attempt %d of %d);"
                            " connecting again", attempt, CLIENT_CONNECT_ATTEMPTS)
                ray.shutdown()
                time.sleep(pause_s)
                continue
            raise ServiceError(f"cannot connect to the Ray cluster at {address}: {exc}",
                               hint=cluster_hint(address)) from exc


LOCAL_START_ATTEMPTS = 3


def _start_local_runtime(ray, num_cpus: int) -> None:
    """``ray.init`` of a new local runtime, started again when its node times out while
    starting: its raylet waits a fixed time (not a setting) for the node's agents to report
    their ports, and on a loaded machine their imports can take longer; ``ray.init`` then
    raises and has stopped what it started."""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            # "local": a new runtime, never the one a `ray start` recorded in the same temp dir
            # (the shared head under `lakebook up`, running or stopped), nor one RAY_ADDRESS names
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     configure_logging=False)
            return
        except Exception as exc:  # Ray raises a bare Exception for it
            if "timed out during startup" not in str(exc) or attempt == LOCAL_START_ATTEMPTS:
                raise
            log.warning("the local Ray runtime timed out while starting (attempt %d of %d); starting it again",
                        attempt, LOCAL_START_ATTEMPTS)
            ray.shutdown()


def _agent_on_a_free_port() -> None:
    """Give the local runtime's dashboard agent a free port. ``ray.init`` has no option for it,
    and every local runtime takes 52365: a second one on the machine (the stream's beside the
    endpoints', another workspace's) finds it taken, and its raylet then fails a check and the
    runtime times out at start. The port is the default of Ray's node parameters."""
    from ray._private import parameter

    init = parameter.RayParams.__init__
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    defaults = list(init.__defaults__)
    defaults[names.index("dashboard_agent_listen_port") - (len(names) - len(defaults))] = free_port()
    init.__defaults__ = tuple(defaults)


TOKEN_HINT = "the token the cluster was started with in RAY_AUTH_TOKEN or ~/.ray/auth_token"


def cluster_hint(address: str) -> str:
    """What to check when the cluster at ``address`` cannot be reached."""
    if address.startswith("ray://"):
        return (f"a Ray Client address needs the head's Ray Client server on that port (ray start --head "
                f"--ray-client-server-port, 10001 by default) and {TOKEN_HINT}; or use the head's GCS "
                f"address, host:6379 as ray start --head prints it")
    return f"give the head's GCS address (host:6379 as ray start --head prints it) and {TOKEN_HINT}"


SOCKET_PATH_MAX = 107  # AF_UNIX
RAY_SOCKET_TAIL = len("/ray/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")


def ray_temp_dir(ray_dir: Path) -> Path:
    """The workspace's ray dir, or, when Ray's socket paths under it would be longer than a
    Unix socket path may be, a short link to it in a folder of this user's under /tmp."""
    ray_dir.mkdir(parents=True, exist_ok=True)
    if len(str(ray_dir)) + RAY_SOCKET_TAIL <= SOCKET_PATH_MAX:
        return ray_dir
    import hashlib
    import stat
    import tempfile

    mine = Path(tempfile.gettempdir()) / f"lakebook-{os.getuid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    held = mine.lstat()
    if not stat.S_ISDIR(held.st_mode) or held.st_uid != os.getuid() or held.st_mode & 0o077:
        raise ServiceError(f"{mine} is not a private folder of this user", hint="remove it; lakebook makes it again")
    link = mine / hashlib.sha256(str(ray_dir.resolve()).encode()).hexdigest()[:12]
    if not (link.is_symlink() and link.resolve() == ray_dir.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(ray_dir.resolve(), target_is_directory=True)
    return link


# -- the HTTP side -------------------------------------------------------------------------------
def _groups(bus, group: str) -> dict[str, dict]:
    return {row["source"]: row for row in bus.groups() if row["group"] == group}


def job_status(job, bus) -> dict:
    """The job's report with each source's committed offset and lag from the bus."""
    report = job.report()
    groups = _groups(bus, job.settings.group)
    for source, row in report["sources"].items():
        found = groups.get(source, {})
        row["committed"], row["lag"] = found.get("offset"), found.get("lag")
    return {"running": True, "pid": os.getpid(), **report}


def create_app(job, bus):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ..asgi import Json, routing_error_handler
    from .metrics import CONTENT_TYPE, exposition

    async def health(request: Request):
        problems = {s: st.problem for s, st in job.status.items() if st.problem}
        return Json({"status": "degraded" if problems else "ok", "problems": problems})

    async def status(request: Request):
        return Json(job_status(job, bus))

    async def metrics(request: Request):
        return Response(exposition(job_status(job, bus)), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/health", health), Route("/status", status), Route("/metrics", metrics)],
                     exception_handlers={HTTPException: routing_error_handler(ROUTES)})


# -- the service's lifetime ----------------------------------------------------------------------
def state_path(workspace) -> Path:
    return workspace.stream_dir / STATE_FILE


def serve_stream(workspace, port: int | None = None, echo=print) -> None:
    """Run the stream until interrupted."""
    where = connect_ray(workspace)  # first: Ray reads its environment when it is imported
    import ray
    from ..asgi import serve_until_stopped

    from .bus import open_bus
    from .job import StreamJob

    port = port or workspace.settings.stream.port
    job = StreamJob(workspace).start()
    bus = open_bus(workspace)
    path = state_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "port": port, "started_at": time.time()}))
    echo(f"lakebook stream on http://127.0.0.1:{port}  (group {job.settings.group}, {where}; "
         f"views {', '.join(job.views)})")
    try:
        serve_until_stopped(create_app(job, bus), "stopping the stream", port=port)
    finally:
        job.stop()
        bus.close()
        path.unlink(missing_ok=True)
        ray.shutdown()




def _recorded(workspace) -> dict | None:
    """The running stream's record, or None when none runs."""
    return running_record(state_path(workspace))


def stream_status(workspace, timeout_s: float = 5.0) -> dict:
    """The running stream's status, or the consumer group's offsets and lag on the bus."""
    import httpx

    state = _recorded(workspace)
    if state is not None:
        try:
            return httpx.get(f"http://127.0.0.1:{state['port']}/status", timeout=timeout_s).json()
        except httpx.TransportError:
            pass
    from .bus import open_bus

    bus = open_bus(workspace)
    try:
        groups = _groups(bus, workspace.settings.stream.group)
    finally:
        bus.close()
    return {"running": False, "group": workspace.settings.stream.group,
            "sources": {s: {"committed": r.get("offset"), "lag": r.get("lag")} for s, r in groups.items()},
            "views": {}}


def stop_stream(workspace, timeout_s: float = 60.0) -> int:
    """SIGTERM the running stream and wait until it has stopped; its pid."""
    state = _recorded(workspace)
    if state is None:
        raise ServiceError("no stream is running for this workspace", hint="start one with 'lakebook stream start'")
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process_alive(state["pid"]):
            return state["pid"]
        time.sleep(0.1)
    raise ServiceError(f"the stream (pid {state['pid']}) did not stop within {timeout_s:.0f} s",
                       hint=f"its log is {workspace.log_path('stream')}")
