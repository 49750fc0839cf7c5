-- description: Each answer of a model endpoint (raw.predictions) with what happened, the
--   flight's arrival (late or not), once it has arrived. A prediction whose flight has not
--   arrived yet is not here (a later run adds it), nor one of a cancelled or diverted flight.
-- owner: ml-platform@example.org
-- mode: full
-- event_time: predicted_at
WITH predictions AS (
    -- Full, not incremental: an incremental run reads only the predictions new since the last run,
    -- so one whose flight arrived after that run would never be joined. The flight is the join
    -- key: carrier and origin from the entity, flight and sched_dep_at from the request's other
    -- fields. TRY: a malformed JSON string reads as null, as Spark's get_json_object (which
    -- sqlglot writes for it) does by itself, so one bad event cannot stop the table.
    SELECT
        request_id,
        predicted_at,
        endpoint,
        model,
        version,
        output AS p_late,
        latency_ms,
        TRY(json_extract_string(entity, '$.carrier')) AS carrier,
        TRY(json_extract_string(entity, '$.origin')) AS origin,
        TRY_CAST(TRY(json_extract_string(inputs, '$.flight')) AS BIGINT) AS flight,
        TRY_CAST(TRY(json_extract_string(inputs, '$.sched_dep_at')) AS TIMESTAMPTZ) AS sched_dep_at,
        row_number() OVER (PARTITION BY _event_id ORDER BY _ingested_at) AS copy_number
    FROM raw.predictions
)
SELECT
    p.request_id,
    p.predicted_at,
    p.endpoint,
    p.model,
    p.version,
    p.p_late,
    f.flight_id,
    f.arr_late,
    p.latency_ms
FROM predictions AS p
JOIN warehouse.flights_clean AS f
    ON f.carrier = p.carrier AND f.origin = p.origin AND f.flight = p.flight AND f.sched_dep_at = p.sched_dep_at
WHERE p.copy_number = 1 AND f.arr_late IS NOT NULL
