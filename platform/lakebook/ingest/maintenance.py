"""Lake maintenance the ingest side runs: compaction of the append-only tables with the files
consumer groups may still read back by name left alone (groups.pinned_files), by hand
(``lakebook lake compact``) or every ``lake.compaction.interval_s`` from the ingest service."""

from __future__ import annotations

import logging
import threading

from ..catalog import open_catalog
from ..lake.compaction import CompactionReport, compact
from .groups import pinned_files
from .log import IngestLog, open_ingest_log

log = logging.getLogger("lakebook.ingest.maintenance")


def compact_lake(workspace, table: str | None = None, partition: str | None = None, *,
                 ingest_log: IngestLog | None = None, on_progress=None, on_step=None) -> CompactionReport:
    """Compact the small files of the append-only tables (lake/compaction.py: ``compact``)."""
    own_log = ingest_log is None
    ingest_log = ingest_log or open_ingest_log(workspace)
    catalog = open_catalog(workspace)
    try:
        return compact(workspace, catalog, table, partition, pinned=pinned_files(ingest_log),
                       on_progress=on_progress, on_step=on_step)
    finally:
        catalog.close()
        if own_log:
            ingest_log.close()


def run_compactions(workspace, ingest_log: IngestLog, stop: threading.Event) -> None:
    """Compact every ``lake.compaction.interval_s`` until ``stop`` is set; a pass that fails is
    logged and the next one tries again."""
    interval = workspace.settings.lake.compaction.interval_s
    while not stop.wait(interval):
        try:
            compact_lake(workspace, ingest_log=ingest_log)
        except Exception:  # noqa: BLE001 - the service goes on; the next pass tries again
            log.exception("lake compaction failed; the next pass tries again")
