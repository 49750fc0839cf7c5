"""Spark batch feature jobs: features.* tables for the Feast feature store.

Feature values are doubles (counts too), so every training or scoring frame has the same
types whether or not it has gaps. Every feature row carries ``event_timestamp``: the moment its values were knowable. A
departure delay is known once the flight has left, so delay statistics are grouped by the
hour (or day) of *actual* departure and stamped with the end of that hour (day). Joined
point in time to a flight's scheduled departure, they never include that flight or any
flight that had not yet left.

``origin_delays`` and ``origin_weather`` are declared in feature_repo/windows.yaml, which the
speed layer (``lakebook stream``) computes from the same declaration.
"""

from pathlib import Path

from lakebook.features.windows import WINDOWS_FILE, load_definitions
from lakebook.transform import transform

DECLARED = load_definitions(Path(__file__).resolve().parents[1] / "feature_repo" / WINDOWS_FILE)


def _departed(flights):
    from pyspark.sql import functions as F

    return (flights.where(~F.col("cancelled") & F.col("dep_delay").isNotNull())
            .withColumn("dep_at", F.col("sched_dep_at") + F.make_interval(mins=F.col("dep_delay").cast("int"))))


@transform(output="features.origin_delays", inputs=["warehouse.flights_clean"], event_time="event_timestamp",
           owner="flight-ops@example.org")
def origin_delays(spark, flights_clean):
    """Departure delays at each origin airport over the trailing 1, 3 and 24 hours."""
    return DECLARED["origin_delays"].spark_frame(flights_clean)


@transform(output="features.origin_weather", inputs=["warehouse.weather_hourly"], event_time="event_timestamp",
           owner="flight-ops@example.org")
def origin_weather(spark, weather_hourly):
    """Weather at each origin airport, per observation hour (observed at time_hour)."""
    return DECLARED["origin_weather"].spark_frame(weather_hourly)


@transform(output="features.carrier_daily", inputs=["warehouse.flights_clean"], event_time="event_timestamp",
           owner="flight-ops@example.org")
def carrier_daily(spark, flights_clean):
    """Per carrier and day of actual departure: flights, mean delay, late share; 7-day mean."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    daily = (_departed(flights_clean)
             .groupBy("carrier", F.to_date("dep_at").alias("day"))
             .agg(F.count("*").cast("double").alias("flights_1d"), F.avg("dep_delay").alias("avg_dep_delay_1d"),
                  F.avg((F.col("dep_delay") > 15).cast("double")).alias("late_share_1d"),
                  F.sum("dep_delay").alias("delay_sum")))
    w = Window.partitionBy("carrier").orderBy(F.col("day").cast("timestamp").cast("long")).rangeBetween(-6 * 86400, 0)
    return daily.select(
        "carrier", F.to_timestamp(F.date_add("day", 1)).alias("event_timestamp"), "flights_1d", "avg_dep_delay_1d",
        "late_share_1d", (F.sum("delay_sum").over(w) / F.sum("flights_1d").over(w)).alias("avg_dep_delay_7d"))


@transform(output="features.plane_stats", inputs=["ref.planes"], event_time="event_timestamp",
           owner="flight-ops@example.org")
def plane_stats(spark, planes):
    """Static facts per plane (tail number): age in 2013, seats, engines. Known from the start of 2013."""
    from pyspark.sql import functions as F

    return planes.select(
        "tailnum", F.to_timestamp(F.lit("2013-01-01 00:00:00")).alias("event_timestamp"),
        (F.lit(2013) - F.col("year")).cast("double").alias("plane_age_years"),
        F.col("seats").cast("double").alias("plane_seats"), F.col("engines").cast("double").alias("plane_engines"))
