"""Model endpoints: the lakebook endpoint vs a bare Ray Serve deployment of the same pyfunc,
same machine, same run, same client.

Set-up: a fresh temporary workspace built as training_set.py builds it (every nycflights13
flight and weather observation through the demo's ingest path, this repository's seeds,
transforms and Feast repository, the feature jobs as their DuckDB SQL equivalents; features
applied), then ``features.materialize``. The delay model is the training notebook's kind,
trained with lakebook's own ml code as freshness_value.py trains it (gradient boosting, seed 7,
300 iterations) on the point-in-time training set of TRAIN_ROWS flights of service
``flight_delay_v1``, logged with its lineage and registered as ``flight_delay@champion``.

One local Ray runtime (``serving.connect_ray`` path: RAY_TMPDIR in the workspace's ray dir,
RAY_AUTH_MODE=token set explicitly, a token of this run's own; 2 CPUs, no dashboard), Serve
started once with its HTTP proxy on a free loopback port. Both applications run on it at the
same time, with the same Serve options (1 replica, the endpoint's ``deployment_options``: 0.25
CPU, max_ongoing_requests 32, Serve's access log as ``serving.access_log`` says: off by
default, for the proxy and both deployments) and the same batching
(``@serve.batch``, the endpoint's defaults: up to 16 requests, 5 ms wait):

- lakebook: serving/app.py's application deployed by the serving service's ``Controller``
  (``serve.run(application(...), name, route_prefix)``), its figures actor, a bearer token
  from a tokens file. Per request: token check, the predictor's request check, online
  features with their timestamps, the frame, the model (its python model, unwrapped), the
  answer with feature ages, the prediction queued for the ingest log;
- bare: ``BareModel`` in a plain Serve deployment (no FastAPI): the JSON body parsed, the
  entity keys taken, ``store.get_online_features(<the same feature service>)``, the frame
  (request fields plus features), the model called. No token, no validation, no logging.
  The model is ``mlflow.pyfunc.load_model(<the same version>)``'s python model called
  directly, as lakebook's predictor calls it: the pyfunc's own ``predict`` enforces the
  signature and refuses real online features (``flights_1d`` was trained as long; one missing
  value makes it float64, "Can not safely convert float64 to int64").

Client: aiohttp on uvloop in this process, the same code for both sides; one JSON object per
request (a real flight of warehouse.flights_clean: its entity keys origin, carrier, tailnum
and the model's other inputs), REQUEST_ROWS distinct flights in turn. A warm-up per side,
then ROUNDS rounds; in each both sides run (the first side alternates between rounds): CONCURRENCY
keep-alive connections for DURATION_S, then SINGLE_REQUESTS sequential requests on one
connection. Per side and round: p50/p99 latency and requests/s; the result is the median over
rounds, and the ratios lakebook/bare the median of the rounds' ratios. Goals: p50 <= 1.2 x and
throughput >= 0.9 x bare's (at 8 connections). Both sides answer the same p_late for the same
flights (checked on CHECK_REQUESTS).

Where the time goes: the CPU each side's replica, Serve's proxy and this process (the client)
spent per answered request in each 8-connection phase (psutil). And each side's steps timed in
this process (no Ray, no HTTP) on the same workspace, for single requests and for batches of
CONCURRENCY, the two sides taking turns, one OpenMP thread (as in a replica): lakebook's token
check, request check, Feast read, to_dict, frame, model, answer, recording
(``Predictor.predict`` with its parts timed), and the bare handler's parse, Feast read,
to_dict, frame, model. The sum of the single-request steps' p50s subtracted from each side's
single-request p50 is about what Serve, HTTP and the batch wait add.

    python bench/serve.py [--dirty]                  # writes bench/results/serve.json
    BENCH_SERVE_DURATION_S=3 BENCH_SERVE_ROUNDS=2 python bench/serve.py --dirty   # a short probe
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import _versions, bench_main, machine_info, median, percentile, write_result  # noqa: E402

NAME = "serve"
DURATION_S = float(os.environ.get("BENCH_SERVE_DURATION_S", 10))  # per side and round, 8 connections
ROUNDS = int(os.environ.get("BENCH_SERVE_ROUNDS", 3))
SINGLE_REQUESTS = int(os.environ.get("BENCH_SERVE_SINGLE_REQUESTS", 200))  # per side and round, 1 connection
TRAIN_ROWS = int(os.environ.get("BENCH_SERVE_TRAIN_ROWS", 20_000))
WARMUP_S = 3.0
CONCURRENCY = 8
REQUEST_ROWS = 2_000
CHECK_REQUESTS = 50
PROFILE_REQUESTS = 200
SEED, GBM_ITERATIONS = 7, 300
GOAL_P50_RATIO, GOAL_THROUGHPUT_RATIO = 1.2, 0.9
SERVICE, MODEL = "flight_delay_v1", "flight_delay"
CHAMPION = f"models:/{MODEL}@champion"
ENDPOINT, BARE = "delay", "bare"
SIDES = (ENDPOINT, BARE)
METRICS = ("p50_ms", "p99_ms", "requests_per_s")
KEYS = ("origin", "carrier", "tailnum")  # the join keys of flight_delay_v1's views
CONFIG = "name: bench-serve\nserving:\n  tokens_file: {tokens}\n"
FLIGHT_FIELDS = """origin, carrier, tailnum, distance,
       hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local,
       dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday"""
TRAIN_SQL = (f"SELECT sched_dep_at AS event_timestamp, arr_late, {FLIGHT_FIELDS} FROM warehouse.flights_clean "
             "WHERE arr_late IS NOT NULL ORDER BY hash(flight_id) LIMIT {n}")
REQUEST_SQL = (f"SELECT {FLIGHT_FIELDS} FROM warehouse.flights_clean WHERE tailnum IS NOT NULL "
               "ORDER BY hash(flight_id || 'requests') LIMIT {n}")


# -- figures (pure) ------------------------------------------------------------------------------
def side_figures(latencies_ms: list[float], seconds: float, errors: int) -> dict:
    """One side's load in one phase of a round. Only answered requests (200) count in the
    latencies and the rate; errors are counted apart (any error misses the goals)."""
    return {"requests": len(latencies_ms), "errors": errors, "seconds": seconds,
            "p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "requests_per_s": len(latencies_ms) / seconds if seconds > 0 else float("nan")}


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU each process spent per answered request between two readings."""
    return {name: (after[name] - before[name]) * 1000 / requests if requests else float("nan") for name in before}


def cpu_medians(rounds: list[dict]) -> dict:
    """Per side, the median over rounds of each process's CPU per request."""
    return {side: {proc: median([r["cpu_ms_per_request"][side][proc] for r in rounds])
                   for proc in ("replica", "proxy", "client")} for side in SIDES}


def round_order(index: int) -> tuple[str, str]:
    """The sides in round ``index``: the first alternates, so neither always meets the machine
    as the other left it."""
    return SIDES if index % 2 == 0 else SIDES[::-1]


def medians_over_rounds(rounds: list[dict], phase: str) -> dict:
    """Per side: the median over rounds of each figure of ``phase``; requests and errors summed."""
    out = {}
    for side in SIDES:
        figures = [r[phase][side] for r in rounds]
        out[side] = {m: median([f[m] for f in figures]) for m in METRICS}
        out[side].update(requests=sum(f["requests"] for f in figures), errors=sum(f["errors"] for f in figures))
    return out


def paired_ratio(rounds: list[dict], phase: str, metric: str) -> float:
    """The median over rounds of lakebook's figure over bare's in the same round."""
    return median([r[phase][ENDPOINT][metric] / r[phase][BARE][metric] for r in rounds])


def targets(rounds: list[dict]) -> dict:
    """The goals at CONCURRENCY connections: p50 <= 1.2 x and requests/s >= 0.9 x bare's; a
    side that answered any request with an error misses both."""
    clean = not any(r[phase][side]["errors"] for r in rounds for phase in ("concurrent", "single") for side in SIDES)
    p50, throughput = paired_ratio(rounds, "concurrent", "p50_ms"), paired_ratio(rounds, "concurrent", "requests_per_s")
    return {
        "p50_ratio": {"value": p50, "goal": f"<= {GOAL_P50_RATIO}", "met": clean and p50 <= GOAL_P50_RATIO},
        "throughput_ratio": {"value": throughput, "goal": f">= {GOAL_THROUGHPUT_RATIO}",
                             "met": clean and throughput >= GOAL_THROUGHPUT_RATIO},
        "p99_ratio": paired_ratio(rounds, "concurrent", "p99_ms"),
        "single_p50_ratio": paired_ratio(rounds, "single", "p50_ms"),
        "single_p99_ratio": paired_ratio(rounds, "single", "p99_ms"),
        "no_errors": clean,
    }


def request_bodies(rows: list[dict], fields: list[str]) -> list[bytes]:
    """One JSON request object per flight holding exactly ``fields``; flights missing one are
    left out (the endpoint would answer them 422)."""
    return [orjson.dumps({f: row[f] for f in fields}) for row in rows if all(row.get(f) is not None for f in fields)]


class Laps:
    """Milliseconds per step, per request: ``start()`` opens a request, ``timed(step)`` adds to
    it, ``finish()`` closes it; a step absent from a request counts 0 there."""

    def __init__(self):
        self.requests: list[dict[str, float]] = []
        self.current: dict[str, float] | None = None

    def start(self) -> None:
        self.current = {}

    @contextmanager
    def timed(self, step: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.current[step] = self.current.get(step, 0.0) + (time.perf_counter() - t0) * 1000

    def wrap(self, step: str, fn):
        def timed_call(*args, **kwargs):
            with self.timed(step):
                return fn(*args, **kwargs)
        return timed_call

    def finish(self) -> None:
        self.requests.append(self.current)
        self.current = None

    def summary(self, whole: str, inside: list[str], rest: str) -> dict:
        """p50 and p95 per step, ``rest`` being ``whole``'s time in none of ``inside``; the sum
        of the p50s of every step but ``whole``."""
        rows = [{**r, rest: r.get(whole, 0.0) - sum(r.get(s, 0.0) for s in inside)} for r in self.requests]
        names = list(dict.fromkeys(s for r in rows for s in r))  # in the order they first ended
        steps = {s: {"p50_ms": percentile([r.get(s, 0.0) for r in rows], 50),
                     "p95_ms": percentile([r.get(s, 0.0) for r in rows], 95)} for s in names}
        return {"requests": len(rows), "steps": steps,
                "sum_of_p50_ms": sum(v["p50_ms"] for s, v in steps.items() if s != whole)}


class TimedStore:
    """A feature store whose online reads, and their ``to_dict``, are timed into ``laps``."""

    def __init__(self, store, laps: Laps):
        self.store, self.laps = store, laps

    def get_online_features(self, **kwargs):
        with self.laps.timed("Feast read"):
            response = self.store.get_online_features(**kwargs)
        response.to_dict = self.laps.wrap("to_dict", response.to_dict)
        return response


# -- the bare deployment ------------------------------------------------------------------------
class BareModel:
    """What a hand-written handler does: the pyfunc, the same feature store and service, the
    entity keys from the body; no token, no validation, no record."""

    def __init__(self, root: str, model_uri: str, service: str):
        import mlflow

        from lakebook import ml
        from lakebook.features import feature_store
        from lakebook.workspace import Workspace

        ws = Workspace.load(root, environ={})  # only to open the same registry and online store
        ml.setup_mlflow(ws)
        self.model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()  # see the module docstring
        self.store = feature_store(ws)
        self.service = self.store.get_feature_service(service)
        self.features = [f.name for p in self.service.feature_view_projections for f in p.features]

    def predict(self, rows: list[dict]) -> list[float]:
        import pandas as pd

        served = self.store.get_online_features(features=self.service,
                                                entity_rows=[{k: r[k] for k in KEYS} for r in rows]).to_dict()
        frame = pd.DataFrame(rows)
        for name in self.features:
            frame[name] = pd.to_numeric(pd.Series(served[name], dtype="object"), errors="coerce")
        return [float(p) for p in self.model.predict(None, frame)]


def bare_application(root: str, model_uri: str, options: dict, max_batch_size: int, wait_s: float):
    """A plain Serve deployment (no FastAPI) answering ``{"p_late"}`` from a ``BareModel``,
    batched as the endpoint is."""
    from ray import serve

    @serve.deployment(name=BARE, **options)
    class Bare:
        def __init__(self):
            self.bare = BareModel(root, model_uri, SERVICE)

        async def __call__(self, request):
            return {"p_late": await self.predict(orjson.loads(await request.body()))}

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=wait_s)
        async def predict(self, rows: list[dict]) -> list[float]:
            return await asyncio.to_thread(self.bare.predict, rows)

    return Bare.bind()


# -- set-up ---------------------------------------------------------------------------------------
def train_champion(ws, log) -> dict:
    """The notebook's gradient boosting on TRAIN_ROWS flights' point-in-time features, logged
    with its lineage, registered and made the champion."""
    import mlflow

    from lakebook import features, ml
    from lakebook.ml import tabular
    from lakebook.query import LakeSession

    t0 = time.perf_counter()
    data = features.training_set(LakeSession(ws).query(TRAIN_SQL.format(n=TRAIN_ROWS)).df(), SERVICE, ws)
    numeric = [c for c in data.columns if c not in {"event_timestamp", "arr_late", *KEYS}]
    spec = tabular.TabularSpec(numeric, {"origin": ["EWR", "JFK", "LGA"], "carrier": sorted(data.carrier.unique())})
    ml.setup_mlflow(ws)
    with mlflow.start_run(run_name="bench serve"):
        ml.log_data_lineage(ws, ["warehouse.flights_clean"], SERVICE, {"sample_size": TRAIN_ROWS})
        model = tabular.fit_gradient_boosting(spec, data, data.arr_late.astype(int), seed=SEED, max_iter=GBM_ITERATIONS)
        info = ml.log_classifier(model, data)
    version = str(mlflow.register_model(info.model_uri, MODEL).version)
    ml.promote(ws, MODEL, version)
    log(f"  {MODEL} v{version} trained on {len(data):,} flights and made the champion in {time.perf_counter() - t0:.0f} s")
    return {"version": version, "train_rows": len(data), "inputs": spec.input_columns, "seconds": time.perf_counter() - t0}


def build(tmp: Path, log) -> tuple:
    """The workspace (tokens in a file of their own), its online store and its champion."""
    from training_set import build_workspace

    from lakebook import features
    from lakebook.workspace import Workspace

    token = secrets.token_urlsafe(24)
    tokens = tmp / "serving-tokens.yaml"
    tokens.write_text(f"{ENDPOINT}: {token}\n")
    tokens.chmod(0o600)
    ws, built = build_workspace(tmp, log, CONFIG.format(tokens=tokens), NAME)
    ws = Workspace.load(ws.root, environ={})
    t0 = time.perf_counter()
    built["materialized"] = features.materialize(ws)
    built["materialize_s"] = time.perf_counter() - t0
    built["model"] = train_champion(ws, log)
    return ws, token, built


def start_serve(ws) -> str:
    """One local Ray runtime as the serving service connects one, Serve's proxy on a free
    loopback port with the workspace's access log setting; the proxy's URL."""
    from lakebook.services import free_port
    from lakebook.stream.server import connect_ray

    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # this run's own, not the user's ~/.ray/auth_token
    os.environ["RAY_SERVE_LOG_TO_STDERR"] = "0"  # replica log lines to their files only, not to this console
    connect_ray(ws, ws.settings.serving)  # sets RAY_TMPDIR and RAY_AUTH_MODE before ray is imported
    from ray import serve

    from lakebook.serving.endpoints import serve_logging

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port},
                logging_config=serve_logging(ws.settings.serving.access_log))
    return f"http://127.0.0.1:{port}"


def deploy_both(ws) -> dict:
    """The endpoint as the serving service deploys it, and the bare deployment beside it with
    the same Serve options and batching; what each answers with."""
    from ray import serve

    from lakebook.config import EndpointSettings
    from lakebook.serving.app import figures_actor
    from lakebook.serving.endpoints import deployment_options
    from lakebook.serving.server import Controller

    settings = EndpointSettings(model=CHAMPION)
    figures = figures_actor()
    row = Controller(ws, figures).deploy(ENDPOINT, settings)
    options = deployment_options(settings, ws.settings.serving.access_log)
    serve.run(bare_application(str(ws.root), row["uri"], options, settings.max_batch_size,
                               settings.batch_wait_timeout_s), name=BARE, route_prefix=f"/{BARE}")
    return {"figures_actor": figures, "uri": row["uri"], "serve_options": options,
            "batching": {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s}}


# -- the client -----------------------------------------------------------------------------------
class Client:
    """aiohttp with up to CONCURRENCY keep-alive connections to one side; the bodies in turn."""

    def __init__(self, url: str, headers: dict, bodies: list[bytes]):
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                                             timeout=aiohttp.ClientTimeout(total=60))
        self.url, self.headers = url, {"content-type": "application/json", **headers}
        self.bodies, self.next = bodies, 0
        self.first_error: str | None = None

    async def answer(self, body: bytes) -> tuple[int, bytes]:
        async with self.session.post(self.url, data=body, headers=self.headers) as answer:
            return answer.status, await answer.read()

    async def one(self) -> float | None:
        """One request with the next body; its latency in ms, None if it was not answered 200."""
        body = self.bodies[self.next % len(self.bodies)]
        self.next += 1
        t0 = time.perf_counter()
        status, text = await self.answer(body)
        if status == 200:
            return (time.perf_counter() - t0) * 1000
        self.first_error = self.first_error or f"{status}: {text[:300].decode(errors='replace')}"
        return None

    async def load(self, seconds: float, connections: int) -> dict:
        """``connections`` workers, each sending its next request as soon as one is answered."""
        latencies, errors = [], 0
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal errors
            while time.perf_counter() < deadline:
                ms = await self.one()
                if ms is None:
                    errors += 1
                else:
                    latencies.append(ms)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return side_figures(latencies, time.perf_counter() - started, errors)

    async def sequential(self, n: int) -> dict:
        """``n`` requests one after the other (one connection)."""
        started = time.perf_counter()
        timings = [await self.one() for _ in range(n)]
        latencies = [ms for ms in timings if ms is not None]
        return side_figures(latencies, time.perf_counter() - started, n - len(latencies))

    async def close(self) -> None:
        await self.session.close()


# -- the run --------------------------------------------------------------------------------------
async def same_answers(clients: dict, bodies: list[bytes]) -> dict:
    """Both sides answer the same p_late for the same flights (one model version, one store)."""
    differences = []
    for body in bodies[:CHECK_REQUESTS]:
        p = []
        for side in SIDES:
            status, text = await clients[side].answer(body)
            if status != 200:
                raise RuntimeError(f"{side} answered {status}: {text[:300].decode(errors='replace')}")
            p.append(orjson.loads(text)["p_late"])
        differences.append(abs(p[0] - p[1]))
    return {"requests": len(differences), "max_abs_difference": max(differences),
            "equal": max(differences) <= 1e-9}


async def one_round(clients: dict, index: int, pids: dict, log) -> dict:
    out = {"order": list(round_order(index)), "concurrent": {}, "single": {}, "cpu_ms_per_request": {}}
    for side in round_order(index):
        before = cpu_seconds(pids)
        out["concurrent"][side] = await clients[side].load(DURATION_S, CONCURRENCY)
        spent = cpu_per_request(before, cpu_seconds(pids), out["concurrent"][side]["requests"])
        out["cpu_ms_per_request"][side] = {"replica": spent[side], "proxy": spent["proxy"], "client": spent["client"]}
        out["single"][side] = await clients[side].sequential(SINGLE_REQUESTS)
    log(f"  round {index + 1}: " + "; ".join(
        f"{s} {out['concurrent'][s]['requests_per_s']:.0f} req/s p50 {out['concurrent'][s]['p50_ms']:.1f} ms, "
        f"1 conn p50 {out['single'][s]['p50_ms']:.1f} ms" for s in SIDES))
    return out


async def measure(url: str, token: str, bodies: list[bytes], pids: dict, log) -> dict:
    clients = {ENDPOINT: Client(f"{url}/{ENDPOINT}/predict", {"authorization": f"Bearer {token}"}, bodies),
               BARE: Client(f"{url}/{BARE}/predict", {}, bodies)}
    try:
        check = await same_answers(clients, bodies)
        for side in SIDES:
            await clients[side].load(WARMUP_S, CONCURRENCY)
        rounds = [await one_round(clients, i, pids, log) for i in range(ROUNDS)]
    finally:
        for client in clients.values():
            await client.close()
    return {"check": check, "rounds": rounds, "first_errors": {s: c.first_error for s, c in clients.items()}}


def endpoint_steps(predictor, token: str, laps: Laps):
    """A batch of requests through lakebook's steps: the replica's token check and request
    check, then ``Predictor.predict`` with its parts timed (the frame is what is left of it)."""
    from starlette.requests import Request

    from lakebook.serving.endpoints import authorize, token_bytes

    predictor.store = TimedStore(predictor.store, laps)
    predictor._python_model = laps.wrap("model", predictor._python_model)
    predictor._answer = laps.wrap("answer", predictor._answer)
    predictor._record = laps.wrap("recording", predictor._record)
    predictor.recorder.add = laps.wrap("recording", predictor.recorder.add)
    tokens = token_bytes(predictor.workspace.settings.serving.tokens)
    request = Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})

    def batch(bodies: list[bytes]) -> None:
        rows = []
        for body in bodies:  # a replica checks each request, then answers the batch in one call
            with laps.timed("token check"):
                authorize(request, tokens, ENDPOINT)
            with laps.timed("request check"):
                rows += predictor.parse(orjson.loads(body))
        laps.wrap("predict", predictor.predict)(rows)
    return batch


def time_recorder(recorder, appends: list) -> None:
    """Time the recorder thread's appends to the ingest log (off the request path, on the
    replica's CPU): (wall ms, the thread's CPU ms, predictions) each."""
    write = recorder._write

    def timed_write(events: list, last: bool):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return write(events, last)
        finally:
            appends.append(((time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000, len(events)))
    recorder._write = timed_write


def bare_steps(bare: BareModel, laps: Laps):
    """A batch of requests through the bare handler's steps."""
    from types import SimpleNamespace

    bare.store = TimedStore(bare.store, laps)
    bare.model = SimpleNamespace(predict=laps.wrap("model", bare.model.predict))

    def batch(bodies: list[bytes]) -> None:
        laps.wrap("predict", bare.predict)([laps.wrap("parse", orjson.loads)(body) for body in bodies])
    return batch


def profile(predictor, bare: BareModel, bodies: list[bytes], token: str) -> dict:
    """Each side's steps in this process, for single requests and for batches of CONCURRENCY
    (as the 8 connections make them), on the same requests, the sides taking turns (both meet
    the same machine), with one OpenMP thread as in a replica (Ray sets OMP_NUM_THREADS=1 for
    an actor of less than one CPU)."""
    from threadpoolctl import threadpool_limits

    laps = {ENDPOINT: Laps(), BARE: Laps()}
    steps = {ENDPOINT: endpoint_steps(predictor, token, laps[ENDPOINT]), BARE: bare_steps(bare, laps[BARE])}
    inside = {ENDPOINT: ["Feast read", "to_dict", "model", "answer", "recording"], BARE: ["Feast read", "to_dict", "model"]}
    out = {}
    appends: list[tuple[float, float, int]] = []
    time_recorder(predictor.recorder, appends)
    with threadpool_limits(limits=1):
        for size, count in ((1, PROFILE_REQUESTS), (CONCURRENCY, PROFILE_REQUESTS // 4)):
            for i in range(count):
                for side in SIDES:
                    laps[side].start()
                    steps[side](bodies[i * size:(i + 1) * size])
                    laps[side].finish()
            out[size] = {side: {"batch_size": size, **laps[side].summary("predict", inside[side], "frame and rest")}
                         for side in SIDES}
            for side in SIDES:
                laps[side].requests = []
    predictor.close()  # the recorder thread appends what is queued
    predictions = sum(n for *_, n in appends)
    out["recorder_thread"] = {"appends": len(appends), "predictions": predictions, **{
        f"{kind}_ms_per_prediction": sum(a[i] for a in appends) / predictions if predictions else None
        for i, kind in enumerate(("wall", "cpu"))}}
    return out


def where_the_time_goes(profiles: dict, single: dict, cpu: dict) -> dict:
    """Per side: its in-process steps for one request and what Serve, HTTP and the batch wait
    add to them (the single-request p50 less the sum of the steps' p50s); its steps for a
    batch of CONCURRENCY; the CPU each process spent per request at CONCURRENCY connections."""
    out = {side: {"single_request": {**profiles[1][side], "single_request_p50_ms": single[side]["p50_ms"],
                                     "serve_http_and_batch_wait_ms":
                                         single[side]["p50_ms"] - profiles[1][side]["sum_of_p50_ms"]},
                  f"batch_of_{CONCURRENCY}": profiles[CONCURRENCY][side],
                  "cpu_ms_per_request_at_8_connections": cpu[side]}
           for side in SIDES}
    out[ENDPOINT]["recorder_thread"] = profiles["recorder_thread"]
    return out


def serve_processes() -> dict[str, int]:
    """This run's replica of each side and Serve's HTTP proxy (Ray titles its workers
    ray::ServeReplica:<app>:<deployment> and ray::ProxyActor; they descend from this process,
    which started the Ray runtime), and this process (the client, and Ray's driver)."""
    import psutil

    marks = {ENDPOINT: f"ServeReplica:{ENDPOINT}:", BARE: f"ServeReplica:{BARE}:", "proxy": "ProxyActor"}
    found = {"client": os.getpid()}
    for process in psutil.Process().children(recursive=True):
        try:
            line = " ".join(process.cmdline())
        except psutil.Error:
            continue
        found.update({name: process.pid for name, mark in marks.items() if mark in line})
    if set(found) != {"client", *marks}:
        raise RuntimeError(f"not every Serve process was found among this run's: {sorted(found)}")
    return found


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    import psutil

    return {name: sum(psutil.Process(pid).cpu_times()[:2]) for name, pid in pids.items()}


def request_rows(ws) -> list[dict]:
    from lakebook.query import LakeSession

    return LakeSession(ws).query(REQUEST_SQL.format(n=REQUEST_ROWS)).table.to_pylist()


def stop_serve() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


def run(log=print) -> dict:
    import uvloop

    from lakebook.serving.predictor import Predictor, resolve_model

    info = machine_info()
    info["versions"].update(_versions("ray", "feast", "mlflow", "aiohttp", "uvloop", "fastapi", "scikit-learn", "pandas"))
    started = time.perf_counter()
    for name in [k for k in os.environ if k.startswith("LAKEBOOK_")]:
        del os.environ[name]  # the replicas take their settings from the workspace alone
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-serve-") as tmp:
        ws, token, built = build(Path(tmp), log)
        try:
            url = start_serve(ws)
            deployed = deploy_both(ws)
            log(f"  {deployed['uri']} on Serve at {url} (lakebook /{ENDPOINT}, bare /{BARE}) "
                f"after {time.perf_counter() - started:.0f} s")
            predictor = Predictor(ws, resolve_model(ws, deployed["uri"]), "bench-profile")
            fields = [f.name for f in predictor.fields]
            bodies = request_bodies(request_rows(ws), fields)
            measured = uvloop.run(measure(url, token, bodies, serve_processes(), log))
            profiles = profile(predictor, BareModel(str(ws.root), deployed["uri"], SERVICE), bodies, token)
        finally:
            stop_serve()
    rounds = measured["rounds"]
    medians = {phase: medians_over_rounds(rounds, phase) for phase in ("concurrent", "single")}
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "workspace": "training_set.build_workspace: every nycflights13 flight and weather row through the demo's "
                         "ingest path; seeds, transforms (feature jobs as DuckDB SQL), feature_repo; features applied "
                         "and materialized",
            **built,
            "model": {**built["model"], "uri": deployed["uri"], "kind": f"gradient boosting (seed {SEED}, "
                      f"{GBM_ITERATIONS} iterations), lakebook.ml.tabular, as the training notebook"},
            "request_fields": fields, "request_flights": len(bodies),
            "ray": f"one local runtime (connect_ray with the serving settings: RAY_AUTH_MODE "
                   f"{ws.settings.serving.ray_auth_mode}, {ws.settings.serving.ray_num_cpus} CPUs, no dashboard); "
                   "Serve's proxy on a free loopback port",
            "serve_options": deployed["serve_options"], "batching": deployed["batching"],
            "lakebook": "serving/app.py's application via the serving service's Controller.deploy; bearer token "
                        "from serving.tokens_file; figures actor running",
            "bare": "plain Serve deployment: orjson body, store.get_online_features(the same feature service), frame, "
                    "mlflow.pyfunc.load_model(the same version)'s python model (its pyfunc predict refuses float "
                    "features for a column trained as long); no token, validation or logging",
            "replica_logs": f"serving.access_log {ws.settings.serving.access_log} for the proxy and both "
                            "deployments alike (the serving service's default); RAY_SERVE_LOG_TO_STDERR=0 keeps "
                            "replica log lines off the benchmark's console",
            "client": f"aiohttp on uvloop in the benchmark's process, same code both sides; {CONCURRENCY} keep-alive "
                      f"connections for {DURATION_S:g} s, then {SINGLE_REQUESTS} sequential requests (1 connection); "
                      f"warm-up {WARMUP_S:g} s per side; {ROUNDS} rounds, the first side alternating",
            "durations": "BENCH_SERVE_DURATION_S, BENCH_SERVE_ROUNDS, BENCH_SERVE_SINGLE_REQUESTS, "
                         "BENCH_SERVE_TRAIN_ROWS change them (defaults 10 s, 3, 200, 20,000)",
        },
        "same_answers": measured["check"],
        "first_errors": measured["first_errors"],
        "rounds": rounds,
        "medians": medians,
        "targets": targets(rounds),
        "profile": where_the_time_goes(profiles, medians["single"], cpu_medians(rounds)),
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    m, t = result["medians"], result["targets"]

    def side(phase: str, s: str) -> str:
        f = m[phase][s]
        return f"{s} p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, {f['requests_per_s']:.0f} req/s"

    def verdict(key: str) -> str:
        return f"{t[key]['value']:.2f} (goal {t[key]['goal']}: {'MET' if t[key]['met'] else 'MISSED'})"

    where = result["profile"]

    def steps(s: str, size: str) -> str:
        found = where[s][size]
        return (", ".join(f"{k} {v['p50_ms']:.2f}" for k, v in found["steps"].items() if k != "predict")
                + f" (sum {found['sum_of_p50_ms']:.1f})")

    def cpu(s: str) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in where[s]["cpu_ms_per_request_at_8_connections"].items())

    return [
        f"serve       {CONCURRENCY} connections: {side('concurrent', ENDPOINT)}; {side('concurrent', BARE)}; "
        f"p50 ratio {verdict('p50_ratio')}, throughput ratio {verdict('throughput_ratio')}",
        f"            1 connection: {side('single', ENDPOINT)}; {side('single', BARE)}; "
        f"same p_late on {result['same_answers']['requests']} flights: {result['same_answers']['equal']}",
        *(line for s in SIDES for line in (
            f"            {s}: CPU ms per request at {CONCURRENCY} connections: {cpu(s)}",
            f"              one request in process (p50 ms): {steps(s, 'single_request')}; Serve, HTTP and batch wait "
            f"{where[s]['single_request']['serve_http_and_batch_wait_ms']:.1f}",
            f"              a batch of {CONCURRENCY} in process (p50 ms): {steps(s, f'batch_of_{CONCURRENCY}')}")),
        f"            {ENDPOINT}'s recorder thread (off the request path): "
        f"{where[ENDPOINT]['recorder_thread']['wall_ms_per_prediction'] or 0:.2f} ms (wall; CPU "
        f"{where[ENDPOINT]['recorder_thread']['cpu_ms_per_prediction'] or 0:.2f}) per prediction validated and "
        "appended to the ingest log",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
