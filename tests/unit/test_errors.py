"""The error contract: each error knows its HTTP status, every service answers one JSON
shape, and errors cross process boundaries as their own class with all their fields."""

import pickle

import pytest

from lakebook import errors
from lakebook.errors import (
    Backpressure, LakebookError, MissingDependency, NotFound, UnknownTable, did_you_mean, from_wire, to_json, to_wire,
)


def test_statuses_come_with_the_class():
    assert LakebookError("x").http_status == 500
    assert NotFound("x").http_status == 404
    assert errors.ReadOnlyViolation("x").http_status == 400  # inherited from QueryError
    assert Backpressure("x").http_status == 503
    assert errors.UnsupportedMediaType("x").http_status == 415


def test_one_json_shape():
    assert to_json(UnknownTable("unknown table raw.x", hint="did you mean raw.y?")) == {
        "error": {"status": 404, "message": "unknown table raw.x", "hint": "did you mean raw.y?"}}
    assert to_json(MissingDependency("feast", "features"))["error"]["hint"] == "pip install 'lakebook[features]'"


@pytest.mark.parametrize("exc", [
    Backpressure("log full", retry_after_s=7, hint="retry later"),
    MissingDependency("feast", "features"),
    UnknownTable("unknown table raw.x"),
])
def test_errors_cross_processes_as_their_class_and_fields(exc):
    name, fields = pickle.loads(pickle.dumps(to_wire(exc)))
    again = from_wire(name, fields)
    assert type(again) is type(exc) and vars(again) == vars(exc) and str(again) == str(exc)


def test_an_unknown_class_name_comes_back_as_a_lakebook_error():
    again = from_wire("NoSuchError", {"message": "m", "hint": "h"})
    assert type(again) is LakebookError and (again.message, again.hint) == ("m", "h")


def test_did_you_mean_quotes_names_but_not_tables():
    assert did_you_mean("flight", ["flights", "weather"]) == "did you mean 'flights'?"
    assert did_you_mean("raw.flight", ["raw.flights"], quote=False) == "did you mean raw.flights?"
    assert did_you_mean("zzz", ["flights"]) is None
