"""Seeds: small reference tables kept as CSV in the workspace (``seeds/<name>.csv``),
loaded into the ``ref`` zone when their content changes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, ColumnInfo, open_catalog
from ..lake import describe_files, publish_version, write_parquet_atomic
from ..lake.store import as_lake_path, is_s3, size_or_none
from ..run_io import record

NULLS = ["", "NA", "NULL", "null"]


@dataclass
class SeedResult:
    name: str
    rows: int
    loaded: bool


def load_seeds(workspace, catalog: Catalog | None = None) -> list[SeedResult]:
    import pyarrow.csv as pacsv

    """Load every ``seeds/*.csv`` whose content changed into ``ref.<name>``, as a new version."""
    catalog = catalog or open_catalog(workspace)
    folder = workspace.seeds_dir
    results = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        target = workspace.lake.version_dir("ref", path.stem, digest)
        current = {t.name: t for t in catalog.tables("ref")}.get(path.stem)
        if current is not None and as_lake_path(current.location) == target and _written(target):
            results.append(SeedResult(path.stem, current.row_count, False))
            continue
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(null_values=NULLS, strings_can_be_null=True))
        write_parquet_atomic(table, target / "part-0.parquet", workspace.settings.lake.compression)
        catalog.register_table(
            "ref", path.stem, kind="seed", location=str(target),
            columns=[ColumnInfo(f.name, str(f.type)) for f in table.schema],
            description=f"reference data from seeds/{path.name}", owner="",
        )
        catalog.replace_files("ref", path.stem, str(target), describe_files([target / "part-0.parquet"], None, datetime.now(timezone.utc)))
        publish_version(target)
        record(writes=[f"ref.{path.stem}"])
        results.append(SeedResult(path.stem, table.num_rows, True))
    return results


def _written(target: Path) -> bool:
    """Whether a seed's version is in the lake (on S3: its one file)."""
    return size_or_none(target / "part-0.parquet") is not None if is_s3(target) else target.exists()
