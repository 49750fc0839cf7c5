"""Queries over the catalog: engines (selected by ``query.engine``), sessions with bind
parameters, and the result object."""

from .engines import QueryEngine, open_engine
from .result import LakeResult, humanize_age
from .session import LakeSession, bind_parameters, query, session_for

__all__ = ["LakeResult", "LakeSession", "QueryEngine", "bind_parameters", "humanize_age", "open_engine", "query",
           "session_for"]
