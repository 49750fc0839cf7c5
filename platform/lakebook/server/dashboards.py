"""What the Dashboards panel's REST API answers: the published dashboards (address, last
snapshot, whether the dashboard server answers), notebooks published and unpublished from the
Lab, snapshots taken now, and share links, among them the short-lived link the Lab mints for
its logged-in user to open a dashboard.

Invariants:
- the dashboard server admits nobody on a Jupyter login of its own: a Lab user opens a
  dashboard with a share link minted for them here (``dashboards.lab_link_expires``, 8 h by
  default), recorded like any other (``created_by`` is ``lab:<user>``) and revocable;
- a notebook is named as the Lab names it (relative to the Jupyter server's root) and must
  also be a notebook of the workspace (the dashboards package's own check);
- a snapshot executes the notebook in a kernel process of its own and returns when it is
  stored; the Jupyter server runs it on a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from .api import iso
from .jobs import _Request, lab_file

log = logging.getLogger("lakebook.server")

HEALTH_TIMEOUT_S = 1.0


class PublishRequest(_Request):
    """Body of ``POST /lakebook/api/dashboards``: publish a notebook."""

    notebook: str = Field(description="the notebook's path in the Lab (relative to the Jupyter server's root)")
    name: str | None = Field(None, description="the dashboard's name (default: from the notebook's file name)")


class ShareRequest(_Request):
    """Body of ``POST /lakebook/api/dashboards/{name}/share``."""

    expires: str | None = Field(None, description="how long the link works: 3600, 90m, 12h, 7d "
                                                  "(default dashboards.share_expires)")


def dashboard_json(row: dict[str, Any]) -> dict[str, Any]:
    """A dashboard (dashboards.describe) with its times as ISO strings."""
    return {**row, "published_at": iso(row["published_at"]), "last_snapshot": iso(row["last_snapshot"])}


def link_json(link: dict[str, Any]) -> dict[str, Any]:
    return {**link, "expires_at": iso(link["expires_at"])}


def server_answers(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the dashboard server at ``url`` answers its health probe."""
    import httpx

    try:
        return httpx.get(f"{url}/lakebook/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


class DashboardsAPI:
    """The dashboards of the workspace ``workspace()`` returns, for a Lab whose files are under
    ``lab_root``."""

    def __init__(self, workspace: Callable[[], Any], lab_root: str | Path,
                 probe: Callable[[str], bool] = server_answers):
        self.workspace = workspace
        self.lab_root = Path(lab_root)
        self.probe = probe

    def dashboards_json(self) -> dict:
        """Every published dashboard, and the dashboard server's address and whether it answers."""
        from ..dashboards import list_dashboards
        from ..dashboards.api import server_url

        workspace = self.workspace()
        url = server_url(workspace)
        return {"dashboards": [dashboard_json(row) for row in list_dashboards(workspace)],
                "server": {"url": url, "running": self.probe(url)}}

    def publish(self, request: PublishRequest, user: str) -> dict:
        from ..dashboards import publish

        notebook = lab_file(request.notebook, self.lab_root, "notebook")
        row = publish(self.workspace(), notebook, request.name, by=f"lab:{user}")
        log.info("dashboard %s: %s published by %s", row["name"], row["notebook"], user)
        return dashboard_json(row)

    def unpublish(self, name: str) -> dict:
        from ..dashboards import unpublish

        unpublish(self.workspace(), name)
        return {"name": name, "unpublished": True}

    def snapshot(self, name: str, user: str) -> dict:
        """Execute the dashboard's notebook now and store its snapshot; the dashboard with it."""
        from ..dashboards import take_snapshot

        taken = take_snapshot(self.workspace(), name, by=f"lab:{user}")
        snapshot = {**taken.pop("snapshot")}
        snapshot["created_at"] = iso(snapshot["created_at"])
        return {**dashboard_json(taken), "snapshot": snapshot}

    def share(self, name: str, request: ShareRequest, user: str) -> dict:
        """A share link to hand on, valid for ``request.expires``."""
        from ..dashboards import share

        return link_json(share(self.workspace(), name, request.expires, by=f"lab:{user}"))

    def open_link(self, name: str, user: str) -> dict:
        """A short-lived link for the Lab user to open the dashboard with."""
        from ..dashboards import share

        workspace = self.workspace()
        return link_json(share(workspace, name, workspace.settings.dashboards.lab_link_expires, by=f"lab:{user}"))
