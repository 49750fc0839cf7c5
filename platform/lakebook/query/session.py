"""A query session: one engine over one workspace, with bind parameters and freshness."""

from __future__ import annotations

import re
import time
from typing import Any, Mapping

from ..errors import QueryError
from ..run_io import record
from .engines import QueryEngine, open_engine
from .result import LakeResult

# Skip quoted strings, identifiers, comments and '::' casts; capture ':name' parameters.
_PARAM = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|(?<![\w:]):([A-Za-z_]\w*)""", re.DOTALL)


def bind_parameters(sql: str, namespace: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``:name`` -> DuckDB ``$name``, with values taken from ``namespace``."""
    params: dict[str, Any] = {}

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in namespace:
            raise QueryError(f"parameter :{name} is not defined", hint=f"set {name} = ... in the notebook first")
        params[name] = namespace[name]
        return f"${name}"

    return _PARAM.sub(replace, sql), params


class LakeSession:
    def __init__(self, workspace, engine: str | None = None):
        self.workspace = workspace
        self.engine: QueryEngine = open_engine(workspace, engine)

    def query(self, sql: str, namespace: Mapping[str, Any] | None = None, limit: int | None = None) -> LakeResult:
        started = time.perf_counter()
        bound, params = bind_parameters(sql, namespace or {})
        table = self.engine.execute(bound, params, limit)
        elapsed = (time.perf_counter() - started) * 1000
        sources = self.engine.tables_in(bound)
        record(reads=[t.qualified_name for t in sources])
        return LakeResult(table, sql, elapsed, self.engine.name, sources, self.workspace.settings.query.display_limit)


_sessions: dict[tuple, LakeSession] = {}


def session_for(workspace, engine: str | None = None) -> LakeSession:
    """The process's session for this workspace and engine (views and caches are kept)."""
    key = (str(workspace.root), engine or workspace.settings.query.engine.type)
    if key not in _sessions:
        _sessions[key] = LakeSession(workspace, engine)
    return _sessions[key]


def query(sql: str, workspace=None, *, limit: int | None = None, engine: str | None = None, **params) -> LakeResult:
    """Run SQL over the catalog (``raw.flights`` …) and return a LakeResult.
    ``:name`` placeholders take their values from keyword arguments."""
    from ..workspace import Workspace

    ws = workspace if workspace is not None and not isinstance(workspace, str) else Workspace.load(workspace)
    return session_for(ws, engine).query(sql, params, limit)
