"""Starting collector subprocesses and waiting for them (the demo and the benchmark do)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(health_port: int, process: subprocess.Popen, timeout: float = 30.0) -> bool:
    """True once the health check answers; False if the process exited or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=1)
            return True
        except OSError:
            time.sleep(0.05)
    return False
