"""Run history, the scheduler's lease, jobs' enabled state, cron cursors and trigger
watermarks, in the catalog database (SQLite or PostgreSQL, the same code).

Invariants:
- a run's idempotency key is (job, scheduled time), UNIQUE: runs are inserted with
  insert-or-ignore, so a tick (or an upstream success, or a table's new data, whose scheduled
  times are derived from what triggered them) is queued once however often it is considered;
- a queued run becomes running by one conditional UPDATE, so two schedulers never both start
  it; a retry is the same run queued again with its attempt counted up (``history`` keeps
  each attempt's outcome);
- a job's cron cursor and trigger watermarks move in the transaction that queues the runs
  they stand for.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import (
    BigInteger, Boolean, Integer, String, Text, UniqueConstraint, func, or_, select, update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..catalog.store import CatalogTables, FileRow, LineageRow, TableRow, _UTC
from ..errors import CatalogUnavailable, UnknownJob

LEASE = "scheduler"
STATUSES = ("queued", "running", "succeeded", "failed", "timed_out", "cancelled")
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")
TRIGGERS = ("cron", "manual", "upstream", "data")


class _Base(DeclarativeBase):
    pass


class JobRunRow(_Base):
    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "scheduled_time", name="job_runs_idempotency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    definition_hash: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[str] = mapped_column(Text, default="{}")
    trigger: Mapped[str] = mapped_column(String(16))
    scheduled_time: Mapped[datetime] = mapped_column(_UTC())
    queued_at: Mapped[datetime] = mapped_column(_UTC())
    not_before: Mapped[datetime] = mapped_column(_UTC())
    started_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    error_cell: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_notebook: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    tables_read: Mapped[str] = mapped_column(Text, default="[]")
    tables_written: Mapped[str] = mapped_column(Text, default="[]")
    history: Mapped[str] = mapped_column(Text, default="[]")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    late_alerted: Mapped[bool] = mapped_column(Boolean, default=False)


class LeaseRow(_Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(_UTC())


class JobStateRow(_Base):
    """A job's state that outlives its definition file: enabled (None: as its file says) and
    the newest cron tick the scheduler has handled."""

    __tablename__ = "job_state"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    cursor: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)


class WatermarkRow(_Base):
    """What of a trigger source a job has seen: ``table:zone.name`` -> the newest file's time
    in microseconds; ``job:name`` -> the upstream's last succeeded run id."""

    __tablename__ = "job_watermarks"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def this_host() -> str:
    return socket.gethostname()


def _insert_ignore(session: Session, table, values: dict) -> bool:
    """Insert unless a row with the same unique key exists; whether it was inserted."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise CatalogUnavailable(f"job history needs SQLite or PostgreSQL, not {dialect}",
                                 hint="set catalog.url to a sqlite:// or postgresql:// URL")
    # RETURNING, not the rowcount: PostgreSQL's driver reports -1 for an INSERT .. ON CONFLICT
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return session.execute(statement).first() is not None


def run_dict(row: JobRunRow) -> dict[str, Any]:
    """A run as plain JSON-ready values (times as aware datetimes)."""
    out = {c.name: getattr(row, c.name) for c in JobRunRow.__table__.columns}
    for key in ("parameters", "tables_read", "tables_written", "history"):
        out[key] = json.loads(out[key] or "null")
    return out


class JobStore(CatalogTables):
    """The job tables of one workspace's catalog database."""

    metadata = _Base.metadata

    # -- queueing ---------------------------------------------------------------------------------
    def enqueue(self, job, trigger: str, scheduled_times: Iterable[datetime], parameters: dict | None = None, *,
                cursor: datetime | None = None, watermarks: dict[str, int] | None = None) -> list[int]:
        """Queue a run of ``job`` (a loaded Job) for each scheduled time not queued before, and
        move its cron cursor and watermarks, in one transaction; the ids of the new runs."""
        now = now_utc()
        values = {"job": job.name, "definition_hash": job.definition_hash, "trigger": trigger, "status": "queued",
                  "parameters": json.dumps(parameters if parameters is not None else job.definition.parameters),
                  "queued_at": now, "not_before": now, "attempt": 1, "max_attempts": job.definition.max_attempts}
        with self.writing() as session:
            times = [t for t in scheduled_times if _insert_ignore(session, JobRunRow.__table__,
                                                                 {**values, "scheduled_time": t})]
            if cursor is not None:
                self._set_state(session, job.name, cursor=cursor)
            for source, value in (watermarks or {}).items():
                self._set_watermark(session, job.name, source, value)
            if not times:
                return []
            return list(session.scalars(select(JobRunRow.id).where(
                JobRunRow.job == job.name, JobRunRow.scheduled_time.in_(times))))

    def queued(self, now: datetime | None = None) -> list[dict]:
        """Queued runs whose time has come, oldest scheduled first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(JobRunRow).where(
                JobRunRow.status == "queued", JobRunRow.not_before <= (now or now_utc()))
                .order_by(JobRunRow.scheduled_time, JobRunRow.id))
            return [run_dict(r) for r in rows]

    def claim(self, run_id: int, pid: int | None = None) -> bool:
        """Mark a queued run running on this host (one caller wins); whether this one did."""
        now = now_utc()
        with self.writing() as session:
            result = session.execute(update(JobRunRow).where(JobRunRow.id == run_id, JobRunRow.status == "queued")
                                     .values(status="running", started_at=now, heartbeat=now, host=this_host(),
                                             pid=pid, finished_at=None))
            return result.rowcount == 1

    def running_counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.execute(select(JobRunRow.job, func.count()).where(JobRunRow.status == "running")
                                   .group_by(JobRunRow.job))
            return dict(rows.all())

    # -- a running run ----------------------------------------------------------------------------
    def update_run(self, run_id: int, **values) -> None:
        with self.writing() as session:
            session.execute(update(JobRunRow).where(JobRunRow.id == run_id).values(**values))

    def beat(self, run_id: int) -> bool:
        """Record that the run is alive; whether a cancel was asked for."""
        with self.writing() as session:
            session.execute(update(JobRunRow).where(JobRunRow.id == run_id).values(heartbeat=now_utc()))
            return bool(session.scalar(select(JobRunRow.cancel_requested).where(JobRunRow.id == run_id)))

    def finish_attempt(self, run_id: int, status: str, retry_delay_s: float | None, **outcome) -> str:
        """Record how the current attempt of a running run ended. A failed or timed-out attempt
        with attempts left (``retry_delay_s`` not None) queues the run again after that delay.
        The run's status now: ``queued`` for a retry, else ``status``. A run that is no longer
        running (a reconciler failed it meanwhile) is left as it is."""
        now = now_utc()
        with self.writing() as session:
            row = session.get(JobRunRow, run_id)
            if row is None or row.status != "running":
                return row.status if row else status
            history = json.loads(row.history or "[]")
            history.append({"attempt": row.attempt, "status": status, "started_at": _iso(row.started_at),
                            "finished_at": _iso(now), "reason": outcome.get("reason", ""),
                            "error_name": outcome.get("error_name"), "run_dir": outcome.get("run_dir", row.run_dir)})
            for key, value in outcome.items():
                setattr(row, key, value)
            row.history, row.finished_at, row.pid = json.dumps(history), now, None
            retry = status in ("failed", "timed_out") and retry_delay_s is not None and row.attempt < row.max_attempts
            if retry:
                row.status, row.attempt = "queued", row.attempt + 1
                row.not_before = now + timedelta(seconds=retry_delay_s)
            else:
                row.status = status
            return row.status

    def request_cancel(self, run_id: int) -> str:
        """Cancel a queued run now, ask a running one to stop; the run's status."""
        with self.writing() as session:
            row = self._get(session, run_id)
            if row.status == "queued":
                row.status, row.finished_at, row.reason = "cancelled", now_utc(), "cancelled before it started"
            elif row.status == "running":
                row.cancel_requested = True
            return row.status

    # -- reading ----------------------------------------------------------------------------------
    def run(self, run_id: int) -> dict:
        with Session(self.engine) as session:
            return run_dict(self._get(session, run_id))

    def _get(self, session: Session, run_id: int) -> JobRunRow:
        row = session.get(JobRunRow, run_id)
        if row is None:
            raise UnknownJob(f"no run {run_id}", hint="lakebook jobs history lists the runs")
        return row

    def runs(self, job: str | None = None, limit: int = 50, statuses: Iterable[str] | None = None) -> list[dict]:
        """Runs, newest scheduled first."""
        query = select(JobRunRow).order_by(JobRunRow.scheduled_time.desc(), JobRunRow.id.desc()).limit(limit)
        if job is not None:
            query = query.where(JobRunRow.job == job)
        if statuses is not None:
            query = query.where(JobRunRow.status.in_(list(statuses)))
        with Session(self.engine) as session:
            return [run_dict(r) for r in session.scalars(query)]

    def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs each job has in each status: ``{(job, status): n}``."""
        with Session(self.engine) as session:
            rows = session.execute(select(JobRunRow.job, JobRunRow.status, func.count())
                                   .group_by(JobRunRow.job, JobRunRow.status))
            return {(job, status): n for job, status, n in rows.all()}

    def late_counts(self, now: datetime, late_after_s: float) -> dict[str, int]:
        """Per job, its queued runs due now (not waiting for a retry's backoff) whose scheduled
        time is more than ``late_after_s`` ago."""
        bound = now - timedelta(seconds=late_after_s)
        with Session(self.engine) as session:
            rows = session.execute(select(JobRunRow.job, func.count()).where(
                JobRunRow.status == "queued", JobRunRow.not_before <= now, JobRunRow.scheduled_time < bound)
                .group_by(JobRunRow.job))
            return dict(rows.all())

    def last_runs(self) -> dict[str, dict]:
        """Each job's newest run (by scheduled time)."""
        newest = select(JobRunRow.job, func.max(JobRunRow.scheduled_time).label("t")).group_by(JobRunRow.job).subquery()
        with Session(self.engine) as session:
            rows = session.scalars(select(JobRunRow).join(newest, (JobRunRow.job == newest.c.job)
                                                          & (JobRunRow.scheduled_time == newest.c.t)))
            return {r.job: run_dict(r) for r in rows}

    def succeeded_since(self, job: str, after_id: int) -> dict | None:
        """The newest succeeded run of ``job`` with an id above ``after_id``."""
        with Session(self.engine) as session:
            row = session.scalar(select(JobRunRow).where(JobRunRow.job == job, JobRunRow.status == "succeeded",
                                                         JobRunRow.id > after_id).order_by(JobRunRow.id.desc()))
            return run_dict(row) if row else None

    def upstream_state(self, job: str, since: datetime) -> dict:
        """What a run gated on ``job`` waits for: ``in_flight``, the status of a run of it queued
        or running (None if none), and ``succeeded``, its newest run that succeeded (finished)
        at or after ``since`` (None if none)."""
        with Session(self.engine) as session:
            busy = session.scalar(select(JobRunRow.status).where(
                JobRunRow.job == job, JobRunRow.status.in_(["queued", "running"])).limit(1))
            row = session.scalar(select(JobRunRow).where(
                JobRunRow.job == job, JobRunRow.status == "succeeded", JobRunRow.finished_at >= since)
                .order_by(JobRunRow.finished_at.desc()).limit(1))
            return {"in_flight": busy, "succeeded": run_dict(row) if row else None}

    # -- the lease ----------------------------------------------------------------------------------
    def acquire_lease(self, holder: str, ttl_s: float, is_gone: Callable[[str], bool] = lambda holder: False) -> bool:
        """Take or renew the scheduler's lease: held by ``holder``, expired, or held by a holder
        ``is_gone`` says is dead. Whether ``holder`` holds it now."""
        now = now_utc()
        expires = now + timedelta(seconds=ttl_s)
        with self.writing() as session:
            _insert_ignore(session, LeaseRow.__table__, {"name": LEASE, "holder": holder, "expires_at": expires})
            current = session.scalar(select(LeaseRow.holder).where(LeaseRow.name == LEASE))
            takeable = [holder] + ([current] if current != holder and is_gone(current) else [])
            result = session.execute(update(LeaseRow).where(
                LeaseRow.name == LEASE, or_(LeaseRow.holder.in_(takeable), LeaseRow.expires_at < now))
                .values(holder=holder, expires_at=expires))
            return result.rowcount == 1

    def release_lease(self, holder: str) -> None:
        with self.writing() as session:
            session.execute(update(LeaseRow).where(LeaseRow.name == LEASE, LeaseRow.holder == holder)
                            .values(expires_at=now_utc() - timedelta(seconds=1)))

    def leader(self) -> str | None:
        """Who holds an unexpired lease, if anyone (a running scheduler)."""
        with Session(self.engine) as session:
            row = session.get(LeaseRow, LEASE)
            return row.holder if row is not None and row.expires_at > now_utc() else None

    # -- job state ------------------------------------------------------------------------------------
    def set_enabled(self, job: str, enabled: bool) -> None:
        with self.writing() as session:
            self._set_state(session, job, enabled=enabled)

    def job_states(self) -> dict[str, dict]:
        with Session(self.engine) as session:
            return {r.job: {"enabled": r.enabled, "cursor": r.cursor} for r in session.scalars(select(JobStateRow))}

    def _set_state(self, session: Session, job: str, **values) -> None:
        _insert_ignore(session, JobStateRow.__table__, {"job": job})
        session.execute(update(JobStateRow).where(JobStateRow.job == job).values(**values))

    def watermarks(self, job: str) -> dict[str, int]:
        with Session(self.engine) as session:
            return {r.source: r.value for r in session.scalars(select(WatermarkRow).where(WatermarkRow.job == job))}

    def _set_watermark(self, session: Session, job: str, source: str, value: int) -> None:
        if not _insert_ignore(session, WatermarkRow.__table__, {"job": job, "source": source, "value": value}):
            session.execute(update(WatermarkRow).where(WatermarkRow.job == job, WatermarkRow.source == source)
                            .values(value=value))

    # -- the catalog's side ---------------------------------------------------------------------------
    def table_versions(self, tables: Iterable[str]) -> dict[str, tuple[int, datetime] | None]:
        """Per catalog table, when its newest file was added (microseconds, and as a time), or
        None for a table with no files. Files are only added (a new version adds new ones)."""
        found: dict[str, tuple[int, datetime] | None] = {}
        with Session(self.engine) as session:
            for name in tables:
                zone, _, table = name.partition(".")
                newest = session.scalar(select(func.max(FileRow.added_at)).join(TableRow, FileRow.table_id == TableRow.id)
                                        .where(TableRow.zone == zone, TableRow.name == table))
                found[name] = (_micros(newest), newest) if newest else None
        return found

    def record_lineage(self, job: str, read: list[str], written: list[str]) -> None:
        """The run's tables as lineage edges through the job's node ``job:<name>``: each table read
        -> the job -> each table written. Replaces the job's previous edges."""
        node = f"job:{job}"
        with self.writing() as session:
            session.query(LineageRow).filter(LineageRow.job == node).delete()
            for table in sorted(set(read)):
                session.add(LineageRow(downstream=node, upstream=table, job=node, columns="{}"))
            for table in sorted(set(written)):
                session.add(LineageRow(downstream=table, upstream=node, job=node, columns="{}"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
