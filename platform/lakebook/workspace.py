"""The Workspace: one folder with lakebook.yaml, its settings and every path lakebook uses.

Modules never invent paths or read environment variables: they receive a Workspace. Paths
under the lake come from ``workspace.lake`` (lake/layout.py); everything else lakebook keeps
(catalog, ingest log, MLflow, Feast, logs, runs, service state, locks) is named here.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .config import CONFIG_FILE, Settings, load_settings, profile_from_environment, workspace_from_environment
from .errors import WorkspaceNotFound

if TYPE_CHECKING:
    from .contracts import CompiledContract
    from .lake import LakeLayout


class _StatePath:
    """A file or folder under the workspace's state dir."""

    def __init__(self, *parts: str, doc: str):
        self.parts = parts
        self.__doc__ = doc

    def __get__(self, workspace, owner=None) -> Path:
        return self if workspace is None else workspace.state_dir.joinpath(*self.parts)


class Workspace:
    """Paths, URIs and settings of one lakebook workspace."""

    def __init__(self, root: Path, settings: Settings, profile: str | None = None):
        self.root = root.resolve()
        self.settings = settings
        self.profile = profile  # the overlay merged over lakebook.yaml (lakebook.<profile>.yaml), if any

    @classmethod
    def load(cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None,
             profile: str | None = None) -> "Workspace":
        """Open the workspace at ``path``, or the one named by LAKEBOOK_WORKSPACE, or the
        nearest folder upwards from the current directory that holds lakebook.yaml; with the
        overlay of ``profile`` (default: the one LAKEBOOK_PROFILE names) merged over it."""
        if path is None:
            path = workspace_from_environment(environ)
        root = Path(path) if path is not None else (find_root(Path.cwd()) or Path.cwd())
        config = root / CONFIG_FILE
        if not config.is_file():
            raise WorkspaceNotFound(
                f"no {CONFIG_FILE} in {root.resolve()}",
                hint="run 'lakebook init DIR' to make a workspace, or cd into one",
            )
        profile = profile or profile_from_environment(environ)
        return cls(root, load_settings(config, environ, profile), profile)

    def _under_root(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    # -- the workspace's own files ----------------------------------------------------------
    @cached_property
    def contracts_dir(self) -> Path:
        return self._under_root(self.settings.contracts_dir)

    @cached_property
    def transforms_dir(self) -> Path:
        return self._under_root(self.settings.transforms_dir)

    @cached_property
    def seeds_dir(self) -> Path:
        return self.root / "seeds"

    @cached_property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @cached_property
    def jobs_dir(self) -> Path:
        return self._under_root(self.settings.jobs.dir)

    @cached_property
    def imports_dir(self) -> Path:
        return self.root / "imports"

    @cached_property
    def feature_repo_dir(self) -> Path:
        return self._under_root(self.settings.features.repo_dir)

    def drop_dir(self, drop) -> Path:
        """The folder of a drop folder setting (``ingest.drops``; relative to the workspace)."""
        return self._under_root(drop.dir)

    # -- state (git-ignored) -----------------------------------------------------------------
    @cached_property
    def state_dir(self) -> Path:
        return self._under_root(self.settings.state_dir)

    @cached_property
    def lake(self) -> "LakeLayout":
        from .lake import LakeLayout
        from .lake.store import S3Path, parse_root

        if (bucket := parse_root(self.settings.lake.root)) is not None:  # s3://bucket/prefix
            return LakeLayout(S3Path("/", *filter(None, [bucket[0], *bucket[1].split("/")])))
        root = Path(self.settings.lake.root)
        return LakeLayout(root if root.is_absolute() else self.state_dir / root)

    @property
    def lake_on_s3(self) -> bool:
        """Whether ``lake.root`` is an S3 bucket (``s3://…``) rather than a local folder."""
        from .lake.store import is_s3

        return is_s3(self.lake.root)

    @cached_property
    def ingest_log_path(self) -> Path:
        configured = getattr(self.settings.ingest.log, "path", None)
        return self._state_path(configured) if configured else self.state_dir / "ingest" / "log.sqlite"

    @cached_property
    def catalog_url(self) -> str:
        return self.settings.catalog.url or f"sqlite:///{self.state_dir / 'catalog.sqlite'}"

    # Everything else under the state dir, by name:
    flush_lock_path = _StatePath("ingest", "flush.lock", doc="held by whoever flushes the ingest log")
    forward_lock_path = _StatePath("ingest", "forward.lock", doc="held by the forwarder of the ingest log to the bus")
    transform_lock_path = _StatePath("transform", "run.lock", doc="held by whoever runs transforms")
    vacuum_lock_path = _StatePath("transform", "vacuum.lock", doc="held by whoever vacuums the lake (one at a time)")
    compaction_lock_path = _StatePath("maintenance", "compaction.lock", doc="held by whoever compacts the lake or removes "
                                                                     "the files compaction replaced")
    logs_dir = _StatePath("logs", doc="service and job logs")
    services_state_path = _StatePath("services.json", doc="what `lakebook up` runs (read by `lakebook status`)")
    runs_dir = _StatePath("runs", doc="output notebooks of runs (training, scheduled jobs)")
    job_runs_dir = _StatePath("runs", "jobs", doc="each job run's folder: output notebook, HTML, logs, tables read/written")
    mlflow_dir = _StatePath("mlflow", doc="MLflow's SQLite store and artifacts (the embedded default)")
    feast_dir = _StatePath("feast", doc="Feast's registry and SQLite online store")
    spark_dir = _StatePath("spark", doc="Spark's warehouse and Derby folders (nothing lakebook reads)")
    ray_dir = _StatePath("ray", doc="the local Ray runtime's temp dir")
    stream_dir = _StatePath("stream", doc="the speed layer's window state (checkpoints) and its running job")
    serving_dir = _StatePath("serving", doc="the model endpoints' service: its running record")
    serving_endpoints_path = _StatePath("serving", "endpoints.json", doc="endpoints deployed ad hoc (kept over restarts)")
    predictions_spill_path = _StatePath("serving", "predictions.spill.jsonl",
                                        doc="predictions the ingest log refused at a replica's close, until the next one")
    dashboards_dir = _StatePath("dashboards", doc="published dashboards' snapshots (<name>/<id>.html)")
    share_key_path = _StatePath("dashboards", "share.key", doc="the secret share tokens are signed with (0600)")
    query_spill_dir = _StatePath("query", "spill", doc="where the query engine spills what does not fit in memory")
    blob_locks_dir = _StatePath("blobs", "locks", doc="the lock files of blob names being stored, when the lake is on S3 "
                                                      "(a local lake keeps them beside the blobs)")
    s3_cache_dir = _StatePath("s3cache", doc="local copies of an S3 lake's files Spark reads, and its output before "
                                             "upload (safe to delete between runs)")

    def log_path(self, name: str) -> Path:
        """The log file of a service or job (``ingest`` -> logs/ingest.log)."""
        return self.logs_dir / f"{name}.log"

    def _state_path(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.state_dir / path

    def ensure_state(self) -> None:
        local_lake = [] if self.lake_on_s3 else [self.lake.root]  # a bucket has no folders to make
        for folder in (self.state_dir, *local_lake, self.ingest_log_path.parent, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # -- contracts ---------------------------------------------------------------------------
    def contracts(self) -> dict[str, "CompiledContract"]:
        """Every contract of the workspace, compiled, by source name (cached per file mtime; a
        file that does not compile is served by its last good version, see contract_problems)."""
        from .contracts import load_contracts

        return load_contracts(self.contracts_dir)

    def contract_problems(self) -> dict[str, str]:
        """Why each contract file that does not compile now does not, by source."""
        from .contracts import load_contract_set

        return load_contract_set(self.contracts_dir).problems

    def contract(self, source: str) -> "CompiledContract":
        from .contracts import get_contract, load_contract_set

        loaded = load_contract_set(self.contracts_dir)
        return get_contract(loaded.contracts, source, loaded.problems)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding lakebook.yaml, or None."""
    start = start.resolve()
    return next((folder for folder in (start, *start.parents) if (folder / CONFIG_FILE).is_file()), None)
