"""Queries over the catalog: engine registry (duckdb; spark later) and the result object."""

from .engines import DuckDBEngine, QueryEngine, open_engine, query_engines
from .result import LakeResult
from .session import LakeSession, bind_parameters, query, session_for

__all__ = [
    "DuckDBEngine", "QueryEngine", "open_engine", "query_engines", "LakeResult", "LakeSession",
    "bind_parameters", "query", "session_for",
]
