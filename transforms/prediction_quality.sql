-- description: Live quality of every model version an endpoint served, from its predictions
--   whose flights have arrived. ROC AUC, and calibration (mean predicted P(late) against the
--   observed late share) over all of them (decile null) and per decile of p_late (1 lowest).
-- owner: ml-platform@example.org
-- mode: full
-- event_time: last_predicted_at
WITH scored AS (
    -- ROC AUC is the rank statistic (Mann-Whitney): (sum of the late flights' ranks - n1(n1+1)/2)
    -- / (n1 n0), ranks by p_late with ties sharing the mean of their ranks, so it is exact with
    -- ties. It is null while a version has only late or only punctual outcomes. Deciles split a
    -- version's predictions into ten groups of (nearly) equal size by p_late, ties by request_id
    -- so that both engines make the same groups.
    SELECT
        endpoint,
        model,
        version,
        p_late,
        predicted_at,
        CAST(arr_late AS DOUBLE) AS late,
        CAST(rank() OVER (PARTITION BY endpoint, model, version ORDER BY p_late) AS DOUBLE)
            + CAST(count(*) OVER (PARTITION BY endpoint, model, version, p_late) - 1 AS DOUBLE) / 2 AS p_rank,
        ntile(10) OVER (PARTITION BY endpoint, model, version ORDER BY p_late, request_id) AS decile
    FROM warehouse.prediction_outcomes
),
ranked AS (
    SELECT
        endpoint,
        model,
        version,
        CASE WHEN sum(late) > 0 AND sum(1 - late) > 0
            THEN (sum(late * p_rank) - sum(late) * (sum(late) + 1) / 2) / (sum(late) * sum(1 - late))
        END AS roc_auc
    FROM scored
    GROUP BY endpoint, model, version
),
calibration AS (
    SELECT
        endpoint,
        model,
        version,
        decile,
        count(*) AS predictions,
        CAST(sum(late) AS BIGINT) AS late,
        avg(p_late) AS mean_p_late,
        avg(late) AS late_share,
        min(p_late) AS min_p_late,
        max(p_late) AS max_p_late,
        min(predicted_at) AS first_predicted_at,
        max(predicted_at) AS last_predicted_at
    FROM scored
    GROUP BY GROUPING SETS ((endpoint, model, version), (endpoint, model, version, decile))
)
SELECT
    c.endpoint,
    c.model,
    c.version,
    c.decile,
    c.predictions,
    c.late,
    c.mean_p_late,
    c.late_share,
    c.mean_p_late - c.late_share AS calibration_gap,
    CASE WHEN c.decile IS NULL THEN r.roc_auc END AS roc_auc,
    c.min_p_late,
    c.max_p_late,
    c.first_predicted_at,
    c.last_predicted_at
FROM calibration AS c
JOIN ranked AS r ON r.endpoint = c.endpoint AND r.model = c.model AND r.version = c.version
