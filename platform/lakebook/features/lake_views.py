"""Feature views that read a lake table as it is, which lakebook can serve without Feast's
compute (training sets by ASOF join, materialization in bulk).

Such a view reads, through the DuckDB offline store, a catalog table's folder with no field
mapping, no created-timestamp column, no transformation, aggregation, filter or validation,
and has entities: the rows Feast would read are the folder's rows, unchanged. Any other view goes
through Feast.

On an S3 lake the rows are the files the catalog lists for the table's published version
(never a listing of the bucket), read through the lake's S3 filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lake.store import from_ibis_uri, is_s3, register_with_duckdb
from ..lake.views import sql_string


@dataclass(frozen=True)
class LakeView:
    view: Any  # the Feast FeatureView
    table: str  # the catalog table it reads, zone.name
    folder: Path
    keys: dict[str, int]  # join key -> declared Feast ValueType number, in entity order
    timestamp: str
    features: dict[str, int]  # feature -> declared Feast ValueType number
    files: tuple[str, ...] | None = None  # on an S3 lake: the catalog's files of the table
    root: Any = None  # the lake's root (an S3 lake's filesystem is registered from it)

    def scan(self, pattern: str = "") -> str:
        """DuckDB's ``read_parquet(…)`` of the view's rows: the folder (``pattern`` appended)
        on a local lake, the catalog's list of files on an S3 lake."""
        if self.files is not None:
            return f"read_parquet([{', '.join(map(sql_string, self.files))}])"
        return f"read_parquet({sql_string(str(self.folder) + pattern)})"

    def connect(self, con) -> Any:
        """``con`` (a DuckDB connection), able to read the view's files."""
        if self.files is not None and "s3" not in con.list_filesystems():
            register_with_duckdb(con, self.root)
        return con


def lake_view(workspace, view) -> LakeView | None:
    """The view as a plain lake table, or None when Feast must read it."""
    from feast import FileSource

    source = getattr(view, "batch_source", None)
    if workspace.settings.features.offline_store.type != "duckdb" or not isinstance(source, FileSource):
        return None
    derived = any(getattr(view, name, None) for name in ("source_views", "feature_transformation", "aggregations",
                                                          "filter", "enable_validation"))
    if derived or source.field_mapping or source.created_timestamp_column or not view.entity_columns:
        return None
    path = from_ibis_uri(source.path or "")
    table = workspace.lake.table_of(path)
    if table is None:
        return None
    files = None
    if is_s3(path):
        files = tuple(_published_files(workspace, *table))
        if not files:
            return None
        folder = workspace.lake.table_dir(*table)
    else:
        folder = Path(path)
        if not folder.is_dir():
            return None
    return LakeView(view=view, table=".".join(table), folder=folder, timestamp=source.timestamp_field,
                    keys={f.name: f.dtype.to_value_type().value for f in view.entity_columns},
                    features={f.name: f.dtype.to_value_type().value for f in view.features},
                    files=files, root=workspace.lake.root)


def _published_files(workspace, zone: str, name: str) -> list[str]:
    """The files of the table's published version, as the catalog lists them (none when the
    table is not built yet)."""
    from ..catalog import open_catalog
    from ..errors import UnknownTable

    catalog = open_catalog(workspace, register=False)
    try:
        return catalog.files(zone, name)
    except UnknownTable:
        return []
    finally:
        catalog.close()
