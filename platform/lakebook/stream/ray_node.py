"""A Ray node started with ``ray start --block`` on 127.0.0.1: the workspace's one Ray head
under ``lakebook up`` (the ``ray`` service, which the stream and the model endpoints join),
and the nodes of a test's cluster.

Every port a node would otherwise take by default is a free one: two nodes on one machine
(another workspace's head, a test's cluster) would collide on Ray's fixed defaults (52365 for
the dashboard agent, 10001 for the head's Ray Client server). The node's token and auth mode
come in its environment (``RAY_AUTH_TOKEN``, ``RAY_AUTH_MODE``), never on its command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .._proc import free_port
from .server import ray_temp_dir

NODE_PORTS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-grpc-port",
              "--runtime-env-agent-port", "--metrics-export-port")


def ray_start_command(temp_dir: Path, num_cpus: int, *args: str, agent_port: int | None = None) -> list[str]:
    """``ray start --block`` of a node on 127.0.0.1 with ``num_cpus`` CPUs, its files under
    ``temp_dir``, its dashboard agent's HTTP on ``agent_port`` (default: a free one) and every
    other port free; ``args`` say which node (``--head --port N`` or ``--address host:port``)."""
    ports = [str(p) for name in NODE_PORTS for p in (name, free_port())]
    return [str(Path(sys.executable).with_name("ray")), "start", "--block", "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(num_cpus), "--temp-dir", str(temp_dir), "--disable-usage-stats",
            "--dashboard-agent-listen-port", str(agent_port or free_port()), *ports, *args]


def head_command(temp_dir: Path, num_cpus: int, gcs_port: int, agent_port: int) -> list[str]:
    """A head node without the dashboard, its GCS on ``gcs_port``. Its dashboard agent answers
    ``GET /api/healthz`` on ``agent_port`` (public; 200 once the node's raylet and GCS answer)."""
    return ray_start_command(temp_dir, num_cpus, "--head", "--port", str(gcs_port), "--ray-client-server-port",
                             str(free_port()), "--include-dashboard", "false", agent_port=agent_port)


def session_root(workspace) -> Path:
    """Ray's temp dir for the workspace's runtimes, where its ``session_*`` folders go: a local
    runtime's (``connect_ray`` sets ``RAY_TMPDIR``, and Ray adds ``ray``) and the head's under
    ``lakebook up`` alike."""
    return ray_temp_dir(workspace.ray_dir) / "ray"
