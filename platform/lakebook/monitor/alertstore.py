"""The alert manager's state in the catalog database (SQLite or PostgreSQL, the same code): the
alerts by fingerprint, the silences, and what was last sent per route and group.

Invariants: an alert is one row per fingerprint (its sorted labels); it resolves only when the
engine says so, and firing again after that starts it anew (new ``starts_at``, ack cleared).
A group's notification row changes only through ``claim``, a compare-and-set on its
``version``: of two processes dispatching at once (``lakebook monitor run`` from a terminal and
the monitor service) exactly one wins a decision and sends, so nothing is sent twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..alerts import Alert
from ..catalog.store import CatalogTables, _UTC
from ..errors import NotFound


class _Base(DeclarativeBase):
    pass


class AlertRow(_Base):
    __tablename__ = "monitor_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)
    labels: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    starts_at: Mapped[datetime] = mapped_column(_UTC())
    ends_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    last_seen: Mapped[datetime] = mapped_column(_UTC())
    acked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    impact: Mapped[str] = mapped_column(Text, default="{}")


class SilenceRow(_Base):
    __tablename__ = "monitor_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matchers: Mapped[str] = mapped_column(Text)  # JSON [[label, "=" | "=~", value], ...]
    starts_at: Mapped[datetime] = mapped_column(_UTC())
    ends_at: Mapped[datetime] = mapped_column(_UTC())
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))


class NotificationRow(_Base):
    """What the route ``route`` last did for the group ``group_id``: ``status`` firing (sent),
    resolved (resolve notice sent, or nothing left to send), waiting (``group_wait``) or
    suppressed (every alert silenced, nothing sent); ``members`` the alerts last sent
    (``fingerprint@starts_at``); ``pending`` the channels whose delivery failed, tried again."""

    __tablename__ = "monitor_notifications"
    __table_args__ = (UniqueConstraint("route", "group_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str] = mapped_column(String(40))
    group_labels: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16))
    first_at: Mapped[datetime] = mapped_column(_UTC())
    sent_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    suppressed_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    members: Mapped[str] = mapped_column(Text, default="[]")
    pending: Mapped[str] = mapped_column(Text, default="[]")
    errors: Mapped[str] = mapped_column(Text, default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1)


_JSON_FIELDS = {"labels": dict, "impact": dict, "matchers": list, "group_labels": dict, "members": list,
                "pending": list, "errors": dict}


def _dict(row) -> dict[str, Any]:
    out = {c.name: getattr(row, c.name) for c in row.__table__.columns}
    for key in _JSON_FIELDS.keys() & out.keys():
        out[key] = json.loads(out[key] or "null") or _JSON_FIELDS[key]()
    return out


def fingerprint(labels: dict[str, str]) -> str:
    """An alert's identity: a hash of its sorted labels."""
    return hashlib.sha1(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


class AlertStore(CatalogTables):
    """The alert manager's tables of one workspace's catalog database."""

    metadata = _Base.metadata

    def __init__(self, workspace):
        super().__init__(workspace)
        self.workspace = workspace

    # -- alerts -------------------------------------------------------------------------------------
    def fire(self, alert: Alert, now: datetime, impact=None) -> tuple[dict, bool]:
        """Record a firing ``alert``; the row and whether it started now (new, or firing again after
        it resolved). ``impact()`` is called only for an alert that starts."""
        fp = fingerprint(alert.labels)
        with Session(self.engine) as session:  # the impact list is looked up outside the write transaction
            before = session.scalar(select(AlertRow.status).where(AlertRow.fingerprint == fp))
        found = impact() if impact and before != "firing" else {}
        with self.writing() as session:
            row = session.scalar(select(AlertRow).where(AlertRow.fingerprint == fp))
            started = row is None or row.status == "resolved"
            if row is None:
                row = AlertRow(fingerprint=fp, labels=json.dumps(alert.labels, sort_keys=True))
                session.add(row)
            if started:
                row.starts_at, row.ends_at, row.acked_by, row.acked_at = now, None, None, None
                row.impact = json.dumps(found)
            row.title, row.text, row.severity, row.url = alert.title, alert.text, alert.severity, alert.url
            row.status, row.last_seen = "firing", now
            session.flush()
            return _dict(row), started

    def resolve(self, alert: Alert, now: datetime) -> dict | None:
        """Mark the alert with ``alert``'s labels resolved; its row, or None if it was not firing."""
        with self.writing() as session:
            row = session.scalar(select(AlertRow).where(AlertRow.fingerprint == fingerprint(alert.labels)))
            if row is None or row.status != "firing":
                return None
            row.status, row.ends_at, row.last_seen = "resolved", now, now
            if alert.text:
                row.text = alert.text
            return _dict(row)

    def alerts(self, include_resolved: bool = False, limit: int = 500) -> list[dict]:
        """Firing alerts (and resolved ones too), newest first."""
        query = select(AlertRow).order_by(AlertRow.starts_at.desc(), AlertRow.id.desc()).limit(limit)
        if not include_resolved:
            query = query.where(AlertRow.status == "firing")
        with Session(self.engine) as session:
            return [_dict(row) for row in session.scalars(query)]

    def by_fingerprints(self, fingerprints: list[str]) -> list[dict]:
        with Session(self.engine) as session:
            return [_dict(r) for r in session.scalars(select(AlertRow).where(AlertRow.fingerprint.in_(fingerprints)))]

    def alert(self, alert_id: int) -> dict:
        with Session(self.engine) as session:
            return _dict(self._alert(session, alert_id))

    def _alert(self, session: Session, alert_id: int) -> AlertRow:
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}", hint="`lakebook alerts list --all` shows the alerts and their ids")
        return row

    def ack(self, alert_id: int, by: str, now: datetime) -> dict:
        """Acknowledge alert ``alert_id``: it is not sent again until it resolves and fires anew."""
        with self.writing() as session:
            row = self._alert(session, alert_id)
            if row.status == "firing" and row.acked_at is None:
                row.acked_by, row.acked_at = by, now
            return _dict(row)

    # -- silences -----------------------------------------------------------------------------------
    def add_silence(self, matchers: list[tuple[str, str, str]], starts_at: datetime, ends_at: datetime,
                    comment: str, created_by: str) -> dict:
        row = SilenceRow(matchers=json.dumps([list(m) for m in matchers]), starts_at=starts_at, ends_at=ends_at,
                         comment=comment, created_by=created_by)
        with self.writing() as session:
            session.add(row)
            session.flush()
            return _dict(row)

    def silences(self, active_at: datetime | None = None) -> list[dict]:
        """Every silence, or those in force at ``active_at``; newest first."""
        query = select(SilenceRow).order_by(SilenceRow.id.desc())
        if active_at is not None:
            query = query.where(SilenceRow.starts_at <= active_at, SilenceRow.ends_at > active_at)
        with Session(self.engine) as session:
            return [_dict(row) for row in session.scalars(query)]

    def expire_silence(self, silence_id: int, now: datetime) -> dict:
        """End silence ``silence_id`` now (kept, for the record)."""
        with self.writing() as session:
            row = session.get(SilenceRow, silence_id)
            if row is None:
                raise NotFound(f"no silence {silence_id}", hint="`lakebook alerts silences` lists them")
            row.ends_at = min(row.ends_at, now)
            return _dict(row)

    # -- notifications ------------------------------------------------------------------------------
    def notifications(self, route: str | None = None, statuses: tuple[str, ...] = ()) -> list[dict]:
        query = select(NotificationRow).order_by(NotificationRow.id)
        if route is not None:
            query = query.where(NotificationRow.route == route)
        if statuses:
            query = query.where(NotificationRow.status.in_(statuses))
        with Session(self.engine) as session:
            return [_dict(row) for row in session.scalars(query)]

    def claim(self, route: str, group_id: str, seen_version: int | None, **values) -> bool:
        """Set the group's notification to ``values`` if nobody changed it since ``seen_version``
        was read (None: there was no row); whether this caller won and may act on it."""
        values = {k: json.dumps(v, sort_keys=True) if k in _JSON_FIELDS else v for k, v in values.items()}
        try:
            with self.writing() as session:
                if seen_version is None:
                    session.add(NotificationRow(route=route, group_id=group_id, version=1, **values))
                    return True
                done = session.execute(update(NotificationRow).where(
                    NotificationRow.route == route, NotificationRow.group_id == group_id,
                    NotificationRow.version == seen_version).values(version=seen_version + 1, **values))
                return done.rowcount == 1
        except IntegrityError:  # another process inserted the group's row first
            return False
