"""The model endpoints as a service (``lakebook serve start``, what ``lakebook up`` runs): Ray
connected, Serve's HTTP proxy on ``serving.host:serving.port``, every endpoint deployed (the
declared ones and those deployed ad hoc before), a controller following model aliases, and an
admin API on 127.0.0.1:``serving.admin_port`` (``ROUTES``) until SIGINT or SIGTERM, which
delete the endpoints and stop Serve and the Ray runtime it started (on a runtime it joined,
``serving.ray_address``, only its endpoints go).

The controller is the only place a model alias is resolved: every ``serving.poll_interval_s``
it looks up each endpoint's alias, and when the version behind it changed it runs the same
application with only ``user_config`` changed, so the live replicas reconfigure in place.
The running service is recorded in ``<state dir>/serving/service.json`` (its pid and ports)
for the ``lakebook serve`` commands.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .._proc import running_record
from ..errors import LakebookError, ServiceError
from .endpoints import (
    TOKEN_SETTING, all_endpoints, forget_adhoc, refuse_declared, remember_adhoc, require_known, serve_logging,
)

log = logging.getLogger("lakebook.serving")
ROUTES = ("GET /health, GET /status[?latency=1], GET /metrics, POST /endpoints, DELETE /endpoints/<name>, "
          "GET /endpoints/<name>/logs")
STATE_FILE = "service.json"
NOT_RUNNING_HINT = "lakebook serve start or lakebook up"


@dataclass
class Deployed:
    settings: object  # EndpointSettings
    ref: object | None = None  # the ModelRef it answers with; None until it is deployed
    problem: str | None = None


class Controller:
    """The endpoints on Serve: deploys them, follows their aliases, deletes them, and reports
    their status with the figures the replicas sent. Thread-safe (the admin API and the alias
    loop call it)."""

    def __init__(self, workspace, figures):
        self.workspace = workspace
        self.figures = figures
        self.endpoints: dict[str, Deployed] = {}
        self._lock = threading.RLock()

    def deploy(self, name: str, settings) -> dict:
        """Resolve ``settings.model`` and run the endpoint with that version."""
        from ray import serve

        from .predictor import resolve_model

        with self._lock:
            self.endpoints.setdefault(name, Deployed(settings)).settings = settings
            self._run(name, resolve_model(self.workspace, settings.model))
            return self.describe(name, {}, serve.status().applications.get(name))

    def _run(self, name: str, ref) -> None:
        from ray import serve

        from .app import application

        deployed = self.endpoints[name]
        serve.run(application(self.workspace, name, deployed.settings, ref.uri), name=name, route_prefix=f"/{name}")
        deployed.ref, deployed.problem = ref, None
        log.info("endpoint %s answers with %s", name, ref.uri)

    def try_deploy(self, name: str, settings) -> None:
        """Deploy, or keep the endpoint with its problem (the alias loop tries again)."""
        try:
            self.deploy(name, settings)
        except LakebookError as exc:
            self.endpoints[name].problem = exc.message
            log.warning("endpoint %s is not deployed: %s", name, exc)

    def delete(self, name: str) -> None:
        from ray import serve

        with self._lock:
            require_known(name, self.endpoints)
            serve.delete(name)
            del self.endpoints[name]
            self.figures.forget.remote(name)

    def delete_all(self) -> None:
        for name in list(self.endpoints):
            self.delete(name)

    # -- following aliases ------------------------------------------------------------------
    def follow_aliases(self) -> None:
        """Redeploy each endpoint whose alias now names another version (or that is not
        deployed yet); a registry that cannot be read leaves the endpoint as it is."""
        from .predictor import parse_model_uri, resolve_model

        for name, deployed in list(self.endpoints.items()):
            if deployed.ref is not None and parse_model_uri(deployed.settings.model)[1] is None:
                continue  # a fixed version
            try:
                ref = resolve_model(self.workspace, deployed.settings.model)
                with self._lock:
                    if name in self.endpoints and (deployed.ref is None or ref.version != deployed.ref.version):
                        self._run(name, ref)
            except LakebookError as exc:
                deployed.problem = exc.message
                log.warning("endpoint %s: %s", name, exc)

    def follow_forever(self, stop: threading.Event) -> None:
        interval = self.workspace.settings.serving.poll_interval_s
        while not stop.wait(interval):
            try:
                self.follow_aliases()
            except Exception:  # the loop outlives one bad round (Serve busy, registry down)
                log.exception("following the model aliases failed; trying again in %.1f s", interval)

    # -- status -------------------------------------------------------------------------------
    def status(self, latency: bool = False) -> list[dict]:
        """Each endpoint (``describe``); with ``latency``, its latency histogram's counts too
        (for /metrics and the monitor's /status?latency=1: plain /status stays small)."""
        import ray
        from ray import serve

        try:
            figures = ray.get(self.figures.summary.remote())
        except ray.exceptions.RayActorError:  # its worker died: the figures start again from zero
            from .app import figures_actor

            log.warning("the endpoints' figures were lost; counting again from now")
            self.figures, figures = figures_actor(), {}
        applications = serve.status().applications
        with self._lock:
            rows = [self.describe(name, figures, applications.get(name)) for name in sorted(self.endpoints)]
        return rows if latency else [{k: v for k, v in row.items() if k != "latency"} for row in rows]

    def describe(self, name: str, figures: dict, application=None) -> dict:
        settings = self.workspace.settings.serving
        deployed = self.endpoints[name]
        state = application.status.value if application is not None else ("DEPLOYED" if deployed.ref else "NOT DEPLOYED")
        counts = figures.get(name, {"requests": 0, "errors": 0, "rejected": 0, "p50_ms": None, "p95_ms": None,
                                     "p99_ms": None})
        return {"name": name, "model": deployed.settings.model, "uri": deployed.ref.uri if deployed.ref else None,
                "version": deployed.ref.version if deployed.ref else None, "status": state,
                "replicas": running_replicas(application),
                "url": f"http://{settings.host}:{settings.port}/{name}", "problem": deployed.problem,
                "declared": name in settings.endpoints, **counts}

    def logs(self, name: str, lines: int) -> str:
        """The last ``lines`` lines of each of the endpoint's replica logs in the workspace's
        Ray sessions (see ``replica_logs``)."""
        require_known(name, self.endpoints)
        texts = []
        for path in replica_logs(self.workspace, name):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            texts.append(f"==> {path.name} <==\n" + "\n".join(tail))
        return "\n".join(texts) or no_replica_logs(self.workspace, name)


def running_replicas(application) -> int:
    """The replicas of an application (Serve's status of it) in state RUNNING; 0 without one."""
    if application is None:
        return 0
    return sum(count for deployment in application.deployments.values()
               for state, count in deployment.replica_states.items() if getattr(state, "value", state) == "RUNNING")


def replica_logs(workspace, name: str) -> list[Path]:
    """Serve's replica logs of endpoint ``name`` in the newest session folder of the
    workspace's Ray temp dir holding any (``session_*/logs/serve/``, Ray's layout): the
    runtime the service started, or the head ``lakebook up`` shares. Names sort by start time;
    a session of another runtime in the same folder (the stream's, started by hand) has none."""
    from ..stream.ray_node import session_root

    pattern = f"replica_{name}_endpoint_*.log"
    sessions = sorted(session_root(workspace).glob("session_2*"), reverse=True)
    return next((found for s in sessions if (found := sorted((s / "logs" / "serve").glob(pattern)))), [])


def no_replica_logs(workspace, name: str) -> str:
    """What ``lakebook serve logs`` says when the workspace's Ray sessions hold no log of ``name``."""
    from ..stream.ray_node import session_root

    address = workspace.settings.serving.ray_address
    text = f"no replica log of {name!r} under {session_root(workspace)}/session_*/logs/serve/"
    if address:  # a cluster's nodes write theirs under their own temp dirs; only the local head's are read
        text += (f"; the endpoints run on the Ray cluster at {address}: read each node's "
                 f"<its Ray temp dir>/session_latest/logs/serve/replica_{name}_endpoint_*.log")
    return text + "\n"


# -- the admin API ------------------------------------------------------------------------------
def create_admin_app(controller: Controller, workspace):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from ..asgi import ErrorsAndStatuses, Json, OriginGuard, routing_error_handler
    from ..metrics import starlette_route
    from .metrics import serving_families

    def health(request: Request):
        return Json({"status": "ok", "endpoints": len(controller.endpoints)})

    def status(request: Request):
        # ?latency=1: each endpoint's latency histogram too (the monitor measures windows from it)
        latency = request.query_params.get("latency", "") not in ("", "0", "false")
        return Json({"running": True, "pid": os.getpid(), "endpoints": controller.status(latency=latency)})

    async def deploy(request: Request):
        from starlette.concurrency import run_in_threadpool

        name, settings = adhoc_request(await request.body())
        refuse_declared(workspace, name, "choose another --name, or change its model in lakebook.yaml")

        row = await run_in_threadpool(controller.deploy, name, settings)
        remember_adhoc(workspace, name, settings)  # after it runs: a model that does not resolve is not kept
        return Json(row, status_code=201)

    def delete(request: Request):
        name = request.path_params["name"]
        refuse_declared(workspace, name, "remove it from lakebook.yaml and restart the service")
        controller.delete(name)
        forget_adhoc(workspace, name)
        return Json({"deleted": name})

    def logs(request: Request):
        lines = int(request.query_params.get("lines", "200"))
        return PlainTextResponse(controller.logs(request.path_params["name"], lines))

    return Starlette(routes=[
        Route("/health", health), Route("/status", status), Route("/endpoints", deploy, methods=["POST"]),
        Route("/endpoints/{name}", delete, methods=["DELETE"]), Route("/endpoints/{name}/logs", logs),
        starlette_route(lambda: serving_families(controller.status(latency=True))),
    ], exception_handlers={HTTPException: routing_error_handler(ROUTES)}, middleware=[
        Middleware(ErrorsAndStatuses, count_status=lambda status: None),  # inside Starlette's catch-all 500
        Middleware(OriginGuard, loopback_host=True),
    ])


def adhoc_request(body: bytes):
    """``{"name", "model", and any endpoint setting}`` as (name, EndpointSettings)."""
    from pydantic import ValidationError

    from ..config import ServingSettings
    from ..errors import BadRequest

    try:
        fields = json.loads(body)
        name = fields.pop("name")
        return name, ServingSettings.model_validate({"endpoints": {name: fields}}).endpoints[name]
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise BadRequest(f"not an endpoint: {exc}",
                         hint='send {"name": "delay", "model": "models:/flight_delay@champion"}') from None


# -- the service's lifetime ----------------------------------------------------------------------
def state_path(workspace) -> Path:
    return workspace.serving_dir / STATE_FILE


def serve_endpoints(workspace, admin_port: int | None = None, echo=print) -> None:
    """Run the endpoints until interrupted."""
    from ..asgi import refuse_exposed_without_auth
    from ..stream.server import connect_ray

    settings = workspace.settings.serving
    refuse_exposed_without_auth("model endpoints", settings.host, any(settings.tokens.values()), False, TOKEN_SETTING)
    admin_port = admin_port or settings.admin_port
    admin_socket = _bind_loopback(admin_port)  # before Ray starts: its workers take ports of their own
    where = connect_ray(workspace, settings)  # before ray is imported: Ray reads its environment then
    import ray
    from ..asgi import serve_until_stopped
    from ray import serve

    from .app import figures_actor

    serve.start(proxy_location=settings.proxy_location, http_options={"host": settings.host, "port": settings.port},
                logging_config=serve_logging(settings.access_log))
    controller = Controller(workspace, figures_actor())
    for name, endpoint in all_endpoints(workspace).items():
        controller.try_deploy(name, endpoint)
    stop = threading.Event()
    follower = threading.Thread(target=controller.follow_forever, args=(stop,), name="lakebook-aliases", daemon=True)
    follower.start()
    _record(workspace, admin_port)
    echo(f"lakebook serve: endpoints under http://{settings.host}:{settings.port}/<name>/ ({where}), "
         f"admin on http://127.0.0.1:{admin_port}; {', '.join(controller.endpoints) or 'no endpoint yet'}")
    try:
        serve_until_stopped(create_admin_app(controller, workspace), "stopping the model endpoints",
                            sockets=[admin_socket])
    finally:
        stop.set()
        follower.join()
        controller.delete_all()
        if not settings.ray_address:  # a runtime it joined keeps Serve for the other applications on it
            serve.shutdown()
        state_path(workspace).unlink(missing_ok=True)
        ray.shutdown()


def _bind_loopback(port: int):
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot serve the admin API on 127.0.0.1:{port}: {exc.strerror}",
                           hint="choose another port with --admin-port or serving.admin_port") from None
    return sock


def _record(workspace, admin_port: int) -> None:
    settings = workspace.settings.serving
    path = state_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "admin_port": admin_port, "host": settings.host,
                                "port": settings.port, "started_at": time.time()}))




# -- the lakebook serve commands' side ---------------------------------------------------------
def admin_request(workspace, method: str, path: str, *, timeout_s: float = 300, **kwargs):
    """One request to the running service's admin API; its answer (JSON or text). A
    ServiceError when no service runs, or with the service's error message and hint."""
    import httpx

    state = running_record(state_path(workspace))
    if state is None:
        raise ServiceError("the model endpoints' service is not running for this workspace", hint=NOT_RUNNING_HINT)
    try:
        answer = httpx.request(method, f"http://127.0.0.1:{state['admin_port']}{path}", timeout=timeout_s, **kwargs)
    except httpx.TransportError as exc:
        raise ServiceError(f"the model endpoints' service does not answer: {exc}", hint=NOT_RUNNING_HINT) from None
    if answer.status_code >= 400:
        error = answer.json().get("error", {})
        raise ServiceError(error.get("message", answer.text), hint=error.get("hint"))
    return answer.json() if answer.headers.get("content-type", "").startswith("application/json") else answer.text

