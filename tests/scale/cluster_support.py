"""Multi-node twins the scale tier starts on loopback: a Spark standalone master and worker
(from the pyspark wheel), and a Ray cluster (a head and a worker node, each ``ray start
--block`` in a session of its own, token authentication on).

The Ray nodes are stopped through their process groups, never with ``ray stop``, which would
end every Ray process on the machine (the test session's runtime and anyone else's). Every
process of a cluster carries a marker in its environment, so a test can tell its processes from
any other Ray's and check none is left. (``ray start`` registers a node given
``--node-ip-address 127.0.0.1`` under the machine's own address; clients reach the head at
127.0.0.1.)"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb
import httpx

from ray_support import processes_with_env
from lakebook.catalog import open_catalog
from lakebook.services import free_port
from lakebook.stream.ray_node import ray_start_command


SPARK_HOME = Path(__import__("pyspark").__file__).parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"


def _daemon(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(SPARK_CLASS), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait_for(url: str, pattern: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Until the daemon's web page (JSON where it has it) matches ``pattern``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if re.search(pattern, httpx.get(url, timeout=2).text):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never showed {pattern!r}:\n{log.read_text()[-3000:]}")


@dataclass
class SparkCluster:
    """A running standalone master and worker: the master URL, its web UI port, their folder."""

    url: str
    master_ui_port: int
    work: Path

    def applications(self) -> list[dict]:
        """The applications the master lists (completed and active)."""
        apps = httpx.get(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=5).json()
        return apps["completedapps"] + apps["activeapps"]

    def executors_ran(self) -> bool:
        """Whether the worker ran an executor (its folder holds one's stderr)."""
        return any((self.work / "worker").glob("app-*/*/stderr"))


@contextmanager
def spark_cluster(work: Path) -> Iterator[SparkCluster]:
    """A standalone master and one worker (2 cores, 2 GiB) bound to 127.0.0.1, started from the
    pyspark wheel (spark-class ...deploy.master.Master / ...deploy.worker.Worker)."""
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work),
           "SPARK_WORKER_DIR": str(work / "worker"), "PYSPARK_PYTHON": sys.executable}
    port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master = _daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                      "--webui-port", str(master_ui)], work / "master.log", env)
    url = f"spark://127.0.0.1:{port}"
    worker = None
    try:
        _wait_for(f"http://127.0.0.1:{master_ui}/json/", r'"status"\s*:\s*"ALIVE"', master, work / "master.log")
        worker = _daemon(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2",
                          "--memory", "2g", "--webui-port", str(worker_ui), url], work / "worker.log", env)
        _wait_for(f"http://127.0.0.1:{master_ui}/json/", r'"aliveworkers"\s*:\s*1', worker, work / "worker.log")
        yield SparkCluster(url, master_ui, work)
    finally:
        for proc in (worker, master):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()


# -- a Ray cluster: a head and a worker node started with `ray start` ---------------------------
RAY = Path(sys.executable).with_name("ray")
MARKER = "LBTEST_RAY_CLUSTER"  # not LAKEBOOK_…: lakebook reads those as settings


def marked_processes(marker: str) -> dict[int, str]:
    """The live processes of the cluster marked ``marker``, with their command lines."""
    return processes_with_env(MARKER, marker)


@dataclass
class RayCluster:
    """Ray nodes this test started, each ``ray start --block`` in a session of its own."""

    port: int
    client_port: int
    token: str
    marker: str
    temp_dir: Path
    nodes: list[subprocess.Popen] = field(default_factory=list)
    node_env: dict[str, str] = field(default_factory=dict)  # what every node's environment adds (a store's credentials)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def environment(self, **extra: str) -> dict[str, str]:
        """This process's environment without its own Ray settings, with the cluster's token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **extra}

    def start_node(self, log_path: Path, *args: str, attempts: int = 5) -> None:
        """Start a node and wait until the head counts it alive. On a loaded machine a node's
        start can time out inside Ray (its raylet waits for agents that start late) and the
        node exits: it is started again, up to ``attempts`` times."""
        for _ in range(attempts):
            node = self._spawn(log_path, *args)
            if self._joined(node, len(self.nodes)):
                return
            self._stop_node(node)
            self.nodes.remove(node)
        raise AssertionError(f"a Ray node did not start in {attempts} attempts: {log_path.read_text()[-3000:]}")

    def _spawn(self, log_path: Path, *args: str) -> subprocess.Popen:
        command = ray_start_command(self.temp_dir, 1, *args)
        with open(log_path, "ab") as log:
            self.nodes.append(subprocess.Popen(command, env=self.environment(**self.node_env, **{MARKER: self.marker}),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        return self.nodes[-1]

    def _joined(self, node: subprocess.Popen, expected: int, timeout_s: float = 120) -> bool:
        """Whether the head counts ``expected`` alive nodes before ``node`` exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while node.poll() is None and time.monotonic() < deadline:
            if self.alive_nodes() == expected:
                return True
            time.sleep(1)
        return False

    def alive_nodes(self) -> int:
        """How many nodes the head counts as alive (``ray status``; 0 while it does not answer)."""
        try:
            done = subprocess.run([str(RAY), "status", "--address", self.address], env=self.environment(),
                                  capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return 0
        active = done.stdout.partition("Active:")[2].partition("Pending:")[0]
        return len(re.findall(r"^\s*1 node_[0-9a-f]+", active, re.M))

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self._stop_node(node)

    @staticmethod
    def _stop_node(node: subprocess.Popen, timeout_s: float = 30) -> None:
        """SIGTERM the node's process group, SIGKILL what is left of it after ``timeout_s``."""
        _signal_group(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(node.pid, signal.SIGKILL)
        node.wait(10)

    def leftovers(self, timeout_s: float = 20) -> dict[int, str]:
        """The cluster's processes still running ``timeout_s`` after the stop."""
        deadline = time.monotonic() + timeout_s
        while (left := marked_processes(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass



@contextmanager
def ray_cluster(logs: Path, node_env: dict[str, str] | None = None) -> Iterator[RayCluster]:
    """A head (its Ray Client server on ``client_port``) and a worker node of one CPU each on
    127.0.0.1, token auth; stopped after, and then none of its processes may be left (any that
    is, is killed). The nodes' own logs are copied into ``logs``. ``node_env``: added to each
    node's environment, as a deployment gives its nodes the object store's credentials."""
    temp_dir = Path(tempfile.mkdtemp(prefix="lbrc", dir="/tmp"))  # Ray's socket paths must stay short
    cluster = RayCluster(free_port(), free_port(), secrets.token_hex(32), secrets.token_hex(8), temp_dir,
                         node_env=dict(node_env or {}))
    try:
        cluster.start_node(logs / "ray-head.log", "--head", "--port", str(cluster.port),
                           "--ray-client-server-port", str(cluster.client_port), "--include-dashboard", "false")
        cluster.start_node(logs / "ray-worker.log", "--address", cluster.address)
        yield cluster
        cluster.stop()
        assert cluster.leftovers() == {}
    finally:
        cluster.stop()
        for pid in cluster.leftovers(timeout_s=5):  # not to leave them running if the test failed
            os.kill(pid, signal.SIGKILL)
        for session in temp_dir.glob("session_2*"):  # the nodes' own logs, kept with the test's
            shutil.copytree(session / "logs", logs / session.name, ignore_dangling_symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


# -- what a pipeline built ------------------------------------------------------------------
def output_tables(ws) -> dict[str, list[tuple]]:
    """Every transform output (warehouse and features zones), its rows sorted."""
    from lakebook.lake.store import register_with_duckdb

    catalog = open_catalog(ws)
    con = duckdb.connect()
    register_with_duckdb(con, ws.lake.root)  # an S3 lake's files through the lake's filesystem
    out = {}
    for zone in ("warehouse", "features"):
        for table in catalog.tables(zone):
            files = catalog.files(zone, table.name)
            if not files:
                out[table.qualified_name] = []
                continue
            rows = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
                               [files]).fetchall()
            out[table.qualified_name] = sorted(rows, key=repr)
    catalog.close()
    return out
