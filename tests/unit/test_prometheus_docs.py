"""The Prometheus files in docs/prometheus stay true: every metric the example rules name is
one a lakebook service exports (the names are collected from the services' collectors, so a
renamed metric fails here), and every scrape target is a service's default port and path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from jobs_support import add_job, add_notebooks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus"
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"],
            "summary": ["", "_sum", "_count"], "info": ["_info"]}


def _sample_names(text: bytes) -> set[str]:
    """The sample names a scrape of ``text`` yields (a family without samples counts too)."""
    return {f.name + suffix for f in text_string_to_metric_families(text.decode()) for suffix in SUFFIXES[f.type]}


@pytest.fixture
def exported(workspace_dir) -> set[str]:
    """The sample names every lakebook service exposes, from its own collector."""
    from lakebook.dashboards.metrics import DashboardFigures, dashboard_families
    from lakebook.ingest.mqtt import MqttInlet
    from lakebook.ingest.service import IngestService
    from lakebook.jobs.metrics import scheduler_families
    from lakebook.jobs.scheduler import Scheduler
    from lakebook.metrics import exposition
    from lakebook.monitor.metrics import monitor_families
    from lakebook.monitor.service import MonitorLoop
    from lakebook.server.metrics import LabCollector
    from lakebook.serving.metrics import serving_families
    from lakebook.stream.metrics import exposition as stream_exposition
    from lakebook.workspace import Workspace

    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + "\ningest:\n  mqtt: {url: 'mqtt://127.0.0.1:1883'}\n")
    add_notebooks(workspace_dir)
    add_job(workspace_dir, "report", "notebook: notebooks/ok.ipynb")
    ws = Workspace.load(workspace_dir, environ={})
    ingest = IngestService(ws, fork=False, flush_interval_s=60)
    scheduler = Scheduler(ws)
    monitor = MonitorLoop(ws)
    monitor.round()  # the contracts' default checks, evaluated on the empty lake
    try:
        texts = [ingest.metrics_text(), MqttInlet(ingest, ws.settings.ingest.mqtt, "unit").metrics_text(),
                 stream_exposition({"group": "stream", "sources": {}, "views": {}}),
                 exposition(lambda: serving_families([])),
                 exposition(lambda: scheduler_families(scheduler)),
                 exposition(lambda: dashboard_families({}, {}, {}, DashboardFigures())),
                 exposition(LabCollector().collect), exposition(lambda: monitor_families(monitor))]
    finally:
        scheduler.store.close()
        ingest.stop()
    return set().union(*map(_sample_names, texts))


def _rules() -> list[dict]:
    groups = yaml.safe_load((DOCS / "lakebook-rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_metric_the_example_rules_name_is_exported(exported):
    rules = _rules()
    assert {"LakebookServiceDown", "LakebookIngestRejectRateHigh", "LakebookStreamLagHigh",
            "LakebookEndpointLatencyHigh", "LakebookEndpointErrorRateHigh", "LakebookJobFailed"} <= {r["alert"] for r in rules}
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule.get("alert")
        assert rule["labels"]["severity"] in ("warning", "critical")
        named = set(re.findall(r"\blakebook_[a-z0-9_]+", rule["expr"]))
        assert named or rule["expr"].startswith("up{"), f"{rule['alert']} names no lakebook metric"
        assert not named - exported, f"{rule['alert']} names metrics no service exports: {sorted(named - exported)}"


def test_every_exported_metric_is_named_lakebook(exported):
    assert exported and all(name.startswith("lakebook_") for name in exported)


def test_every_scrape_target_is_a_services_default_port_and_path():
    from lakebook import config as settings

    services = {  # scrape job -> (settings section, port field)
        "lakebook-ingest": (settings.IngestSettings, "port"), "lakebook-mqtt": (settings.MqttSettings, "health_port"),
        "lakebook-stream": (settings.StreamSettings, "port"), "lakebook-serving": (settings.ServingSettings, "admin_port"),
        "lakebook-jobs": (settings.JobsSettings, "port"), "lakebook-dashboards": (settings.DashboardsSettings, "port"),
        "lakebook-monitor": (settings.MonitorSettings, "port"), "lakebook-lab": (settings.LabSettings, "port"),
    }
    config = yaml.safe_load((DOCS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["lakebook-rules.yml"]
    found = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(found) == set(services)
    for name, (section, field) in services.items():
        targets = [t for c in found[name]["static_configs"] for t in c["targets"]]
        assert targets == [f"127.0.0.1:{section.model_fields[field].default}"], name
        assert found[name]["metrics_path"] == "/metrics"
