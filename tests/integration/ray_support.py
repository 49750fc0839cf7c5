"""Telling a Ray runtime's processes from any other Ray's on the machine: every process a
node starts inherits the node's environment, so a variable set for it (a test's marker, the
``LAKEBOOK_WORKSPACE`` a service gets) names them all, down to the workers."""

from __future__ import annotations

import os
from pathlib import Path


def processes_with_env(name: str, value: str) -> dict[int, str]:
    """The live processes (this one aside) whose environment holds ``name=value``, with their
    command lines."""
    found, wanted = {}, f"{name}={value}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile, or a kernel thread
            continue
    return found
