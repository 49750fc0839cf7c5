"""Profiles: ``lakebook.<profile>.yaml`` merged over lakebook.yaml (``lakebook -p NAME`` or
``LAKEBOOK_PROFILE``), under the environment's overrides; and the example workspace's scale
profile, which switches every embedded default to its server twin."""

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lakebook.config import load_settings
from lakebook.errors import ConfigError
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
BASE = """name: x
ingest:
  port: 9000
  flush_interval_s: 2
batch:
  master: local[2]
  conf: {spark.ui.enabled: "false"}
"""
OVERLAY = """catalog:
  url: postgresql+psycopg://lakebook@127.0.0.1:5432/lakebook
batch:
  master: spark://127.0.0.1:7077
  conf: {spark.cores.max: "2"}
"""


@pytest.fixture
def workspace_dir(tmp_path) -> Path:
    (tmp_path / "lakebook.yaml").write_text(BASE)
    (tmp_path / "lakebook.scale.yaml").write_text(OVERLAY)
    return tmp_path


def test_a_profile_is_deep_merged_over_lakebook_yaml(workspace_dir):
    settings = load_settings(workspace_dir / "lakebook.yaml", environ={}, profile="scale")
    assert settings.catalog.url == "postgresql+psycopg://lakebook@127.0.0.1:5432/lakebook"
    assert settings.batch.master == "spark://127.0.0.1:7077"
    assert settings.batch.conf == {"spark.ui.enabled": "false", "spark.cores.max": "2"}  # both files' keys
    assert (settings.ingest.port, settings.ingest.flush_interval_s) == (9000, 2)  # untouched by the overlay
    plain = load_settings(workspace_dir / "lakebook.yaml", environ={})
    assert (plain.batch.master, plain.catalog.url) == ("local[2]", None)


def test_the_profile_comes_from_the_environment_and_environment_overrides_still_win(workspace_dir):
    environ = {"LAKEBOOK_PROFILE": "scale", "LAKEBOOK_BATCH__MASTER": "spark://10.0.0.5:7077"}
    ws = Workspace.load(workspace_dir, environ=environ)
    assert ws.settings.batch.master == "spark://10.0.0.5:7077"
    assert ws.catalog_url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize("profile, expected", [
    ("scael", "profile 'scael': there is no lakebook.scael.yaml in"),
    ("Scale!", "profile 'Scale!' is not a profile name"),
])
def test_a_missing_or_misnamed_profile_is_a_clear_error(workspace_dir, profile, expected):
    with pytest.raises(ConfigError) as raised:
        load_settings(workspace_dir / "lakebook.yaml", environ={}, profile=profile)
    assert expected in raised.value.message
    if profile == "scael":
        assert "did you mean 'scale'?" in raised.value.hint and "beside lakebook.yaml" in raised.value.hint


def test_a_bad_setting_in_the_overlay_names_both_files(workspace_dir):
    (workspace_dir / "lakebook.scale.yaml").write_text("batch:\n  mastre: spark://127.0.0.1:7077\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(workspace_dir / "lakebook.yaml", environ={}, profile="scale")
    assert "with lakebook.scale.yaml" in raised.value.message and "batch.mastre: unknown key" in raised.value.message


@pytest.mark.parametrize("overlay, variable", [
    ("catalog:\n  url: postgresql+psycopg://lakebook:hunter2@db:5432/lakebook\n", "LAKEBOOK_CATALOG__URL"),
    ("ml:\n  tracking_uri: http://me:hunter2@mlflow:5000\n", "LAKEBOOK_ML__TRACKING_URI"),
    ("stream:\n  bus: {type: redis, url: 'redis://:hunter2@127.0.0.1:6379/0'}\n", "LAKEBOOK_STREAM__BUS"),
    ("features:\n  online_store: {type: redis, connection_string: '127.0.0.1:6379,password=hunter2'}\n",
     "LAKEBOOK_FEATURES__ONLINE_STORE"),
    ("serving:\n  tokens: {delay: [hunter2]}\n", "LAKEBOOK_SERVING__TOKENS"),
])
def test_a_profile_holds_no_password_or_token(workspace_dir, overlay, variable):
    (workspace_dir / "lakebook.scale.yaml").write_text(overlay)
    with pytest.raises(ConfigError) as raised:
        load_settings(workspace_dir / "lakebook.yaml", environ={}, profile="scale")
    shown = str(raised.value.message) + str(raised.value.hint)
    assert "lakebook.scale.yaml" in shown and variable in shown and "hunter2" not in shown


def test_the_cli_option_selects_the_profile_for_the_command_and_the_processes_it_starts(workspace_dir, monkeypatch):
    from lakebook.cli import cli

    monkeypatch.setenv("LAKEBOOK_PROFILE", "")  # restored (unset) after the test
    wrong = CliRunner().invoke(cli, ["-w", str(workspace_dir), "-p", "scael", "catalog", "list"], obj={})
    assert isinstance(wrong.exception, ConfigError) and "there is no lakebook.scael.yaml" in wrong.exception.message
    done = CliRunner().invoke(cli, ["-w", str(workspace_dir), "-p", "scale", "catalog", "--help"], obj={})
    assert done.exit_code == 0, done.output
    assert os.environ["LAKEBOOK_PROFILE"] == "scale"  # a child process loads the same profile


def test_the_example_scale_profile_switches_every_twin_on_loopback_without_secrets():
    ws = Workspace.load(REPO, environ={}, profile="scale")
    s = ws.settings
    assert ws.catalog_url.startswith("postgresql+psycopg://") and "@127.0.0.1:" in ws.catalog_url
    assert s.batch.master.startswith("spark://127.0.0.1:")
    assert s.features.online_store.type == "redis" and s.features.online_store.connection_string.startswith("127.0.0.1:")
    assert s.stream.bus.type == "redis" and s.stream.bus.url.startswith("redis://127.0.0.1:")
    for address in (s.stream.ray_address, s.serving.ray_address, s.jobs.ray_address):
        assert address and address.startswith("127.0.0.1:"), address
    assert s.jobs.executor == "ray"
    assert s.ml.tracking_uri.startswith("http://127.0.0.1:")
    assert str(ws.lake.root) == "s3://lakebook/nycflights" and s.batch.s3_staging == "shared"  # the lake in the store
    text = (REPO / "lakebook.scale.yaml").read_text()
    assert "password" not in yaml.safe_dump(yaml.safe_load(text)).lower()
    embedded = Workspace.load(REPO, environ={})  # without the profile: embedded
    assert embedded.settings.batch.master == "local[*]" and not str(embedded.lake.root).startswith("s3://")


# -- what a cluster's workers and a tracking server get from the profile ---------------------------
def test_the_workspace_remembers_its_profile_and_ray_workers_get_it(workspace_dir):
    from lakebook.config import ray_runtime_options

    assert Workspace.load(workspace_dir, environ={"LAKEBOOK_PROFILE": "scale"}).profile == "scale"
    assert Workspace.load(workspace_dir, environ={}, profile="scale").profile == "scale"
    assert Workspace.load(workspace_dir, environ={}).profile is None
    assert ray_runtime_options("scale") == {"runtime_env": {"env_vars": {"LAKEBOOK_PROFILE": "scale"}}}
    assert ray_runtime_options(None) == {}


def test_an_endpoints_replicas_load_the_workspace_with_its_profile():
    from lakebook.config import EndpointSettings
    from lakebook.serving.endpoints import deployment_options

    settings = EndpointSettings(model="models:/flight_delay@champion")
    options = deployment_options(settings, access_log=False, profile="scale")
    assert options["ray_actor_options"]["runtime_env"] == {"env_vars": {"LAKEBOOK_PROFILE": "scale"}}
    assert "runtime_env" not in deployment_options(settings, access_log=False)["ray_actor_options"]


@pytest.mark.parametrize("ml, expected", [
    ({}, "file://"),  # the embedded default: the state dir
    ({"tracking_uri": "http://127.0.0.1:5000"}, None),  # the server's own artifact store, proxied
    ({"tracking_uri": "https://mlflow.example.com"}, None),
    ({"tracking_uri": "http://127.0.0.1:5000", "artifact_location": "s3://models/mlflow"}, "s3://models/mlflow"),
    ({"tracking_uri": "postgresql+psycopg://u@db/mlflow"}, "file://"),  # a store the client opens itself
])
def test_with_a_tracking_server_new_experiments_keep_their_artifacts_where_the_server_says(tmp_path, ml, expected):
    from lakebook.ml.tracking import artifact_location

    (tmp_path / "lakebook.yaml").write_text(yaml.safe_dump({"ml": ml}))
    found = artifact_location(Workspace.load(tmp_path, environ={}))
    assert found == expected if not expected or not expected.startswith("file://") else found.startswith(expected)
