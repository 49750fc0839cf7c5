"""The kernel client the dashboard server executes notebooks with: Jupyter's asynchronous
client whose channels never wait on a socket for more than a quarter of a second without
looking at it.

Why: a pre-heated kernel runs its notebook through this client (Voila's executor, nbclient),
and the page waits on each cell's ``execute_reply``. The stock channel waits for it with one
``socket.poll()`` without a timeout, which relies on the event loop waking it when the ZMQ
socket's (edge-triggered) descriptor signals. On this machine that wake-up is sometimes lost:
a page stalled for good, the reply sitting in the socket (``zmq.EVENTS`` had ``POLLIN``, the
poll still pending) while the kernel had run every cell and answered other clients. A poll with a timeout ends with a real ``zmq_poll``,
which sees a waiting message, so each wait here is a series of polls of at most
``POLL_SLICE_S``: a lost wake-up costs at most that. Measured here, pages of a small
dashboard loaded one after the other: with Jupyter's client, four runs stalled for good at
pages 3, 5, 19 and 21; with this one, two runs of 60 pages in a row all rendered (slowest page
2.6 s). The root cause inside pyzmq/libzmq is not known; the check does not depend on it.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

POLL_SLICE_S = 0.25


class SteadyChannel(AsyncZMQSocketChannel):
    """A shell, iopub, stdin or control channel whose waits are polls of at most ``POLL_SLICE_S``."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, max(0.0, deadline - time.monotonic()))
            if await self.socket.poll(int(left * 1000)):  # at its timeout, a real zmq_poll
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class SteadyKernelClient(AsyncKernelClient):
    """Jupyter's asynchronous kernel client with ``SteadyChannel`` for every ZMQ channel."""

    shell_channel_class = Type(SteadyChannel)
    iopub_channel_class = Type(SteadyChannel)
    stdin_channel_class = Type(SteadyChannel)
    control_channel_class = Type(SteadyChannel)
