"""An alert, and how it reads as text: the Slack-style line of a webhook, an email's subject
and body."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import AlertError

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("firing", "resolved")


@dataclass(frozen=True)
class Alert:
    """Something people should know about: ``title`` names it in one line, ``text`` explains
    it, ``labels`` say what it is about (job, table, ...), ``url`` where to look."""

    title: str
    text: str
    severity: str  # SEVERITIES
    labels: dict[str, str]
    status: str  # STATUSES
    url: str | None = None

    def __post_init__(self):
        for name, value, allowed in (("severity", self.severity, SEVERITIES), ("status", self.status, STATUSES)):
            if value not in allowed:
                raise AlertError(f"alert {name} {value!r} is not one of {', '.join(allowed)}")


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces made single spaces (a mail header)."""
    return " ".join(text.split())


def summary(alert: Alert) -> str:
    """``[FIRING] critical: nightly_batch failed``."""
    return f"[{alert.status.upper()}] {alert.severity}: {one_line(alert.title)}"


def labels_text(alert: Alert) -> list[str]:
    return [f"{key}: {value}" for key, value in sorted(alert.labels.items())]


def plain_text(alert: Alert) -> str:
    """The alert for people: summary, text, labels and link, one part a paragraph."""
    parts = [summary(alert), alert.text.strip()]
    if alert.labels:
        parts.append("\n".join(["labels:", *(f"  {line}" for line in labels_text(alert))]))
    if alert.url:
        parts.append(alert.url)
    return "\n\n".join(part for part in parts if part) + "\n"


def webhook_payload(alert: Alert) -> dict:
    """The alert's fields, its ``text`` under ``description``, and ``text`` the whole message
    as one Slack incoming-webhook field."""
    fields = asdict(alert)
    fields["description"] = fields.pop("text")
    return {**fields, "text": plain_text(alert).strip()}
