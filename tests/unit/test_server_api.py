"""The Lake panel API's pieces that need no server: finding the workspace, JSON values,
parameter validation and the mapping of errors to HTTP statuses."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from lakebook.errors import QueryError, UnknownTable, WorkspaceNotFound
from lakebook.server.api import LakeAPI, PreviewParams, iso, json_value


def test_workspace_comes_from_the_setting_then_the_environment_then_upwards(workspace_dir, tmp_path):
    other = tmp_path / "other"
    (other / "lakebook.yaml").parent.mkdir()
    (other / "lakebook.yaml").write_text("name: other\n")
    nested = workspace_dir / "notebooks" / "deep"
    nested.mkdir(parents=True)

    assert LakeAPI(str(other), nested, environ={"LAKEBOOK_WORKSPACE": str(workspace_dir)}).workspace().root == other
    assert LakeAPI(None, tmp_path, environ={"LAKEBOOK_WORKSPACE": str(other)}).workspace().root == other
    assert LakeAPI(None, nested, environ={}).workspace().root == workspace_dir.resolve()


def test_no_workspace_says_how_to_name_one(tmp_path):
    with pytest.raises(WorkspaceNotFound) as caught:
        LakeAPI(None, tmp_path, environ={}).catalog_json()
    assert "--LakebookApp.workspace" in caught.value.hint and "LAKEBOOK_WORKSPACE" in caught.value.hint


def test_empty_catalog(workspace_dir):
    api = LakeAPI(str(workspace_dir), workspace_dir, environ={})
    doc = api.catalog_json()  # the contracts' tables are there before any event arrives
    assert doc["workspace"] == "test" and [z["name"] for z in doc["zones"]] == ["blobs", "quarantine", "raw"]
    assert {t["name"]: t["row_count"] for z in doc["zones"] for t in z["tables"]} == {
        "blobs.planes": 0, "quarantine.flights": 0, "quarantine.planes": 0, "quarantine.predictions": 0,
        "quarantine.weather": 0, "raw.flights": 0, "raw.planes": 0, "raw.predictions": 0, "raw.weather": 0}
    assert doc["generated_at"].endswith("Z")
    with pytest.raises(UnknownTable):
        api.table_json("warehouse.flights")
    api.close()


def test_values_become_json():
    aware = datetime(2013, 1, 1, 5, 15, tzinfo=timezone(timedelta(hours=-5)))
    assert json_value(aware) == "2013-01-01T10:15:00Z"
    assert json_value(datetime(2013, 1, 1, 10, 15)) == "2013-01-01T10:15:00"
    assert json_value(date(2013, 1, 1)) == "2013-01-01"
    assert [json_value(x) for x in (math.nan, math.inf, 1.5, Decimal("2.50"), Decimal("NaN"))] == [None, None, 1.5, 2.5, None]
    assert json_value({"reasons": ["a", math.nan], "n": None}) == {"reasons": ["a", None], "n": None}
    assert json_value(b"\x00\xff") == "AP8="
    assert json_value(timedelta(minutes=2)) == 120.0
    json.dumps(json_value([aware, math.nan]), allow_nan=False)
    assert iso(None) is None and iso(datetime(2013, 1, 1)) == "2013-01-01T00:00:00Z"


def test_preview_limit_is_1_to_1000():
    assert PreviewParams.model_validate({}).limit == 100
    assert PreviewParams.model_validate({"limit": "1000"}).limit == 1000
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"lmit": "5"}):
        with pytest.raises(ValidationError):
            PreviewParams.model_validate(bad)


def test_errors_map_to_statuses_in_one_place():
    from tornado.web import HTTPError

    from lakebook.server.handlers import error_status

    assert error_status(UnknownTable("no table raw.x", hint="did you mean raw.y?")) == (404, "no table raw.x", "did you mean raw.y?")
    assert error_status(QueryError("bad SQL"))[0] == 400
    try:
        PreviewParams.model_validate({"limit": "0"})
    except ValidationError as exc:
        status, message, hint = error_status(exc)
    assert status == 422 and message.startswith("invalid parameters: limit:") and hint is None
    assert error_status(HTTPError(403))[0] == 403
    assert error_status(RuntimeError("boom"))[:2] == (500, "internal error: RuntimeError")
