"""Feature views that read a lake table as it is, which lakebook can serve without Feast's
compute (training sets by ASOF join, materialization in bulk).

Such a view reads, through the DuckDB offline store, a catalog table's folder with no field
mapping, no created-timestamp column, no transformation, aggregation, filter or validation,
and has entities: the rows Feast would read are the folder's rows, unchanged. Any other view goes
through Feast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LakeView:
    view: Any  # the Feast FeatureView
    table: str  # the catalog table it reads, zone.name
    folder: Path
    keys: dict[str, int]  # join key -> declared Feast ValueType number, in entity order
    timestamp: str
    features: dict[str, int]  # feature -> declared Feast ValueType number


def lake_view(workspace, view) -> LakeView | None:
    """The view as a plain lake table, or None when Feast must read it."""
    from feast import FileSource

    source = getattr(view, "batch_source", None)
    if workspace.settings.features.offline_store.type != "duckdb" or not isinstance(source, FileSource):
        return None
    folder = Path(source.path or "")
    derived = any(getattr(view, name, None) for name in ("source_views", "feature_transformation", "aggregations",
                                                          "filter", "enable_validation"))
    table = workspace.lake.table_of(folder)
    if (derived or source.field_mapping or source.created_timestamp_column or not view.entity_columns
            or table is None or not folder.is_dir()):
        return None
    return LakeView(view=view, table=".".join(table), folder=folder, timestamp=source.timestamp_field,
                    keys={f.name: f.dtype.to_value_type().value for f in view.entity_columns},
                    features={f.name: f.dtype.to_value_type().value for f in view.features})
