"""The dashboard server's kernel client (lakebook.dashboards.kernels): a reply already waiting
in the socket is read even when the event loop's wake-up for it was lost, as happened to the
pre-heated kernels' execute replies; Jupyter's own channel waits for good in that case."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from lakebook.dashboards import kernels
from lakebook.dashboards.kernels import SteadyChannel, SteadyKernelClient


async def _lost_wakeup(channel_class, wait_s: float):
    """A DEALER (the client's shell socket) and a ROUTER (the kernel's) on loopback; the loop
    stops watching the DEALER's descriptor while a get_msg waits, then the reply is sent.
    Returns (the message or None if still waiting after ``wait_s``, seconds it took)."""
    context = zmq.asyncio.Context()
    session = Session(key=b"k")
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    channel = channel_class(dealer, session)
    try:
        await dealer.send(b"hello")
        identity, _ = await router.recv_multipart()
        waiting = asyncio.ensure_future(channel.get_msg())
        await asyncio.sleep(0.2)  # the poll is registered with the loop
        asyncio.get_running_loop().remove_reader(dealer.FD)  # its wake-up is lost from now on
        started = time.monotonic()
        session.send(router, "execute_reply", {"status": "ok"}, ident=identity)
        done, _ = await asyncio.wait([waiting], timeout=wait_s)
        took = time.monotonic() - started
        if not done:
            waiting.cancel()
            return None, took
        return waiting.result(), took
    finally:
        dealer.close(linger=0)
        router.close(linger=0)
        context.term()


def test_a_reply_whose_wake_up_was_lost_is_read_within_the_poll_slice():
    message, took = asyncio.run(_lost_wakeup(SteadyChannel, wait_s=10))
    assert message is not None and message["msg_type"] == "execute_reply" and message["content"] == {"status": "ok"}
    assert took < kernels.POLL_SLICE_S + 1


def test_jupyters_own_channel_waits_for_good_when_the_wake_up_is_lost():
    """Why the steady channel exists: the same situation with the stock channel never ends."""
    message, took = asyncio.run(_lost_wakeup(AsyncZMQSocketChannel, wait_s=3))
    assert message is None and took >= 3


def test_a_timeout_still_ends_the_wait_with_empty():
    from queue import Empty

    async def wait():
        context = zmq.asyncio.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.connect("tcp://127.0.0.1:9")  # nobody answers
        try:
            started = time.monotonic()
            with pytest.raises(Empty):
                await SteadyChannel(dealer, Session()).get_msg(timeout=1.5)
            return time.monotonic() - started
        finally:
            dealer.close(linger=0)
            context.term()

    assert 1.4 <= asyncio.run(wait()) < 3


def test_every_zmq_channel_of_the_client_is_steady():
    client = SteadyKernelClient()
    assert {client.shell_channel_class, client.iopub_channel_class, client.stdin_channel_class,
            client.control_channel_class} == {SteadyChannel}


def test_the_dashboard_servers_kernel_managers_use_it(workspace_dir, monkeypatch):
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

    from lakebook.dashboards import server
    from lakebook.dashboards.store import DashboardStore
    from lakebook.workspace import Workspace

    ws = Workspace.load(workspace_dir)
    with DashboardStore(ws) as store:
        monkeypatch.setattr(server.CONTEXT, "store", store)
        config = server.voila_config(ws, 8999)
    assert isinstance(ServerKernelManager(config=config).client(), SteadyKernelClient)  # what Voila starts
    assert not isinstance(AsyncKernelManager().client(), SteadyKernelClient)  # elsewhere, Jupyter's own
