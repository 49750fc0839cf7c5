"""The Workspace: one folder with lakebook.yaml, its settings and every path lakebook uses.

Modules never invent paths or read environment variables: they receive a Workspace.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .config import CONFIG_FILE, Settings, load_settings
from .errors import WorkspaceNotFound

if TYPE_CHECKING:
    from .contracts import Contract

ZONES = ("raw", "quarantine")
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Workspace:
    """Paths, URIs and settings of one lakebook workspace."""

    def __init__(self, root: Path, settings: Settings):
        self.root = root.resolve()
        self.settings = settings

    @classmethod
    def load(cls, path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> "Workspace":
        """Open the workspace at ``path``, or the one named by LAKEBOOK_WORKSPACE, or the
        nearest folder upwards from the current directory that holds lakebook.yaml."""
        environ = os.environ if environ is None else environ
        if path is None and environ.get("LAKEBOOK_WORKSPACE"):
            path = environ["LAKEBOOK_WORKSPACE"]
        root = Path(path) if path is not None else (find_root(Path.cwd()) or Path.cwd())
        config = root / CONFIG_FILE
        if not config.is_file():
            raise WorkspaceNotFound(
                f"no {CONFIG_FILE} in {root.resolve()}",
                hint="run 'lakebook init DIR' to make a workspace, or cd into one",
            )
        return cls(root, load_settings(config, environ))

    def _under_root(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @cached_property
    def state_dir(self) -> Path:
        return self._under_root(self.settings.state_dir)

    @cached_property
    def lake_dir(self) -> Path:
        root = Path(self.settings.lake.root)
        return root if root.is_absolute() else self.state_dir / root

    def zone_dir(self, zone: str) -> Path:
        return self.lake_dir / zone

    def table_dir(self, zone: str, name: str) -> Path:
        return self.zone_dir(zone) / name

    @cached_property
    def blobs_dir(self) -> Path:
        return self.lake_dir / "blobs"

    @cached_property
    def contracts_dir(self) -> Path:
        return self._under_root(self.settings.contracts_dir)

    @cached_property
    def transforms_dir(self) -> Path:
        return self._under_root(self.settings.transforms_dir)

    @cached_property
    def ingest_log_path(self) -> Path:
        return self.state_dir / "ingest" / "log.sqlite"

    @cached_property
    def catalog_url(self) -> str:
        return self.settings.catalog.url or f"sqlite:///{self.state_dir / 'catalog.sqlite'}"

    def ensure_state(self) -> None:
        for folder in (self.state_dir, self.lake_dir, self.ingest_log_path.parent):
            folder.mkdir(parents=True, exist_ok=True)

    def contracts(self) -> dict[str, "Contract"]:
        """Every contract of the workspace, compiled, by source name (cached per file mtime)."""
        from .contracts import load_contracts

        return load_contracts(self.contracts_dir)

    def contract(self, source: str) -> "Contract":
        from .contracts import get_contract

        return get_contract(self.contracts(), source)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding lakebook.yaml, or None."""
    start = start.resolve()
    return next((folder for folder in (start, *start.parents) if (folder / CONFIG_FILE).is_file()), None)
