"""The alert manager: the alerts the checks raise, kept in the catalog database by their labels,
routed (``alerts.routes``), grouped, deduplicated, silenced and acknowledged as Alertmanager
does, and sent to the alert channels with what they affect downstream.

Dispatch, per route and group (the alerts that share the route's ``group_by`` labels):
- a new firing group is sent at once (after ``group_wait`` when the route sets one);
- a still-firing group again only when an alert joins it or after ``repeat_interval``;
- one resolve notice when all of its alerts have resolved (with ``send_resolved``);
- a silenced alert is left out, and a group whose alerts are all silenced is not sent (recorded
  as suppressed); an acknowledged alert is left out until it resolves and fires anew;
- a channel that fails is logged and tried again at the next dispatch, not lost.
Each decision is claimed in the database before anything is sent (alertstore.py), so two
processes that dispatch at once never send the same message twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ..alerts import Alert, notify
from .alertstore import AlertStore
from .routing import Route, group_message, routes, routes_for, silenced_by

log = logging.getLogger("lakebook.monitor")


class AlertManager:
    """Receives the alerts of one evaluation (``receive``) and delivers them (``dispatch``)."""

    def __init__(self, workspace):
        self.workspace = workspace
        self._impacts: dict[str, dict] = {}

    def receive(self, alerts: list[Alert], now: datetime) -> None:
        """The alerts of one evaluation: each check that fires (status ``firing``, again at every
        evaluation while it fires) and each that has just resolved (status ``resolved``, once).
        An alert is identified by its labels (``alertname`` is the check's name)."""
        with AlertStore(self.workspace) as store:
            for alert in alerts:
                if alert.status == "firing":
                    store.fire(alert, now, impact=lambda a=alert: self._impact_of(a.labels))
                else:
                    store.resolve(alert, now)

    def _impact_of(self, labels: dict[str, str]) -> dict:
        """What depends on the alert's table or source (``raw.<source>``), once per target and manager."""
        target = labels.get("table") or (f"raw.{labels['source']}" if labels.get("source") else None)
        if target is None:
            return {}
        if target not in self._impacts:
            from .impact import impact

            try:
                self._impacts[target] = impact(self.workspace, target).as_dict()
            except Exception as exc:  # noqa: BLE001 - an alert is never lost for want of its impact list
                log.warning("no impact list for %s: %s", target, exc)
                self._impacts[target] = {"target": target, "notes": [f"impact unknown: {exc}"]}
        return self._impacts[target]

    def dispatch(self, now: datetime) -> dict[str, dict[str, str | None]]:
        """Send what is due; by message title, each channel's delivery error or None."""
        sent: dict[str, dict[str, str | None]] = {}
        table = routes(self.workspace)
        with AlertStore(self.workspace) as store:
            firing, silences = store.alerts(), store.silences(active_at=now)
            groups = _groups(table, firing)
            states = {(n["route"], n["group_id"]): n for n in store.notifications()}
            for (route, group_id), (group_labels, members) in groups.items():
                state = states.get((route.key, group_id))
                sent |= _firing_group(store, route, group_id, group_labels, members, silences, state, now)
            live = {(route.key, group_id) for route, group_id in groups}
            for route in table:
                for state in (s for k, s in states.items() if k[0] == route.key and k not in live):
                    sent |= _ended_group(store, route, state, now)
        return sent

    def ack(self, alert_id: int, by: str, now: datetime) -> dict:
        """Acknowledge an alert (it is not sent again until it resolves and fires anew)."""
        with AlertStore(self.workspace) as store:
            return store.ack(alert_id, by, now)


def _groups(table: list[Route], firing: list[dict]) -> dict[tuple[Route, str], tuple[dict, list[dict]]]:
    """The firing alerts by (route, group id): the group's labels and its alerts, oldest first."""
    groups: dict[tuple[Route, str], tuple[dict, list[dict]]] = {}
    for alert in sorted(firing, key=lambda a: (a["starts_at"], a["id"])):
        for route in routes_for(table, alert["labels"]):
            group_id, group_labels = route.group(alert["labels"])
            groups.setdefault((route, group_id), (group_labels, []))[1].append(alert)
    return groups


def _identity(alert: dict) -> str:
    """An alert's firing episode: the same alert firing anew after it resolved is a new one."""
    return f"{alert['fingerprint']}@{alert['starts_at'].isoformat()}"


def _firing_group(store: AlertStore, route: Route, group_id: str, group_labels: dict, members: list[dict],
                  silences: list[dict], state: dict | None, now: datetime) -> dict[str, dict[str, str | None]]:
    """Decide and send for a group with firing alerts."""
    silenced = [a for a in members if silenced_by(silences, a["labels"])]
    active = [a for a in members if a not in silenced and a["acked_at"] is None]
    version = state["version"] if state else None
    base = {"group_labels": group_labels, "first_at": state["first_at"] if state else now}
    if not active:
        # A group once sent stays "firing" (its resolve notice is still due); one never sent is suppressed.
        status = state["status"] if state and state["status"] == "firing" else "suppressed" if silenced else "acked"
        if state is None or state["status"] != status:
            store.claim(route.key, group_id, version, **base, status=status, suppressed_at=now)
        return {}
    channels = _due_channels(route, state, active, now)
    if channels is None:
        if state is None or state["status"] not in ("firing", "waiting"):  # group_wait starts now
            store.claim(route.key, group_id, version, **{**base, "first_at": now}, status="waiting")
        return {}
    if not store.claim(route.key, group_id, version, **base, status="firing", sent_at=now,
                       members=sorted(_identity(a) for a in active), pending=[], errors={}):
        return {}
    note = _left_out(silenced, [a for a in members if a["acked_at"] is not None])
    return _send(store, route, group_id, group_message(group_labels, active, "firing", note), channels)


def _due_channels(route: Route, state: dict | None, active: list[dict], now: datetime) -> list[str] | None:
    """The channels a firing group is due to go to now, or None (not due)."""
    settings = route.settings
    if state is None or state["status"] not in ("firing",):
        waited = state is not None and state["status"] == "waiting"
        if settings.group_wait and not (waited and (now - state["first_at"]).total_seconds() >= settings.group_wait):
            return None
        return settings.channels
    if {_identity(a) for a in active} - set(state["members"]):
        return settings.channels  # an alert joined the group, or fired anew
    if state["sent_at"] is None or (now - state["sent_at"]).total_seconds() >= settings.repeat_interval:
        return settings.channels
    return state["pending"] or None  # channels that failed last time


def _left_out(silenced: list[dict], acked: list[dict]) -> str:
    parts = [f"{len(silenced)} silenced"] if silenced else []
    parts += [f"{len(acked)} acknowledged"] if acked else []
    return f"(not listed: {' and '.join(parts)})" if parts else ""


def _ended_group(store: AlertStore, route: Route, state: dict, now: datetime) -> dict[str, dict[str, str | None]]:
    """A group with no firing alert left: its resolve notice once, if it had been sent."""
    if state["status"] == "resolved" and state["pending"]:  # a resolve notice some channel missed
        if not store.claim(route.key, state["group_id"], state["version"], pending=[]):
            return {}
        return _send(store, route, state["group_id"], _resolved(store, state), state["pending"])
    if state["status"] == "resolved":
        return {}
    notify_now = state["status"] == "firing" and route.settings.send_resolved
    if not store.claim(route.key, state["group_id"], state["version"], status="resolved", pending=[]):
        return {}
    return _send(store, route, state["group_id"], _resolved(store, state), route.settings.channels) if notify_now else {}


def _resolved(store: AlertStore, state: dict) -> Alert:
    fingerprints = [member.partition("@")[0] for member in state["members"]]
    return group_message(state["group_labels"], store.by_fingerprints(fingerprints), "resolved")


def _send(store: AlertStore, route: Route, group_id: str, message: Alert,
          channels: list[str]) -> dict[str, dict[str, str | None]]:
    """Deliver ``message``; channels that fail are kept on the group to be tried at the next dispatch."""
    errors: dict[str, Any] = notify(store.workspace, channels, message)
    failed = sorted(name for name, error in errors.items() if error)
    if failed:
        state = next(n for n in store.notifications(route.key) if n["group_id"] == group_id)
        store.claim(route.key, group_id, state["version"], pending=failed,
                    errors={name: errors[name] for name in failed})
    return {message.title: errors}
