"""A real PostgreSQL for the tests: a throwaway cluster on 127.0.0.1, one fresh database per test.

`initdb` runs in a temp folder as an unprivileged user (PostgreSQL refuses to run as root:
the `postgres` account Debian's package makes, when the tests run as root), on a free port,
and is stopped when the test session ends. `KEFU_TEST_POSTGRES_URL` points the tests at a
server of your own instead (a database the tests may create databases beside).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

ADMIN_USER = "kefu"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: `make servers` (Debian's postgresql package) installs it")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self._own = "KEFU_TEST_POSTGRES_URL" not in os.environ
        self._names = itertools.count(1)
        self._folder: Path | None = None
        if self._own:
            self._start()
        else:
            self.admin_url = os.environ["KEFU_TEST_POSTGRES_URL"]

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["runuser", "-u", "postgres", "--", *command]

    def _start(self) -> None:
        bin_dir = _bin_dir()
        self._folder = Path(tempfile.mkdtemp(prefix="kefu-postgres-"))
        self._data = self._folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self._folder, "postgres", "postgres")
        subprocess.run(self._as_server_user([str(bin_dir / "initdb"), "-D", str(self._data), "-U", ADMIN_USER,
                                             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        self.port = _free_port()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._folder} -c max_connections=300 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(self._as_server_user([str(bin_dir / "pg_ctl"), "-D", str(self._data), "-o", options,
                                             "-l", str(self._folder / "server.log"), "-w", "start"]),
                       check=True, capture_output=True)
        self._pg_ctl = bin_dir / "pg_ctl"
        self.admin_url = f"postgresql://{ADMIN_USER}@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """The URL of an empty database of its own."""
        name = f"kefu_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if not self._own or self._folder is None:
            return
        subprocess.run(self._as_server_user([str(self._pg_ctl), "-D", str(self._data), "-m", "immediate", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(self._folder, ignore_errors=True)
