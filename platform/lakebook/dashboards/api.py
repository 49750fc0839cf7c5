"""Publish, list, share, revoke and unpublish dashboards: what the CLI and the REST API call.

A dashboard is a notebook of the workspace served by the dashboard server (server.py) at
``/d/<name>``; it is opened with a share link, ``/d/<name>?share=<token>`` (tokens.py).
"""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import DashboardError, UnknownDashboard, did_you_mean
from ..names import IDENTIFIER_RULE, is_identifier
from ..jobs.definitions import parse_duration
from .store import DashboardRow, DashboardStore, ShareRow, now_utc
from .tokens import mint, new_token_id, share_secret, token_id_of

EXPIRES_HINT = "write a duration: 3600 (seconds), 90m, 12h, 7d"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parse_expiry(value: str) -> timedelta:
    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError:
        raise DashboardError(f"--expires {value!r} is not a positive duration", hint=EXPIRES_HINT) from None


def server_url(workspace) -> str:
    settings = workspace.settings.dashboards
    return (settings.public_url or f"http://127.0.0.1:{settings.port}").rstrip("/")


def notebook_in_workspace(workspace, notebook: str | Path) -> str:
    """``notebook`` (absolute, or relative to the workspace, else to the current folder) as a
    path relative to the workspace (POSIX); a DashboardError unless it is an existing .ipynb
    file inside the workspace and outside its state dir."""
    given = Path(notebook)
    path = (given if given.is_absolute() else workspace.root / given).resolve()
    if not path.exists() and not given.is_absolute():  # relative to where the command runs
        path = (Path.cwd() / given).resolve()
    if not path.is_file():
        raise DashboardError(f"no notebook {notebook}", hint="give the path of an .ipynb file of the workspace")
    if path.suffix != ".ipynb":
        raise DashboardError(f"{notebook} is not a notebook (.ipynb)", hint="publish a Jupyter notebook")
    if not path.is_relative_to(workspace.root) or path.is_relative_to(workspace.state_dir.resolve()):
        raise DashboardError(f"{notebook} is not a notebook of the workspace {workspace.root}",
                             hint="copy it into the workspace (e.g. notebooks/) and publish that")
    return path.relative_to(workspace.root).as_posix()


def default_name(notebook: str) -> str:
    """A dashboard name from a notebook's file name: ``10_Delay Dashboard.ipynb`` -> ``delay_dashboard``."""
    name = re.sub(r"[^a-z0-9]+", "_", Path(notebook).stem.lower()).strip("_")
    name = re.sub(r"^[0-9_]+", "", name)
    return name[:63] or "dashboard"


def check_name(name: str) -> str:
    if not is_identifier(name):
        raise DashboardError(f"{name!r} is not a dashboard name", hint=f"dashboard names are {IDENTIFIER_RULE}")
    return name


def dashboard(store: DashboardStore, name: str) -> DashboardRow:
    """The published dashboard ``name``; an UnknownDashboard naming the closest one otherwise."""
    row = store.dashboard(name)
    if row is None:
        known = [d.name for d in store.dashboards()]
        guess = did_you_mean(name, known)
        raise UnknownDashboard(f"no dashboard {name!r}", hint=guess or (
            f"dashboards: {', '.join(known)}" if known else "publish one: lakebook dashboards publish NOTEBOOK"))
    return row


def publish(workspace, notebook: str | Path, name: str | None = None, *, pool_size: int | None = None,
            by: str | None = None) -> dict[str, Any]:
    """Publish ``notebook`` as dashboard ``name`` (default: from its file name). Publishing the
    same notebook under the same name again updates it; a name or notebook taken otherwise is
    an error."""
    relative = notebook_in_workspace(workspace, notebook)
    name = check_name(name or default_name(relative))
    with DashboardStore(workspace) as store:
        taken, other = store.dashboard(name), store.by_notebook(relative)
        if taken is not None and taken.notebook != relative:
            raise DashboardError(f"dashboard {name!r} is already {taken.notebook}",
                                 hint=f"choose another with --name, or unpublish {name} first")
        if other is not None and other.name != name:
            raise DashboardError(f"{relative} is already published as {other.name!r}",
                                 hint=f"unpublish {other.name} first, or keep that name")
        store.save_dashboard(DashboardRow(name=name, notebook=relative, published_at=now_utc(),
                                          published_by=by or current_user(), pool_size=pool_size))
        return describe(workspace, store, store.dashboard(name))


def describe(workspace, store: DashboardStore, row: DashboardRow) -> dict[str, Any]:
    """A dashboard as the CLI and the REST API show it."""
    last = store.snapshots(row.name, limit=1)
    base = server_url(workspace)
    return {"name": row.name, "notebook": row.notebook, "url": f"{base}/d/{row.name}",
            "published_at": row.published_at, "published_by": row.published_by,
            "pool_size": row.pool_size if row.pool_size is not None else workspace.settings.dashboards.pool_size,
            "last_snapshot": last[0].created_at if last else None,
            "snapshot_url": f"{base}/snapshots/{row.name}/latest" if last else None}


def list_dashboards(workspace) -> list[dict[str, Any]]:
    with DashboardStore(workspace) as store:
        return [describe(workspace, store, row) for row in store.dashboards()]


def has_dashboards(workspace) -> bool:
    with DashboardStore(workspace) as store:
        return bool(store.dashboards())


def unpublish(workspace, name: str) -> None:
    """Stop serving ``name``; its share links stop working, its snapshots are kept."""
    with DashboardStore(workspace) as store:
        dashboard(store, name)
        store.delete_dashboard(name)


def share(workspace, name: str, expires: str | None = None, *, by: str | None = None) -> dict[str, Any]:
    """A new share link to ``name``, valid for ``expires`` (default dashboards.share_expires)."""
    lifetime = parse_expiry(expires or workspace.settings.dashboards.share_expires)
    with DashboardStore(workspace) as store:
        dashboard(store, name)
        row = store.add_share(ShareRow(id=new_token_id(), dashboard=name, created_at=now_utc(),
                                       created_by=by or current_user(), expires_at=now_utc() + lifetime,
                                       revoked=False))
    token = mint(share_secret(workspace.share_key_path), row.id, name, row.expires_at)
    return {"id": row.id, "dashboard": name, "expires_at": row.expires_at,
            "url": f"{server_url(workspace)}/d/{name}?share={token}"}


def revoke(workspace, target: str, *, every: bool = False) -> int:
    """Revoke share token ``target`` (its id, or the token itself), or with ``every`` every
    token of dashboard ``target``; how many were revoked now."""
    with DashboardStore(workspace) as store:
        if every:
            dashboard(store, target)
            return store.revoke(dashboard=target)
        token_id = token_id_of(target) if target.count(".") == 3 else target
        if store.share(token_id) is None:
            raise UnknownDashboard(f"no share token {token_id!r}",
                                   hint="give the id printed by `lakebook dashboards share`, or NAME --all")
        return store.revoke(token_id=token_id)
