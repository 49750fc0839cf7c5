"""Snapshots: a dashboard's notebook executed (Papermill, as a job run is) and stored as static
HTML without code cells, with history.

Invariants: a snapshot's file is complete before its row exists (written under a temporary
folder of the dashboard's snapshot folder, then renamed), so the server never serves half a
page; a failed execution leaves the earlier snapshots as they were.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import DashboardError, LakebookError
from ..jobs._papermill import import_papermill
from ..jobs.attempt import kernel_manager_logging_to
from ..jobs.definitions import PublishStep, register_publish_step
from ..jobs.runner import render_html
from .api import current_user, dashboard, describe
from .store import DashboardStore, SnapshotRow, now_utc

log = logging.getLogger("lakebook.dashboards")


def snapshot_folder(workspace, name: str) -> Path:
    return workspace.dashboards_dir / name / "snapshots"


VEGALITE = "application/vnd.vegalite.v5+json"
VEGALITE_VERSION = "5.20"  # the Vega-Lite of Altair 5.5's specs
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def static_outputs(output: Path) -> int:
    """Make the executed notebook's outputs static, so its snapshot needs no JavaScript (a static
    page would fetch Vega's and the widgets' from a CDN): a widget view becomes what the widget
    shows — an Output widget its outputs, a box its children's, a control nothing (it does
    nothing without a kernel) — and each Vega-Lite chart an SVG drawn here by vl-convert,
    offline. How many charts it drew."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    drawn = [0]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [_drawn(o, drawn) for out in cell.outputs for o in _unwidgeted(out, state)]
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, output)
    return drawn[0]


def _unwidgeted(out: dict, state: dict, depth: int = 0) -> list:
    """``out`` with a widget view replaced by what its widget shows (see static_outputs)."""
    import nbformat

    view = out.get("data", {}).get(WIDGET_VIEW)
    if view is None or depth > 20:
        return [out]
    model = state.get(view.get("model_id"), {})
    if model.get("model_name") == "OutputModel":
        shown = [nbformat.from_dict(o) for o in model.get("state", {}).get("outputs", [])]
    else:
        children = [c.removeprefix("IPY_MODEL_") for c in model.get("state", {}).get("children", [])]
        shown = [{"output_type": "display_data", "data": {WIDGET_VIEW: {"model_id": c}}, "metadata": {}}
                 for c in children]
    return [o for child in shown for o in _unwidgeted(child, state, depth + 1)]


def _drawn(out: dict, drawn: list[int]) -> dict:
    import vl_convert

    spec = out.get("data", {}).pop(VEGALITE, None)
    if spec is not None:
        out["data"]["image/svg+xml"] = vl_convert.vegalite_to_svg(spec, vl_version=VEGALITE_VERSION)
        out["data"].pop("text/html", None)
        drawn[0] += 1
    return out


def execute(notebook: Path, output: Path, timeout_s: float, kernel_log: Path) -> None:
    """Run ``notebook`` into ``output`` (widget state kept, so widgets render statically where
    their renderer can load); a DashboardError naming the failing cell if one raises."""
    papermill = import_papermill()
    try:
        papermill.execute_notebook(str(notebook), str(output), cwd=str(notebook.parent), progress_bar=False,
                                   execution_timeout=timeout_s, log_output=False,
                                   kernel_manager_class=kernel_manager_logging_to(kernel_log))
    except papermill.PapermillExecutionError as exc:
        raise DashboardError(f"{notebook.name}: cell {exc.cell_index} raised {exc.ename}: {exc.evalue}",
                             hint="fix the notebook (run it in the Lab) and snapshot again") from None


def take_snapshot(workspace, name: str, *, by: str | None = None) -> dict[str, Any]:
    """Execute dashboard ``name`` now and store its outputs as the newest snapshot."""
    with DashboardStore(workspace) as store:
        row = dashboard(store, name)
        folder = snapshot_folder(workspace, name)
        folder.mkdir(parents=True, exist_ok=True)
        started, created = time.monotonic(), now_utc()
        work = Path(tempfile.mkdtemp(prefix=".work-", dir=folder))
        try:
            execute(workspace.root / row.notebook, work / "output.ipynb", workspace.settings.dashboards.snapshot_timeout_s,
                    workspace.log_path("dashboards-snapshot"))
            static_outputs(work / "output.ipynb")
            html = render_html(work / "output.ipynb", exclude_input=True)
            target = folder / f"{created:%Y%m%dT%H%M%S%f}.html"
            html.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        store.add_snapshot(SnapshotRow(dashboard=name, created_at=created, created_by=by or current_user(),
                                       html_path=str(target), seconds=round(time.monotonic() - started, 3)))
        log.info("snapshot of dashboard %s in %.1f s", name, time.monotonic() - started)
        return {**describe(workspace, store, row), "snapshot": snapshot_json(store.snapshots(name, 1)[0])}


def snapshot_json(row: SnapshotRow) -> dict[str, Any]:
    return {"id": row.id, "dashboard": row.dashboard, "created_at": row.created_at, "created_by": row.created_by,
            "seconds": row.seconds, "url_path": f"/snapshots/{row.dashboard}/{row.id}"}


def history(workspace, name: str, limit: int = 20) -> list[dict[str, Any]]:
    with DashboardStore(workspace) as store:
        dashboard(store, name)
        return [snapshot_json(row) for row in store.snapshots(name, limit)]


@register_publish_step
class DashboardSnapshot(PublishStep):
    """``publish: [{dashboard_snapshot: NAME}]`` in a job: a snapshot after each succeeded run."""

    step_type: ClassVar[str] = "dashboard_snapshot"
    shorthand: ClassVar[str] = "dashboard"
    type: Literal["dashboard_snapshot"] = "dashboard_snapshot"
    dashboard: str

    def publish(self, workspace, run) -> None:
        try:
            take_snapshot(workspace, self.dashboard, by=f"job {run['job']} run {run['id']}")
        except LakebookError as exc:  # the run succeeded; its snapshot failing is logged, not its status
            log.error("run %s of %s: snapshot of dashboard %s failed: %s (%s)", run["id"], run["job"],
                      self.dashboard, exc.message, exc.hint)
