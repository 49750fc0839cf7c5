"""``lakebook doctor``: checks that what lakebook keeps on disk can be read, and with ``fix``
sets damaged lake files aside so the rest of their tables stays queryable.

Checks:
- the ingest log: SQLite's ``PRAGMA quick_check``;
- every catalog table on a local disk against the Parquet files under its location (the
  files a query reads): catalogued files missing on disk, files no catalog entry knows,
  files whose footer cannot be read; a table folder that is missing altogether.

Fixing never deletes: a file whose footer cannot be read is moved to the lake's
``_damaged/`` folder (lake/layout.py) and dropped from its table's manifest (stats
recomputed); a catalogued file missing from a folder that is there is dropped from the
manifest. The rows such a file held are gone from the table, and their event ids stay known
to the ingest log (a re-send of them is dropped as a duplicate). A damaged ingest log, a
missing table folder and files no catalog entry knows are reported with what to do.
Everything runs under the flush lock: no flush writes meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .catalog import open_catalog
from .ingest.flusher import flush_lock

LOG_ADVICE = ("stop the ingest server and keep a copy of the file with its -wal and -shm files; "
              "`sqlite3 FILE .recover` saves what can still be read. Moving the three files aside starts "
              "an empty log: events acknowledged but not yet flushed are then lost")
UNKNOWN_ADVICE = ("queries read it, but the catalog does not count it: a flush cut short records it when it "
                  "runs again; otherwise check where it came from")


@dataclass
class Finding:
    kind: str  # "damaged log", "damaged file", "missing file", "missing folder", "unknown file"
    path: str
    detail: str
    table: str | None = None
    action: str = ""  # what fixing did, or what to do
    fixed: bool = False


@dataclass
class DoctorReport:
    workspace: str
    ingest_log: str
    tables: int = 0
    files: int = 0
    findings: list[Finding] = field(default_factory=list)
    not_checked: str | None = None  # what was not looked at, and why (an S3 lake's files)

    @property
    def unresolved(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed]

    def as_json(self) -> dict:
        return {"workspace": self.workspace, "ingest_log": self.ingest_log, "tables": self.tables, "files": self.files,
                "problems": [asdict(f) for f in self.findings], "ok": not self.unresolved,
                "not_checked": self.not_checked}


def run_doctor(workspace, fix: bool = False) -> DoctorReport:
    """Check the ingest log and every catalog table's files; with ``fix``, set damaged files
    aside and drop missing ones from the catalog."""
    report = DoctorReport(str(workspace.root), str(workspace.ingest_log_path))
    if workspace.lake_on_s3:
        report.not_checked = f"the lake's files ({workspace.lake.root}): checking an S3 lake is not supported yet"
    catalog = open_catalog(workspace)
    try:
        with flush_lock(workspace):
            report.findings += check_ingest_log(workspace.ingest_log_path)
            for table in catalog.tables():
                report.tables += 1
                report.files += _check_table(workspace, catalog, table, fix, report.findings)
    finally:
        catalog.close()
    return report


def check_ingest_log(path: Path) -> list[Finding]:
    """The ingest log's damage as SQLite's quick check finds it (nothing if it is fine or absent)."""
    if not path.exists():
        return []
    try:
        con = sqlite3.connect(path, timeout=60)
        try:
            problems = [row[0] for row in con.execute("PRAGMA quick_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems == ["ok"]:
        return []
    return [Finding("damaged log", str(path), "; ".join(problems[:5]), action=LOG_ADVICE)]


def _check_table(workspace, catalog, table, fix: bool, findings: list[Finding]) -> int:
    """Add the table's findings (fixed if ``fix``); the number of files looked at."""
    name = table.qualified_name
    if "://" in table.location:  # an object store: not looked at
        return 0
    catalogued = catalog.files(table.zone, table.name)
    location = Path(table.location)
    if catalogued and not location.is_dir():  # a disk not mounted loses no catalog entry to --fix
        findings.append(Finding("missing folder", str(location), f"{len(catalogued)} catalogued files", name,
                                "is the disk holding the lake mounted? Nothing is fixed while the folder is missing"))
        return len(catalogued)
    on_disk = sorted(str(p) for p in location.rglob("*.parquet")) if location.is_dir() else []
    known = set(catalogued)
    # files compaction replaced stay on disk for a grace period (lake/compaction.py): not unknown
    replaced = {path for zone, name_, path in catalog.replaced_files() if (zone, name_) == (table.zone, table.name)}
    on_disk = [path for path in on_disk if path not in replaced]
    for path in catalogued:
        if not os.path.exists(path):
            findings.append(_missing(catalog, table, path, fix))
    for path in on_disk:
        damage = footer_damage(path)
        if damage is not None:
            findings.append(_damaged(workspace, catalog, table, path, damage, path in known, fix))
        elif path not in known:
            findings.append(Finding("unknown file", path, "not in the catalog", name, UNKNOWN_ADVICE))
    return len(known | set(on_disk))


def footer_damage(path: str) -> str | None:
    """Why a Parquet file's footer cannot be read, or None when it can."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        return f"its footer cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


def _missing(catalog, table, path: str, fix: bool) -> Finding:
    finding = Finding("missing file", path, "in the catalog, not on disk", table.qualified_name,
                      "`lakebook doctor --fix` drops it from the catalog")
    if fix:
        rows = catalog.forget_files(table.zone, table.name, [path])
        finding.action, finding.fixed = f"dropped from the catalog ({rows:,} rows)", True
    return finding


def _damaged(workspace, catalog, table, path: str, damage: str, catalogued: bool, fix: bool) -> Finding:
    finding = Finding("damaged file", path, damage, table.qualified_name,
                      "queries of the table fail on it: `lakebook doctor --fix` moves it aside")
    if fix:
        aside = workspace.lake.damaged(Path(path))
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        rows = catalog.forget_files(table.zone, table.name, [path]) if catalogued else 0
        finding.action = f"moved to {aside}; {rows:,} catalogued rows left {table.qualified_name}"
        finding.fixed = True
    return finding


def report_lines(report: DoctorReport, fixing: bool) -> list[str]:
    """The report as lines for a terminal."""
    log_damaged = any(f.kind == "damaged log" for f in report.findings)
    lines = [f"lakebook doctor — workspace {report.workspace}",
             f"ingest log: {'DAMAGED' if log_damaged else 'ok'} ({report.ingest_log})",
             f"catalog: {report.tables} tables, {report.files} files checked"]
    if report.not_checked:
        lines.append(f"not checked: {report.not_checked}")
    for f in report.findings:
        lines.append(f"{f.kind}: {f.table + ' ' if f.table else ''}{f.path}: {f.detail}")
        lines.append(f"  {'fixed' if f.fixed else 'to do'}: {f.action}")
    left = len(report.unresolved)
    if not report.findings:
        lines.append("no problems found")
    elif left == 0:
        lines.append(f"{len(report.findings)} problem(s), all fixed")
    else:
        fixable = "" if fixing else "; `lakebook doctor --fix` fixes damaged and missing files"
        lines.append(f"{len(report.findings)} problem(s), {left} left{fixable}")
    return lines
