"""The Lab's alert inbox over REST (the alerts of ``type: lab`` channels), which the lab
extension polls to show each new alert as a notification. Authenticated like every lakebook
route; errors in lakebook's one shape (handlers.error_status).

    GET  /lakebook/api/alerts?after=ID&limit=N&unread=true   newest first, and the unread count
    POST /lakebook/api/alerts/{id}/read                      mark one read
    POST /lakebook/api/alerts/read                           mark every alert read
"""

from __future__ import annotations

from typing import Any, Callable

import tornado.web
from pydantic import BaseModel, ConfigDict, Field

from ..alerts.inbox import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT
from .api import iso
from .handlers import LakebookHandler


class AlertsParams(BaseModel):
    """Query parameters of ``GET /lakebook/api/alerts``."""

    model_config = ConfigDict(extra="forbid")

    after: int | None = Field(None, ge=0, description="only alerts with a greater id")
    limit: int = Field(LIST_DEFAULT_LIMIT, ge=1, le=LIST_MAX_LIMIT, description="alerts to return, newest first")
    unread: bool = Field(False, description="only alerts not marked read")


class AlertsAPI:
    """The inbox of the workspace ``workspace()`` returns (the Lake panel's)."""

    def __init__(self, workspace: Callable[[], Any]):
        self.workspace = workspace

    def _inbox(self):
        from ..alerts import Inbox

        return Inbox(self.workspace())

    def alerts_json(self, params: AlertsParams) -> dict:
        with self._inbox() as inbox:
            found = inbox.alerts(after=params.after, limit=params.limit, unread_only=params.unread)
            unread = inbox.unread_count()
        return {"alerts": [{**entry, "created_at": iso(entry["created_at"])} for entry in found], "unread": unread}

    def unread_count(self) -> int:
        with self._inbox() as inbox:
            return inbox.unread_count()

    def mark_read(self, alert_id: int | None) -> dict:
        with self._inbox() as inbox:
            return {"marked": inbox.mark_read(alert_id), "unread": inbox.unread_count()}


class AlertsHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.run(self.extensionapp.alerts.alerts_json, AlertsParams.model_validate(self.query_params()))


class ReadHandler(LakebookHandler):
    @tornado.web.authenticated
    async def post(self, alert_id: str | None = None) -> None:
        await self.run(self.extensionapp.alerts.mark_read, int(alert_id) if alert_id else None)


def alert_handlers() -> list[tuple[str, type]]:
    root = "/lakebook/api/alerts"
    return [
        (rf"{root}/?", AlertsHandler),
        (rf"{root}/read/?", ReadHandler),
        (rf"{root}/(?P<alert_id>[0-9]+)/read/?", ReadHandler),
    ]
