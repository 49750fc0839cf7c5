"""Commands in a new workspace guide to the next step instead of failing or saying nothing:
features without a Feast repository, transforms without any, models without a training
notebook, and a contract field named by a SQL keyword."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from lakebook.cli import cli, database_error
from lakebook.errors import FeatureStoreError, LakebookError

REPO = Path(__file__).resolve().parents[2]

SENSORS = """\
event_time: at
fields:
  device: {type: string, required: true}
  at: {type: timestamp, required: true}
  temperature: {type: float64}
"""


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


def new_workspace(tmp_path):
    root = tmp_path / "greenhouse"
    assert run("init", str(root)).exit_code == 0
    return root


def test_features_apply_without_a_feast_repository_says_what_to_add(tmp_path):
    root = new_workspace(tmp_path)
    shutil.rmtree(root / "feature_repo", ignore_errors=True)
    result = run("-w", str(root), "features", "apply")
    assert isinstance(result.exception, FeatureStoreError), result.output
    assert result.exception.message.startswith("no Feast repository at ")
    assert result.exception.hint == "add feature_repo/feature_store.yaml"


def test_transform_run_without_transforms_says_where_they_go(tmp_path):
    root = new_workspace(tmp_path)
    shutil.rmtree(root / "transforms", ignore_errors=True)
    result = run("-w", str(root), "transform", "run")
    assert result.exit_code == 0, result.output
    assert "no transforms in transforms/ yet (add a .sql or .py transform there" in result.output


def test_models_list_names_the_training_notebook_only_when_the_workspace_has_one(tmp_path):
    root = new_workspace(tmp_path)
    shutil.rmtree(root / "notebooks", ignore_errors=True)
    bare = run("-w", str(root), "models", "list")
    assert bare.exit_code == 0, bare.output
    assert "no registered models yet (train one in a notebook and register it" in bare.output
    assert ".ipynb" not in bare.output
    (root / "notebooks").mkdir()
    (root / "notebooks" / "02_train_greenhouse_model.ipynb").write_text("{}")
    named = run("-w", str(root), "models", "list")
    assert "run notebooks/02_train_greenhouse_model.ipynb to train and register one" in named.output


def test_a_field_named_by_a_sql_keyword_loads_with_a_warning_how_to_quote_it(tmp_path, caplog):
    root = new_workspace(tmp_path)
    (root / "contracts" / "sensors.yaml").write_text(SENSORS)
    with caplog.at_level(logging.WARNING, logger="lakebook.contracts.loading"):
        listed = run("-w", str(root), "contracts", "list")
    assert listed.exit_code == 0, listed.output
    expected = ("field at of 'sensors' is a SQL keyword: quote in queries, e.g. SELECT \"at\" FROM raw.sensors "
                "(Spark SQL: `at`), or rename the field")
    assert f"sensors v1: 3 fields, event time at, owner -\n  warning: {expected}" in listed.output
    assert [r.getMessage() for r in caplog.records] == [f"contracts/sensors.yaml: {expected}"]
    as_json = {c["name"]: c["warning"] for c in json.loads(run("-w", str(root), "contracts", "list", "--json").output)}
    assert as_json == {"events": None, "sensors": expected}


def test_a_sqlite_error_no_stage_caught_is_a_message_with_a_hint(tmp_path):
    """A write that waited out the busy timeout: SQLite's own 'database is locked', raised
    through SQLAlchemy, becomes one message saying what to do (cli.main prints it, exit 2)."""
    path = tmp_path / "catalog.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with pytest.raises(OperationalError) as raised, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    error = database_error(raised.value)
    assert isinstance(error, LakebookError)
    assert error.message == "a database of the workspace failed: database is locked"
    assert error.hint == "another lakebook process holds the database for long (a flush, a transform): try again"
    assert database_error(ValueError("not a database error")) is None


def test_features_materialize_before_the_feature_tables_are_built_says_to_run_the_transforms(tmp_path):
    root = new_workspace(tmp_path)
    shutil.rmtree(root / "feature_repo", ignore_errors=True)
    shutil.copytree(REPO / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert run("-w", str(root), "features", "apply").exit_code == 0
    result = run("-w", str(root), "features", "materialize")
    assert isinstance(result.exception, FeatureStoreError), result.output
    assert result.exception.message.startswith("the feature views read features.carrier_daily, ")
    assert result.exception.message.endswith(", not built yet")
    assert result.exception.hint == "run 'lakebook transform run' first"
