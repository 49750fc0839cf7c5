"""What depends on a table or a source downstream, transitively, from lineage: the tables made from
it (the catalog's lineage, which job runs add to through their recorded reads and writes), the
jobs that read any of them or run on their update, the Feast feature views reading them and
the feature services using those views, the published dashboards whose notebook such a job runs
or whose snapshot such a job publishes, and the model endpoints whose model was trained on
an affected feature service.

A dashboard's tables are those its notebook's job runs recorded reading (run_io.py): a
dashboard whose notebook no job runs has no recorded reads and is not listed. Each part that
cannot be looked at (no Feast repository, no model registry) adds a note instead of failing.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("lakebook.monitor")
JOB_NODE = "job:"  # lineage nodes of job runs (jobs/store.py record_lineage)


@dataclass
class Impact:
    """Everything downstream of ``target`` (``zone.name``), by kind, names sorted."""

    target: str
    tables: list[str] = field(default_factory=list)
    feature_views: list[str] = field(default_factory=list)
    feature_services: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def target_of(name: str) -> str:
    """A table or source as ``zone.name``: a bare name is a source (``flights`` -> ``raw.flights``)."""
    return name if "." in name else f"raw.{name}"


def impact(workspace, name: str) -> Impact:
    """Everything downstream of table or source ``name``; UnknownTable for a name the catalog lacks."""
    from ..catalog import open_catalog

    found = Impact(target_of(name))
    catalog = open_catalog(workspace)
    catalog.table(found.target)  # an unknown name fails with a suggestion
    nodes = downstream(catalog.lineage_edges(), found.target)
    tables = {n for n in nodes if not n.startswith(JOB_NODE)}
    jobs = {n[len(JOB_NODE):] for n in nodes if n.startswith(JOB_NODE)}
    definitions = _jobs(workspace, found)
    jobs |= {job.name for job in definitions if set(job.definition.on_update) & (tables | {found.target})}
    found.tables, found.jobs = sorted(tables), sorted(jobs)
    views, services = _feature_views(workspace, tables | {found.target}, found)
    found.feature_views, found.feature_services = sorted(views), sorted(services)
    found.dashboards = sorted(_dashboards(workspace, [j for j in definitions if j.name in jobs], found))
    found.endpoints = sorted(_endpoints(workspace, services, found)) if services else []
    return found


def downstream(edges: list[tuple[str, str]], start: str) -> list[str]:
    """Every node reachable from ``start`` along (upstream, downstream) edges, nearest first."""
    below: dict[str, list[str]] = {}
    for up, down in edges:
        below.setdefault(up, []).append(down)
    seen, queue, order = {start}, deque([start]), []
    while queue:
        for node in below.get(queue.popleft(), []):
            if node not in seen:
                seen.add(node)
                order.append(node)
                queue.append(node)
    return order


def _jobs(workspace, found: Impact) -> list:
    from ..jobs.definitions import load_jobs

    try:
        return list(load_jobs(workspace).jobs.values())
    except Exception as exc:  # noqa: BLE001 - the rest of the list still holds
        found.notes.append(f"job definitions not read: {exc}")
        return []


def _feature_views(workspace, tables: set[str], found: Impact) -> tuple[set[str], set[str]]:
    """The repository's feature views whose batch source reads one of ``tables``, and the
    feature services using any of them."""
    if not (workspace.feature_repo_dir / "feature_store.yaml").is_file():
        return set(), set()
    try:
        from ..features.store import _repo_objects
        from ..lake.store import from_ibis_uri

        contents = _repo_objects(workspace)
    except Exception as exc:  # noqa: BLE001 - Feast missing, or a repository that does not load
        found.notes.append(f"feature repository not read: {exc}")
        return set(), set()
    views = {v.name for v in contents.feature_views
             if (t := workspace.lake.table_of(from_ibis_uri(getattr(v.batch_source, "path", "") or "")))
             and ".".join(t) in tables}  # an S3 lake's source names its published files under ibis's scheme
    services = {s.name for s in contents.feature_services
                if {p.name for p in s.feature_view_projections} & views}
    return views, services


def _dashboards(workspace, jobs: list, found: Impact) -> set[str]:
    """Published dashboards whose notebook an affected job runs, or whose snapshot one publishes."""
    from ..dashboards.store import DashboardStore

    notebooks = {_relative(workspace, job.notebook_path) for job in jobs if job.notebook_path is not None}
    snapshots = {getattr(step, "dashboard", None) for job in jobs for step in job.definition.publish}
    with DashboardStore(workspace) as store:
        return {d.name for d in store.dashboards() if d.notebook in notebooks or d.name in snapshots}


def _relative(workspace, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _endpoints(workspace, services: set[str], found: Impact) -> set[str]:
    """Declared and ad-hoc endpoints whose model was trained on one of ``services`` (the feature
    service its MLflow run recorded)."""
    from ..serving.endpoints import all_endpoints

    endpoints = all_endpoints(workspace)
    if not endpoints:
        return set()
    try:
        from ..ml import setup_mlflow
        from ..serving.predictor import recorded_feature_service, resolve_model

        client = setup_mlflow(workspace)
    except Exception as exc:  # noqa: BLE001 - MLflow not installed
        found.notes.append(f"endpoints' models not looked up: {exc}")
        return set()
    affected = set()
    for name, settings in endpoints.items():
        try:
            if recorded_feature_service(client, resolve_model(workspace, settings.model)) in services:
                affected.add(name)
        except Exception as exc:  # noqa: BLE001 - a model not registered (yet)
            found.notes.append(f"endpoint {name}: model not looked up: {exc}")
    return affected


def impact_lines(found: Impact) -> list[str]:
    """The impact list for a terminal: one line a kind."""
    kinds = ("tables", "feature_views", "feature_services", "jobs", "dashboards", "endpoints")
    lines = [f"downstream of {found.target}:"]
    lines += [f"  {kind.replace('_', ' ')}: {', '.join(getattr(found, kind)) or '-'}" for kind in kinds]
    return lines + [f"  note: {note}" for note in found.notes]
