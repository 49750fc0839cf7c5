"""``python -m lakebook.server.jobrun ROOT RUN_ID``: a run the Lab queued while no scheduler
runs, executed (every attempt) and recorded outside the Jupyter server's process, as ``lakebook
jobs run`` runs one."""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    from ..jobs.api import run_queued
    from ..workspace import Workspace

    root, run_id = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run = run_queued(Workspace.load(root), int(run_id))
    logging.getLogger("lakebook.jobs").info("run %s of %s: %s", run_id, run["job"], run["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
