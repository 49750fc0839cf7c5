"""The long-lived Ray actors of the stream job (plain classes here; job.py makes them actors).

- ``SourceReader``: one per source, reads micro-batches of a consumer group from the bus and
  commits them.
- ``ViewOperator``: one per feature definition, applies micro-batches to its windows and
  checkpoints them (checkpoint.py); writes its ``speed.*`` rows to the lake.
- ``SinkActor``: pushes online rows to the feature store (sink.py).

Each opens what it needs from the workspace folder it is given, so a restarted actor (Ray
starts it again after its process dies) resumes from its checkpoint.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pyarrow as pa


def _workspace(root: str):
    from ..workspace import Workspace

    return Workspace.load(root)


@dataclass
class Emission:
    """What a view made of one micro-batch: its online rows, and counts for the status."""

    view: str
    online: pa.Table | None
    last_offset: int
    events: int = 0  # in the bus batch
    applied: int = 0  # rows applied to the windows
    late: int = 0
    newest_event_us: int | None = None


class SourceReader:
    def __init__(self, root: str, group: str, source: str, start: str = "earliest"):
        from .bus import open_bus

        self.group, self.source = group, source
        self.bus = open_bus(_workspace(root))
        self.bus.register(group, [source], start)

    def read(self, max_events: int, timeout_s: float):
        return self.bus.read(self.group, self.source, max_events=max_events, timeout_s=timeout_s)

    def commit(self, offset: int) -> None:
        self.bus.commit(self.group, self.source, offset)

    def pid(self) -> int:
        return os.getpid()


class ViewOperator:
    def __init__(self, root: str, view: str, lateness_us: int):
        from ..features.windows import feature_definition
        from .checkpoint import Checkpoint
        from .inputs import InputRows
        from .operators import operator_for
        from .speed import SpeedTable

        workspace = _workspace(root)
        self.definition = feature_definition(workspace, view)
        self.rows = InputRows(workspace, self.definition)
        self.source = self.rows.plan.source
        schema = self.rows.row_schema(workspace.contract(self.source).schema)
        self.operator = operator_for(self.definition, schema, lateness_us)
        self.checkpoint = Checkpoint(workspace.stream_dir / "state" / f"{view}.sqlite", self.definition)
        self.checkpoint.restore(self.operator)
        self.speed = SpeedTable(workspace, self.definition, self.rows.plan)

    def process(self, batch) -> Emission | None:
        """Apply a bus batch (None: nothing to read) unless its offsets were applied already."""
        if batch is None:
            return None
        done = self.checkpoint.offset(self.source)
        if done is not None and batch.last_offset <= done:
            return Emission(self.definition.name, None, batch.last_offset, batch.table.num_rows)
        rows = self.rows.from_events(batch.table)
        change = self.operator.apply(rows, time.time_ns() // 1000)
        self.checkpoint.save(change, self.source, batch.first_offset, batch.last_offset)
        newest = rows.column("__t_us").to_numpy().max() if rows.num_rows else None
        return Emission(self.definition.name, change.online, batch.last_offset, batch.table.num_rows,
                        change.applied.num_rows, change.late, None if newest is None else int(newest))

    def current(self) -> pa.Table:
        """Every entity's newest online row (to push again after a failure)."""
        return self.operator.current_rows()

    def flush_speed(self) -> int:
        return self.speed.flush(self.checkpoint)

    def pid(self) -> int:
        return os.getpid()


class SinkActor:
    def __init__(self, root: str):
        from .sink import PushSink

        self.sink = PushSink(_workspace(root))

    def push(self, rows: dict[str, pa.Table]) -> dict[str, float]:
        return self.sink.push(rows)

    def pid(self) -> int:
        return os.getpid()
