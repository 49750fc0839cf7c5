"""The speed layer's tables in the lake: ``speed.<view>``, one row per revision of a features
table row the stream computed (the table's columns, ``_offset``: the bus offset of the
micro-batch that gave it, ``_emitted_at``: when). The last revision of a row is the speed
layer's value for it, which ``lakebook features check`` compares with the batch layer.

Files are appended by event date and named after the bus offset range whose rows they hold
(``part-<lo>-<hi>.parquet``), catalogued with lineage from the raw source.
"""

from __future__ import annotations

from ..catalog import ColumnInfo
from ..features.windows import EVENT_TIMESTAMP, WINDOWS_FILE, FeatureDefinition
from ..lake import write_date_partitions
from .checkpoint import Checkpoint
from .inputs import InputPlan

ZONE = "speed"
_DOCS = {"_offset": "bus offset of the micro-batch that gave this revision",
         "_emitted_at": "when the stream computed this revision",
         EVENT_TIMESTAMP: "when the values were knowable (as in the features table)"}


def speed_job(definition: FeatureDefinition) -> str:
    return f"stream:{WINDOWS_FILE}:{definition.name}"


class SpeedTable:
    """Writes one definition's waiting speed rows to the lake, exactly once."""

    def __init__(self, workspace, definition: FeatureDefinition, plan: InputPlan):
        self.workspace, self.definition, self.plan = workspace, definition, plan
        self.table_dir = workspace.lake.table_dir(ZONE, definition.name)
        self._catalog = None

    def flush(self, checkpoint: Checkpoint) -> int:
        """Write the rows the checkpoint holds for the lake; how many were written."""
        intent = checkpoint.speed_intent()
        if intent is None:
            return 0
        lo, hi, rows = intent
        if rows is not None and rows.num_rows:
            catalog = self._registered(rows.schema)
            files = write_date_partitions(rows, self.table_dir, EVENT_TIMESTAMP, f"part-{lo:012d}-{hi:012d}",
                                          ingested_column="_emitted_at",
                                          compression=self.workspace.settings.lake.compression)
            catalog.record_files(ZONE, self.definition.name, files)
        checkpoint.speed_written(lo, hi)
        return rows.num_rows if rows is not None else 0

    def _registered(self, schema):
        if self._catalog is None:
            from ..catalog import open_catalog

            catalog = open_catalog(self.workspace)
            columns = [ColumnInfo(f.name, str(f.type), _DOCS.get(f.name, ""), f.nullable) for f in schema]
            catalog.register_table(
                ZONE, self.definition.name, kind="speed", location=str(self.table_dir), columns=columns,
                description=f"speed layer revisions of {self.definition.table}: {self.definition.description}".strip(),
                owner=self.definition.owner, event_time_column=EVENT_TIMESTAMP)
            upstream = {f"raw.{self.plan.source}": {}, **{t: {} for t in self.plan.tables}}
            catalog.set_lineage(f"{ZONE}.{self.definition.name}", speed_job(self.definition), upstream)
            self._catalog = catalog
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
