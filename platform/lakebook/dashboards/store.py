"""Published dashboards, their snapshots and share tokens, in the catalog database (SQLite or
PostgreSQL, the same code).

Invariants: a notebook is published under one name at most (the dashboard server finds a
page's dashboard by its notebook); unpublishing revokes the dashboard's share tokens and keeps
its snapshots (their rows and files), which a new publish under the same name shows again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from sqlalchemy import Boolean, Integer, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..catalog.store import CatalogTables, _UTC


class _Base(DeclarativeBase):
    pass


class DashboardRow(_Base):
    __tablename__ = "dashboards"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    notebook: Mapped[str] = mapped_column(Text, unique=True)  # relative to the workspace, POSIX
    published_at: Mapped[datetime] = mapped_column(_UTC())
    published_by: Mapped[str] = mapped_column(String(200))
    pool_size: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: dashboards.pool_size


class SnapshotRow(_Base):
    __tablename__ = "dashboard_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dashboard: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(_UTC())
    created_by: Mapped[str] = mapped_column(String(200))
    html_path: Mapped[str] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(nullable=True)


class ShareRow(_Base):
    __tablename__ = "dashboard_shares"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dashboard: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(_UTC())
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(_UTC())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class DashboardStore(CatalogTables):
    """The dashboard tables of one workspace's catalog database."""

    metadata = _Base.metadata

    # -- dashboards ---------------------------------------------------------------------------------
    def dashboards(self) -> list[DashboardRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(DashboardRow).order_by(DashboardRow.name)))

    def dashboard(self, name: str) -> DashboardRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(DashboardRow, name)

    def by_notebook(self, notebook: str) -> DashboardRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(DashboardRow).where(DashboardRow.notebook == notebook)).first()

    def save_dashboard(self, row: DashboardRow) -> None:
        with self.writing() as session:
            session.merge(row)

    def delete_dashboard(self, name: str) -> None:
        """Remove the dashboard and revoke its share tokens, in one transaction."""
        with self.writing() as session:
            session.execute(update(ShareRow).where(ShareRow.dashboard == name).values(revoked=True))
            row = session.get(DashboardRow, name)
            if row is not None:
                session.delete(row)

    # -- snapshots ----------------------------------------------------------------------------------
    def add_snapshot(self, row: SnapshotRow) -> SnapshotRow:
        with self.writing(expire_on_commit=False) as session:
            session.add(row)
        return row

    def snapshots(self, dashboard: str, limit: int = 20) -> list[SnapshotRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(SnapshotRow).where(SnapshotRow.dashboard == dashboard)
            return list(session.scalars(query.order_by(SnapshotRow.id.desc()).limit(limit)))

    def snapshot(self, dashboard: str, snapshot_id: int) -> SnapshotRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(SnapshotRow, snapshot_id)
            return row if row is not None and row.dashboard == dashboard else None

    # -- share tokens -------------------------------------------------------------------------------
    def add_share(self, row: ShareRow) -> ShareRow:
        with self.writing(expire_on_commit=False) as session:
            session.add(row)
        return row

    def share(self, token_id: str) -> ShareRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ShareRow, token_id)

    def revoke(self, *, token_id: str | None = None, dashboard: str | None = None) -> int:
        """Revoke one token, or every token of a dashboard; how many were not revoked before."""
        query = update(ShareRow).where(ShareRow.revoked.is_(False))
        query = query.where(ShareRow.id == token_id) if token_id else query.where(ShareRow.dashboard == dashboard)
        with self.writing() as session:
            return session.execute(query.values(revoked=True)).rowcount
