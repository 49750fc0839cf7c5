"""Writes the example notebooks (kept as code so their diffs stay readable).
Run: python notebooks/make_notebooks.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def save(name, cells):
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, HERE / name)


def parameters(source):
    cell = code(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


save("01_explore_flights.ipynb", [
    md("# Exploring 2013 departures from New York\n\nEDA over the warehouse with `%%lake`: every result says "
       "how fresh the tables behind it are. Run `make demo` first."),
    code("%load_ext lakebook\nimport matplotlib\nmatplotlib.use(\"Agg\")\nimport matplotlib.pyplot as plt\n%matplotlib inline"),
    code("%lake tables"),
    md("How often is a flight more than 15 minutes late, month by month?"),
    code("%%lake -o by_month\nSELECT month, count(*) AS flights, avg(arr_late::INT) AS late_share,\n"
         "       avg(cancelled::INT) AS cancelled_share\nFROM warehouse.flights_clean\nGROUP BY month ORDER BY month"),
    code("ax = by_month.plot(x=\"month\", y=[\"late_share\", \"cancelled_share\"], marker=\"o\", figsize=(8, 3))\n"
         "ax.set_ylabel(\"share of flights\"); ax.set_title(\"Late arrivals and cancellations by month\")\nplt.show()"),
    md("Delays build up during the day: the hour of scheduled departure (local time) matters."),
    code("%%lake -o by_hour\nSELECT hour(sched_dep_at AT TIME ZONE 'America/New_York') AS local_hour,\n"
         "       count(*) AS flights, avg(dep_delay) AS avg_dep_delay\nFROM warehouse.flights_clean\n"
         "WHERE NOT cancelled\nGROUP BY 1 ORDER BY 1"),
    code("ax = by_hour.plot.bar(x=\"local_hour\", y=\"avg_dep_delay\", figsize=(8, 3), legend=False)\n"
         "ax.set_ylabel(\"mean departure delay (min)\"); plt.show()"),
    md("Carriers differ, and so do airports:"),
    code("%%lake\nSELECT carrier_name, origin, count(*) AS flights, round(avg(arr_late::INT), 3) AS late_share\n"
         "FROM warehouse.flights_clean\nGROUP BY ALL HAVING count(*) > 2000\nORDER BY late_share DESC LIMIT 10"),
    md("Weather at departure: low visibility and precipitation go with longer delays."),
    code("%%lake -o weather_effect\nSELECT CASE WHEN w.visib < 1 THEN '< 1 mile' WHEN w.visib < 5 THEN '1-5 miles' ELSE '5+ miles' END AS visibility,\n"
         "       w.precip > 0 AS raining, count(*) AS flights, avg(f.dep_delay) AS avg_dep_delay\n"
         "FROM warehouse.flights_clean f\nJOIN warehouse.weather_hourly w ON w.origin = f.origin AND w.time_hour = f.time_hour\n"
         "GROUP BY ALL ORDER BY visibility, raining"),
    code("weather_effect.pivot(index=\"visibility\", columns=\"raining\", values=\"avg_dep_delay\").plot.bar(figsize=(6, 3))\n"
         "plt.ylabel(\"mean departure delay (min)\"); plt.show()"),
    md("Where did the numbers come from? The lineage of the table behind this notebook:"),
    code("%lake lineage warehouse.flights_clean"),
])

save("02_train_delay_model.ipynb", [
    md("# Train the flight delay model\n\nPredicts whether a flight arrives more than 15 minutes late, from the "
       "features known at its scheduled departure (feature service `flight_delay_v1`, point in time). "
       "Trains a scikit-learn gradient boosting model and a small PyTorch MLP on a time-based split, logs both "
       "to MLflow with a logistic-regression baseline, registers the better one as `flight_delay`, and moves the "
       "`champion` alias only if it beats the current champion on this holdout.\n\n"
       "Parameterised for Papermill: `lakebook` jobs (or `papermill -p sample_size 5000 …`) run it headless."),
    parameters("sample_size = 60000\nstart_date = \"2013-01-01\"\nend_date = \"2014-01-01\"\n"
               "model_kind = \"both\"  # sklearn, torch or both\nholdout_share = 0.2\nseed = 7\n"
               "gbm_iterations = 300\ntorch_epochs = 8\nregistered_model = \"flight_delay\"\n"
               "feature_service = \"flight_delay_v1\""),
    code("import json\n\nimport mlflow\nimport numpy as np\nimport pandas as pd\n"
         "from sklearn.metrics import log_loss, roc_auc_score\n\nimport lakebook\nfrom lakebook import features, ml\n"
         "from lakebook.ml import tabular\nfrom lakebook.workspace import Workspace\n\n"
         "ws = Workspace.load()\nfeatures.apply(ws)\nclient = ml.setup_mlflow(ws)\n"
         "print(\"tracking at\", ml.tracking_uri(ws))"),
    md("## Training set\nEntity rows are flights, with the label and what the schedule says (local hour, weekday); "
       "Feast joins each feature as of the scheduled departure."),
    code("entities = lakebook.query(\"\"\"\n    SELECT flight_id, sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late, distance,\n"
         "           hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local,\n"
         "           dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday\n"
         "    FROM warehouse.flights_clean\n"
         "    WHERE arr_late IS NOT NULL\n      AND sched_dep_at >= CAST(:start_date AS TIMESTAMPTZ)\n"
         "      AND sched_dep_at < CAST(:end_date AS TIMESTAMPTZ)\n    ORDER BY hash(flight_id)\n    LIMIT :sample_size\n"
         "\"\"\", ws, start_date=start_date, end_date=end_date, sample_size=sample_size).df()\n"
         "data = features.training_set(entities, feature_service, ws)\n"
         "data[\"label\"] = data[\"arr_late\"].astype(int)\n"
         "feature_columns = [c for c in data.columns if c not in\n"
         "                   {\"flight_id\", \"event_timestamp\", \"origin\", \"carrier\", \"tailnum\", \"arr_late\", \"label\"}]\n"
         "carriers = sorted(lakebook.query(\"SELECT DISTINCT carrier FROM warehouse.flights_clean\", ws).df().carrier)\n"
         "spec = tabular.TabularSpec(numeric=feature_columns, categorical={\"origin\": [\"EWR\", \"JFK\", \"LGA\"], \"carrier\": carriers})\n"
         "train, holdout = tabular.time_split(data, holdout=holdout_share)\n"
         "print(f\"{len(data):,} flights, {data.label.mean():.1%} late; train {len(train):,} up to \"\n"
         "      f\"{train.event_timestamp.max():%Y-%m-%d}, holdout {len(holdout):,} from {holdout.event_timestamp.min():%Y-%m-%d}\")"),
    md("## Train and track"),
    code("def evaluate(model):\n    p = model.predict_proba(holdout)\n"
         "    return {\"holdout_roc_auc\": roc_auc_score(holdout.label, p), \"holdout_log_loss\": log_loss(holdout.label, p)}\n\n"
         "trainers = {\n    \"sklearn\": lambda: tabular.fit_gradient_boosting(spec, train, train.label, seed=seed, max_iter=gbm_iterations),\n"
         "    \"torch\": lambda: tabular.fit_torch_mlp(spec, train, train.label, seed=seed, epochs=torch_epochs),\n}\n"
         "kinds = list(trainers) if model_kind == \"both\" else [model_kind]\n"
         "lineage_tables = [\"warehouse.flights_clean\", \"features.origin_delays\", \"features.origin_weather\",\n"
         "                  \"features.carrier_daily\", \"features.plane_stats\"]\n"
         "training_spec = {\"sample_size\": sample_size, \"start_date\": start_date, \"end_date\": end_date,\n"
         "                 \"split\": \"time\", \"holdout_share\": holdout_share, \"label\": \"arr_delay > 15\"}\n"
         "candidates = {}\n"
         "with mlflow.start_run(run_name=\"train flight_delay\") as parent:\n"
         "    ml.log_data_lineage(ws, lineage_tables, feature_service, training_spec)\n"
         "    baseline = evaluate(tabular.fit_logistic_regression(spec, train, train.label, seed=seed))\n"
         "    mlflow.log_metrics({f\"baseline_{k}\": v for k, v in baseline.items()})\n"
         "    for kind in kinds:\n"
         "        with mlflow.start_run(run_name=kind, nested=True):\n"
         "            ml.log_data_lineage(ws, lineage_tables, feature_service, training_spec)\n"
         "            mlflow.log_params({\"model_kind\": kind, \"seed\": seed, \"gbm_iterations\": gbm_iterations,\n"
         "                               \"torch_epochs\": torch_epochs, \"features\": len(feature_columns)})\n"
         "            ml.log_training_sample(train, feature_columns)  # the baseline of the monitor's drift checks\n"
         "            model = trainers[kind]()\n"
         "            metrics = evaluate(model)\n"
         "            mlflow.log_metrics(metrics)\n"
         "            info = ml.log_classifier(model, train)\n"
         "            candidates[kind] = {\"metrics\": metrics, \"model_uri\": info.model_uri}\n"
         "pd.DataFrame({k: v[\"metrics\"] for k, v in candidates.items()} | {\"logistic baseline\": baseline}).T"),
    md("## Register, and promote only a better model\n"
       "The better candidate is registered only if it beats the logistic-regression baseline on the holdout; it takes "
       "the `champion` alias only if it also beats the current champion, scored on this same holdout."),
    code("best_kind = max(candidates, key=lambda k: candidates[k][\"metrics\"][\"holdout_roc_auc\"])\n"
         "best = candidates[best_kind]\n"
         "beats_baseline = best[\"metrics\"][\"holdout_roc_auc\"] > baseline[\"holdout_roc_auc\"]\n"
         "champion = ml.current_champion(client, registered_model)\nchampion_score = None\n"
         "if champion is not None:\n    current = mlflow.pyfunc.load_model(ml.champion_uri(registered_model))\n"
         "    needed = current.metadata.get_input_schema().input_names()\n"
         "    champion_score = roc_auc_score(holdout.label, current.predict(holdout[needed]))\n"
         "registration = None\n"
         "if beats_baseline:\n"
         "    registration = ml.register_if_better(client, best[\"model_uri\"], registered_model, \"holdout_roc_auc\",\n"
         "                                         best[\"metrics\"][\"holdout_roc_auc\"], champion_score)\n"
         "    print(registration.describe())\n"
         "else:\n"
         "    print(f\"not registered: {best_kind} holdout ROC AUC {best['metrics']['holdout_roc_auc']:.4f} does not beat \"\n"
         "          f\"the logistic baseline {baseline['holdout_roc_auc']:.4f}\")"),
    code("summary = {\"best_kind\": best_kind, \"beats_baseline\": beats_baseline,\n"
         "           \"registered_version\": registration.version if registration else None,\n"
         "           \"promoted\": bool(registration and registration.promoted),\n"
         "           \"holdout_roc_auc\": best[\"metrics\"][\"holdout_roc_auc\"],\n"
         "           \"baseline_roc_auc\": baseline[\"holdout_roc_auc\"], \"champion_score_before\": champion_score,\n"
         "           \"parent_run_id\": parent.info.run_id, \"train_rows\": len(train), \"holdout_rows\": len(holdout)}\n"
         "print(\"LAKEBOOK_SUMMARY \" + json.dumps(summary))"),
])

save("03_nightly_batch.ipynb", [
    md("# Nightly batch\n\nThe batch layer as a production job: seeds, the SQL transforms and the Spark feature jobs "
       "in dependency order, then Feast apply and materialize to the online store. `jobs/nightly_batch.yaml` runs "
       "it every night; `lakebook jobs run nightly_batch` runs it now. Each step prints its progress, which the "
       "run keeps in its output notebook."),
    parameters("full_refresh = False  # rebuild every transform from all of raw\n"
               "only: list = []  # transforms to run (names); empty: all of them\n"
               "materialize = True"),
    code("import json\nimport time\n\nfrom lakebook import features\nfrom lakebook.transform import load_seeds, "
         "run_transforms, stop_spark\nfrom lakebook.workspace import Workspace\n\nws = Workspace.load()\n"
         "started = time.perf_counter()\n\n\ndef progress(message):\n"
         "    print(f\"[{time.perf_counter() - started:7.1f} s] {message}\", flush=True)\n\n\n"
         "progress(f\"nightly batch of workspace {ws.settings.name}\")"),
    md("## Seeds\nReference CSVs load into the `ref` zone when their content changed."),
    code("for seed in load_seeds(ws):\n"
         "    progress(f\"ref.{seed.name}: {seed.rows:,} rows\" + (\"\" if seed.loaded else \" (unchanged)\"))"),
    md("## Transforms and feature jobs\nSQL transforms on DuckDB, the feature jobs on Spark; each output is "
       "published atomically, so a failed step leaves yesterday's table in place."),
    code("results = run_transforms(ws, only or None, full_refresh=full_refresh,\n"
         "                         on_start=lambda t: progress(f\"running {t.qualified_name} ...\"))\n"
         "for r in results:\n"
         "    detail = r.note if r.status == \"skipped\" else f\"{r.rows:,} rows in {r.seconds:.1f} s\"\n"
         "    progress(f\"{r.name} ({r.engine}, {'incremental' if r.incremental else 'full'}): {r.status}, {detail}\")\n"
         "stop_spark()"),
    md("## Feature store\nRegister the Feast repository, then load the newest feature values into the online store."),
    code("materialized = {}\nif materialize:\n    applied = features.apply(ws)\n"
         "    progress(f\"applied {len(applied['feature_views'])} feature views\")\n"
         "    materialized = features.materialize(ws)\n"
         "    progress(f\"materialized {', '.join(materialized['views'])} \"\n"
         "             f\"({materialized['start']:%Y-%m-%d} to {materialized['end']:%Y-%m-%d})\")"),
    code("summary = {\"transforms\": {r.name: r.rows for r in results}, \"views\": materialized.get(\"views\", []),\n"
         "           \"seconds\": round(time.perf_counter() - started, 1)}\n"
         "print(\"LAKEBOOK_SUMMARY \" + json.dumps(summary))"),
])

save("04_delay_report.ipynb", [
    md("# Delay report\n\nLate arrivals and departure delays in the warehouse, day by day and by carrier. "
       "`jobs/delay_report.yaml` renders it whenever `warehouse.flights_clean` gets new data; each run keeps "
       "this notebook with its charts (and its HTML) in the run's folder."),
    parameters("origin = \"all\"  # EWR, JFK, LGA or all\ntop_carriers = 8"),
    code("%load_ext lakebook\nimport json\n\nimport matplotlib\nmatplotlib.use(\"Agg\")\n"
         "import matplotlib.pyplot as plt\n%matplotlib inline"),
    md("## Day by day"),
    code("%%lake -o daily\nSELECT CAST(sched_dep_at AT TIME ZONE 'America/New_York' AS DATE) AS day, count(*) AS flights,\n"
         "       avg(arr_late::INT) AS late_share, avg(dep_delay) AS avg_dep_delay\n"
         "FROM warehouse.flights_clean\nWHERE :origin = 'all' OR origin = :origin\nGROUP BY 1 ORDER BY 1"),
    code("fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)\n"
         "top.bar(daily[\"day\"], daily[\"flights\"], color=\"#8da0cb\")\ntop.set_ylabel(\"flights\")\n"
         "bottom.plot(daily[\"day\"], daily[\"late_share\"], marker=\".\", color=\"#d95f02\")\n"
         "bottom.set_ylabel(\"share late (> 15 min)\")\n"
         "fig.suptitle(f\"Departures from {'New York' if origin == 'all' else origin}, by day\")\nplt.show()"),
    md("## Carriers"),
    code("%%lake -o carriers\nSELECT carrier_name, count(*) AS flights, avg(arr_late::INT) AS late_share,\n"
         "       avg(dep_delay) AS avg_dep_delay\nFROM warehouse.flights_clean\n"
         "WHERE (:origin = 'all' OR origin = :origin) AND NOT cancelled\nGROUP BY 1 ORDER BY flights DESC"),
    code("shown = carriers.head(top_carriers).sort_values(\"late_share\")\n"
         "ax = shown.plot.barh(x=\"carrier_name\", y=\"late_share\", figsize=(8, 3.5), legend=False, color=\"#66c2a5\")\n"
         "ax.set_xlabel(\"share of arrivals more than 15 minutes late\"); ax.set_ylabel(\"\")\n"
         "ax.set_title(f\"The {len(shown)} busiest carriers\")\nplt.show()"),
    code("summary = {\"origin\": origin, \"days\": len(daily), \"flights\": int(daily[\"flights\"].sum()),\n"
         "           \"late_share\": float((daily[\"late_share\"] * daily[\"flights\"]).sum() / daily[\"flights\"].sum()),\n"
         "           \"carriers\": len(carriers)}\nprint(\"LAKEBOOK_SUMMARY \" + json.dumps(summary))"),
])

save("10_delay_dashboard.ipynb", [
    md("# Departure delays from New York\n\nDelays by hour of day, carrier and weather for the airport, carrier and "
       "dates you pick; every chart is aggregated by the query engine from the warehouse tables. Published with "
       "`lakebook dashboards publish notebooks/10_delay_dashboard.ipynb`, it renders in Voila without its code."),
    parameters("airport = \"all\"  # EWR, JFK, LGA or all\ncarrier = \"all\"  # a carrier code (B6, UA, ...) or all\n"
               "start_date = \"2013-01-01\"\nend_date = \"2013-12-31\"\n"
               "endpoint = \"delay\"  # the model endpoint the what-if form calls"),
    code("from datetime import date\n\nfrom lakebook.dashboards.example import DelayDashboard, Filters\n"
         "from lakebook.workspace import Workspace\n\n"
         "dashboard = DelayDashboard(Workspace.load(), Filters(airport, carrier, date.fromisoformat(start_date),\n"
         "                                                     date.fromisoformat(end_date)), endpoint)\n"
         "dashboard.controls()"),
    md("## By hour of day\nFlights scheduled later in the day leave later: delays build up."),
    code("dashboard.chart(\"hour\")"),
    md("## By carrier"),
    code("dashboard.chart(\"carrier\")"),
    md("## By weather at departure\nVisibility and precipitation at the origin airport in the hour of departure "
       "(`warehouse.weather_hourly`)."),
    code("dashboard.chart(\"weather\")"),
    md("## What if?\nThe chance a flight arrives more than 15 minutes late, from the model endpoint."),
    code("dashboard.what_if()"),
    md("## Predicted against actual\nThe endpoint's predictions for these flights, by tenth of `p_late`, against the "
       "share that arrived late (`warehouse.prediction_outcomes`)."),
    code("dashboard.chart(\"outcomes\")"),
    md("## Freshness\nEvery table this dashboard read, as the catalog knows it."),
    code("dashboard.chart(\"freshness\")"),
])

save("11_pipeline_health.ipynb", [
    md("# Pipeline health\n\nIs every stage of the pipeline alive? How fresh each table is, what arrived day by day, "
       "what the ingest refused, whether the features the champion model was trained on have drifted, how the "
       "jobs and the model endpoints are doing, and what the monitor says. The logic lives in "
       "`lakebook.monitor.health`; `lakebook jobs` can run this notebook on a schedule, or "
       "`lakebook dashboards publish notebooks/11_pipeline_health.ipynb` serves it in Voila."),
    parameters("drift_features = \"origin_weather.temp_c,origin_weather.wind_speed,origin_delays.avg_dep_delay_3h,"
               "carrier_daily.late_share_1d\"\n"
               "drift_window = \"1d\"  # the recent values compared with the training data\n"
               "drift_as_of = \"\"  # when the recent window ends (ISO time); empty: now\n"
               "volume_days = 60"),
    code("import json\nfrom datetime import datetime, timezone\n\nfrom IPython.display import display\n\n"
         "from lakebook.dashboards.example import enable_vegalite_v5\nfrom lakebook.monitor import health\n"
         "from lakebook.workspace import Workspace\n\nws = Workspace.load()\nenable_vegalite_v5()\n"
         "now = datetime.now(timezone.utc)\n"
         "drift_at = datetime.fromisoformat(drift_as_of) if drift_as_of else now\n"
         "drift_at = drift_at if drift_at.tzinfo else drift_at.replace(tzinfo=timezone.utc)"),
    md("## Freshness\nHow long ago data last arrived in each table of the catalog."),
    code("fresh = health.freshness(ws, now)\ndisplay(health.freshness_chart(fresh))\n"
         "fresh[[\"table\", \"rows\", \"last_event\", \"arrived\"]]"),
    md("## Volumes\nEvents per day in each raw table, by event date."),
    code("volume = health.volumes(ws, volume_days)\nhealth.volume_chart(volume)"),
    md("## Rejects\nEvents the ingest refused (kept in quarantine) against those it took."),
    code("rejects = health.reject_rates(ws)\ndisplay(health.reject_chart(rejects))\nrejects"),
    md("## Drift\nEach feature's recent values against the training data of the current champion: population "
       "stability index (below 0.1 stable, above 0.2 a large shift)."),
    code("drift = health.feature_drift(ws, [f.strip() for f in drift_features.split(\",\") if f.strip()], drift_at,\n"
         "                             window=drift_window)\ndisplay(health.drift_chart(drift))\ndrift"),
    md("## Jobs\nEach job's newest run."),
    code("jobs = health.job_health(ws)\njobs"),
    md("## Model endpoints"),
    code("endpoints = health.endpoint_health(ws)\nendpoints"),
    md("## Checks and alerts\nThe monitor's checks as it last evaluated them, and the alerts firing now."),
    code("checks = health.check_states(ws)\ndisplay(checks)\nalerts = health.open_alerts(ws)\nalerts"),
    code("summary = {\"tables\": len(fresh), \"volume_rows\": len(volume), \"sources\": rejects.source.tolist(),\n"
         "           \"drift\": {r.feature: r.value for r in drift.itertuples()},\n"
         "           \"jobs\": 0 if isinstance(jobs, str) else len(jobs),\n"
         "           \"endpoints\": str(endpoints) if isinstance(endpoints, str) else len(endpoints),\n"
         "           \"checks\": str(checks) if isinstance(checks, str) else len(checks),\n"
         "           \"alerts\": str(alerts) if isinstance(alerts, str) else len(alerts)}\n"
         "print(\"LAKEBOOK_SUMMARY \" + json.dumps(summary, default=str))"),
])
