"""The alert manager: the alerts the checks raise, kept by their labels, and sent to the alert
channels.

This first version sends every firing alert it receives, and every resolve notice, to every
channel ``alerts.channels`` declares. Routing (matchers, ``group_by``, ``repeat_interval``),
silences, acknowledgements and the impact list replace it.
"""

from __future__ import annotations

from datetime import datetime

from ..alerts import Alert, notify


class AlertManager:
    """Receives the alerts of one evaluation (``receive``) and delivers them (``dispatch``)."""

    def __init__(self, workspace):
        self.workspace = workspace
        self._pending: list[Alert] = []

    def receive(self, alerts: list[Alert], now: datetime) -> None:
        """The alerts of one evaluation: each check that fires (status ``firing``, again at every
        evaluation while it fires) and each that has just resolved (status ``resolved``, once).
        An alert is identified by its labels (``alertname`` is the check's name)."""
        self._pending.extend(alerts)

    def dispatch(self, now: datetime) -> dict[str, dict[str, str | None]]:
        """Send what is due; by alert title, each channel's delivery error or None."""
        channels = list(self.workspace.settings.alerts.channels)
        sent = {alert.title: notify(self.workspace, channels, alert) for alert in self._pending}
        self._pending.clear()
        return sent
