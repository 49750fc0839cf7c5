"""The parts of the model endpoints that need no Ray: settings -> Serve options, who may call,
the predictor swap, batches split per predictor, figures and their percentiles, the endpoints
deployed ad hoc, the admin API's request check and the service's registration."""

from __future__ import annotations

import threading

import pytest
from pydantic import SecretStr
from starlette.requests import Request

from lakebook import services
from lakebook.config import EndpointSettings
from lakebook.errors import Backpressure, BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from lakebook.serving.endpoints import (
    Current, LatencyHistogram, ReplicaFigures, adhoc_endpoints, aggregate, all_endpoints, authorize,
    deployment_options, forget_adhoc, predict_grouped, remember_adhoc, require_known, token_bytes, user_config,
)
from lakebook.serving.server import adhoc_request
from lakebook.workspace import Workspace

MODEL = "models:/flight_delay@champion"


def request(authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers})


# -- settings -> Serve ---------------------------------------------------------------------------
def test_fixed_replicas_become_num_replicas_with_room_for_a_full_batch():
    options = deployment_options(EndpointSettings(model=MODEL, replicas=3, max_batch_size=16), access_log=False)
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options
    assert options["max_ongoing_requests"] == 32
    assert options["ray_actor_options"]["num_cpus"] < 1
    assert options["graceful_shutdown_wait_loop_s"] < 1  # a delete or stop waits for requests, not 2 s more


def test_autoscaling_replaces_num_replicas():
    settings = EndpointSettings.model_validate(
        {"model": MODEL, "autoscaling": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3}})
    options = deployment_options(settings, access_log=False)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3.0}


@pytest.mark.parametrize("config, access_log", [("", False), ("  access_log: true\n", True)])
def test_serves_access_log_follows_the_setting_and_is_off_by_default(workspace_dir, config, access_log):
    (workspace_dir / "lakebook.yaml").write_text(f"name: test\nserving:\n  poll_interval_s: 5\n{config}")
    setting = Workspace.load(workspace_dir).settings.serving.access_log
    options = deployment_options(EndpointSettings(model=MODEL), setting)
    assert setting is access_log and options["logging_config"] == {"enable_access_log": access_log}


def test_the_user_config_holds_only_the_model_version():
    assert user_config("models:/flight_delay/3") == {"model_uri": "models:/flight_delay/3"}


# -- who may call ----------------------------------------------------------------------------------
TOKENS = token_bytes({"delay": [SecretStr("t-delay")], "*": [SecretStr("t-all")], "other": [SecretStr("t-other")]})


def test_without_any_serving_token_an_endpoint_is_open():
    authorize(request(), {}, "delay")
    authorize(request(), {"delay": []}, "delay")


def test_no_bearer_token_is_401():
    with pytest.raises(Unauthorized) as info:
        authorize(request(), TOKENS, "delay")
    assert info.value.http_status == 401
    with pytest.raises(Unauthorized):
        authorize(request("Basic dXNlcg=="), TOKENS, "delay")


@pytest.mark.parametrize("token", ["t-other", "wrong", "t-delay-but-longer"])
def test_a_token_not_valid_for_this_endpoint_is_403(token):
    with pytest.raises(Forbidden) as info:
        authorize(request(f"Bearer {token}"), TOKENS, "delay")
    assert info.value.http_status == 403 and token not in str(info.value)


@pytest.mark.parametrize("token", ["t-delay", "t-all"])
def test_the_endpoints_own_token_or_a_star_token_passes(token):
    authorize(request(f"Bearer {token}"), TOKENS, "delay")


# -- the predictor swap ------------------------------------------------------------------------------
class Closable:
    def __init__(self, name):
        self.name, self.closed = name, 0

    def close(self):
        self.closed += 1


def test_nothing_loaded_is_503_retry_later():
    with pytest.raises(Backpressure):
        with Current(close=Closable.close).use():
            pass


def test_an_idle_predictor_is_closed_at_the_swap():
    current = Current(close=Closable.close)
    old, new = Closable("v1"), Closable("v2")
    current.swap(old)
    current.swap(new)
    assert old.closed == 1 and new.closed == 0 and current.value is new


def test_a_predictor_in_use_is_closed_only_after_its_last_request():
    current = Current(close=Closable.close)
    old, new = Closable("v1"), Closable("v2")
    current.swap(old)
    with current.use() as first:
        with current.use() as second:
            current.swap(new)
            assert first is second is old and old.closed == 0
            with current.use() as third:
                assert third is new
        assert old.closed == 0
    assert old.closed == 1 and new.closed == 0


def test_concurrent_requests_and_swaps_close_every_replaced_predictor_once():
    current = Current(close=Closable.close)
    made = [Closable(f"v{i}") for i in range(50)]
    current.swap(made[0])

    def requests():
        for _ in range(500):
            with current.use() as predictor:
                assert predictor.closed == 0

    threads = [threading.Thread(target=requests) for _ in range(4)]
    for thread in threads:
        thread.start()
    for predictor in made[1:]:
        current.swap(predictor)
    for thread in threads:
        thread.join()
    assert [p.closed for p in made] == [1] * 49 + [0]


class Doubling:
    def __init__(self):
        self.calls = []

    def predict(self, rows):
        self.calls.append(len(rows))
        return [{"x": row["x"] * 2, "by": id(self)} for row in rows]


def test_a_batch_is_one_model_call_per_predictor_and_answers_go_back_in_order():
    a, b = Doubling(), Doubling()
    requests = [[{"x": 1}, {"x": 2}], [{"x": 3}], [{"x": 4}, {"x": 5}, {"x": 6}]]
    answers = predict_grouped([a, b, a], requests)
    assert [[r["x"] for r in answer] for answer in answers] == [[2, 4], [6], [8, 10, 12]]
    assert [{r["by"] for r in answer} for answer in answers] == [{id(a)}, {id(b)}, {id(a)}]
    assert a.calls == [5] and b.calls == [1]


# -- figures ------------------------------------------------------------------------------------------
def test_percentiles_are_read_within_five_percent():
    histogram = LatencyHistogram()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms, uniformly
        histogram.record(float(ms))
    assert histogram.percentile(50) == pytest.approx(500, rel=0.05)
    assert histogram.percentile(99) == pytest.approx(990, rel=0.05)
    assert LatencyHistogram().percentile(50) is None


def test_extreme_latencies_land_in_the_end_buckets():
    histogram = LatencyHistogram()
    histogram.record(0.0)
    histogram.record(10_000_000.0)
    assert histogram.counts[0] == 1 and histogram.counts[-1] == 1


def test_an_endpoints_figures_add_its_replicas_up():
    fast, slow = ReplicaFigures(), ReplicaFigures()
    for _ in range(90):
        fast.record(200, 2.0)
    for status in (200,) * 8 + (422, 500):
        slow.record(status, 200.0)
    total = aggregate([fast.snapshot(), slow.snapshot()])
    assert (total["requests"], total["errors"], total["rejected"]) == (100, 1, 1)
    assert total["p50_ms"] == pytest.approx(2.0, rel=0.05)
    assert total["p95_ms"] == pytest.approx(200.0, rel=0.05)  # 10 of 100 requests took 200 ms
    assert total["p99_ms"] == pytest.approx(200.0, rel=0.05)
    assert aggregate([]) == {"requests": 0, "errors": 0, "rejected": 0, "p50_ms": None, "p95_ms": None,
                             "p99_ms": None}


# -- endpoints deployed ad hoc -----------------------------------------------------------------------
def test_ad_hoc_endpoints_are_remembered_beside_the_declared_ones(workspace_dir):
    (workspace_dir / "lakebook.yaml").write_text(f"name: t\nserving:\n  endpoints:\n    delay: {{model: '{MODEL}'}}\n")
    ws = Workspace.load(workspace_dir)
    remember_adhoc(ws, "trial", EndpointSettings(model="models:/flight_delay/2", replicas=2))
    again = Workspace.load(workspace_dir)  # as a restarted service reads them
    assert adhoc_endpoints(again)["trial"] == EndpointSettings(model="models:/flight_delay/2", replicas=2)
    assert sorted(all_endpoints(again)) == ["delay", "trial"]
    assert ws.serving_endpoints_path.parent == ws.state_dir / "serving"
    with pytest.raises(Conflict, match="declared in lakebook.yaml"):
        remember_adhoc(ws, "delay", EndpointSettings(model=MODEL))
    forget_adhoc(ws, "trial")
    assert adhoc_endpoints(Workspace.load(workspace_dir)) == {}


def test_an_unknown_endpoint_is_named_with_the_closest_one():
    with pytest.raises(NotFound, match="no endpoint 'dealy'") as info:
        require_known("dealy", ["delay", "trial"])
    assert info.value.http_status == 404 and "did you mean 'delay'?" in info.value.hint


@pytest.mark.parametrize("body, wrong", [
    (b'{"name": "delay", "model": "flight_delay"}', "model"),
    (b'{"name": "Not A Name", "model": "models:/flight_delay@champion"}', "Not A Name"),
    (b'{"model": "models:/flight_delay@champion"}', "name"),
    (b'{"name": "delay", "model": "models:/flight_delay/1", "replica": 2}', "replica"),
    (b'not json', "not an endpoint"),
])
def test_a_bad_deploy_request_is_a_400_with_what_to_send(body, wrong):
    with pytest.raises(BadRequest, match="not an endpoint") as info:
        adhoc_request(body)
    assert wrong in str(info.value) and "models:/flight_delay@champion" in info.value.hint


def test_a_deploy_request_becomes_endpoint_settings():
    name, settings = adhoc_request(b'{"name": "delay", "model": "models:/flight_delay/1", "replicas": 2}')
    assert name == "delay" and settings == EndpointSettings(model="models:/flight_delay/1", replicas=2)


# -- the service --------------------------------------------------------------------------------------
def test_the_serving_service_runs_when_endpoints_are_declared_and_keeps_secrets(workspace_dir):
    spec = services.service("serve")
    assert spec.secrets and spec.depends_on == ("ingest", "ray") and spec.health_path == "/health"
    ws = Workspace.load(workspace_dir)
    assert "serve" not in services.enabled_services(ws)
    assert spec.command(ws, services.Launch(9999))[-4:] == ["serve", "start", "--admin-port", "9999"]
    (workspace_dir / "lakebook.yaml").write_text(f"name: t\nserving:\n  endpoints:\n    delay: {{model: '{MODEL}'}}\n")
    declared = Workspace.load(workspace_dir)
    assert "serve" in services.enabled_services(declared) and spec.default_port(declared) == 8791


def test_a_non_loopback_host_without_tokens_is_refused_before_ray_starts(workspace_dir, monkeypatch):
    from lakebook.errors import ConfigError
    from lakebook.serving.server import serve_endpoints
    from lakebook.stream import server as stream_server

    started = []
    monkeypatch.setattr(stream_server, "connect_ray", lambda *args: started.append(args))
    (workspace_dir / "lakebook.yaml").write_text("name: t\nserving:\n  host: 0.0.0.0\n")
    with pytest.raises(ConfigError, match="refusing to serve model endpoints on 0.0.0.0") as info:
        serve_endpoints(Workspace.load(workspace_dir))
    assert "LAKEBOOK_SERVING__TOKENS" in info.value.hint
    assert started == []


@pytest.mark.parametrize("command", [["list"], ["status", "--json"], ["deploy", MODEL, "--name", "delay"],
                                     ["delete", "delay"], ["logs", "delay"]])
def test_serve_commands_say_how_to_start_the_service_when_it_is_not_running(workspace_dir, command):
    from click.testing import CliRunner

    from lakebook.cli import cli
    from lakebook.errors import ServiceError

    result = CliRunner().invoke(cli, ["-w", str(workspace_dir), "serve", *command])
    assert isinstance(result.exception, ServiceError), result.output
    assert "not running" in result.exception.message
    assert result.exception.hint == "lakebook serve start or lakebook up"


def test_serve_logs_reads_the_newest_ray_session_holding_the_endpoints_replica_logs(workspace_dir):
    """From the session folders of the workspace's Ray temp dir (Ray's layout), with no Ray
    connection: a session of another runtime in the folder, started later, has none of them."""
    from lakebook.serving.server import Controller, Deployed
    from lakebook.stream.ray_node import session_root

    ws = Workspace.load(workspace_dir)
    sessions = session_root(ws)
    for session, replica, line in (("session_2026-01-01_10-00-00_000001_11", "aaa", "POST /delay/predict 500"),
                                   ("session_2026-01-02_10-00-00_000001_22", "bbb", "POST /delay/predict 200"),
                                   ("session_2026-01-02_11-00-00_000001_33", None, None)):
        (sessions / session / "logs" / "serve").mkdir(parents=True)
        if replica:
            (sessions / session / "logs" / "serve" / f"replica_delay_endpoint_{replica}.log").write_text(f"x\n{line}\n")
    controller = Controller(ws, figures=None)
    controller.endpoints["delay"] = Deployed(EndpointSettings(model=MODEL))
    assert controller.logs("delay", 1) == "==> replica_delay_endpoint_bbb.log <==\nPOST /delay/predict 200"
    controller.endpoints["other"] = Deployed(EndpointSettings(model=MODEL))
    assert controller.logs("other", 5) == f"no replica log of 'other' under {sessions}/session_*/logs/serve/\n"


def test_serve_logs_on_a_cluster_say_where_the_replica_logs_are(workspace_dir):
    from lakebook.serving.server import Controller, Deployed

    (workspace_dir / "lakebook.yaml").write_text("name: t\nserving:\n  ray_address: 10.0.0.5:6379\n")
    controller = Controller(Workspace.load(workspace_dir), figures=None)
    controller.endpoints["delay"] = Deployed(EndpointSettings(model=MODEL))
    shown = controller.logs("delay", 5)
    assert "the endpoints run on the Ray cluster at 10.0.0.5:6379" in shown
    assert "session_latest/logs/serve/replica_delay_endpoint_*.log" in shown
