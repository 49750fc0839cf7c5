"""The Lab's alert inbox: the alerts of ``type: lab`` channels, in the catalog database
(SQLite or PostgreSQL, the same code), for JupyterLab's notifications and ``lakebook alerts``.

Invariants: ids grow with every alert, so ``after=<id>`` is a cursor a reader keeps; a
channel keeps at most its ``keep`` newest alerts (older ones are dropped in the transaction
that adds one), so the inbox cannot grow without bound; reading an alert only sets its flag.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..catalog.store import CatalogTables, _UTC
from ..errors import NotFound
from .model import Alert

LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 500


class _Base(DeclarativeBase):
    pass


class LabAlertRow(_Base):
    __tablename__ = "lab_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(_UTC())
    channel: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    read: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


def alert_dict(row: LabAlertRow) -> dict[str, Any]:
    """An inbox entry as plain JSON-ready values (``created_at`` an aware datetime)."""
    out = {c.name: getattr(row, c.name) for c in LabAlertRow.__table__.columns}
    out["labels"] = json.loads(out["labels"] or "{}")
    return out


class Inbox(CatalogTables):
    """The lab alerts of one workspace's catalog database."""

    metadata = _Base.metadata

    def add(self, channel: str, alert: Alert, keep: int) -> int:
        """Record ``alert`` for ``channel`` and drop what is older than its ``keep`` newest; the new id."""
        row = LabAlertRow(created_at=datetime.now(timezone.utc), channel=channel, severity=alert.severity,
                          title=alert.title, text=alert.text, labels=json.dumps(alert.labels, sort_keys=True),
                          status=alert.status, url=alert.url, read=False)
        with self.writing() as session:
            session.add(row)
            session.flush()
            oldest_kept = select(LabAlertRow.id).where(LabAlertRow.channel == channel) \
                .order_by(LabAlertRow.id.desc()).offset(keep - 1).limit(1).scalar_subquery()
            session.execute(delete(LabAlertRow).where(LabAlertRow.channel == channel, LabAlertRow.id < oldest_kept))
            return row.id

    def alerts(self, after: int | None = None, limit: int = LIST_DEFAULT_LIMIT, unread_only: bool = False) -> list[dict]:
        """Alerts newer than id ``after`` (all without it), newest first, at most ``limit``."""
        query = select(LabAlertRow).order_by(LabAlertRow.id.desc()).limit(limit)
        if after is not None:
            query = query.where(LabAlertRow.id > after)
        if unread_only:
            query = query.where(LabAlertRow.read.is_(False))
        with Session(self.engine) as session:
            return [alert_dict(row) for row in session.scalars(query)]

    def unread_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(LabAlertRow).where(LabAlertRow.read.is_(False)))

    def mark_read(self, alert_id: int | None = None) -> int:
        """Mark alert ``alert_id`` read (every alert without an id); how many were unread.
        NotFound for an id the inbox does not hold (never held, or dropped as old)."""
        query = update(LabAlertRow).where(LabAlertRow.read.is_(False)).values(read=True)
        with self.writing() as session:
            if alert_id is not None:
                if session.get(LabAlertRow, alert_id) is None:
                    raise NotFound(f"no alert {alert_id} in the inbox",
                                   hint="`lakebook alerts inbox --all` shows the alerts it holds (old ones are dropped)")
                query = query.where(LabAlertRow.id == alert_id)
            return session.execute(query).rowcount
