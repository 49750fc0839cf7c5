"""The monitor's alerts over REST, for the Lab's Alerts section (a badge with the open alerts,
their list, ack). Authenticated like every lakebook route; errors in lakebook's one shape
(handlers.error_status).

    GET  /lakebook/api/monitor/alerts            the open alerts (firing; acked and silenced marked), count
    POST /lakebook/api/monitor/alerts/{id}/ack   acknowledge one (by the server's user)
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import Any, Callable

import tornado.web

from .api import iso
from .handlers import LakebookHandler

_TIMES = ("starts_at", "ends_at", "last_seen", "acked_at")


class MonitorAlertsAPI:
    """The alert manager's alerts of the workspace ``workspace()`` returns."""

    def __init__(self, workspace: Callable[[], Any]):
        self.workspace = workspace

    def alerts_json(self) -> dict:
        from ..monitor.alertstore import AlertStore
        from ..monitor.routing import silenced_by

        with AlertStore(self.workspace()) as store:
            found, silences = store.alerts(), store.silences(datetime.now(timezone.utc))
        alerts = [_entry(a, silenced_by(silences, a["labels"]) is not None) for a in found]
        return {"alerts": alerts, "open": len(alerts),
                "unacked": sum(1 for a in alerts if not a["acked"] and not a["silenced"])}

    def ack(self, alert_id: int, by: str) -> dict:
        from ..monitor import AlertManager

        return _entry(AlertManager(self.workspace()).ack(alert_id, by, datetime.now(timezone.utc)), False)


def _entry(alert: dict, silenced: bool) -> dict:
    return {**alert, **{key: iso(alert[key]) for key in _TIMES}, "acked": alert["acked_at"] is not None,
            "silenced": silenced}


class MonitorAlertsHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.run(self.extensionapp.monitor_alerts.alerts_json)


class AckHandler(LakebookHandler):
    @tornado.web.authenticated
    async def post(self, alert_id: str) -> None:
        user = getattr(self.current_user, "username", None) or getpass.getuser()
        await self.run(self.extensionapp.monitor_alerts.ack, int(alert_id), user)


def monitor_alert_handlers() -> list[tuple[str, type]]:
    root = "/lakebook/api/monitor/alerts"
    return [(rf"{root}/?", MonitorAlertsHandler), (rf"{root}/(?P<alert_id>[0-9]+)/ack/?", AckHandler)]
