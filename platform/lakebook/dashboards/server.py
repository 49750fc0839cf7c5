"""The dashboard server: a standalone Voila (pre-heated kernels work only in the standalone
app) serving the workspace's published dashboards on 127.0.0.1, with lakebook's access rules
loaded into it as a jupyter_server IdentityProvider.

Access (``DashboardIdentityProvider.get_user``, which every Jupyter handler of the process
calls before it answers, the kernel websocket included):
- a request is for one published dashboard, found from its path: ``/d/<name>``,
  ``/snapshots/<name>/…``, ``/voila/render/<its notebook>``, ``/lakebook/links/…`` of that page,
  or a kernel (``/api/kernels/<id>…``, ``/voila/api/shutdown/<id>``) started for its notebook;
  any other Jupyter route (the tree, contents, login) is for no dashboard and answers 403;
- it is let through with a share token for that dashboard (tokens.py: signature, expiry,
  revocation, checked against the catalog on every request), given as ``?share=`` once (the
  answer sets a cookie for that dashboard and redirects to the same page without the token,
  so it is in no page URL, kernel environment or history) or in that cookie; or with the
  service's own token (``Authorization: token …``, for ``lakebook`` itself);
- anything else is 403 (never a login page).
Static assets (Voila's JavaScript, themes, labextensions: ``is_public``) are public; workspace files are not
served (``file_allowlist`` empty). The access log has paths without query strings. ``/lakebook/health``
and ``/metrics`` (Prometheus: counts and dashboard names, no page content) answer without a
token, as a scraper on the same host needs; a proxy in front forwards neither.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from pathlib import Path
from urllib.parse import quote, unquote

from ..config import prepend_jupyter_path, take_environment_value
from ..errors import Forbidden, to_json
from .metrics import DashboardFigures, dashboard_families
from .store import DashboardStore
from .tokens import check, share_secret, token_id_of

log = logging.getLogger("lakebook.dashboards")

TOKEN_ENV = "DASHBOARD_SERVER_TOKEN"
TEMPLATES = Path(__file__).parent / "share"
COOKIE_PREFIX = "lakebook_share_"
LAB_EXTENSION = "lakebook-lab"  # lakebook's JupyterLab panels: no part of a dashboard page
_KERNEL = r"[0-9a-f-]{36}"
_ROUTES = [  # (path pattern, what names the dashboard)
    (re.compile(r"^d/(?P<name>[a-z][a-z0-9_]*)/?$"), "name"),
    (re.compile(r"^snapshots/(?P<name>[a-z][a-z0-9_]*)/(latest|[0-9]+)$"), "name"),
    (re.compile(r"^(lakebook/links/)?voila/render/(?P<notebook>.+)$"), "notebook"),
    (re.compile(rf"^(api/kernels|voila/api/shutdown)/(?P<kernel>{_KERNEL})(/channels)?$"), "kernel"),
]
# Voila's front end, which every dashboard page loads: its widget manager and the renderers are
# labextensions, served by a Jupyter handler that asks for the user like any other
_PUBLIC = re.compile(r"^voila/(labextensions|static|api/themes)/[^?]*$")


class _Context:
    """What the server process holds: its workspace, store and share secret."""

    workspace = None
    store: DashboardStore | None = None
    secret: bytes = b""
    admin_token: str = ""
    figures = DashboardFigures()  # the answers given, counted by the access log for /metrics


CONTEXT = _Context()


def dashboard_of(path: str, kernel_notebook) -> str | None:
    """The published dashboard a request path (without the leading /) is for, or None."""
    store = CONTEXT.store
    for pattern, kind in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if kind == "name":
            row = store.dashboard(match["name"])
        else:
            notebook = unquote(match["notebook"]) if kind == "notebook" else kernel_notebook(match["kernel"])
            row = store.by_notebook(notebook) if notebook else None
        return row.name if row else None
    return None


def is_public(path: str) -> bool:
    """Whether a request path (without the leading /) is a static asset of Voila's front end."""
    return _PUBLIC.match(path) is not None and ".." not in path.split("/")


def _identity_provider():
    from jupyter_server.auth.identity import IdentityProvider, User
    from tornado import web

    class DashboardIdentityProvider(IdentityProvider):
        """Share tokens or the service token; 403 for everything else (see the module doc)."""

        @property
        def auth_enabled(self) -> bool:
            return True

        def get_handlers(self) -> list:
            return dashboard_handlers()

        def get_user(self, handler):
            given = handler.request.headers.get("Authorization", "")
            if CONTEXT.admin_token and hmac.compare_digest(given, f"token {CONTEXT.admin_token}"):
                return User("lakebook")
            if is_public(handler.request.path.lstrip("/")):
                return User("public")
            manager = handler.settings["kernel_manager"]
            name = dashboard_of(handler.request.path.lstrip("/"), manager.notebook_of)
            if name is None:
                _refuse(handler)
            self._let_in(handler, name)
            return User(f"share:{name}")

        def _let_in(self, handler, name: str) -> None:
            offered = handler.get_query_argument("share", None)
            token = offered or handler.get_cookie(COOKIE_PREFIX + name)
            try:
                if not token:
                    raise Forbidden(f"no share token for dashboard {name!r}", hint="open a share link")
                check(CONTEXT.secret, token, CONTEXT.store.share(token_id_of(token)), name)
            except Forbidden as exc:
                log.warning("403 %s: %s", handler.request.path, exc.message)
                _refuse(handler, exc)
            if offered:
                handler.set_cookie(COOKIE_PREFIX + name, offered, httponly=True, samesite="Lax", path="/")
                if handler.request.method == "GET" and "upgrade" not in handler.request.headers:
                    handler.redirect(handler.request.path)
                    raise web.Finish()

    return DashboardIdentityProvider


def _refuse(handler, exc: Forbidden | None = None) -> None:
    """Answer 403 in lakebook's error shape and stop the request (never a login page)."""
    from tornado import web

    exc = exc or Forbidden("this address needs a share link", hint="open the dashboard with the link shared with you")
    handler.current_user = handler._jupyter_current_user = None
    handler.set_status(403)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps(to_json(exc)))
    raise web.Finish()


def _kernel_manager():
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    class DashboardKernelManager(AsyncMappingKernelManager):
        """Remembers the notebook each kernel was started for (a pre-heated kernel's is in
        Voila's ``notebook_data``; one started for a request has the page in SCRIPT_NAME)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._notebooks: dict[str, str] = {}

        async def start_kernel(self, *args, **kwargs) -> str:
            kernel_id = await super().start_kernel(*args, **kwargs)
            page = (kwargs.get("env") or {}).get("SCRIPT_NAME", "")
            if page.startswith("/voila/render/"):
                self._notebooks[kernel_id] = unquote(page.removeprefix("/voila/render/"))
            return kernel_id

        def notebook_of(self, kernel_id: str) -> str | None:
            if kernel_id not in self:
                return None
            finder = getattr(self, "_get_notebook_from_kernel", None)
            return self._notebooks.get(kernel_id) or (finder(kernel_id) if finder else None)

    return DashboardKernelManager


# -- lakebook's own pages ----------------------------------------------------------------------------
def dashboard_handlers() -> list:
    import tornado.web
    from jupyter_server.base.handlers import JupyterHandler

    from ..metrics import tornado_handler

    class EntryHandler(JupyterHandler):
        def get(self, name: str) -> None:
            self.redirect(f"/voila/render/{quote(CONTEXT.store.dashboard(name).notebook)}")

    class SnapshotHandler(JupyterHandler):
        def get(self, name: str, which: str) -> None:
            rows = CONTEXT.store.snapshots(name, 1) if which == "latest" else [CONTEXT.store.snapshot(name, int(which))]
            if not rows or rows[0] is None or not Path(rows[0].html_path).is_file():
                self.set_status(404)
                self.finish(f"no snapshot {which} of dashboard {name}: take one with lakebook dashboards snapshot {name}")
                return
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(with_bar(Path(rows[0].html_path).read_text(), name, rows[0].created_at))

    class LinksHandler(JupyterHandler):
        def get(self, page: str) -> None:
            row = CONTEXT.store.by_notebook(unquote(page))
            last = CONTEXT.store.snapshots(row.name, 1)
            self.finish({"name": row.name, "live": f"/d/{row.name}", "snapshot": {
                "url": f"/snapshots/{row.name}/{last[0].id}", "time": f"{last[0].created_at:%Y-%m-%d %H:%M} UTC",
            } if last else None})

    class StatusHandler(JupyterHandler):
        """For lakebook itself (the service token): dashboards, kernels and pools now."""

        def get(self) -> None:
            manager = self.settings["kernel_manager"]
            dashboards = {row.name: row.notebook for row in CONTEXT.store.dashboards()}
            self.finish({"dashboards": dashboards,
                         "kernels": {kernel: manager.notebook_of(kernel) for kernel in manager.list_kernel_ids()},
                         "pools": {name: manager.get_pool_size(nb) for name, nb in dashboards.items()}})

    class HealthHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish({"status": "ok"})

    def families(handler):
        manager = handler.settings["kernel_manager"]
        published = {row.name: row.notebook for row in CONTEXT.store.dashboards()}
        kernels = {kernel: manager.notebook_of(kernel) for kernel in manager.list_kernel_ids()}
        pools = {name: manager.get_pool_size(notebook) for name, notebook in published.items()}
        return dashboard_families(published, kernels, pools, CONTEXT.figures)

    return [
        (r"/d/([a-z][a-z0-9_]*)/?", EntryHandler),
        (r"/snapshots/([a-z][a-z0-9_]*)/(latest|[0-9]+)", SnapshotHandler),
        (r"/lakebook/links/voila/render/(.+)", LinksHandler),
        (r"/lakebook/status", StatusHandler),
        (r"/lakebook/health", HealthHandler),
        (r"/metrics", tornado_handler(families)),
    ]


def with_bar(html: str, name: str, created_at) -> str:
    """A snapshot page with its bar: when it was taken, and a link to the live dashboard."""
    bar = (f'<div id="lakebook-bar" style="position:fixed;top:0;right:0;z-index:1000;padding:4px 10px;'
           f'font:13px sans-serif;background:#eee">snapshot of {created_at:%Y-%m-%d %H:%M} UTC · '
           f'<a id="lakebook-live-link" href="/d/{name}">live</a></div>')
    at = re.search(r"<body[^>]*>", html)
    return html[:at.end()] + bar + html[at.end():] if at else bar + html


# -- the process -----------------------------------------------------------------------------------------
def log_request(handler) -> None:
    """The access log: status, method, path (never the query string: it may hold a token), time;
    and the answer counted for /metrics."""
    status = handler.get_status()
    CONTEXT.figures.record(handler.request.path.lstrip("/"), status)
    level = logging.INFO if status < 400 else logging.WARNING
    logging.getLogger("lakebook.dashboards.access").log(
        level, "%d %s %s %.1fms", status, handler.request.method, handler.request.path,
        1000.0 * handler.request.request_time())


def voila_config(workspace, port: int):
    """The Voila app's configuration: lakebook's template, auth and kernel manager; a pool of
    pre-heated kernels per published dashboard and none for any other notebook; idle culling."""
    from traitlets.config import Config

    settings = workspace.settings.dashboards
    pools = {row.notebook: {"pool_size": settings.pool_size if row.pool_size is None else row.pool_size}
             for row in CONTEXT.store.dashboards()}
    config = Config()
    config.Voila.update(ip="127.0.0.1", port=port, port_retries=0, open_browser=False, root_dir=str(workspace.root),
                        identity_provider_class=_identity_provider(), tornado_settings={"log_function": log_request})
    config.VoilaConfiguration.update(preheat_kernel=True, template="lakebook", file_allowlist=[],
                                     multi_kernel_manager_class=_kernel_manager(), show_tracebacks=False,
                                     extension_denylist=[LAB_EXTENSION])
    config.VoilaKernelManager.update(kernel_pools_config={"default": {"pool_size": 0}, **pools}, fill_delay=0.5)
    config.AsyncKernelManager.update(client_factory="lakebook.dashboards.kernels.SteadyKernelClient")  # see kernels.py
    config.MappingKernelManager.update(cull_idle_timeout=int(settings.cull_idle_s),
                                       cull_interval=int(settings.cull_interval_s), cull_connected=True)
    return config


def serve(workspace, port: int | None = None, echo=log.info) -> None:
    """Run the dashboard server until SIGTERM or Ctrl-C (what `lakebook up` runs as the
    dashboards service); ``echo`` tells where it listens. Ctrl-C is a stop, not an error."""
    from voila.app import Voila

    CONTEXT.workspace, CONTEXT.store = workspace, DashboardStore(workspace)
    CONTEXT.secret = share_secret(workspace.share_key_path)
    CONTEXT.admin_token = take_environment_value(TOKEN_ENV) or ""
    prepend_jupyter_path(TEMPLATES)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Voila(config=voila_config(workspace, port or workspace.settings.dashboards.port))
    app.initialize([])
    names = [row.name for row in CONTEXT.store.dashboards()]
    echo(f"lakebook dashboards: {', '.join(names) or '(none published yet)'} on http://127.0.0.1:{app.port}")
    try:
        app.start()
    except KeyboardInterrupt:
        log.info("dashboards stopped (Ctrl-C)")
    finally:
        CONTEXT.store.close()
