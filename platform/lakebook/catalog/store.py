"""The catalog: every table of the lake with its schema, docs, owner, location, stats and
freshness, plus a manifest of its files.

SQLite through SQLAlchemy by default; any SQLAlchemy URL (PostgreSQL) by configuration.
Stats are derived from the file manifest, which is only ever added to by path, so
recording the same file twice (a flush finishing after a crash) changes nothing.

Compaction (lake/compaction.py) replaces small files of an append-only table by one file in
one transaction: the new file's row records the id range of the files it replaces
(``first_id``..``last_id``) and those keep their rows, marked ``removed_at``, as tombstones:
their paths stay known, so a flush replayed after a crash never adds them again, and the
files themselves are deleted once no query can still be reading them. Every read of the
manifest (files, stats, bounds) sees live files only.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import (
    BigInteger, DateTime, ForeignKey, Integer, MetaData, String, Text, TypeDecorator, UniqueConstraint, create_engine,
    event, func, inspect, select, text, update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from .._proc import enable_wal
from ..errors import CatalogUnavailable, UnknownTable, did_you_mean
from ..lake import WrittenFile
from ..lake.store import is_s3
from .info import ColumnInfo, TableInfo, stored_path


class _Base(DeclarativeBase):
    pass


class _UTC(TypeDecorator):
    """DateTime stored naive in UTC (SQLite keeps no zone), returned zone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class TableRow(_Base):
    __tablename__ = "tables"
    __table_args__ = (UniqueConstraint("zone", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(256), default="")
    location: Mapped[str] = mapped_column(Text)
    event_time_column: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_time: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    last_ingest_time: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(_UTC())
    columns: Mapped[list["ColumnRow"]] = relationship(
        back_populates="table", cascade="all, delete-orphan", order_by="ColumnRow.position"
    )


class ColumnRow(_Base):
    __tablename__ = "columns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("tables.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    nullable: Mapped[bool] = mapped_column(default=True)
    pii: Mapped[bool] = mapped_column(default=False)
    table: Mapped[TableRow] = relationship(back_populates="columns")


class FileRow(_Base):
    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("tables.id"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    partition: Mapped[str] = mapped_column(String(128))
    rows: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    min_event_time: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    max_event_time: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    max_ingested_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    added_at: Mapped[datetime] = mapped_column(_UTC())
    # A compacted file: the ids of the first and last file it replaced (None: a file as written).
    first_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # When a compacted file replaced this one (None: live). The row stays as a tombstone.
    removed_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)


# Columns added to the files table after its first release: added at open to catalogs made before.
_ADDED_FILE_COLUMNS = {"first_id": "BIGINT", "last_id": "BIGINT", "removed_at": "TIMESTAMP"}
_LIVE = FileRow.removed_at.is_(None)
_FIRST_ID = func.coalesce(FileRow.first_id, FileRow.id)
_LAST_ID = func.coalesce(FileRow.last_id, FileRow.id)


@dataclass(frozen=True)
class FileEntry:
    """A live file of a table's manifest, as compaction plans with it."""

    id: int
    first_id: int
    last_id: int
    path: str
    partition: str
    rows: int
    bytes: int
    min_event_time: datetime | None
    max_event_time: datetime | None
    max_ingested_at: datetime | None
    added_at: datetime


class LineageRow(_Base):
    """One edge: ``downstream`` is made from ``upstream`` by ``job``; ``columns`` maps each
    downstream column to the upstream columns it comes from (JSON; empty where unknown)."""

    __tablename__ = "lineage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    downstream: Mapped[str] = mapped_column(String(200), index=True)
    upstream: Mapped[str] = mapped_column(String(200))
    job: Mapped[str] = mapped_column(String(200))
    columns: Mapped[str] = mapped_column(Text, default="{}")


class RunRow(_Base):
    """A batch job run: its status, rows written, and the input files it had consumed."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(_UTC())
    finished_at: Mapped[datetime | None] = mapped_column(_UTC(), nullable=True)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    watermarks: Mapped[str] = mapped_column(Text, default="{}")


@dataclass(frozen=True)
class RunOutput:
    """The table a run publishes when it finishes ok: its metadata (as ``register_table``
    takes it) and its files, added to its manifest or, with ``replace``, the whole of it."""

    zone: str
    name: str
    kind: str
    location: str
    columns: tuple[ColumnInfo, ...]
    files: tuple[WrittenFile, ...]
    replace: bool = False
    description: str = ""
    owner: str = ""
    event_time_column: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _columns(row: TableRow) -> list[ColumnInfo]:
    return [ColumnInfo(c.name, c.type, c.description, c.nullable, c.pii) for c in row.columns]


def _info(row: TableRow) -> TableInfo:
    return TableInfo(
        row.zone, row.name, row.kind, row.description, row.owner, row.location, row.row_count,
        row.bytes, row.last_event_time, row.last_ingest_time, row.updated_at, row.event_time_column,
        tuple(_columns(row)),
    )


def _sqlite_pragmas(dbapi_con, _record) -> None:
    """A wait for a lock another process holds, set first (turning WAL on takes a lock too),
    then WAL."""
    cur = dbapi_con.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=60000")
        enable_wal(cur)
    finally:
        cur.close()


class Catalog:
    """Read and write the catalog of one workspace.

    Locations and file paths under ``root`` (the lake) are stored relative to it, so a
    workspace can be moved or copied and its catalog still holds."""

    def __init__(self, url: str, root: Path | None = None):
        self.url = url
        self.root = root
        try:
            self.engine = create_engine(url)
        except (ArgumentError, ImportError) as exc:  # a malformed URL, or its driver is not installed
            raise CatalogUnavailable(f"cannot use the catalog URL {_shown(url)}: {exc}",
                                     hint="check catalog.url in lakebook.yaml or LAKEBOOK_CATALOG__URL; "
                                          "PostgreSQL needs `pip install 'lakebook[postgres]'`") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.create_tables(_Base.metadata)
            self._add_columns(attempts=5)
        except DBAPIError as exc:
            self.engine.dispose()
            raise catalog_error(url, exc) from None

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def create_tables(self, metadata: MetaData, attempts: int = 5) -> None:
        """The tables of ``metadata``, those missing created. Processes starting together on a
        new workspace (the ingest server, its flusher, a command) all create them: SQLite
        checks and creates in one write transaction, so the second finds them made; on
        PostgreSQL a table created between this one's check and its CREATE makes it look again."""
        if set(metadata.tables) <= set(inspect(self.engine).get_table_names()):
            return
        if self.sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                metadata.create_all(conn)
                conn.commit()
            return
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except (IntegrityError, ProgrammingError, OperationalError) as exc:
                created_meanwhile = not isinstance(exc, OperationalError) or "already exists" in str(exc.orig)
                if not created_meanwhile or attempt == attempts - 1:
                    raise

    def _add_columns(self, attempts: int) -> None:
        """Add the files table's newer columns to a catalog made before them (SQLite and
        PostgreSQL both take ADD COLUMN); another process adding one at the same moment is fine."""
        for attempt in range(attempts):
            present = {c["name"] for c in inspect(self.engine).get_columns(FileRow.__tablename__)}
            missing = {name: kind for name, kind in _ADDED_FILE_COLUMNS.items() if name not in present}
            if not missing:
                return
            try:
                with self.engine.begin() as con:
                    for name, kind in missing.items():
                        con.execute(text(f"ALTER TABLE {FileRow.__tablename__} ADD COLUMN {name} {kind}"))
            except (ProgrammingError, OperationalError):
                if attempt == attempts - 1:
                    raise

    @contextmanager
    def writing(self, **session_options):
        """A session whose transaction writes: on SQLite it takes the write lock when it
        begins (``BEGIN IMMEDIATE``), so what it reads stays true until it commits and a
        concurrent writer waits (busy_timeout) instead of failing with 'database is locked'."""
        with Session(self.engine, **session_options) as session, session.begin():
            if self.sqlite:
                session.execute(text("BEGIN IMMEDIATE"))
            yield session

    def _store(self, path) -> str:
        if is_s3(self.root) or is_s3(path):  # an S3 lake: its paths are s3:// URIs
            text, root = str(path), f"{self.root}/"
            return text[len(root):] if self.root is not None and text.startswith(root) else text
        path = Path(path)
        if self.root is not None and path.is_absolute() and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    def _load(self, stored: str) -> str:
        return stored_path(self.root, stored)

    def _info(self, row: "TableRow") -> TableInfo:
        info = _info(row)
        return replace(info, location=self._load(info.location))

    def register_table(
        self, zone: str, name: str, *, kind: str, location: str, columns: Iterable[ColumnInfo],
        description: str = "", owner: str = "", event_time_column: str | None = None,
        source_version: int | None = None,
    ) -> None:
        """Create or update a table's metadata; stats are kept. Nothing is written when the
        metadata is as given already; a table another process creates at the same moment is
        updated instead."""
        wanted = self._metadata(kind, location, description, owner, event_time_column, source_version)
        columns = [ColumnInfo(c.name, c.type, c.description, c.nullable, c.pii) for c in columns]
        if self._registered(zone, name, wanted, columns):
            return
        try:
            self._register_alone(zone, name, wanted, columns)
        except IntegrityError:  # PostgreSQL: created by another process between our read and our insert
            self._register_alone(zone, name, wanted, columns)

    def _registered(self, zone: str, name: str, wanted: dict, columns: list[ColumnInfo]) -> bool:
        """Whether the table is registered as wanted already (a read, no write lock taken)."""
        with Session(self.engine) as session:
            row = session.scalar(select(TableRow).where(TableRow.zone == zone, TableRow.name == name))
            return row is not None and all(getattr(row, k) == v for k, v in wanted.items()) and _columns(row) == columns

    def _metadata(self, kind: str, location: str, description: str, owner: str, event_time_column: str | None,
                  source_version: int | None) -> dict:
        return {"kind": kind, "location": self._store(location), "description": description, "owner": owner,
                "event_time_column": event_time_column, "source_version": source_version}

    def _register_alone(self, zone: str, name: str, wanted: dict, columns: list[ColumnInfo]) -> None:
        with self.writing() as session:
            self._register(session, zone, name, wanted, columns)

    def _register(self, session: Session, zone: str, name: str, wanted: dict, columns: list[ColumnInfo]) -> TableRow:
        row = session.scalar(select(TableRow).where(TableRow.zone == zone, TableRow.name == name))
        if row is None:
            row = TableRow(zone=zone, name=name, row_count=0, bytes=0)
            session.add(row)
        elif all(getattr(row, k) == v for k, v in wanted.items()) and _columns(row) == columns:
            return row
        for key, value in wanted.items():
            setattr(row, key, value)
        row.updated_at = _now()
        row.columns = [
            ColumnRow(position=i, name=c.name, type=c.type, description=c.description,
                      nullable=c.nullable, pii=c.pii)
            for i, c in enumerate(columns)
        ]
        session.flush()
        return row

    def record_files(self, zone: str, name: str, files: list[WrittenFile]) -> None:
        """Add files to a table's manifest (known paths are skipped) and refresh its stats."""
        with self.writing() as session:
            self._add_files(session, self._row(session, zone, name), files)

    def _add_files(self, session: Session, row: TableRow, files: Iterable[WrittenFile]) -> None:
        stored = {self._store(f.path): f for f in files}
        known = set(session.scalars(
            select(FileRow.path).where(FileRow.path.in_(list(stored)))
        )) if stored else set()
        now = _now()
        for path, f in stored.items():
            if path not in known:
                session.add(FileRow(
                    table_id=row.id, path=path, partition=f.partition, rows=f.rows,
                    bytes=f.bytes, min_event_time=f.min_event_time, max_event_time=f.max_event_time,
                    max_ingested_at=f.max_ingested_at, added_at=now,
                ))
        session.flush()
        _refresh_stats(session, row, now)

    def forget_files(self, zone: str, name: str, paths: Iterable[str | Path]) -> int:
        """Drop files from a table's manifest (a damaged file set aside, a file gone from
        disk) and refresh its stats; the rows the manifest had for them."""
        with self.writing() as session:
            row = self._row(session, zone, name)
            stored = [self._store(p) for p in paths]
            files = session.scalars(select(FileRow).where(FileRow.table_id == row.id, FileRow.path.in_(stored))).all()
            for f in files:
                session.delete(f)
            session.flush()
            _refresh_stats(session, row, _now())
            return sum(f.rows for f in files)

    def replace_files(self, zone: str, name: str, location: str, files: list[WrittenFile]) -> None:
        """Point a table at a new set of files (a new version) in one transaction."""
        with self.writing() as session:
            row = self._row(session, zone, name)
            session.query(FileRow).filter(FileRow.table_id == row.id).delete()
            row.location = self._store(location)
            self._add_files(session, row, files)

    def file_entries(self, zone: str, name: str, after_id: int = 0) -> list[tuple[int, str]]:
        """(watermark id, path) of a table's live files, oldest first; ``after_id`` (a
        consumer's watermark) keeps only the files it has not read. A file's watermark id is
        its id, or for a compacted file the id of the last file it replaced: compaction never
        puts files on both sides of a consumer's watermark into one file, so a compacted file
        was read whole (its first replaced id is at or below the watermark) or not at all."""
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            query = select(_LAST_ID, FileRow.path).where(FileRow.table_id == row.id, _LIVE, _FIRST_ID > after_id)
            return [(i, self._load(p)) for i, p in session.execute(query.order_by(_LAST_ID))]

    def files_named(self, zone: str, name: str, file_name: str) -> list[str]:
        """The paths of a table's live files called ``file_name`` (one per partition at most),
        in path order: e.g. the files one flush of the ingest log wrote (``range_stem``)."""
        pattern = "%/" + file_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            paths = session.scalars(select(FileRow.path).where(
                FileRow.table_id == row.id, _LIVE, FileRow.path.like(pattern, escape="\\")))
            return sorted(self._load(p) for p in paths)

    def file_rows(self, zone: str, name: str, partition: str | None = None) -> list[FileEntry]:
        """The live files of a table (of one partition), by id."""
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            query = select(FileRow).where(FileRow.table_id == row.id, _LIVE)
            if partition is not None:
                query = query.where(FileRow.partition == partition)
            return [FileEntry(f.id, f.first_id or f.id, f.last_id or f.id, self._load(f.path), f.partition, f.rows,
                              f.bytes, f.min_event_time, f.max_event_time, f.max_ingested_at, f.added_at)
                    for f in session.scalars(query.order_by(FileRow.id))]

    def replace_compacted(self, zone: str, name: str, replaced: list[int], compacted: WrittenFile) -> int | None:
        """In one transaction: add ``compacted`` with the id range of the files ``replaced``
        (ids) and mark those removed (their rows stay: tombstones). Its added time and newest
        ingest time are the newest of the replaced files', so nothing downstream takes it for
        new data. Nothing changes, and None is returned, unless every replaced file is still
        live; else the new file's id."""
        with self.writing() as session:
            row = self._row(session, zone, name)
            olds = session.scalars(select(FileRow).where(FileRow.table_id == row.id, FileRow.id.in_(replaced), _LIVE)
                                   .with_for_update()).all()
            if len(olds) != len(set(replaced)):
                return None
            now = _now()
            new = FileRow(
                table_id=row.id, path=self._store(compacted.path), partition=compacted.partition, rows=compacted.rows,
                bytes=compacted.bytes, min_event_time=compacted.min_event_time,
                max_event_time=compacted.max_event_time,
                max_ingested_at=_newest(f.max_ingested_at for f in olds), added_at=_newest(f.added_at for f in olds),
                first_id=min(f.first_id or f.id for f in olds), last_id=max(f.last_id or f.id for f in olds),
            )
            session.add(new)
            session.execute(update(FileRow).where(FileRow.id.in_([f.id for f in olds])).values(removed_at=now))
            session.flush()
            _refresh_stats(session, row, now)
            return new.id

    def replaced_files(self, removed_before: datetime | None = None) -> list[tuple[str, str, str]]:
        """(zone, table, path) of every file compaction replaced (``removed_before``: only
        those replaced before then)."""
        with Session(self.engine) as session:
            query = (select(TableRow.zone, TableRow.name, FileRow.path).join(TableRow, FileRow.table_id == TableRow.id)
                     .where(FileRow.removed_at.is_not(None)))
            if removed_before is not None:
                query = query.where(FileRow.removed_at < removed_before)
            return [(z, n, self._load(p)) for z, n, p in session.execute(query.order_by(FileRow.id))]

    def known_paths(self, zone: str, name: str) -> set[str]:
        """Every path a table's manifest holds, live or replaced."""
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            return {self._load(p) for p in session.scalars(select(FileRow.path).where(FileRow.table_id == row.id))}

    def merged_across(self, qualified_name: str, watermark: int) -> bool:
        """Whether a live compacted file of the table holds files up to ``watermark`` together
        with files after it (a consumer at that watermark could not read only the new ones)."""
        zone, _, name = qualified_name.partition(".")
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            return session.scalar(select(func.count()).select_from(FileRow).where(
                FileRow.table_id == row.id, _LIVE, _FIRST_ID <= watermark, _LAST_ID > watermark)) > 0

    def consumer_watermarks(self, qualified_name: str) -> set[int]:
        """The watermarks the transforms reading a table stored with their last successful
        run: the files up to each are read by one consumer, those after it not."""
        with Session(self.engine) as session:
            last_ok = select(func.max(RunRow.id)).where(RunRow.status == "ok").group_by(RunRow.job)
            marks = session.scalars(select(RunRow.watermarks).where(RunRow.id.in_(last_ok)))
            return {int(m[qualified_name]) for m in map(json.loads, marks) if qualified_name in m}

    def event_time_bounds(self, zone: str, name: str) -> tuple[datetime | None, datetime | None]:
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            low, high = session.execute(
                select(func.min(FileRow.min_event_time), func.max(FileRow.max_event_time))
                .where(FileRow.table_id == row.id, _LIVE)
            ).one()
            return _parse(low), _parse(high)

    def set_lineage(self, downstream: str, job: str, upstreams: dict[str, dict[str, list[str]]]) -> None:
        """Replace the edges into ``downstream``: {upstream table: {downstream column: [upstream columns]}}."""
        with self.writing() as session:
            session.query(LineageRow).filter(LineageRow.downstream == downstream).delete()
            for upstream, columns in sorted(upstreams.items()):
                session.add(LineageRow(downstream=downstream, upstream=upstream, job=job,
                                       columns=json.dumps(columns, sort_keys=True)))

    def lineage(self, name: str) -> list[dict]:
        """Every edge upstream of ``name``, nearest first: {downstream, upstream, job, columns, depth}."""
        edges, frontier, seen, depth = [], [name], {name}, 1
        with Session(self.engine) as session:
            while frontier:
                rows = session.scalars(select(LineageRow).where(LineageRow.downstream.in_(frontier))).all()
                frontier = []
                for r in rows:
                    edges.append({"downstream": r.downstream, "upstream": r.upstream, "job": r.job,
                                  "columns": json.loads(r.columns), "depth": depth})
                    if r.upstream not in seen:
                        seen.add(r.upstream)
                        frontier.append(r.upstream)
                depth += 1
        return edges

    def lineage_edges(self) -> list[tuple[str, str]]:
        """Every table-level edge as (upstream, downstream), sorted: the whole graph in one read."""
        with Session(self.engine) as session:
            rows = session.execute(select(LineageRow.upstream, LineageRow.downstream).distinct())
            return sorted((up, down) for up, down in rows)

    def start_run(self, job: str, engine: str) -> int:
        with self.writing() as session:
            run = RunRow(job=job, status="running", engine=engine, started_at=_now())
            session.add(run)
            session.flush()
            return run.id

    def finish_run(self, run_id: int, status: str, *, rows: int = 0, message: str = "",
                   watermarks: dict[str, int] | None = None, output: RunOutput | None = None) -> None:
        """Record how a run ended. With ``output``, the run's table and files are published in
        the same transaction: the manifest, the run's status and its watermarks change
        together or not at all, so the next incremental run reads exactly the input files
        this one did not commit."""
        with self.writing() as session:
            if output is not None:
                self._publish(session, output)
            run = session.get(RunRow, run_id)
            run.status, run.rows, run.message, run.finished_at = status, rows, message[:4000], _now()
            run.watermarks = json.dumps(watermarks or {})

    def _publish(self, session: Session, output: RunOutput) -> None:
        wanted = self._metadata(output.kind, output.location, output.description, output.owner,
                                output.event_time_column, None)
        row = self._register(session, output.zone, output.name, wanted, list(output.columns))
        if output.replace:
            session.query(FileRow).filter(FileRow.table_id == row.id).delete()
        self._add_files(session, row, output.files)

    def last_run(self, job: str, status: str = "ok") -> dict | None:
        with Session(self.engine) as session:
            run = session.scalar(select(RunRow).where(RunRow.job == job, RunRow.status == status)
                                 .order_by(RunRow.id.desc()).limit(1))
            return None if run is None else _run_doc(run)

    def runs(self, job: str) -> list[dict]:
        """Every run of ``job``, oldest first, as ``last_run`` gives one."""
        with Session(self.engine) as session:
            return [_run_doc(r) for r in session.scalars(select(RunRow).where(RunRow.job == job).order_by(RunRow.id))]

    def files(self, zone: str, name: str) -> list[str]:
        """The paths of a table's live files, oldest first: what a query of it reads."""
        with Session(self.engine) as session:
            row = self._row(session, zone, name)
            paths = session.scalars(select(FileRow.path).where(FileRow.table_id == row.id, _LIVE).order_by(FileRow.id))
            return [self._load(p) for p in paths]

    def tables(self, zone: str | None = None) -> list[TableInfo]:
        with Session(self.engine) as session:
            query = select(TableRow).order_by(TableRow.zone, TableRow.name)
            if zone:
                query = query.where(TableRow.zone == zone)
            return [self._info(r) for r in session.scalars(query)]

    def table(self, qualified_name: str) -> TableInfo:
        zone, _, name = qualified_name.rpartition(".")
        with Session(self.engine) as session:
            return self._info(self._row(session, zone or "raw", name))

    def _row(self, session: Session, zone: str, name: str) -> TableRow:
        row = session.scalar(select(TableRow).where(TableRow.zone == zone, TableRow.name == name))
        if row is None:
            names = [f"{z}.{n}" for z, n in session.execute(select(TableRow.zone, TableRow.name))]
            hint = did_you_mean(f"{zone}.{name}", names, quote=False) or f"known tables: {', '.join(sorted(names)) or 'none'}"
            raise UnknownTable(f"no table {zone}.{name} in the catalog", hint=hint)
        return row

    def close(self) -> None:
        self.engine.dispose()


class CatalogTables:
    """Tables another package keeps in the workspace's catalog database (job history, the
    alert inbox, the dashboards): a subclass names them by its ``metadata``, created when
    missing; a context manager that closes it."""

    metadata: Any  # the subclass's DeclarativeBase.metadata

    def __init__(self, workspace):
        workspace.ensure_state()
        self.catalog = Catalog(workspace.catalog_url, workspace.lake.root)
        self.engine = self.catalog.engine
        try:
            self.catalog.create_tables(self.metadata)
        except DBAPIError as exc:
            self.catalog.close()
            raise catalog_error(workspace.catalog_url, exc) from None

    def writing(self, **session_options):
        """A session whose transaction writes (``Catalog.writing``)."""
        return self.catalog.writing(**session_options)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run_doc(run: RunRow) -> dict:
    return {"id": run.id, "status": run.status, "engine": run.engine, "rows": run.rows,
            "started_at": run.started_at, "finished_at": run.finished_at, "message": run.message,
            "watermarks": json.loads(run.watermarks)}


def _refresh_stats(session: Session, row: TableRow, now: datetime) -> None:
    """A table's rows, size and freshness, from its file manifest."""
    rows, size, last_event, last_ingest = session.execute(
        select(func.coalesce(func.sum(FileRow.rows), 0), func.coalesce(func.sum(FileRow.bytes), 0),
               func.max(FileRow.max_event_time), func.max(FileRow.max_ingested_at))
        .where(FileRow.table_id == row.id, _LIVE)
    ).one()
    row.row_count, row.bytes, row.updated_at = rows, size, now
    row.last_event_time = _parse(last_event)
    row.last_ingest_time = _parse(last_ingest)


def catalog_error(url: str, exc: DBAPIError) -> CatalogUnavailable:
    """A database error of the catalog as a message with the hint that fits its database."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    hint = sqlite_hint(reason) if make_url(url).get_backend_name() == "sqlite" else \
        "is the database server running and reachable? (catalog.url in lakebook.yaml or LAKEBOOK_CATALOG__URL)"
    return CatalogUnavailable(f"cannot use the catalog at {_shown(url)}: {reason}", hint=hint)


def sqlite_hint(reason: str) -> str:
    """What to do about a SQLite database of the workspace, by SQLite's reason."""
    if "locked" in reason or "busy" in reason:
        return "another lakebook process holds the database for long (a flush, a transform): try again"
    if "not a database" in reason or "malformed" in reason:
        return "the database file is damaged: keep a copy of it (with its -wal and -shm files); " \
               "`sqlite3 FILE .recover` saves what can still be read"
    if "full" in reason:
        return "the disk is full: free some space and try again"
    return "check that the workspace's .lakebook folder exists and is writable (catalog.url in lakebook.yaml)"


def _newest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _shown(url: str) -> str:
    """A database URL fit for a message: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def _parse(value) -> datetime | None:
    """Aggregates bypass column types in SQLite; bring them back to aware UTC datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def lineage_lines(catalog, name: str) -> list[str]:
    """Upstream of a table as indented lines: table <- upstream (job) [columns]."""
    catalog.table(name)  # unknown names fail with a suggestion
    edges = catalog.lineage(name)
    if not edges:
        return [f"{name}: no upstream tables (a source, a seed, or not built yet)"]
    lines = [name]
    for e in edges:
        cols = ", ".join(f"{out} <- {'/'.join(src)}" for out, src in sorted(e["columns"].items()))
        lines.append(f"{'  ' * e['depth']}<- {e['upstream']}  (by {e['job']})" + (f"  [{cols}]" if cols else ""))
    return lines
