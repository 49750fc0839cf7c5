"""Lake maintenance the ingest side runs: compaction of the append-only tables with the files
consumer groups may still read back by name left alone (groups.pinned_files), by hand
(``lakebook lake compact``) or every ``lake.compaction.interval_s`` from the ingest service;
and the vacuum of what ``lake.retention`` does not keep (lake/vacuum.py), every
``lake.retention.interval_s`` from the ingest service or by ``lakebook lake vacuum``."""

from __future__ import annotations

import logging
import threading

from ..catalog import open_catalog
from ..lake.compaction import CompactionReport, compact
from ..lake.vacuum import maintenance
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


def run_vacuums(workspace, stop: threading.Event) -> None:
    """A vacuum every ``lake.retention.interval_s`` until ``stop`` is set (a round that fails
    or finds a lock held is logged, and the next one tries again)."""
    interval = workspace.settings.lake.retention.interval_s
    while not stop.wait(interval):
        try:
            catalog = open_catalog(workspace)
        except Exception:  # noqa: BLE001 - the service goes on; the next round tries again
            log.exception("vacuum could not open the catalog; the next round tries again")
            continue
        try:
            maintenance(workspace, catalog)  # logs a round that fails
        finally:
            catalog.close()
