"""The dashboard server's metrics: dashboards published, kernels running per dashboard, the
pre-heated kernels waiting in each pool, pages rendered per dashboard and responses by kind of
route and status. Labels: published dashboard names, the route kinds of ``route_kind`` and
HTTP status codes; a request path is never a label."""

from __future__ import annotations

import re
import threading
from typing import Iterable
from urllib.parse import unquote

from ..metrics import counter, gauge

_RENDER = re.compile(r"^voila/render/(?P<notebook>.+)$")
_KINDS = [  # (kind, path pattern without the leading /), the first that matches
    ("page", re.compile(r"^(d/[^/]+/?|voila/render/.+)$")),
    ("snapshot", re.compile(r"^snapshots/")),
    ("kernel", re.compile(r"^(api/kernels|voila/api/shutdown|voila/query)/")),
    ("asset", re.compile(r"^voila/(labextensions|static|api/themes)/")),
    ("lakebook", re.compile(r"^(lakebook/|metrics$)")),
]


def route_kind(path: str) -> str:
    """What a request path (without the leading /) asks for: page, snapshot, kernel, asset,
    lakebook (its own routes) or other."""
    return next((kind for kind, pattern in _KINDS if pattern.match(path)), "other")


class DashboardFigures:
    """Counts of the answers the server gave (thread-safe; tornado's access log feeds it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.responses: dict[tuple[str, int], int] = {}
        self.renders: dict[str, int] = {}  # notebook -> pages rendered (200): only those let in, so bounded

    def record(self, path: str, status: int) -> None:
        key = (route_kind(path), status)
        render = _RENDER.match(path) if status == 200 else None
        with self._lock:
            self.responses[key] = self.responses.get(key, 0) + 1
            if render:
                notebook = unquote(render["notebook"])
                self.renders[notebook] = self.renders.get(notebook, 0) + 1

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.responses), dict(self.renders)


def dashboard_families(published: dict[str, str], kernels: dict[str, str | None], pools: dict[str, int],
                       figures: DashboardFigures) -> Iterable:
    """The families from the published dashboards (``{name: notebook}``), the running kernels
    (``{kernel id: its notebook or None}``), the pools (``{name: kernels waiting}``) and the
    answers counted so far."""
    responses, renders = figures.snapshot()
    by_notebook = {notebook: name for name, notebook in published.items()}
    running = {name: 0 for name in published}
    for notebook in kernels.values():
        if notebook in by_notebook:
            running[by_notebook[notebook]] += 1
    yield gauge("lakebook_dashboards_published", "Dashboards published.", len(published))
    yield gauge("lakebook_dashboards_kernels_running", "Kernels running in the dashboard server.", len(kernels))
    yield gauge("lakebook_dashboards_kernels", "Kernels running for a dashboard (pre-heated ones included).",
                running, ["dashboard"])
    yield gauge("lakebook_dashboards_pool_kernels", "Pre-heated kernels waiting for a dashboard's next page.",
                {name: pools.get(name, 0) for name in published}, ["dashboard"])
    yield counter("lakebook_dashboards_pages_rendered", "Dashboard pages rendered (answered 200).",
                  {name: renders.get(notebook, 0) for name, notebook in published.items()}, ["dashboard"])
    yield counter("lakebook_dashboards_http_responses", "HTTP answers by kind of route and status code.",
                  responses, ["route", "code"])
