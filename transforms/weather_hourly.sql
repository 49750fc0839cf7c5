-- description: Hourly weather at each origin airport (one row per airport and hour), with
--   temperature in Celsius and visibility in kilometres beside the original units.
-- owner: flight-ops@example.org
-- mode: full
-- event_time: time_hour
SELECT
    w.origin,
    w.time_hour,
    w.temp,
    -- rounded as decimals: a double such as 5 * 1.609 is 8.04499... in binary, which DuckDB and
    -- Spark round apart (the stream runs this on DuckDB, the batch layer on either)
    CAST(round(CAST((w.temp - 32) * 5 / 9 AS DECIMAL(18, 6)), 2) AS DOUBLE) AS temp_c,
    w.dewp,
    w.humid,
    w.wind_dir,
    w.wind_speed,
    w.wind_gust,
    w.precip,
    w.pressure,
    w.visib,
    CAST(round(CAST(w.visib * 1.609 AS DECIMAL(18, 6)), 2) AS DOUBLE) AS visib_km
FROM raw.weather AS w
