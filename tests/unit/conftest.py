"""Unit tests never start a JVM, a Ray cluster or a server: starting Spark or Ray here is an error."""

import importlib.util

import pytest


def _refuse(what: str):
    def refused(*args, **kwargs):
        raise RuntimeError(f"unit tests must not start {what}; put this test in tests/integration")

    return refused


@pytest.fixture(autouse=True)
def no_spark_or_ray(monkeypatch):
    monkeypatch.setattr("lakebook.transform.spark.spark_session", _refuse("Spark"))
    if importlib.util.find_spec("ray") is not None:
        monkeypatch.setattr("ray.init", _refuse("Ray"))
