"""What a transform's output looks like from every side: the catalog's manifest, the files on
disk, what a query reads, the last run's watermarks and what lies beside the published
version (staging folders left behind would show there)."""

from __future__ import annotations

from pathlib import Path

from events import flight, log_events


def new_flights(ws, lo: int, hi: int, months: tuple[int, int]) -> None:
    """Flights ``lo``..``hi - 1`` in the lake, alternating between two months (two output files
    of a transform partitioned by month)."""
    from lakebook.ingest import flush_ingest_log_to_raw

    log_events(ws, "flights", [flight(i, month=months[i % 2]) for i in range(lo, hi)])
    flush_ingest_log_to_raw(ws)


def published_state(ws, table: str = "warehouse.flights_clean", key: str = "flight_id") -> dict:
    from lakebook.catalog import open_catalog
    from lakebook.query import LakeSession

    catalog = open_catalog(ws)
    info = catalog.table(table)
    read = LakeSession(ws).query(f"SELECT count(*) AS n, count(DISTINCT {key}) AS ids FROM {table}").table
    return {"files": sorted(catalog.files(info.zone, info.name)),
            "on_disk": sorted(str(p) for p in Path(info.location).rglob("*.parquet")),
            "rows": info.row_count, "read": read.to_pylist()[0],
            "watermarks": catalog.last_run(table)["watermarks"],
            "beside": sorted(p.name for p in Path(info.location).parent.iterdir() if p.name != "current")}
