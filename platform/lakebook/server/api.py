"""What the Lake panel's REST API answers, independent of the web framework.

``LakeAPI`` finds the workspace, keeps one catalog and one read-only query engine open and
turns catalog entries and query results into JSON-ready dicts. Every read goes to the
catalog database again (a new transaction), so the answers follow the flusher as it adds
files; the query engine re-reads the catalog when it changes.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from ..catalog import Catalog, TableInfo, open_catalog
from ..config import workspace_from_environment
from ..errors import WorkspaceNotFound

log = logging.getLogger("lakebook.server")

PREVIEW_DEFAULT_LIMIT = 100
PREVIEW_MAX_LIMIT = 1000


class PreviewParams(BaseModel):
    """Query parameters of ``GET /lakebook/api/tables/{name}/preview``."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(PREVIEW_DEFAULT_LIMIT, ge=1, le=PREVIEW_MAX_LIMIT,
                       description="rows to return, 1 to 1000")


def iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a 'Z' (naive datetimes are the catalog's UTC)."""
    if when is None:
        return None
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


def json_value(value: Any) -> Any:
    """A query result value as JSON: timestamps as ISO strings, NaN and infinities as null,
    bytes as base64, nested lists and structs value by value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def table_json(info: TableInfo, upstream: list[str], downstream: list[str]) -> dict:
    """One catalog table as the API's TABLE object."""
    return {
        "name": info.qualified_name,
        "zone": info.zone,
        "table": info.name,
        "description": info.description or "",
        "owner": info.owner or None,
        "row_count": info.row_count,
        "bytes": info.bytes,
        "last_event_time": iso(info.last_event_time),
        # when data last arrived: the flusher's ingest time, or a transform's write time
        "last_updated": iso(info.last_ingest_time),
        "columns": [
            {"name": c.name, "type": c.type, "description": c.description or "", "nullable": bool(c.nullable),
             "pii": bool(c.pii)}
            for c in info.columns
        ],
        "lineage": {"upstream": upstream, "downstream": downstream},
    }


def _neighbours(edges: list[tuple[str, str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    upstream: dict[str, list[str]] = defaultdict(list)
    downstream: dict[str, list[str]] = defaultdict(list)
    for up, down in edges:
        upstream[down].append(up)
        downstream[up].append(down)
    return upstream, downstream


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class LakeAPI:
    """The catalog and lake of one workspace, as the Lake panel sees them.

    The workspace is found on first use (and looked for again on the next request while
    it cannot be found): ``configured`` (``LakebookApp.workspace``), else
    ``LAKEBOOK_WORKSPACE``, else the nearest folder upwards from ``root_dir``."""

    def __init__(self, configured: str | None, root_dir: str | Path, environ=None):
        self.configured = configured
        self.root_dir = Path(root_dir)
        self.environ = environ
        self._workspace = None
        self._catalog: Catalog | None = None
        self._engine = None
        self._open_lock = threading.Lock()
        self._engine_lock = threading.Lock()  # one statement at a time on the engine

    # -- opening ------------------------------------------------------------------------------
    def workspace(self):
        from ..workspace import Workspace, find_root

        with self._open_lock:
            if self._workspace is None:
                path = self.configured or workspace_from_environment(self.environ) or find_root(self.root_dir)
                if path is None:
                    raise WorkspaceNotFound(
                        f"no lakebook workspace at or above {self.root_dir.resolve()}",
                        hint="start JupyterLab inside a workspace (a folder with lakebook.yaml), set "
                             "LAKEBOOK_WORKSPACE, or pass --LakebookApp.workspace=DIR",
                    )
                self._workspace = Workspace.load(path, self.environ)
                log.info("lakebook: serving the lake of workspace %s", self._workspace.root)
            return self._workspace

    def catalog(self) -> Catalog:
        workspace = self.workspace()
        with self._open_lock:
            if self._catalog is None:
                self._catalog = open_catalog(workspace)
            return self._catalog

    def _with_engine(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(engine)`` on the workspace's query engine, one caller at a time."""
        from ..query import open_engine

        workspace, catalog = self.workspace(), self.catalog()
        with self._engine_lock:
            if self._engine is None:
                self._engine = open_engine(workspace, None, catalog)
            return work(self._engine)

    def close(self) -> None:
        with self._engine_lock, self._open_lock:
            if self._engine is not None:
                self._engine.close()
            if self._catalog is not None:
                self._catalog.close()
            self._engine = self._catalog = None

    # -- answers ------------------------------------------------------------------------------
    def catalog_json(self) -> dict:
        """Every table of the catalog, grouped by zone (both sorted)."""
        catalog = self.catalog()
        generated_at = datetime.now(timezone.utc)
        tables = catalog.tables()
        upstream, downstream = _neighbours(catalog.lineage_edges())
        zones: dict[str, list[dict]] = defaultdict(list)
        for info in sorted(tables, key=lambda t: (t.zone, t.name)):
            name = info.qualified_name
            zones[info.zone].append(table_json(info, upstream.get(name, []), downstream.get(name, [])))
        return {
            "workspace": self.workspace().settings.name,
            "generated_at": iso(generated_at),
            "zones": [{"name": zone, "tables": zones[zone]} for zone in sorted(zones)],
        }

    def table_json(self, name: str) -> dict:
        """One table; ``UnknownTable`` (with the closest name as hint) when there is none."""
        catalog = self.catalog()
        info = catalog.table(name)
        upstream, downstream = _neighbours(catalog.lineage_edges())
        return table_json(info, upstream.get(info.qualified_name, []), downstream.get(info.qualified_name, []))

    def preview_json(self, name: str, params: PreviewParams) -> dict:
        """The first ``params.limit`` rows of a table, read through the query engine."""
        info = self.catalog().table(name)
        sql = f"SELECT * FROM {_quoted(info.zone)}.{_quoted(info.name)}"
        table = self._with_engine(lambda engine: engine.execute(sql, None, params.limit))
        columns = [column.to_pylist() for column in table.columns]
        return {
            "name": info.qualified_name,
            "columns": [{"name": field.name, "type": str(field.type)} for field in table.schema],
            "rows": [[json_value(v) for v in row] for row in zip(*columns)],
            "limit": params.limit,
            "row_count": info.row_count,
        }
