"""Ingestion: the HTTP routes, the durable ingest log, the flusher to the raw lake, blobs."""

from .flusher import FlushReport, flush_ingest_log_to_raw
from .log import IngestLog, open_ingest_log

__all__ = ["FlushReport", "IngestLog", "compact_lake", "create_app", "flush_ingest_log_to_raw", "open_ingest_log"]


def compact_lake(workspace, *args, **kwargs):
    """Compact the lake's small files (maintenance.py; imported on use)."""
    from .maintenance import compact_lake as _compact_lake

    return _compact_lake(workspace, *args, **kwargs)


def create_app(workspace, **kwargs):
    """The ingest ASGI app (imported on use: Starlette is not needed to flush or query)."""
    from .app import create_app as _create_app

    return _create_app(workspace, **kwargs)
