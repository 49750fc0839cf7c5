"""Model endpoints on a real Ray Serve: the session's Ray runtime with Serve's proxy on a free
loopback port, real HTTP, the champion the example notebook trained and a second version
trained with lakebook.ml, both in a real MLflow registry, their features from Feast's online
store. The controller runs in the test process as the serving
service runs it; the tests that only send requests share one deployment of the champion (a
class), each other test deploys and deletes its own."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import httpx
import psutil
import pytest

from serving_support import OTHER_TOKEN, STAR_TOKEN, TOKEN
from test_predictor import flights as request_rows
from test_stream import wait_until
from workspace_templates import private_copy
from lakebook import ml
from lakebook.config import EndpointSettings
from lakebook.services import free_port

pytestmark = pytest.mark.integration
CHAMPION = "models:/flight_delay@champion"


@pytest.fixture(scope="module")
def serving_ws(serving_template, tmp_path_factory):
    """The module's copy of the session's serving template (a test promotes in its registry)."""
    return private_copy(serving_template, tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="session")
def serve_proxy(ray_runtime):
    """Ray Serve on the session's Ray runtime, its proxy on a free loopback port."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="module")
def figures(serve_proxy):
    """The replicas' figures actor, held for the module (an actor lives while someone holds it)."""
    from lakebook.serving.app import figures_actor

    return figures_actor()


@pytest.fixture
def controller(serving_ws, figures):
    """The serving service's controller in this process; the test's endpoints deleted after it."""
    from lakebook.serving.server import Controller

    made = Controller(serving_ws, figures)
    yield made
    made.delete_all()


@pytest.fixture(scope="class")
def champion_endpoint(serving_ws, figures):
    """The champion deployed once as ``delay`` (one replica) for the tests of a class that only
    send it requests (a deployment takes seconds); the deploy's answer row and the controller.
    Deleted after the class's last test."""
    from lakebook.serving.server import Controller

    made = Controller(serving_ws, figures)
    row = made.deploy("delay", EndpointSettings(model=CHAMPION))
    yield made, row
    made.delete_all()


def client(serve_proxy, token: str | None = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=serve_proxy, timeout=60,
                        headers={"Authorization": f"Bearer {token}"} if token else {})


# -- answers: one deployment of the champion, which these tests only send requests to -------------------
class TestTheChampionsEndpoint:
    """Answers, docs, refusals and the dashboard's form, from one deployment of the champion."""

    def test_one_object_gets_one_answer_and_a_list_gets_a_list_with_the_model_version(self, champion_endpoint,
                                                                                      serve_proxy):
        controller, row = champion_endpoint
        ws = controller.workspace
        assert (row["uri"], row["version"], row["status"]) == ("models:/flight_delay/1", "1", "RUNNING")
        rows = request_rows(ws, 5)
        with client(serve_proxy) as http:
            one = http.post("/delay/predict", json=rows[0])
            assert one.status_code == 200, one.text
            answer = one.json()
            assert one.headers["x-lakebook-model-version"] == "1"
            assert answer["model"] == "flight_delay" and answer["version"] == "1" and 0 < answer["p_late"] < 1
            assert set(answer["feature_age_s"]) == {"origin_delays", "origin_weather", "carrier_daily", "plane_stats"}
            listed = http.post("/delay/predict", json=rows).json()
            assert [a["version"] for a in listed] == ["1"] * 5 and len({a["request_id"] for a in listed}) == 5
            assert listed[0]["p_late"] == pytest.approx(answer["p_late"])  # the same flight, the same answer
            assert http.get("/delay/health").json()["model"] == "models:/flight_delay/1"

    def test_the_docs_show_the_models_request_schema(self, champion_endpoint, serve_proxy):
        with client(serve_proxy, token=None) as http:
            document = http.get("/delay/openapi.json").json()
            docs = http.get("/delay/docs")
        schema = document["components"]["schemas"]["PredictionRequest"]
        assert {"origin", "carrier", "tailnum", "distance"} <= set(schema["required"])
        assert schema["properties"]["distance"]["type"] == "number"
        body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["oneOf"][1] == {"type": "array", "items": {"$ref": "#/components/schemas/PredictionRequest"}}
        assert docs.status_code == 200 and "/delay/openapi.json" in docs.text  # Swagger UI under the prefix

    def test_a_bad_request_is_422_with_a_reason_per_field_and_bad_json_is_400(self, champion_endpoint, serve_proxy):
        controller, _ = champion_endpoint
        good = request_rows(controller.workspace, 1)[0]
        with client(serve_proxy) as http:
            answer = http.post("/delay/predict", json=[good, {**good, "distance": "far"}, {"origin": "JFK"}])
            assert answer.status_code == 422
            details = answer.json()["error"]["details"]
            locs = {tuple(d["loc"]) for d in details}
            assert (1, "distance") in locs and (2, "carrier") in locs and (2, "tailnum") in locs
            assert not [loc for loc in locs if loc[0] == 0]  # the good object is not blamed
            broken = http.post("/delay/predict", content=b"{not json", headers={"content-type": "application/json"})
            assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
            assert http.post("/delay/predict", json=good).status_code == 200  # the endpoint keeps answering

    def test_no_token_is_401_and_a_token_of_another_endpoint_is_403(self, champion_endpoint, serve_proxy):
        controller, _ = champion_endpoint
        good = request_rows(controller.workspace, 1)[0]
        with client(serve_proxy, token=None) as http:
            missing = http.post("/delay/predict", json=good)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        with client(serve_proxy, token=OTHER_TOKEN) as http:
            wrong = http.post("/delay/predict", json=good)
        assert wrong.status_code == 403 and OTHER_TOKEN not in wrong.text
        for token in (TOKEN, STAR_TOKEN):
            with client(serve_proxy, token=token) as http:
                assert http.post("/delay/predict", json=good).status_code == 200

    def test_the_example_dashboards_what_if_form_gets_p_late_and_the_version(self, champion_endpoint, serve_proxy):
        from datetime import datetime

        from lakebook.dashboards.example import DelayDashboard, Filters, predict, probe, what_if_request
        from lakebook.errors import Unauthorized

        controller, _ = champion_endpoint
        url = f"{serve_proxy}/delay"
        assert probe(url, "delay") == "models:/flight_delay/1"
        request = what_if_request("JFK", "B6", "BOS", "N625JB", datetime(2013, 12, 3, 9), 187)
        answer = predict(url, TOKEN, request)
        assert answer["version"] == "1" and 0 < answer["p_late"] < 1
        with pytest.raises(Unauthorized) as refused:
            predict(url, None, request)
        assert TOKEN not in str(refused.value)
        form = DelayDashboard(controller.workspace, Filters(), "delay").what_if(url=url)  # the token from the settings
        form.children[4].click()
        assert "model flight_delay version 1" in form.children[5].value and "p_late" in form.children[5].value
        assert TOKEN not in repr(form) and TOKEN not in form.children[5].value


# -- promotion and a killed replica -----------------------------------------------------------------
def replica_pids(endpoint: str) -> set[int]:
    """The worker processes of the endpoint's replicas (Ray titles them ray::ServeReplica:<app>:...)."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(f"ServeReplica:{endpoint}:" in part for part in process.info["cmdline"] or []):
            found.add(process.info["pid"])
    return found


class SteadyRequests:
    """Requests sent one after another from a thread, each answer's status and version kept."""

    def __init__(self, base_url: str, body: dict, retries: int = 0):
        self.base_url, self.body, self.retries = base_url, body, retries
        self.answers: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)

    def _run(self):
        with client(self.base_url) as http:
            while not self._stop.is_set():
                self.answers.append(self._one(http))

    def _one(self, http) -> tuple[int, str | None]:
        for attempt in range(self.retries + 1):
            try:
                answer = http.post("/delay/predict", json=self.body)
                if answer.status_code == 200 or attempt == self.retries:
                    return answer.status_code, answer.json().get("version")
            except httpx.TransportError:
                if attempt == self.retries:
                    return 599, None
            time.sleep(0.5)
        return 599, None  # unreachable: the last attempt returns

    def versions(self) -> list[str | None]:
        return [version for _, version in self.answers]


def test_a_promotion_under_steady_requests_costs_no_request_and_no_replica_restart(controller, serve_proxy):
    ws = controller.workspace
    controller.deploy("delay", EndpointSettings(model=CHAMPION))
    before = replica_pids("delay")
    with client(serve_proxy, token=None) as http:
        replica = http.get("/delay/health").json()
    stop = threading.Event()
    follower = threading.Thread(target=controller.follow_forever, args=(stop,), daemon=True)
    follower.start()
    try:
        with SteadyRequests(serve_proxy, request_rows(ws, 1)[0]) as steady:
            wait_until(lambda: len(steady.answers) >= 20, 60, "requests before the promotion")
            ml.promote(ws, "flight_delay", "2")
            wait_until(lambda: "2" in steady.versions(), 120, "answers from version 2")
            seen = len(steady.answers)
            wait_until(lambda: len(steady.answers) >= seen + 20, 60, "requests after the promotion")
    finally:
        stop.set()
        follower.join()
        ml.promote(ws, "flight_delay", "1")  # the module's other tests expect v1 as champion
    statuses = {status for status, _ in steady.answers}
    versions = steady.versions()
    assert statuses == {200}, [a for a in steady.answers if a[0] != 200][:5]
    switch = versions.index("2")
    assert switch > 0 and set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}
    assert replica_pids("delay") == before and len(before) == 1  # reconfigured in place, not restarted
    with client(serve_proxy, token=None) as http:
        assert http.get("/delay/health").json()["model"] == "models:/flight_delay/2"
    row = next(r for r in controller.status() if r["name"] == "delay")
    assert row["version"] == "2" and row["uri"] == "models:/flight_delay/2"
    assert replica["model"] == "models:/flight_delay/1"


def test_a_killed_replica_is_restarted_and_requests_keep_succeeding(controller, serve_proxy):
    controller.deploy("delay", EndpointSettings(model=CHAMPION, replicas=2))
    wait_until(lambda: len(replica_pids("delay")) == 2, 60, "two replica processes")
    victim = sorted(replica_pids("delay"))[0]
    with SteadyRequests(serve_proxy, request_rows(controller.workspace, 1)[0], retries=6) as steady:
        wait_until(lambda: len(steady.answers) >= 10, 60, "requests before the kill")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(replica_pids("delay") - {victim}) == 2, 180, "a new replica in place of the killed one")
        seen = len(steady.answers)
        wait_until(lambda: len(steady.answers) >= seen + 10, 60, "requests after the restart")
    assert {status for status, _ in steady.answers} == {200}, [a for a in steady.answers if a[0] != 200][:5]
    assert victim not in replica_pids("delay")
    wait_until(lambda: next(r for r in controller.status() if r["name"] == "delay")["status"] == "RUNNING", 60,
               "the application running again")


def test_the_figures_count_requests_errors_and_latency_per_endpoint(controller, serve_proxy):
    controller.deploy("delay", EndpointSettings(model=CHAMPION))
    good = request_rows(controller.workspace, 1)[0]
    with client(serve_proxy) as http:
        for _ in range(10):
            assert http.post("/delay/predict", json=good).status_code == 200
        assert http.post("/delay/predict", json={"origin": "JFK"}).status_code == 422

    def row():
        return next(r for r in controller.status() if r["name"] == "delay")

    wait_until(lambda: row()["requests"] == 11, 30, "the replica's report")
    figures = row()
    assert (figures["errors"], figures["rejected"]) == (0, 1)
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] < 60_000


# -- the monitor's latency check, tripped by a slowed replica ----------------------------------------
class AdminAPI:
    """The serving service's admin API over the module's controller, served by uvicorn in a thread
    on a free loopback port and recorded as ``workspace``'s running serving service (this
    process), as ``lakebook serve start`` records itself."""

    def __init__(self, controller, workspace):
        import json

        import uvicorn

        from lakebook.serving.server import create_admin_app, state_path

        self.port = free_port()
        config = uvicorn.Config(create_admin_app(controller, workspace), host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "the admin API")
        state_path(workspace).parent.mkdir(parents=True, exist_ok=True)
        state_path(workspace).write_text(json.dumps({"pid": os.getpid(), "admin_port": self.port}))

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)


def slowed(pid: int, stop: threading.Event, paused_s: float = 0.5, running_s: float = 0.02) -> None:
    """Pause the process (SIGSTOP) for ``paused_s`` in every ``paused_s + running_s`` until
    ``stop``; it is always left running (SIGCONT). A replica times a request from when its event
    loop takes it up, so the waits that count are the pauses that fall inside a request: the
    short runs end while the requests that queued during the pause are being answered."""
    try:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(paused_s)
            os.kill(pid, signal.SIGCONT)
            time.sleep(running_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_a_slowed_replica_fires_the_monitors_latency_check_and_normal_requests_resolve_it(
        controller, serve_proxy, tmp_path):
    from lakebook.alerts.receiver import WebhookReceiver
    from lakebook.monitor.engine import evaluate
    from lakebook.workspace import Workspace

    receiver = WebhookReceiver()
    (tmp_path / "monitors").mkdir()
    (tmp_path / "monitors" / "checks.yaml").write_text(
        "checks:\n  - {name: delay_slow, check: endpoint_latency(delay), fail: '> 300ms', for: 0}\n")
    # the module's workspace with this test's own state (catalog, alerts, the service's record)
    ws = Workspace.load(controller.workspace.root, environ={
        **os.environ, "LAKEBOOK_STATE_DIR": str(tmp_path / "state"),
        "LAKEBOOK_MONITOR__DIR": str(tmp_path / "monitors"), "LAKEBOOK_MONITOR__DEFAULTS": "false",
        "LAKEBOOK_ALERTS__CHANNELS": f"{{hook: {{type: webhook, url: '{receiver.url}', timeout_s: 5}}}}"})
    controller.deploy("delay", EndpointSettings(model=CHAMPION))
    [replica] = replica_pids("delay")
    body = request_rows(controller.workspace, 1)[0]
    admin = AdminAPI(controller, ws)
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        with client(serve_proxy) as http:
            for _ in range(count):
                assert http.post("/delay/predict", json=body).status_code == 200
        sent += count
        wait_until(lambda: next(r for r in controller.status() if r["name"] == "delay")["requests"] == sent, 30,
                   f"the replica's report of {sent} requests")

    def check():
        [(_, result, state)] = evaluate(ws, ["delay_slow"]).results
        return result, state

    try:
        send(5)  # the first requests warm the replica up
        baseline, _ = check()
        assert (baseline.value, baseline.state) == (None, "unknown") and "baseline taken" in baseline.detail
        send(20)
        normal, _ = check()
        assert normal.state == "ok" and normal.value < 300, normal.detail

        stop = threading.Event()
        pauser = threading.Thread(target=slowed, args=(replica, stop), daemon=True)
        with SteadyRequests(serve_proxy, body) as one, SteadyRequests(serve_proxy, body) as two:
            pauser.start()
            try:
                time.sleep(6)
            finally:
                stop.set()
                pauser.join(10)
        answers = one.answers + two.answers
        assert {status for status, _ in answers} == {200}
        sent += len(answers)
        wait_until(lambda: next(r for r in controller.status() if r["name"] == "delay")["requests"] == sent, 30,
                   "the replica's report of the slowed requests")
        slow, _ = check()
        assert (slow.level, slow.state) == ("fail", "firing") and slow.value > 300, slow.detail
        [(status, alert)] = receiver.of("delay_slow")
        assert (status, alert["severity"]) == ("firing", "critical")
        assert "endpoint_latency(delay): delay: p95 " in alert["description"], alert

        send(20)
        resolved, state = check()
        assert (resolved.state, state.resolved) == ("ok", True) and resolved.value < 300, resolved.detail
        idle, _ = check()  # no request since: unknown, no notice
        assert idle.value is None and "no requests since" in idle.detail
        assert [s for s, _ in receiver.of("delay_slow")] == ["firing", "resolved"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(replica, signal.SIGCONT)
        admin.stop()
        receiver.close()
    print(f"slowed: {len(answers)} requests, p95 {slow.value:,.1f} ms; before {normal.value:,.1f} ms, "
          f"after {resolved.value:,.1f} ms")
