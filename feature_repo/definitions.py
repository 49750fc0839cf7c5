"""Entities, sources, feature views and services of the nycflights feature store.

Sources are the features.* tables the Spark batch jobs in transforms/features.py (and the
SQL transform transforms/origin_weather.sql) build. Each batch source also has a push
source, so the streaming layer can write fresh values straight to the online store.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource, ValueType
from feast.types import Float64

from lakebook.features import lake_source

origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING, description="NYC origin airport (EWR, JFK, LGA)")
carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING, description="two-letter carrier code")
plane = Entity(name="plane", join_keys=["tailnum"], value_type=ValueType.STRING, description="plane tail number")

origin_delays_push = PushSource(name="origin_delays_push", batch_source=lake_source("features.origin_delays"))
origin_weather_push = PushSource(name="origin_weather_push", batch_source=lake_source("features.origin_weather"))

origin_delays = FeatureView(
    name="origin_delays",
    entities=[origin],
    ttl=timedelta(hours=6),
    schema=[
        Field(name="departures_1h", dtype=Float64),
        Field(name="avg_dep_delay_1h", dtype=Float64),
        Field(name="avg_dep_delay_3h", dtype=Float64),
        Field(name="late_share_3h", dtype=Float64),
        Field(name="avg_dep_delay_24h", dtype=Float64),
        Field(name="late_share_24h", dtype=Float64),
    ],
    source=origin_delays_push,
    description="departure delays at the origin over the trailing 1, 3 and 24 hours",
)

origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temp_c", dtype=Float64),
        Field(name="humid", dtype=Float64),
        Field(name="wind_speed", dtype=Float64),
        Field(name="precip", dtype=Float64),
        Field(name="visib_km", dtype=Float64),
    ],
    source=origin_weather_push,
    description="latest hourly weather observation at the origin",
)

carrier_daily = FeatureView(
    name="carrier_daily",
    entities=[carrier],
    ttl=timedelta(days=3),
    schema=[
        Field(name="flights_1d", dtype=Float64),
        Field(name="avg_dep_delay_1d", dtype=Float64),
        Field(name="late_share_1d", dtype=Float64),
        Field(name="avg_dep_delay_7d", dtype=Float64),
    ],
    source=lake_source("features.carrier_daily"),
    description="the carrier's delays on its latest complete day, and over 7 days",
)

plane_stats = FeatureView(
    name="plane_stats",
    entities=[plane],
    ttl=timedelta(days=400),
    schema=[
        Field(name="plane_age_years", dtype=Float64),
        Field(name="plane_seats", dtype=Float64),
        Field(name="plane_engines", dtype=Float64),
    ],
    source=lake_source("features.plane_stats"),
    description="static facts about the plane",
)

flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[origin_delays, origin_weather, carrier_daily, plane_stats],
    description="features for predicting arrival delay > 15 min at scheduled departure",
)
