"""The dashboard server as `lakebook up` runs it (start_service(ws, "dashboards")): a real
standalone Voila with a pre-heated kernel, share tokens checked on every page, the kernel's
routes, snapshots served without a kernel, and a log without tokens. One start for the module."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from ingest_support import make_workspace
from dashboard_support import MARKER, expired_share, write_dashboard
from lakebook.dashboards import history, publish, revoke, share
from lakebook.dashboards.store import DashboardStore
from lakebook.services import start_service
from lakebook.workspace import Workspace


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ws = Workspace.load(make_workspace(tmp_path_factory.mktemp("dash") / "ws"))
    publish(ws, write_dashboard(ws.root))
    publish(ws, write_dashboard(ws.root, "notebooks/other.ipynb", code=["print('other dashboard')"]))
    taken = _snapshot_by_the_cli(ws, "delays")
    tokens = {"valid": share(ws, "delays", "1h"), "revoked": share(ws, "delays", "1h"),
              "other": share(ws, "other", "1h"), "expired": {"url": "x?share=" + expired_share(ws)}}
    revoke(ws, tokens["revoked"]["id"])
    process = start_service(ws, "dashboards")
    try:
        _wait_for_pool(process)
        yield ws, process, {k: v["url"].split("share=", 1)[1] for k, v in tokens.items()}, taken
    finally:
        process.stop()


def _snapshot_by_the_cli(ws, name: str) -> dict:
    """A snapshot taken as users take one, by `lakebook dashboards snapshot` in a process of its
    own (the Papermill kernel is not started from this long-lived test process)."""
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), "dashboards", "snapshot", name],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return history(ws, name, 1)[0]


def status(process) -> dict:
    return httpx.get(process.base_url + "/lakebook/status", headers={"Authorization": f"token {process.launch.token}"},
                     timeout=10).json()


def _wait_for_pool(process, timeout_s: float = 120, filled: int = 2) -> None:
    """The pre-heated kernels have executed their notebooks (Voila logs when a pool is full)."""
    deadline = time.monotonic() + timeout_s
    while process.log_text().count("is filled with") < filled:
        assert time.monotonic() < deadline, process.log_text()[-3000:]
        time.sleep(0.2)


def client(process) -> httpx.Client:
    return httpx.Client(base_url=process.base_url, timeout=60, follow_redirects=True)


def test_a_share_link_opens_the_rendered_dashboard_and_the_token_leaves_the_url(served):
    _, process, tokens, _ = served
    with client(process) as browser:
        page = browser.get(f"/d/delays?share={tokens['valid']}")
        assert page.status_code == 200
        assert MARKER in page.text and "application/vnd.jupyter.widget-view+json" in page.text  # the widgets
        assert str(page.url).endswith("/voila/render/notebooks/delays.ipynb")  # no token in the page's address
        assert [r.status_code for r in page.history] == [302, 302]
        assert browser.get("/lakebook/links/voila/render/notebooks/delays.ipynb").json()["snapshot"]["url"] \
            .startswith("/snapshots/delays/")


def test_the_metrics_count_the_pages_kernels_and_pools_without_a_token(served):
    from prometheus_client.parser import text_string_to_metric_families

    ws, process, tokens, _ = served
    with client(process) as browser:
        assert browser.get(f"/d/delays?share={tokens['valid']}").status_code == 200
    answer = httpx.get(process.base_url + "/metrics", timeout=30)
    found = {(s.name, tuple(v for _, v in sorted(s.labels.items()))): s.value  # values by label name: code, route
             for f in text_string_to_metric_families(answer.text) for s in f.samples}
    assert answer.status_code == 200 and found[("lakebook_dashboards_published", ())] == 2
    assert found[("lakebook_dashboards_pages_rendered_total", ("delays",))] >= 1
    assert found[("lakebook_dashboards_kernels", ("delays",))] >= 1  # the page's (or the pool's) kernel
    assert found[("lakebook_dashboards_kernels", ("other",))] >= 1  # its pre-heated one
    assert found[("lakebook_dashboards_pool_kernels", ("other",))] == ws.settings.dashboards.pool_size  # not opened
    assert found[("lakebook_dashboards_http_responses_total", ("302", "page"))] >= 1


@pytest.mark.parametrize("which", [None, "expired", "revoked", "other", "tampered"])
def test_every_page_refuses_a_missing_expired_revoked_foreign_or_tampered_token(served, which):
    _, process, tokens, _ = served
    token = {None: None, "tampered": tokens["valid"][:-3] + "AAA"}.get(which, tokens.get(which))
    query = f"?share={token}" if token else ""
    for path in ("/d/delays", "/voila/render/notebooks/delays.ipynb", "/snapshots/delays/latest"):
        answer = httpx.get(process.base_url + path + query, timeout=30)
        assert answer.status_code == 403, (path, which, answer.text[:200])
        assert answer.json()["error"]["status"] == 403


def test_the_kernel_and_tree_routes_refuse_without_a_token(served):
    _, process, tokens, _ = served
    kernels = status(process)["kernels"]
    kernel = next(k for k, notebook in kernels.items() if notebook == "notebooks/delays.ipynb")
    for path in (f"/api/kernels/{kernel}", f"/api/kernels/{kernel}/channels", f"/voila/api/shutdown/{kernel}", "/",
                 "/voila/tree", "/voila/api/contents/notebooks", "/voila/files/notebooks/delays.ipynb",
                 "/lakebook/status"):
        assert httpx.get(process.base_url + path, timeout=30).status_code == 403, path
    assert httpx.get(process.base_url + "/login", timeout=30).status_code == 404  # no login page at all
    manager = "/voila/labextensions/@voila-dashboards/widgets-manager8/package.json"  # what every page loads
    assert httpx.get(process.base_url + manager, timeout=30).status_code == 200
    assert httpx.post(process.base_url + f"/voila/api/shutdown/{kernel}", timeout=30).status_code == 403
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(_connect(process, kernel, cookie=None))
    assert refused.value.code == 403
    with client(process) as browser:  # the other dashboard's cookie does not open this one's kernel
        browser.get(f"/d/other?share={tokens['other']}")
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    with pytest.raises(HTTPClientError):
        asyncio.run(_connect(process, kernel, cookie=cookie))
    with client(process) as browser:  # while this dashboard's own cookie does
        browser.get(f"/d/delays?share={tokens['valid']}")
        asyncio.run(_connect(process, kernel, cookie="; ".join(f"{k}={v}" for k, v in browser.cookies.items())))


async def _connect(process, kernel: str, cookie: str | None) -> None:
    headers = {"Cookie": cookie} if cookie else {}
    url = process.base_url.replace("http", "ws") + f"/api/kernels/{kernel}/channels"
    connection = await websocket_connect(HTTPRequest(url, headers=headers))
    connection.close()


def test_a_snapshot_is_outputs_without_code_and_is_served_without_a_kernel(served):
    ws, process, tokens, taken = served
    html = (ws.dashboards_dir / "delays" / "snapshots").glob("*.html").__next__().read_text()
    assert MARKER in html and "airport is JFK" in html  # the printed output and the widget's output
    assert "widget-view+json" not in html and "widget-state+json" not in html  # static: no widget JavaScript
    assert html.count('data-mime-type="image/svg+xml"') == 1  # the Altair chart, drawn as SVG
    assert "import altair" not in html and "choice.observe" not in html  # no code input
    before = status(process)["kernels"]
    with client(process) as browser:
        started = time.monotonic()
        page = browser.get(f"/snapshots/delays/latest?share={tokens['valid']}")
        elapsed = time.monotonic() - started
        assert page.status_code == 200 and MARKER in page.text and 'id="lakebook-live-link"' in page.text
        assert browser.get(f"/snapshots/delays/{taken['id']}").status_code == 200
        assert browser.get("/snapshots/delays/999").status_code == 404
    assert status(process)["kernels"] == before  # no kernel started for it
    assert elapsed < 2.0, elapsed  # a file read, not an execution (seconds)


def test_the_log_never_holds_a_token(served):
    _, process, tokens, _ = served
    with client(process) as browser:
        browser.get(f"/d/delays?share={tokens['valid']}")
    deadline = time.monotonic() + 10  # the server writes a request's access line once it has finished it
    while "GET /d/delays" not in process.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = process.log_text()
    assert "GET /d/delays" in log  # the access log is there, without its query
    for token in tokens.values():
        assert token not in log and token.split(".")[3] not in log
    assert "share=" not in log and process.launch.token not in log


def test_a_job_with_a_dashboard_snapshot_step_takes_a_snapshot_after_each_succeeded_run(workspace):
    from jobs_support import add_job, add_notebooks
    from lakebook.dashboards import history
    from lakebook.jobs import run_job

    add_notebooks(workspace.root)
    publish(workspace, write_dashboard(workspace.root, "notebooks/board.ipynb", code=["print('board ready')"]))
    add_job(workspace.root, "refresh", "notebook: notebooks/ok.ipynb\npublish: [{dashboard_snapshot: board}]")
    add_job(workspace.root, "broken", "notebook: notebooks/fail.ipynb\npublish: [{dashboard_snapshot: board}]")
    assert run_job(workspace, "broken")["status"] == "failed"
    assert history(workspace, "board") == []  # a failed run publishes nothing
    run = run_job(workspace, "refresh")
    assert run["status"] == "succeeded"
    [snapshot] = history(workspace, "board")
    assert snapshot["created_by"] == f"job refresh run {run['id']}"
    with DashboardStore(workspace) as store:
        assert "board ready" in Path(store.snapshot("board", snapshot["id"]).html_path).read_text()


def test_the_snapshot_command_prints_its_result_and_no_kernel_or_exporter_notices(served):
    ws = served[0]
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), "dashboards", "snapshot", "delays"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "snapshot" in done.stdout
    noise = [line for line in (done.stdout + done.stderr).splitlines()
             if "without encryption" in line or "WARNING" in line or "Alternative text" in line]
    assert not noise, noise
    assert ws.log_path("dashboards-snapshot").is_file()  # where the kernel's own output goes


@pytest.mark.timeout(240)
def test_an_idle_page_kernel_is_culled_and_the_pre_heated_pool_is_kept(tmp_path):
    ws = Workspace.load(make_workspace(tmp_path / "ws", "name: cull\ndashboards: {pool_size: 1, cull_idle_s: 3, "
                                                          "cull_interval_s: 1}\n"))
    publish(ws, write_dashboard(ws.root, code=[f"print('{MARKER}')"]))
    token = share(ws, "delays", "1h")["url"].split("share=", 1)[1]
    process = start_service(ws, "dashboards")
    try:
        _wait_for_pool(process, filled=1)
        [pooled] = status(process)["kernels"]
        with client(process) as browser:  # the page takes the pre-heated kernel; Voila starts the next one
            assert MARKER in browser.get(f"/d/delays?share={token}").text
        deadline = time.monotonic() + 120
        while pooled in (kernels := status(process)["kernels"]) or len(kernels) != 1:
            assert time.monotonic() < deadline, f"kernels now: {kernels}"
            time.sleep(0.5)
        time.sleep(5)  # idle longer than cull_idle_s: the new pooled kernel stays
        assert list(status(process)["kernels"]) == list(kernels) and status(process)["pools"] == {"delays": 1}
    finally:
        process.stop()


def test_twenty_pages_in_a_row_all_render(served):
    """Page after page, each on the pre-heated kernel filled after the one before: none stalls.
    With Jupyter's own kernel client, one in 3 to 21 such pages waited for good on an execute
    reply the event loop was never woken for (lakebook.dashboards.kernels)."""
    _, process, tokens, _ = served
    for page in range(20):
        with httpx.Client(base_url=process.base_url, timeout=45, follow_redirects=True) as browser:
            answer = browser.get(f"/d/delays?share={tokens['valid']}")
        assert answer.status_code == 200 and MARKER in answer.text, (page, process.log_text()[-2000:])
