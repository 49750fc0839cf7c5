"""A Mosquitto broker on 127.0.0.1, for the demo's live step and the MQTT inlet's tests: a
generated config (one listener on 127.0.0.1, sessions in memory only, queued messages not
capped: Mosquitto's default drops QoS 1 messages beyond 1,000 per client while it is away),
returned once it listens."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import ServiceError


def mosquitto_binary() -> str | None:
    """Debian's mosquitto (in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def start_mosquitto(binary: str, config_path: Path, log_path: Path, port: int, extra_lines: list[str] = (),
                    timeout_s: float = 20) -> subprocess.Popen:
    """Mosquitto listening on 127.0.0.1:``port``, its config written to ``config_path`` with
    ``extra_lines`` (who may connect, TLS); the process, once the port answers."""
    lines = [f"listener {port} 127.0.0.1", "persistence false", "max_queued_messages 0",
             f"log_dest file {log_path}", f"user {getpass.getuser()}", *extra_lines]
    config_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([binary, "-c", str(config_path)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                raise ServiceError(f"mosquitto did not listen on 127.0.0.1:{port} (exit code {process.poll()})",
                                   hint=f"its log is {log_path}") from None
            time.sleep(0.05)
