"""REST handlers of the Dashboards panel, under ``/lakebook/api/dashboards`` (see dashboards.py
for what they answer). Like the Jobs panel's: authenticated (the Jupyter server's token or
login; POSTs also pass its XSRF check), the work on a worker thread, errors mapped by
``handlers.error_status`` into lakebook's one error shape.

    GET    /lakebook/api/dashboards                   dashboards and the dashboard server
    POST   /lakebook/api/dashboards                   publish a notebook (201), {"notebook", "name"?}
    DELETE /lakebook/api/dashboards/{name}            unpublish
    POST   /lakebook/api/dashboards/{name}/snapshot   execute now; answers once it is stored
    POST   /lakebook/api/dashboards/{name}/share      a share link, {"expires"?: "7d"}
    POST   /lakebook/api/dashboards/{name}/open       a short-lived link for the Lab user
"""

from __future__ import annotations

import tornado.web

from .dashboards import DashboardsAPI, PublishRequest, ShareRequest
from .jobs_handlers import JobsBase

DASHBOARD = r"(?P<name>[^/]+)"


class DashboardsBase(JobsBase):
    @property
    def dashboards(self) -> DashboardsAPI:
        return self.extensionapp.dashboards

    @property
    def user(self) -> str:
        """The logged-in Lab user, as share links record who minted them."""
        return self.current_user.username


class DashboardsHandler(DashboardsBase):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.run(self.dashboards.dashboards_json)

    @tornado.web.authenticated
    async def post(self) -> None:
        request = PublishRequest.model_validate(self.body_json())
        self.set_status(201)
        await self.run(self.dashboards.publish, request, self.user)


class DashboardHandler(DashboardsBase):
    @tornado.web.authenticated
    async def delete(self, name: str) -> None:
        await self.run(self.dashboards.unpublish, name)


class SnapshotHandler(DashboardsBase):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.run(self.dashboards.snapshot, name, self.user)


class ShareHandler(DashboardsBase):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        request = ShareRequest.model_validate(self.body_json())
        self.set_status(201)
        await self.run(self.dashboards.share, name, request, self.user)


class OpenHandler(DashboardsBase):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        self.set_status(201)
        await self.run(self.dashboards.open_link, name, self.user)


def dashboard_handlers() -> list[tuple[str, type]]:
    root = "/lakebook/api/dashboards"
    return [
        (rf"{root}/?", DashboardsHandler),
        (rf"{root}/{DASHBOARD}/?", DashboardHandler),
        (rf"{root}/{DASHBOARD}/snapshot/?", SnapshotHandler),
        (rf"{root}/{DASHBOARD}/share/?", ShareHandler),
        (rf"{root}/{DASHBOARD}/open/?", OpenHandler),
    ]
