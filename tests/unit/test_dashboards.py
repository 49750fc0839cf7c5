"""Dashboards without a server or kernel: publishing, share tokens (signature, expiry,
revocation, tampering), which dashboard a server path is for, settings, CLI errors, and the
job publish step."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from dashboard_support import write_dashboard
from lakebook.cli import main
from lakebook.config import load_settings
from lakebook.dashboards import list_dashboards, publish, revoke, share, unpublish
from lakebook.dashboards.server import dashboard_of, is_public
from lakebook.dashboards.store import DashboardStore, ShareRow, now_utc
from lakebook.dashboards.tokens import check, mint, share_secret
from lakebook.errors import ConfigError, DashboardError, Forbidden, UnknownDashboard


@pytest.fixture
def published(workspace):
    write_dashboard(workspace.root)
    write_dashboard(workspace.root, "notebooks/other.ipynb")
    publish(workspace, workspace.root / "notebooks/delays.ipynb")
    publish(workspace, workspace.root / "notebooks/other.ipynb")
    return workspace


def _token(url: str) -> str:
    return url.split("share=", 1)[1]


def _check(ws, token: str, dashboard: str = "delays") -> None:
    with DashboardStore(ws) as store:
        check(share_secret(ws.share_key_path), token, store.share(token.split(".")[1]), dashboard)


# -- publishing ----------------------------------------------------------------------------------------
def test_publish_names_the_dashboard_after_its_notebook_and_lists_it(published):
    rows = {r["name"]: r for r in list_dashboards(published)}
    assert set(rows) == {"delays", "other"}
    assert rows["delays"]["notebook"] == "notebooks/delays.ipynb"
    assert rows["delays"]["url"] == "http://127.0.0.1:8866/d/delays" and rows["delays"]["last_snapshot"] is None


def test_a_relative_notebook_is_the_workspaces_before_the_current_folders(workspace, tmp_path, monkeypatch):
    write_dashboard(workspace.root, "notebooks/board.ipynb")
    elsewhere = tmp_path / "elsewhere"
    write_dashboard(elsewhere, "notebooks/board.ipynb")  # the same relative path in the current folder
    monkeypatch.chdir(elsewhere)
    assert publish(workspace, "notebooks/board.ipynb")["notebook"] == "notebooks/board.ipynb"
    monkeypatch.chdir(workspace.root / "notebooks")  # from inside the workspace, relative to where one is
    write_dashboard(workspace.root, "notebooks/second.ipynb")
    assert publish(workspace, "second.ipynb")["notebook"] == "notebooks/second.ipynb"


def test_publish_refuses_what_is_not_a_notebook_of_the_workspace(workspace, tmp_path):
    outside = write_dashboard(tmp_path / "elsewhere")
    with pytest.raises(DashboardError, match="is not a notebook of the workspace") as caught:
        publish(workspace, outside)
    assert "copy it into the workspace" in caught.value.hint
    with pytest.raises(DashboardError, match="no notebook"):
        publish(workspace, workspace.root / "notebooks/missing.ipynb")
    (workspace.root / "notes.txt").write_text("x")
    with pytest.raises(DashboardError, match=r"not a notebook \(.ipynb\)"):
        publish(workspace, workspace.root / "notes.txt")
    with pytest.raises(DashboardError, match="not a dashboard name"):
        publish(workspace, write_dashboard(workspace.root), "Bad-Name")


def test_a_name_or_notebook_published_already_is_a_conflict(published):
    with pytest.raises(DashboardError, match="already notebooks/delays.ipynb"):
        publish(published, published.root / "notebooks/other.ipynb", "delays")
    with pytest.raises(DashboardError, match="already published as 'delays'"):
        publish(published, published.root / "notebooks/delays.ipynb", "again")
    assert publish(published, published.root / "notebooks/delays.ipynb", pool_size=2)["pool_size"] == 2


def test_unknown_names_get_did_you_mean(published):
    with pytest.raises(UnknownDashboard, match="no dashboard 'delay'") as caught:
        share(published, "delay")
    assert caught.value.hint == "did you mean 'delays'?"
    with pytest.raises(UnknownDashboard):
        unpublish(published, "nope")


# -- share tokens --------------------------------------------------------------------------------------
def test_a_share_token_opens_its_dashboard_only(published):
    token = _token(share(published, "delays", "1h")["url"])
    _check(published, token)
    with pytest.raises(Forbidden, match="does not open dashboard 'other'"):
        _check(published, token, "other")


@pytest.mark.parametrize("tamper", ["signature", "expiry", "id"])
def test_a_tampered_token_is_refused(published, tamper):
    prefix, token_id, expires, signature = _token(share(published, "delays", "1h")["url"]).split(".")
    changed = {"signature": [token_id, expires, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")],
               "expiry": [token_id, str(int(expires) + 86400), signature],
               "id": [token_id[:-1] + ("0" if token_id[-1] != "0" else "1"), expires, signature]}[tamper]
    with pytest.raises(Forbidden):
        _check(published, ".".join([prefix, *changed]))


def test_an_expired_token_is_refused(published):
    secret = share_secret(published.share_key_path)
    past = now_utc() - timedelta(seconds=1)
    with DashboardStore(published) as store:
        store.add_share(ShareRow(id="expired01", dashboard="delays", created_at=past, created_by="t",
                                 expires_at=past, revoked=False))
    with pytest.raises(Forbidden, match="expired"):
        _check(published, mint(secret, "expired01", "delays", past))


def test_revoking_by_id_or_all_refuses_the_tokens(published):
    first, second = (share(published, "delays", "1h") for _ in range(2))
    assert revoke(published, first["id"]) == 1
    with pytest.raises(Forbidden, match="revoked"):
        _check(published, _token(first["url"]))
    _check(published, _token(second["url"]))
    assert revoke(published, "delays", every=True) == 1
    with pytest.raises(Forbidden, match="revoked"):
        _check(published, _token(second["url"]))
    with pytest.raises(UnknownDashboard, match="no share token"):
        revoke(published, "nosuchid")


def test_unpublishing_revokes_the_dashboards_tokens(published):
    token = _token(share(published, "delays", "1h")["url"])
    unpublish(published, "delays")
    with pytest.raises(Forbidden):
        _check(published, token)


def test_the_share_secret_is_private_and_refused_when_readable_by_others(workspace):
    share_secret(workspace.share_key_path)
    assert oct(os.stat(workspace.share_key_path).st_mode & 0o777) == "0o600"
    os.chmod(workspace.share_key_path, 0o644)
    with pytest.raises(DashboardError, match="readable by others"):
        share_secret(workspace.share_key_path)


def test_an_expiry_that_is_not_a_duration_is_an_error(published):
    with pytest.raises(DashboardError, match="not a positive duration") as caught:
        share(published, "delays", "soon")
    assert "7d" in caught.value.hint


# -- what the server lets through ------------------------------------------------------------------------
def test_each_server_path_is_for_one_published_dashboard_or_none(published):
    from lakebook.dashboards import server

    server.CONTEXT.store = DashboardStore(published)
    kernels = {"0e3a8c2e-1111-4222-8333-444455556666": "notebooks/other.ipynb"}
    try:
        of = lambda path: dashboard_of(path, kernels.get)  # noqa: E731
        assert of("d/delays") == "delays" and of("snapshots/delays/latest") == "delays"
        assert of("voila/render/notebooks/delays.ipynb") == "delays"
        assert of("lakebook/links/voila/render/notebooks/other.ipynb") == "other"
        assert of("api/kernels/0e3a8c2e-1111-4222-8333-444455556666/channels") == "other"
        for path in ("", "voila/tree", "voila/api/contents/notebooks", "login", "d/nope",
                     "voila/render/notebooks/unpublished.ipynb", "api/kernels/0e3a8c2e-1111-4222-8333-000000000000",
                     "lakebook/status", "api/kernels"):
            assert of(path) is None, path
    finally:
        server.CONTEXT.store.close()


def test_voilas_front_end_is_public_and_nothing_else_is():
    for path in ("voila/labextensions/@voila-dashboards/widgets-manager8/static/remoteEntry.js",
                 "voila/labextensions/@jupyter-widgets/jupyterlab-manager/static/remoteEntry.js",
                 "voila/static/voila.js", "voila/api/themes/@jupyterlab/theme-light-extension/index.css"):
        assert is_public(path), path
    for path in ("voila/render/notebooks/delays.ipynb", "voila/files/notebooks/delays.ipynb", "voila/tree",
                 "voila/labextensions/../../etc/passwd", "d/delays", "api/kernels", "voila/api/contents/x"):
        assert not is_public(path), path


# -- settings, CLI, services, jobs -------------------------------------------------------------------------
def test_dashboards_settings_default_to_loopback_8866_and_refuse_another_host(tmp_path):
    config = tmp_path / "lakebook.yaml"
    config.write_text("name: t\ndashboards: {pool_size: 2, cull_idle_s: 120}\n")
    settings = load_settings(config, {}).dashboards
    assert (settings.host, settings.port, settings.pool_size, settings.cull_idle_s) == ("127.0.0.1", 8866, 2, 120)
    config.write_text("name: t\ndashboards: {host: 0.0.0.0}\n")
    with pytest.raises(ConfigError, match="dashboards.host"):
        load_settings(config, {})


def test_cli_errors_are_one_message_with_a_hint(published, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["lakebook", "-w", str(published.root), "dashboards", "share", "delyas"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == "error: no dashboard 'delyas'\nhint: did you mean 'delays'?\n"


def test_the_service_is_enabled_once_a_dashboard_is_published(workspace):
    from lakebook.services import enabled_services, service

    assert "dashboards" not in enabled_services(workspace)
    publish(workspace, write_dashboard(workspace.root))
    assert "dashboards" in enabled_services(workspace)
    assert service("dashboards").token_env  # its own token: lakebook's status probe and admin calls


def test_a_job_can_publish_a_dashboard_snapshot(published):
    from lakebook.jobs.definitions import load_job

    (published.root / "jobs").mkdir()
    path = published.root / "jobs" / "refresh.yaml"
    path.write_text("notebook: notebooks/delays.ipynb\npublish: [{dashboard_snapshot: delays}]\n")
    step = load_job(published, path).definition.publish[0]
    assert (step.type, step.dashboard) == ("dashboard_snapshot", "delays")


def test_a_snapshot_draws_each_vega_lite_chart_as_svg_offline(tmp_path):
    import altair as alt
    import nbformat
    import pandas as pd

    from lakebook.dashboards.snapshots import VEGALITE, static_outputs

    spec = alt.Chart(pd.DataFrame({"hour": [6, 7, 8], "late": [0.1, 0.3, 0.2]})).mark_bar().encode(
        x="hour:O", y="late").to_dict()
    chart = nbformat.v4.new_code_cell("chart", outputs=[nbformat.v4.new_output(
        "display_data", data={VEGALITE: spec, "text/plain": "alt.Chart(...)"})])
    text = nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")])
    path = tmp_path / "output.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[chart, text]), path)
    assert static_outputs(path) == 1
    data = nbformat.read(path, as_version=4).cells[0].outputs[0]["data"]
    assert VEGALITE not in data and data["image/svg+xml"].lstrip().startswith("<svg")
    assert ">hour<" in data["image/svg+xml"]  # the axis title: the chart was drawn, not a placeholder
    assert nbformat.read(path, as_version=4).cells[1].outputs[0]["text"] == "1\n"


def test_a_snapshot_shows_what_widgets_hold_and_drops_the_controls(tmp_path):
    import nbformat

    from lakebook.dashboards.snapshots import WIDGET_STATE, WIDGET_VIEW, static_outputs

    def view(model_id):
        return nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": model_id}, "text/plain": "VBox()"})

    state = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_pick", "IPY_MODEL_out"]}},
             "pick": {"model_name": "DropdownModel", "state": {"value": "JFK"}},
             "out": {"model_name": "OutputModel", "state": {"outputs": [
                 {"output_type": "display_data", "data": {"text/html": "<table>fresh</table>"}, "metadata": {}},
                 {"output_type": "stream", "name": "stdout", "text": "3 tables\n"}]}}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("board", outputs=[view("box")])])
    notebook.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    path = tmp_path / "output.ipynb"
    nbformat.write(notebook, path)
    assert static_outputs(path) == 0
    written = nbformat.read(path, as_version=4)
    assert [o.get("data", {}).get("text/html") or o.get("text") for o in written.cells[0].outputs] == [
        "<table>fresh</table>", "3 tables\n"]
    assert "widgets" not in written.metadata


def test_ctrl_c_while_the_server_is_still_starting_is_a_stop_not_an_error(published, monkeypatch):
    """SIGINT while Voila is starting (its import and initialize take seconds) stops `lakebook
    dashboards serve` as Ctrl-C does later: exit 0, no "Aborted!", no address printed."""
    from click.testing import CliRunner
    from voila.app import Voila

    from lakebook.cli import cli

    def interrupted(self, argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Voila, "initialize", interrupted)
    result = CliRunner().invoke(cli, ["-w", str(published.root), "dashboards", "serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert "Aborted" not in result.output and "http://" not in result.output
