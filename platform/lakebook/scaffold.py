"""``lakebook init DIR``: a new workspace with a config, an example contract and .gitignore."""

from __future__ import annotations

from pathlib import Path

from .config import CONFIG_FILE
from .errors import LakebookError

CONFIG = """\
# lakebook workspace. Environment overrides: LAKEBOOK_<SECTION>__<KEY>.
name: {name}
state_dir: .lakebook
contracts_dir: contracts
ingest:
  host: 127.0.0.1
  port: 8787
query:
  engine: duckdb
"""

EXAMPLE_CONTRACT = """\
name: events
description: Example source; edit or replace it.
owner: you@example.org
version: 1
event_time: ts
event_id: id
fields:
  id: {type: string, required: true, max_length: 64}
  ts: {type: timestamp, required: true, description: "when it happened, ISO 8601 with offset"}
  kind: {type: string, enum: [view, click, buy]}
  value: {type: float64, min: 0}
"""


def init_workspace(root: Path) -> Path:
    if (root / CONFIG_FILE).exists():
        raise LakebookError(f"{root / CONFIG_FILE} already exists", hint="that folder is a workspace already")
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    (root / CONFIG_FILE).write_text(CONFIG.format(name=root.resolve().name))
    (root / "contracts" / "events.yaml").write_text(EXAMPLE_CONTRACT)
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if ".lakebook/" not in lines:
        gitignore.write_text("\n".join(lines + [".lakebook/"]) + "\n")
    return root.resolve()
