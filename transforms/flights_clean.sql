-- description: Every 2013 departure from New York City, one row per flight (deduplicated by
--   event id), typed and joined with carrier, airport and plane details.
-- owner: flight-ops@example.org
-- mode: incremental
-- event_time: sched_dep_at
-- partition_by: month
SELECT
    f._event_id AS flight_id,
    f.sched_dep_at,
    f.time_hour,
    f.month,
    f.carrier,
    al.name AS carrier_name,
    f.flight,
    f.tailnum,
    f.origin,
    o.name AS origin_name,
    f.dest,
    d.name AS dest_name,
    f.dep_delay,
    f.arr_delay,
    f.air_time,
    f.distance,
    f.dep_time IS NULL AS cancelled,
    f.arr_delay > 15 AS arr_late,
    p.year AS plane_year,
    p.seats AS plane_seats,
    p.manufacturer AS plane_manufacturer
FROM (
    SELECT *, row_number() OVER (PARTITION BY _event_id ORDER BY _ingested_at) AS copy_number
    FROM raw.flights
) AS f
LEFT JOIN ref.airlines AS al ON al.carrier = f.carrier
LEFT JOIN ref.airports AS o ON o.faa = f.origin
LEFT JOIN ref.airports AS d ON d.faa = f.dest
LEFT JOIN ref.planes AS p ON p.tailnum = f.tailnum
WHERE f.copy_number = 1
