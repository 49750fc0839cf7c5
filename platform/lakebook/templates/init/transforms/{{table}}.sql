-- description: Daily {{source}} per {{entity}} (UTC days), one row per {{entity}} and day; its
--   event_timestamp is the end of the day, when the day's values are complete.
-- owner: {{owner}}
-- mode: full
-- event_time: event_timestamp
SELECT
    -- Rebuilt by `lakebook transform run` into warehouse.{{table}}; the feature view
    -- {{table}} (feature_repo/definitions.py) serves its columns. Change the aggregates to
    -- what your models need (and the view's schema with them). Other keys: README, "Batch layer".
    e.{{entity}},
    CAST(date_trunc('day', e.{{event_time}}) AS DATE) AS day,
    date_trunc('day', e.{{event_time}}) + INTERVAL 1 DAY AS event_timestamp,
{{aggregates}}
FROM (
    -- an event sent twice (a retry) is counted once
    SELECT *, row_number() OVER (PARTITION BY _event_id ORDER BY _ingested_at) AS copy_number
    FROM raw.{{source}}
) AS e
WHERE e.copy_number = 1
GROUP BY 1, 2, 3
