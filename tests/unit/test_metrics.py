"""Each service's Prometheus collector, built from known figures and read back through
prometheus_client's own parser: the serving admin app's, the scheduler's (on a real SQLite
run history), the dashboard server's and the Jupyter extension's (on a real inbox). No
server, Ray or process is started."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs_support import add_job, add_notebooks
from lakebook.metrics import counter, exposition, gauge, histogram

UTC = timezone.utc


def scrape(families) -> dict[str, dict[tuple, float]]:
    """``{sample name: {sorted label items: value}}`` of the text the families expose."""
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(exposition(lambda: families).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_the_helpers_expose_counters_gauges_and_histograms_in_the_text_format():
    found = scrape([
        counter("lakebook_x_things", "things", {("a", 200): 3, ("b", 500): None}, ["name", "code"]),
        gauge("lakebook_x_level", "level", 2.5),
        histogram("lakebook_x_seconds", "latency", {"a": ([(0.1, 1), (1.0, 4)], 5, 12.0)}, ["name"]),
    ])
    assert found["lakebook_x_things_total"] == {(("code", "200"), ("name", "a")): 3.0}  # a None value is left out
    assert found["lakebook_x_level"] == {(): 2.5}
    assert found["lakebook_x_seconds_bucket"] == {
        (("le", "0.1"), ("name", "a")): 1.0, (("le", "1"), ("name", "a")): 4.0, (("le", "+Inf"), ("name", "a")): 5.0}
    assert found["lakebook_x_seconds_sum"] == {(("name", "a"),): 12.0}


# -- serving ---------------------------------------------------------------------------------------
def test_the_serving_metrics_hold_each_endpoints_figures_latency_and_model():
    from lakebook.serving.endpoints import ReplicaFigures, merged_latency
    from lakebook.serving.metrics import serving_families

    replicas = [ReplicaFigures(), ReplicaFigures()]
    for ms, status in [(3, 200), (3, 200), (40, 200), (40, 400), (700, 503), (12_000, 200)]:
        replicas[ms > 10].record(status, ms)
    latency = merged_latency(r.snapshot() for r in replicas).counts
    rows = [{"name": "delay", "version": "4", "status": "RUNNING", "replicas": 2, "requests": 6, "errors": 1,
             "rejected": 1, "latency": latency},
            {"name": "idle", "version": None, "status": "NOT DEPLOYED", "replicas": 0, "requests": 0, "errors": 0,
             "rejected": 0}]
    found = scrape(list(serving_families(rows)))
    delay, idle = (("endpoint", "delay"),), (("endpoint", "idle"),)
    assert found["lakebook_serving_endpoints"] == {(): 2}
    assert found["lakebook_serving_requests_total"] == {delay: 6, idle: 0}
    assert found["lakebook_serving_errors_total"][delay] == 1 and found["lakebook_serving_rejected_total"][delay] == 1
    buckets = {dict(k)["le"]: v for k, v in found["lakebook_serving_request_duration_seconds_bucket"].items()
               if dict(k)["endpoint"] == "delay"}
    assert buckets == {"0.005": 2, "0.01": 2, "0.025": 2, "0.05": 4, "0.1": 4, "0.25": 4, "0.5": 4, "1": 5, "2.5": 5,
                       "5": 5, "10": 5, "+Inf": 6}  # 3, 3, 40, 40, 700 ms; 12 s beyond the last bound
    assert found["lakebook_serving_request_duration_seconds_count"][delay] == 6
    assert 11.7 < found["lakebook_serving_request_duration_seconds_sum"][delay] < 14.1  # 12.786 s, within 10 %
    assert found["lakebook_serving_model_version"] == {delay: 4}  # no version: no sample
    assert found["lakebook_serving_endpoint_running"] == {delay: 1, idle: 0}
    assert found["lakebook_serving_replicas"] == {delay: 2, idle: 0}


# -- the scheduler -------------------------------------------------------------------------------
@pytest.fixture
def scheduler(workspace_dir):
    from lakebook.jobs.scheduler import Scheduler
    from lakebook.workspace import Workspace

    add_notebooks(workspace_dir)
    add_job(workspace_dir, "report", "notebook: notebooks/ok.ipynb")
    add_job(workspace_dir, "nightly", "notebook: notebooks/ok.ipynb")
    add_job(workspace_dir, "broken", "notebook: notebooks/ok.ipynb\ncatchup: never")
    scheduler = Scheduler(Workspace.load(workspace_dir))
    scheduler._reload()
    yield scheduler
    scheduler.store.close()


def test_the_scheduler_metrics_count_runs_by_job_and_status_from_the_history(scheduler):
    from lakebook.jobs.metrics import scheduler_families

    now = datetime.now(UTC)
    report, nightly = scheduler.jobs.jobs["report"], scheduler.jobs.jobs["nightly"]
    done, failed, running = scheduler.store.enqueue(report, "cron", [now - timedelta(hours=h) for h in (3, 2, 1)])
    for run_id, status in [(done, "succeeded"), (failed, "failed"), (running, None)]:
        scheduler.store.claim(run_id)
        if status:
            scheduler.store.finish_attempt(run_id, status, None)
    scheduler.store.enqueue(nightly, "cron", [now - timedelta(hours=1), now])  # one late, one just due
    scheduler.leader, scheduler.round_at = True, now

    found = scrape(list(scheduler_families(scheduler)))
    assert found["lakebook_jobs_runs_finished_total"] == {
        (("job", "report"), ("status", "failed")): 1, (("job", "report"), ("status", "succeeded")): 1}
    assert found["lakebook_jobs_runs_running"] == {(("job", "nightly"),): 0, (("job", "report"),): 1}
    assert found["lakebook_jobs_runs_queued"] == {(("job", "nightly"),): 2, (("job", "report"),): 0}
    assert found["lakebook_jobs_runs_late"] == {(("job", "nightly"),): 1, (("job", "report"),): 0}
    assert found["lakebook_jobs_scheduler_leader"] == {(): 1}
    assert found["lakebook_jobs_scheduler_last_round_timestamp_seconds"] == {(): pytest.approx(now.timestamp())}
    assert found["lakebook_jobs_defined"] == {(): 2} and found["lakebook_jobs_definition_problems"] == {(): 1}


def test_the_scheduler_status_app_serves_its_metrics(scheduler):
    from starlette.testclient import TestClient

    from lakebook.jobs.scheduler import create_status_app

    answer = TestClient(create_status_app(scheduler), base_url="http://127.0.0.1").get("/metrics")
    found = {s.name: s.value for f in text_string_to_metric_families(answer.text) for s in f.samples}
    assert answer.status_code == 200
    assert found["lakebook_jobs_scheduler_leader"] == 0  # no round yet: not the leader, no last round
    assert "lakebook_jobs_scheduler_last_round_timestamp_seconds" not in found


# -- the dashboard server ------------------------------------------------------------------------
def test_the_dashboard_metrics_count_kernels_pools_pages_and_answers():
    from lakebook.dashboards.metrics import DashboardFigures, dashboard_families, route_kind

    figures = DashboardFigures()
    for path, status in [("d/delays", 302), ("voila/render/notebooks/delays.ipynb", 200),
                         ("voila/render/notebooks/delays.ipynb", 200), ("voila/render/notebooks/secret.ipynb", 403),
                         ("api/kernels/0f8c7d1e-1111-2222-3333-444455556666/channels", 101), ("tree", 403),
                         ("voila/static/voila.js", 200)]:
        figures.record(path, status)
    published = {"delays": "notebooks/delays.ipynb", "weather": "notebooks/weather.ipynb"}
    kernels = {"k1": "notebooks/delays.ipynb", "k2": "notebooks/delays.ipynb", "k3": None}
    found = scrape(list(dashboard_families(published, kernels, {"delays": 1, "weather": 2}, figures)))

    assert found["lakebook_dashboards_published"] == {(): 2}
    assert found["lakebook_dashboards_kernels_running"] == {(): 3}
    assert found["lakebook_dashboards_kernels"] == {(("dashboard", "delays"),): 2, (("dashboard", "weather"),): 0}
    assert found["lakebook_dashboards_pool_kernels"] == {(("dashboard", "delays"),): 1, (("dashboard", "weather"),): 2}
    assert found["lakebook_dashboards_pages_rendered_total"] == {(("dashboard", "delays"),): 2,
                                                                 (("dashboard", "weather"),): 0}
    assert found["lakebook_dashboards_http_responses_total"] == {
        (("code", "302"), ("route", "page")): 1, (("code", "200"), ("route", "page")): 2,
        (("code", "403"), ("route", "page")): 1, (("code", "101"), ("route", "kernel")): 1,
        (("code", "403"), ("route", "other")): 1, (("code", "200"), ("route", "asset")): 1}
    assert [route_kind(p) for p in ("snapshots/delays/3", "metrics", "lakebook/health")] == ["snapshot", "lakebook",
                                                                                             "lakebook"]


def test_the_dashboard_server_answers_metrics_without_asking_for_a_user():
    import tornado.web
    from jupyter_server.base.handlers import JupyterHandler

    from lakebook.dashboards.server import dashboard_handlers

    handler = dict(dashboard_handlers())["/metrics"]
    # a plain tornado handler: the identity provider (share tokens, 403 otherwise) is not asked
    assert issubclass(handler, tornado.web.RequestHandler) and not issubclass(handler, JupyterHandler)


# -- the Jupyter server extension -----------------------------------------------------------------
def test_the_lab_collector_reports_the_unread_alerts_of_its_workspace(workspace_dir):
    from lakebook.alerts import Alert, Inbox
    from lakebook.server.alerts import AlertsAPI
    from lakebook.server.metrics import LabCollector
    from lakebook.workspace import Workspace

    ws = Workspace.load(workspace_dir)
    with Inbox(ws) as inbox:
        for n in range(3):
            inbox.add("lab", Alert(title=f"t{n}", text="", severity="warning", labels={}, status="firing"), keep=10)
        inbox.mark_read(1)
    collector = LabCollector()
    collector.alerts = AlertsAPI(lambda: ws)
    assert scrape(list(collector.collect())) == {"lakebook_lab_workspace_ok": {(): 1},
                                                 "lakebook_lab_alerts_unread": {(): 2}}


def test_the_lab_collector_still_answers_when_the_workspace_is_missing(tmp_path):
    from lakebook.server.alerts import AlertsAPI
    from lakebook.server.metrics import LabCollector
    from lakebook.workspace import Workspace

    collector = LabCollector()
    collector.alerts = AlertsAPI(lambda: Workspace.load(tmp_path))  # no lakebook.yaml there
    assert scrape(list(collector.collect())) == {"lakebook_lab_workspace_ok": {(): 0}}
