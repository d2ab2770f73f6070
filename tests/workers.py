"""Real `kefu serve` processes for the multi-worker tests: started, waited for, stopped or killed (-9)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import REPO, write_config

START_SECONDS = 240.0  # loading the encoders on 2 cores shared with the other workers
KEFU = [sys.executable, "-m", "bot.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Worker:
    """One `kefu serve` on a PostgreSQL store, on its own port; its log goes to a file in its folder."""

    def __init__(self, folder: Path, storage: str, *, extra: str = "", number: int = 1):
        folder.mkdir(parents=True, exist_ok=True)
        self.number = number
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = write_config(folder, extra, storage=storage, port=self.port)
        self.log_path = folder / "kefu.log"
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen([*KEFU, "serve", "-c", str(self.config)], cwd=REPO, stdout=self._log,
                                        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.number} exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker {self.number} was not healthy after {START_SECONDS:.0f}s:\n{self.log()}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no lease given back, connections cut mid-request."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]


class Balancer:
    """nginx in front of the workers with deploy/nginx.conf's settings (retry on the next worker, SSE unbuffered),
    run as this user in `folder`."""

    def __init__(self, folder: Path, ports: list[int]):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise AssertionError("nginx is not installed: `make servers` (Debian's nginx-light) installs it")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = folder / "nginx.conf"
        config.write_text(nginx_config(folder, ports, self.port), encoding="utf-8")
        self.process = subprocess.Popen([nginx, "-c", str(config), "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"nginx did not listen on {self.port}: {(folder / 'error.log').read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def nginx_config(folder: Path, ports: list[int], port: int) -> str:
    """deploy/nginx.conf with these workers' ports, its files in `folder`."""
    text = (REPO / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    servers = "".join(f"        server 127.0.0.1:{worker} max_fails=1 fail_timeout=5s;\n" for worker in ports)
    start = text.index("    upstream kefu {") + len("    upstream kefu {\n")
    text = text[:start] + servers + text[text.index("        keepalive 32;"):]
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("events {}", f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}")
    return text.replace("http {", f"http {{\n    access_log off;\n    client_body_temp_path {folder}/body;\n"
                                  f"    proxy_temp_path {folder}/proxy;")


def start_workers(folder: Path, storage: str, count: int, *, extra: str = "") -> list[Worker]:
    workers = [Worker(folder / f"worker-{n}", storage, extra=extra, number=n) for n in range(1, count + 1)]
    try:
        for worker in workers:
            worker.wait_healthy()
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers
