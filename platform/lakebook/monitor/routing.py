"""The routing table (``alerts.routes`` in lakebook.yaml) as Alertmanager reads one: which routes
take an alert, the group it falls in, whether a silence covers it, and a group as one message."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from ..alerts import SEVERITIES, Alert
from ..config import AlertRoute
from ..errors import AlertError

DEFAULT_REPEAT_S = 4 * 3600.0
MATCH_OPS = ("=~", "!=", "=")  # longest first: "a=~b" is a regex, not a value "~b"


@dataclass(frozen=True)
class Route:
    """A route of the table with ``key``, its identity in the stored notifications: its position
    and a hash of its settings, so an edited route starts afresh."""

    key: str
    settings: AlertRoute = field(compare=False, hash=False)

    def matches(self, labels: dict[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.settings.match.items())
                and all(re.fullmatch(p, labels.get(k, "")) for k, p in self.settings.match_re.items()))

    def group(self, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The alert's group in this route: its id and its labels (the ``group_by`` ones it has)."""
        group_labels = {k: labels[k] for k in self.settings.group_by if k in labels}
        return hashlib.sha1(json.dumps(group_labels, sort_keys=True).encode()).hexdigest()[:16], group_labels


def routes(workspace) -> list[Route]:
    """The workspace's routes, in order; with none declared, one route to every channel."""
    alerts = workspace.settings.alerts
    declared = alerts.routes or ([AlertRoute(channels=sorted(alerts.channels))] if alerts.channels else [])
    return [Route(f"{i}-{_digest(r)}", r) for i, r in enumerate(declared)]


def _digest(route: AlertRoute) -> str:
    return hashlib.sha1(route.model_dump_json().encode()).hexdigest()[:8]


def routes_for(table: list[Route], labels: dict[str, str]) -> list[Route]:
    """The routes that take an alert: the first that matches, and the next ones while each says ``continue``."""
    taken = []
    for route in table:
        if route.matches(labels):
            taken.append(route)
            if not route.settings.continue_:
                break
    return taken


def parse_matcher(text: str) -> tuple[str, str, str]:
    """``label=value``, ``label!=value`` or ``label=~regex`` as (label, op, value)."""
    for op in MATCH_OPS:
        label, found, value = text.partition(op)
        if found and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label.strip()):
            if op == "=~":
                _compile(value)
            return label.strip(), op, value
    raise AlertError(f"matcher {text!r} is not label=value, label!=value or label=~regex",
                     hint="e.g. --match alertname=flights_fresh --match table=~'warehouse\\..*'")


def _compile(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise AlertError(f"{pattern!r} is not a regular expression ({exc})",
                         hint="write label=~regex with a Python regular expression") from None


def silenced_by(silences: list[dict], labels: dict[str, str]) -> dict | None:
    """The first silence whose matchers all hold for ``labels``, or None."""
    for silence in silences:
        if all(_holds(op, labels.get(label, ""), value) for label, op, value in silence["matchers"]):
            return silence
    return None


def _holds(op: str, actual: str, value: str) -> bool:
    if op == "=~":
        return re.fullmatch(value, actual) is not None
    return (actual == value) == (op == "=")


def highest_severity(alerts: list[dict]) -> str:
    return max((a["severity"] for a in alerts), key=SEVERITIES.index, default="warning")


def group_message(group_labels: dict[str, str], alerts: list[dict], status: str, note: str = "") -> Alert:
    """One group as one message: its title names the group and the count, its text lists each
    alert with its detail and impact, its labels those all its alerts share, its severity the highest."""
    name = ", ".join(f"{k}={v}" for k, v in sorted(group_labels.items())) or "all alerts"
    count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    title = f"{name}: {count} {'firing' if status == 'firing' else 'resolved'}"
    text = "\n\n".join(alert_lines(a) for a in alerts) + (f"\n\n{note}" if note else "")
    url = next((a["url"] for a in alerts if a.get("url")), None)
    return Alert(title=title, text=text, severity=highest_severity(alerts), labels=common_labels(group_labels, alerts),
                 status=status, url=url)


def common_labels(group_labels: dict[str, str], alerts: list[dict]) -> dict[str, str]:
    """The labels every alert of the group shares (Alertmanager's ``commonLabels``): the group's
    own, and for a group of one alert all of that alert's, so a receiver can route on them."""
    shared = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        shared = {key: value for key, value in shared.items() if alert["labels"].get(key) == value}
    return {**shared, **group_labels}


def alert_lines(alert: dict) -> str:
    """An alert for people: its title, since when, its detail, and what it affects downstream."""
    since = _when(alert["starts_at"])
    until = f", resolved {_when(alert['ends_at'])}" if alert["status"] == "resolved" and alert["ends_at"] else ""
    lines = [f"- {alert['title']} ({alert['severity']}, since {since}{until}; alert {alert['id']})"]
    lines += [f"  {line}" for line in alert["text"].strip().splitlines()]
    lines += [f"  {line}" for line in impact_text(alert["impact"])]
    return "\n".join(lines)


def impact_text(impact: dict) -> list[str]:
    """The stored impact list as lines: ``affects downstream of raw.flights:`` and one line a kind."""
    if not impact or not impact.get("target"):
        return []
    kinds = [(kind, impact.get(kind) or []) for kind in ("tables", "feature_views", "feature_services", "jobs", "dashboards",
                                                      "endpoints")]
    found = [f"  {kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in kinds if names]
    head = f"impact (downstream of {impact['target']}):" + ("" if found else " nothing recorded downstream")
    return [head, *found, *(f"  ({note})" for note in impact.get("notes", []))]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"
