"""Import definitions, JSON paths, pagination, backoff and pacing, without any server."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakebook.errors import ImportDefinitionError, UnknownImport
from lakebook.imports import load_import, load_imports
from lakebook.imports.client import Fetcher, read_credential, retry_after_s
from lakebook.imports.definitions import Retries
from lakebook.imports.jsonpath import compile_path, find
from lakebook.imports.pages import PageRequest, first_request, highest, next_request
from lakebook.redact import url_without_secrets

REPO = Path(__file__).resolve().parents[2]
BASE = """\
source: airport_status
url: https://api.example.org/v1/status
auth: {header: Authorization, scheme: Bearer, env: STATUS_TOKEN}
records: data
"""


@pytest.fixture
def ws(workspace):
    shutil.copy(REPO / "contracts" / "airport_status.yaml", workspace.contracts_dir)
    return workspace


def define(ws, text: str, name: str = "statuses"):
    (ws.root / "imports").mkdir(exist_ok=True)
    (ws.root / "imports" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return load_import(ws, name)


def test_the_example_import_loads_in_the_example_workspace():
    from lakebook.workspace import Workspace

    definition = load_import(Workspace.load(REPO, environ={}), "airport_status")
    assert (definition.source, definition.pagination.type, definition.incremental.param) == (
        "airport_status", "next_link", "since")


@pytest.mark.parametrize("extra, message, hint", [
    ("recods: data\n", "imports/statuses.yaml: recods: unknown key", "did you mean 'records'?"),
    ("pagination: {type: page, parm: p}\n", "pagination.parm: unknown key", "did you mean 'param'?"),
    ("pagination: {type: pages}\n", "pagination:", "next_link"),
    ("incremental: {cursor_field: at}\n", "incremental.param: Field required", "param: since"),
    ("timeout: soon\n", "timeout: 'soon' is not a positive duration", "30s"),
    ("rate_limit: 0\n", "rate_limit:", "per second"),
])
def test_definition_errors_name_the_file_and_key_with_what_to_write(ws, extra, message, hint):
    with pytest.raises(ImportDefinitionError) as caught:
        define(ws, BASE.replace("records: data\n", "") + extra if extra.startswith("recods") else BASE + extra)
    assert message in caught.value.message and hint in caught.value.hint


@pytest.mark.parametrize("auth", [
    "auth: 'Bearer tok-123'", "auth: {header: Authorization, value: 'Bearer tok-123'}",
    "auth: {header: Authorization, token: tok-123}",
])
def test_a_literal_credential_is_refused_and_never_quoted(ws, auth):
    text = BASE.replace("auth: {header: Authorization, scheme: Bearer, env: STATUS_TOKEN}", auth)
    with pytest.raises(ImportDefinitionError) as caught:
        define(ws, text)
    assert "auth: a credential is never written in an import's file" in caught.value.message
    assert "env: API_TOKEN" in caught.value.hint and "tok-123" not in str(caught.value)


@pytest.mark.parametrize("change", [
    ("url: https://api.example.org/v1/status", "url: https://api.example.org/v1/status?api_key=k-1"),
    ("records: data", "records: data\nparams: {access_token: k-1}"),
    ("url: https://api.example.org/v1/status", "url: https://me:k-1@api.example.org/v1/status"),
])
def test_a_credential_in_the_url_or_params_is_refused(ws, change):
    with pytest.raises(ImportDefinitionError, match="credential") as caught:
        define(ws, BASE.replace(*change))
    assert "k-1" not in caught.value.message


def test_an_unknown_source_or_import_name_suggests_the_near_one(ws):
    with pytest.raises(ImportDefinitionError, match="source: no contract 'airport_statu'") as caught:
        define(ws, BASE.replace("source: airport_status", "source: airport_statu"))
    assert "did you mean 'airport_status'?" in caught.value.hint
    define(ws, BASE)
    with pytest.raises(UnknownImport) as unknown:
        load_import(ws, "statuse")
    assert unknown.value.hint == "did you mean 'statuses'?"
    (ws.root / "imports" / "broken.yaml").write_text("source: flights\n")
    assert list(load_imports(ws).problems) == ["broken"]


def test_the_credential_comes_from_the_environment_or_a_file_and_is_masked_from_then_on(ws, tmp_path):
    from lakebook.errors import LakebookError

    definition = define(ws, BASE)
    with pytest.raises(ImportDefinitionError, match="auth.env: STATUS_TOKEN is not set"):
        read_credential(ws, "statuses", definition.auth, environ={})
    assert read_credential(ws, "statuses", definition.auth, environ={"STATUS_TOKEN": "env-secret-1"}) == "env-secret-1"
    (tmp_path / "token").write_text("file-secret-2\n")
    in_file = define(ws, BASE.replace("env: STATUS_TOKEN", f"file: {tmp_path / 'token'}"))
    assert read_credential(ws, "statuses", in_file.auth) == "file-secret-2"
    assert LakebookError("got env-secret-1 and file-secret-2").message == "got *** and ***"


def test_json_paths():
    document = {"data": {"items": [{"id": 1}, {"id": 2}]}, "meta": {"next-cursor": "c2"}, "n": None}
    assert find(document, "$") is document
    assert find(document, "data.items[1].id") == find(document, "$.data.items[-1].id") == 2
    assert find(document, 'meta["next-cursor"]') == "c2"
    assert find(document, "data.missing", "none") == "none" and find(document, "n.x") is None
    assert find([1, 2], "[5]") is None
    for bad in ("data..items", ".data", "data[x]", "data items"):
        with pytest.raises(ValueError, match="is not a JSON path"):
            compile_path(bad)


def pages_definition(ws, pagination: str):
    return define(ws, BASE + f"pagination: {pagination}\nparams: {{limit: 2}}\n"
                             "incremental: {cursor_field: reported_at, param: since}\n")


def test_next_link_pagination_follows_the_body_or_the_link_header_relative_to_the_page(ws):
    body = pages_definition(ws, "{type: next_link, path: links.next}")
    first = first_request(body, since="2013-01-01T05:00:00Z")
    assert first.params == {"limit": 2, "since": "2013-01-01T05:00:00Z"}
    second = next_request(body, first, {"links": {"next": "/v1/status?offset=2"}}, {}, 2)
    assert second == PageRequest("https://api.example.org/v1/status?offset=2", {}, 2)
    assert next_request(body, second, {"links": {"next": None}}, {}, 2) is None
    header = pages_definition(ws, "{type: next_link}")
    links = {"next": {"url": "https://api.example.org/v1/status?page=3", "rel": "next"}}
    assert next_request(header, second, {}, links, 2).url.endswith("page=3")
    assert next_request(header, second, {}, {}, 2) is None


def test_cursor_and_numbered_pages_and_an_empty_page_ends_any_kind(ws):
    cursor = pages_definition(ws, "{type: cursor, param: cursor, path: meta.next}")
    first = first_request(cursor)
    assert next_request(cursor, first, {"meta": {"next": "abc"}}, {}, 2).params == {"limit": 2, "cursor": "abc"}
    assert next_request(cursor, first, {"meta": {"next": ""}}, {}, 2) is None
    assert next_request(cursor, first, {"meta": {"next": "abc"}}, {}, 0) is None
    numbered = pages_definition(ws, "{type: page, param: p, start: 0}")
    first = first_request(numbered)
    assert first.params == {"limit": 2, "p": 0}
    assert next_request(numbered, first, {}, {}, 2) == PageRequest(first.url, {"limit": 2, "p": 1}, 2)
    assert PageRequest.from_json(first.as_json()) == first


def test_the_highest_cursor_value():
    assert highest(None, ["2013-01-01T05:10:00Z", None, "2013-01-01T05:00:00Z"]) == "2013-01-01T05:10:00Z"
    assert highest(7, [3, 9.5]) == 9.5 and highest(None, [None]) is None


def test_backoff_doubles_to_its_cap_and_retry_after_is_seconds_or_a_date():
    retries = Retries(max=5, backoff=0.5, max_backoff=3)
    assert [retries.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_s("2") == 2.0 and retry_after_s("0.5") == 0.5
    assert retry_after_s((now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now) == 30.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_requests_are_paced_to_the_rate_limit(ws):
    definition = define(ws, BASE + "rate_limit: 4\n")
    clock, slept = [100.0], []

    def sleep(s):
        slept.append(round(s, 3))
        clock[0] += s

    with Fetcher(definition, "tok", sleep=sleep, clock=lambda: clock[0]) as fetcher:
        for _ in range(3):
            fetcher._pace()
        clock[0] += 1.0  # a slow page: no wait after it
        fetcher._pace()
    assert slept == [0.25, 0.25]


def test_urls_are_shown_without_credentials():
    assert url_without_secrets("https://u:pw@h/x?page=2&api_key=k&author=me&sig=s", ["page"]) == (
        "https://u:***@h/x?page=***&api_key=***&author=me&sig=***")


def test_import_list_and_show_mask_credentials_and_name_broken_files(ws):
    import json

    from click.testing import CliRunner

    from lakebook.cli import cli

    define(ws, BASE.replace("auth: {header: Authorization, scheme: Bearer, env: STATUS_TOKEN}",
                            "auth: {param: api_key, env: STATUS_TOKEN}").replace("/v1/status", "/v1/status?region=ny"))
    (ws.root / "imports" / "broken.yaml").write_text("source: flights\nurl: ftp://x\n")
    listed = CliRunner().invoke(cli, ["-w", str(ws.root), "import", "list", "--json"], catch_exceptions=False)
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["statuses"]["url"] == "https://api.example.org/v1/status?region=ny"
    assert (rows["statuses"]["records"], rows["statuses"]["cursor"], rows["statuses"]["last_run"]) == (0, None, None)
    assert "broken.yaml: url: not an http(s) URL" in rows["broken"]["problem"]
    shown = CliRunner().invoke(cli, ["-w", str(ws.root), "import", "show", "statuses"], catch_exceptions=False)
    assert "statuses: airport_status <- https://api.example.org/v1/status?region=ny" in shown.output
    assert "param: api_key" in shown.output and "env: STATUS_TOKEN" in shown.output
