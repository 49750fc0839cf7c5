"""Starting a local Ray runtime again when its node times out while starting (a loaded machine
makes Ray's fixed wait for the node's agents run out), and only then. Ray itself is not
started here: a stand-in records the calls ``ray.init`` and ``ray.shutdown`` would get."""

from __future__ import annotations

import pytest

from lakebook.stream import server

TIMED_OUT = ("The current node timed out during startup. This could happen because some of the raylet "
             "failed to startup or the GCS has become overloaded.")


class Runtime:
    def __init__(self, failures: list[Exception]):
        self.failures, self.calls = list(failures), []

    def init(self, **options):
        self.calls.append(("init", options["address"], options["num_cpus"]))
        if self.failures:
            raise self.failures.pop(0)

    def shutdown(self):
        self.calls.append(("shutdown",))


def test_a_node_that_timed_out_while_starting_is_started_again(caplog):
    ray = Runtime([Exception(TIMED_OUT)])
    with caplog.at_level("WARNING", logger="lakebook.stream"):
        server._start_local_runtime(ray, 2)
    assert ray.calls == [("init", "local", 2), ("shutdown",), ("init", "local", 2)]
    assert "attempt 1 of 3" in caplog.text


def test_other_errors_and_the_last_timeout_are_raised():
    ray = Runtime([ValueError("num_cpus must be positive")])
    with pytest.raises(ValueError):
        server._start_local_runtime(ray, 2)
    assert ray.calls == [("init", "local", 2)]
    ray = Runtime([Exception(TIMED_OUT)] * server.LOCAL_START_ATTEMPTS)
    with pytest.raises(Exception, match="timed out during startup"):
        server._start_local_runtime(ray, 2)
    assert [c[0] for c in ray.calls].count("init") == server.LOCAL_START_ATTEMPTS


CLIENT_FAILED = ("Initialization failure from server:\nTraceback (most recent call last):\n  ...\nRuntimeError: "
                 "Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.")


# the client server died while the head waited for it to start (seen on a loaded head)
CLIENT_DIED = ("Initialization failure from server:\nTraceback (most recent call last):\n  File \".../proxier.py\", "
               "line 396, in start_specific_server\n    cmd = psutil_proc.cmdline()\n  ...\npsutil.ZombieProcess: PID "
               "still exists but it's a zombie (pid=5275)")


class Cluster:
    def __init__(self, failures: list[Exception]):
        self.failures, self.calls = list(failures), []

    def init(self, **options):
        self.calls.append(("init", options["address"]))
        if self.failures:
            raise self.failures.pop(0)

    def shutdown(self):
        self.calls.append(("shutdown",))


@pytest.mark.parametrize("failure", [CLIENT_FAILED, CLIENT_DIED], ids=["failed", "died"])
def test_a_client_server_that_failed_to_start_is_asked_for_again(caplog, failure):
    ray = Cluster([ConnectionError(failure)])
    with caplog.at_level("WARNING", logger="lakebook.stream"):
        server._join_cluster(ray, "ray://127.0.0.1:10001", pause_s=0)
    assert ray.calls == [("init", "ray://127.0.0.1:10001"), ("shutdown",), ("init", "ray://127.0.0.1:10001")]
    assert "attempt 1 of 3" in caplog.text


def test_a_refused_connection_is_an_error_naming_the_address_at_once():
    ray = Cluster([ConnectionError("ray client connection timeout")])
    with pytest.raises(server.ServiceError, match=r"cannot connect to the Ray cluster at ray://127.0.0.1:10001") as info:
        server._join_cluster(ray, "ray://127.0.0.1:10001", pause_s=0)
    assert ray.calls == [("init", "ray://127.0.0.1:10001")]
    assert "token" in info.value.hint
    ray = Cluster([ConnectionError(CLIENT_FAILED)] * server.CLIENT_CONNECT_ATTEMPTS)
    with pytest.raises(server.ServiceError, match="Starting Ray client server failed"):
        server._join_cluster(ray, "ray://127.0.0.1:10001", pause_s=0)
    assert [c[0] for c in ray.calls].count("init") == server.CLIENT_CONNECT_ATTEMPTS
