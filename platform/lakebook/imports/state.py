"""Each import's state in the catalog database (SQLite or PostgreSQL, the same code): its
incremental cursor, where an unfinished run stopped, and its last run.

Invariants:
- the state moves only after the records of the page it stands for are in the ingest log
  (fsynced): a run killed at any point resumes at a page whose records may be logged already
  (their event ids drop them at flush), never after one whose records are not;
- ``cursor`` is the one a complete run reached: a run sends it as its incremental parameter;
  a run killed mid-way leaves it as it was and keeps ``resume`` (the next page's request, the
  parameters it started with, the highest cursor value it logged), which the next run
  continues from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..catalog.store import CatalogTables, _UTC


class _Base(DeclarativeBase):
    pass


class ImportStateRow(_Base):
    __tablename__ = "import_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text, default="null")  # JSON: the cursor field's value
    resume: Mapped[str] = mapped_column(Text, default="null")  # JSON: an unfinished run's position
    records: Mapped[int] = mapped_column(BigInteger, default=0)  # accepted, all runs together
    last_run_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    last_status: Mapped[str] = mapped_column(String(16), default="")  # running, succeeded, failed
    last_summary: Mapped[str] = mapped_column(Text, default="{}")  # JSON: ImportSummary, or the error


@dataclass
class ImportState:
    cursor: Any = None
    resume: dict | None = None
    records: int = 0
    last_run_at: datetime | None = None
    last_status: str = ""
    last_summary: dict | None = None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class ImportStore(CatalogTables):
    """The imports' state table of one workspace's catalog database."""

    metadata = _Base.metadata

    def state(self, name: str) -> ImportState:
        with Session(self.engine) as session:
            row = session.get(ImportStateRow, name)
            return _state(row) if row is not None else ImportState()

    def states(self) -> dict[str, ImportState]:
        with Session(self.engine) as session:
            return {row.name: _state(row) for row in session.scalars(select(ImportStateRow))}

    def started(self, name: str) -> None:
        with self.writing() as session:
            row = _row(session, name)
            row.last_run_at, row.last_status = now_utc(), "running"

    def page_logged(self, name: str, resume: dict | None, accepted: int) -> None:
        """A page's records are in the ingest log: the next run starts at ``resume``."""
        with self.writing() as session:
            row = _row(session, name)
            row.resume, row.records = json.dumps(resume), row.records + accepted

    def finished(self, name: str, cursor: Any, summary: dict, accepted: int) -> None:
        """A run's last page is logged: its cursor becomes the import's, nothing to resume."""
        with self.writing() as session:
            row = _row(session, name)
            row.cursor, row.resume, row.records = json.dumps(cursor), "null", row.records + accepted
            row.last_status, row.last_summary = "succeeded", json.dumps(summary, default=str)

    def failed(self, name: str, error: str) -> None:
        """A run ended on an error; ``resume`` stays where its last logged page left it."""
        with self.writing() as session:
            row = _row(session, name)
            row.last_status, row.last_summary = "failed", json.dumps({"error": error})


def _row(session: Session, name: str) -> ImportStateRow:
    row = session.get(ImportStateRow, name)
    if row is None:
        row = ImportStateRow(name=name, cursor="null", resume="null", records=0, last_status="", last_summary="{}")
        session.add(row)
    return row


def _state(row: ImportStateRow) -> ImportState:
    return ImportState(json.loads(row.cursor or "null"), json.loads(row.resume or "null"), row.records,
                       row.last_run_at, row.last_status, json.loads(row.last_summary or "{}"))
