"""Each check's state and its recent results, in the catalog database (SQLite or PostgreSQL,
the same code), and the state machine that turns a level into a state.

States: ``ok``; ``pending`` (failing, not for long enough yet); ``firing`` (failing for its
``for:``: an alert every evaluation); ``unknown`` (nothing to measure); ``error`` (the
measurement raised). Invariants:
- a check fires only after failing at two evaluations in a row, or for its ``for:`` duration
  (``for: 0``: at once); a streak is broken only by an ``ok`` level;
- an ``unknown`` or ``error`` evaluation leaves a pending or firing check as it is (a service
  that does not answer neither raises nor resolves an alert);
- ``resolved`` is true at exactly one evaluation: the one that finds a firing check ok;
- a check keeps at most ``monitor.history`` results: older ones are deleted with each insert.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String, Text, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..catalog.store import CatalogTables, _UTC

STATES = ("ok", "pending", "firing", "unknown", "error")


class _Base(DeclarativeBase):
    pass


class CheckStateRow(_Base):
    __tablename__ = "monitor_checks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    expression: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16), default="warn")
    since: Mapped[datetime] = mapped_column(_UTC())
    failing_since: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    failing_count: Mapped[int] = mapped_column(Integer, default=0)
    fired_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    evaluated_at: Mapped[datetime] = mapped_column(_UTC())
    memory: Mapped[str] = mapped_column(Text, default="{}")  # what a kind keeps between evaluations


class ResultRow(_Base):
    __tablename__ = "monitor_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(_UTC())
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(16), default="")
    level: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


@dataclass(frozen=True)
class CheckState:
    """A check's state after an evaluation."""

    state: str
    level: str  # of the last evaluation: ok, warn, fail, unknown, error
    since: datetime  # when it entered ``state``
    failing_since: datetime | None = None
    failing_count: int = 0
    fired_at: datetime | None = None
    resolved: bool = False  # this evaluation found a firing check ok
    severity: str = "warn"  # warn or fail: the level of its streak's last failing evaluation
    # The severity of an alert this evaluation ends while the check keeps firing at another level
    # (warn became fail, or back): an alert is known by its labels, severity among them.
    replaced_severity: str | None = None


def advance(previous: CheckState | None, level: str, for_s: float | None, now: datetime) -> CheckState:
    """The state after an evaluation at ``level`` (module docstring)."""
    if level in ("warn", "fail"):
        return _failing(previous, level, for_s, now)
    if level == "ok":
        resolved = previous is not None and previous.state == "firing"
        since = previous.since if previous is not None and previous.state == "ok" else now
        # a resolved check keeps the severity it fired with: its resolve notice names the same alert
        return CheckState("ok", "ok", since, resolved=resolved, severity=previous.severity if resolved else "warn")
    if previous is not None and previous.state in ("pending", "firing"):
        return replace(previous, level=level, resolved=False, replaced_severity=None)
    since = previous.since if previous is not None and previous.state == level else now
    return CheckState(level, level, since)


def _failing(previous: CheckState | None, level: str, for_s: float | None, now: datetime) -> CheckState:
    streak = previous is not None and previous.state in ("pending", "firing")
    failing_since = previous.failing_since if streak and previous.failing_since else now
    count = (previous.failing_count if streak else 0) + 1
    if streak and previous.state == "firing":
        replaced = previous.severity if previous.severity != level else None
        return replace(previous, level=level, failing_count=count, severity=level, resolved=False,
                       replaced_severity=replaced)
    due = count >= 2 if for_s is None else (now - failing_since).total_seconds() >= for_s
    state = "firing" if due else "pending"
    since = previous.since if streak and previous.state == state else now
    return CheckState(state, level, since, failing_since, count, now if due else None, severity=level)


@dataclass(frozen=True)
class Result:
    """One evaluation of one check."""

    name: str
    at: datetime
    value: float | None
    unit: str
    level: str
    state: str
    detail: str
    duration_ms: float

    def as_json(self) -> dict:
        return asdict(self)


class MonitorStore(CatalogTables):
    """The monitor's tables in one workspace's catalog database."""

    metadata = _Base.metadata

    def states(self) -> dict[str, CheckState]:
        with Session(self.engine) as session:
            return {r.name: _state(r) for r in session.scalars(select(CheckStateRow))}

    def rows(self) -> dict[str, dict[str, Any]]:
        """Each check's stored state as plain values (for status)."""
        with Session(self.engine) as session:
            return {r.name: {c.name: getattr(r, c.name) for c in CheckStateRow.__table__.columns if c.name != "memory"}
                    for r in session.scalars(select(CheckStateRow))}

    def record(self, expression: str, state: CheckState, result: Result, keep: int) -> None:
        """A check's new state and its result, in one transaction; results beyond ``keep`` dropped."""
        with self.writing() as session:
            row = session.get(CheckStateRow, result.name)
            if row is None:
                row = CheckStateRow(name=result.name, memory="{}")
                session.add(row)
            row.expression, row.state, row.level, row.since = expression, state.state, state.level, state.since
            row.severity = state.severity
            row.failing_since, row.failing_count, row.fired_at = state.failing_since, state.failing_count, state.fired_at
            row.value, row.unit, row.detail, row.evaluated_at = result.value, result.unit, result.detail, result.at
            session.add(ResultRow(**result.as_json()))
            session.flush()
            oldest_kept = session.scalars(select(ResultRow.id).where(ResultRow.name == result.name)
                                          .order_by(ResultRow.id.desc()).offset(keep - 1).limit(1)).first()
            if oldest_kept is not None:
                session.execute(delete(ResultRow).where(ResultRow.name == result.name, ResultRow.id < oldest_kept))

    def history(self, name: str, limit: int = 10) -> list[dict]:
        """A check's newest results first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(ResultRow).where(ResultRow.name == name)
                                   .order_by(ResultRow.id.desc()).limit(limit))
            return [{c.name: getattr(r, c.name) for c in ResultRow.__table__.columns if c.name != "id"} for r in rows]

    def memory(self, name: str) -> dict:
        with Session(self.engine) as session:
            row = session.get(CheckStateRow, name)
            return json.loads(row.memory or "{}") if row is not None else {}

    def remember(self, name: str, memory: dict, now: datetime) -> None:
        """What a kind keeps between evaluations of check ``name`` (JSON)."""
        with self.writing() as session:
            row = session.get(CheckStateRow, name)
            if row is None:
                row = CheckStateRow(name=name, state="unknown", level="unknown", since=now, evaluated_at=now)
                session.add(row)
            row.memory = json.dumps(memory, default=str)


def _state(row: CheckStateRow) -> CheckState:
    return CheckState(row.state, row.level, row.since, row.failing_since, row.failing_count, row.fired_at,
                      severity=row.severity or "warn")
