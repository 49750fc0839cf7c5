"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
from typing import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; a no-op
    elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for subprocess.Popen: the child gets ``sig`` (a graceful stop) if the
    parent dies without stopping it, even by SIGKILL."""
    return lambda: die_with_parent(sig)
