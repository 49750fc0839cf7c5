"""What the catalog says about a table, as plain values (no database library needed to
hold or read them: query processes start without SQLAlchemy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    description: str = ""
    nullable: bool = True
    pii: bool = False


@dataclass(frozen=True)
class TableInfo:
    zone: str
    name: str
    kind: str
    description: str
    owner: str
    location: str
    row_count: int
    bytes: int
    last_event_time: datetime | None
    last_ingest_time: datetime | None
    updated_at: datetime
    event_time_column: str | None = None
    columns: tuple[ColumnInfo, ...] = field(default=())

    @property
    def qualified_name(self) -> str:
        return f"{self.zone}.{self.name}"


def stored_path(root: Path | None, stored: str) -> str:
    """A location or file path as the catalog stores it, made absolute: paths under the
    lake are kept relative to its root so a workspace can move."""
    if root is None or stored.startswith("/") or "://" in stored:
        return stored
    return str(root / stored)
