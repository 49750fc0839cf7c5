-- zone: features
-- description: Weather at each origin airport, per observation hour (observed at time_hour).
-- owner: flight-ops@example.org
-- mode: full
-- event_time: event_timestamp
SELECT
    w.origin,
    w.time_hour AS event_timestamp,
    w.temp_c,
    w.humid,
    w.wind_speed,
    w.precip,
    w.visib_km
FROM warehouse.weather_hourly AS w
