"""The monitor service (``lakebook monitor serve``, the ``monitor`` service of ``lakebook up``):
it evaluates every check each ``monitor.interval_s`` and answers GET /health, GET /status and GET /metrics
on 127.0.0.1. Definitions are read again at each evaluation, so an edited monitors file
takes effect without a restart; a file that does not load is reported in /status."""

from __future__ import annotations

import logging
import threading

from .engine import Evaluation, evaluate

log = logging.getLogger("lakebook.monitor")
ROUTES = "GET /health, GET /status, GET /metrics"


class MonitorLoop:
    """Evaluates the checks until stopped; keeps the last evaluation for /status."""

    def __init__(self, workspace, interval_s: float | None = None):
        self.workspace = workspace
        self.interval_s = interval_s or workspace.settings.monitor.interval_s
        self.stop = threading.Event()
        self.last: Evaluation | None = None
        self.last_error: str | None = None
        self.evaluations = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.round()
            self.stop.wait(self.interval_s)

    def round(self) -> None:
        try:
            self.last, self.last_error = evaluate(self.workspace), None
            self.evaluations += 1
        except Exception as exc:  # one bad round (the database busy, a file half-written) is not the end
            log.exception("an evaluation of the checks failed; trying again in %.0f s", self.interval_s)
            self.last_error = f"{type(exc).__name__}: {exc}"

    def status(self) -> dict:
        last = self.last
        return {"interval_s": self.interval_s, "evaluations": self.evaluations, "error": self.last_error,
                "evaluated_at": last.at.isoformat() if last else None,
                "checks": [{"name": c.name, "check": c.expression, "state": r.state, "level": r.level,
                            "value": r.value, "unit": r.unit, "detail": r.detail, "duration_ms": r.duration_ms}
                           for c, r, _ in last.results] if last else [],
                "problems": last.problems if last else {}}


def create_status_app(loop: MonitorLoop):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from ..asgi import ErrorsAndStatuses, Json, OriginGuard, routing_error_handler
    from ..metrics import starlette_route
    from .metrics import monitor_families

    def health(request):
        return Json({"status": "ok", "evaluations": loop.evaluations})

    def status(request):
        return Json(loop.status())

    return Starlette(routes=[Route("/health", health), Route("/status", status),
                             starlette_route(lambda: monitor_families(loop))],
                     exception_handlers={HTTPException: routing_error_handler(ROUTES)},
                     middleware=[Middleware(ErrorsAndStatuses, count_status=lambda status: None),
                                 Middleware(OriginGuard, loopback_host=True)])


def run_monitor(workspace, port: int | None = None, interval_s: float | None = None, echo=print) -> None:
    """Evaluate the checks every interval until SIGINT or SIGTERM; the evaluation under way
    finishes first (its results and alerts are recorded whole)."""
    from ..asgi import serve_until_stopped

    port = port or workspace.settings.monitor.port
    loop = MonitorLoop(workspace, interval_s)
    thread = threading.Thread(target=loop.run, name="lakebook-monitor", daemon=True)
    thread.start()
    echo(f"lakebook monitor: every {loop.interval_s:g} s; status on http://127.0.0.1:{port}/status")
    try:
        serve_until_stopped(create_status_app(loop), "stopping the monitor; the evaluation under way finishes",
                            port=port)
    finally:
        loop.stop.set()
        thread.join()


