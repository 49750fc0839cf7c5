"""The scale tier (`make test-scale`, its own CI step): lakebook on multi-node twins of its
embedded engines, started for real on loopback (a Ray head and a worker node). These tests
reuse the integration helpers and the session's workspace templates (tests/conftest.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from workspace_templates import private_copy  # noqa: E402


@pytest.fixture
def flights_ws(spark_template, tmp_path):
    """A private copy of the template workspace."""
    return private_copy(spark_template, tmp_path)


@pytest.fixture
def model_ws(model_template, tmp_path):
    """A private copy of the model template (its MLflow registry included)."""
    return private_copy(model_template, tmp_path)
