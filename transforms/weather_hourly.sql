-- description: Hourly weather at each origin airport (one row per airport and hour), with
--   temperature in Celsius and visibility in kilometres beside the original units.
-- owner: flight-ops@example.org
-- mode: full
-- event_time: time_hour
SELECT
    w.origin,
    w.time_hour,
    w.temp,
    round((w.temp - 32) * 5 / 9, 2) AS temp_c,
    w.dewp,
    w.humid,
    w.wind_dir,
    w.wind_speed,
    w.wind_gust,
    w.precip,
    w.pressure,
    w.visib,
    round(w.visib * 1.609, 2) AS visib_km
FROM raw.weather AS w
