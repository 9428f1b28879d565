"""A real PostgreSQL for tests: a throwaway cluster on a loopback port, one fresh database per test.

Import the fixtures into a test module (`from tests.support.postgres import postgres_url`), or use
`database_url`, which runs a test once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

_SERVICE_USER = "postgres"  # postgres refuses to run as root; as root we run it as this user


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"


def find_binaries() -> Path | None:
    """The folder holding `initdb` and `postgres`: PATH first, then Debian's /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(os.path.realpath(on_path)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "postgres").exists():
            return Path(folder)
    return None


def _major_version(folder: str) -> int:
    name = Path(folder).parent.name
    return int(name) if name.isdigit() else 0


def _run_as() -> str | None:
    """The user to run postgres as: None when we are not root, else the `postgres` system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", _SERVICE_USER], check=True,
                       capture_output=True)
    return _SERVICE_USER


def start_postgres(binaries: Path) -> tuple[subprocess.Popen[bytes], PostgresServer, Path]:
    user = _run_as()
    # pytest's tmp dirs are private to root; postgres needs its own dir it can enter
    root = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    initdb = subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "sluice", "--auth=trust", "--encoding=UTF8",
         "--no-locale", "--no-sync"],
        user=user, capture_output=True, text=True, check=False,
    )
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed: {initdb.stderr or initdb.stdout}")
    port = free_port()
    # its log goes to a file: a pipe nobody reads fills up (64 KiB), and then every postgres process that logs —
    # the checkpointer on each DROP DATABASE — blocks writing to it, and the tests hang
    with (root / "postgres.log").open("wb") as log:
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
             "-k", str(sockets), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=50"],
            user=user, stdout=subprocess.DEVNULL, stderr=log,
        )
    server = PostgresServer(host="127.0.0.1", port=port, user="sluice")
    _wait_ready(process, server, root / "postgres.log")
    return process, server, root


def _wait_ready(process: subprocess.Popen[bytes], server: PostgresServer, log: Path, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            stderr = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"postgres exited with {process.returncode}: {stderr}")
        try:
            with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname="postgres",
                                 connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_postgres(process: subprocess.Popen[bytes], root: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # "fast shutdown": roll back clients, stop cleanly
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    shutil.rmtree(root, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_postgres() -> PostgresServer:
    """One server per test process, however many modules import the fixtures; stopped at exit."""
    global _shared
    if _shared is None:
        binaries = find_binaries()
        if binaries is None:
            pytest.skip("PostgreSQL binaries (initdb, postgres) not found on PATH or in "
                        "/usr/lib/postgresql/*/bin")
        process, server, root = start_postgres(binaries)
        atexit.register(stop_postgres, process, root)
        _shared = server
    return _shared


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return shared_postgres()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL to a new, empty database on the session's server; dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = dict(host=postgres_server.host, port=postgres_server.port, user=postgres_server.user,
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(**admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    """The store at `database_url`, migrated to the head revision; disposed after the test."""
    from sluice.store import create_engine, migrate

    await migrate(database_url)
    migrated = create_engine(database_url)
    try:
        yield migrated
    finally:
        await migrated.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once against a SQLite file and once against a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sluice.db'}"
    return str(request.getfixturevalue("postgres_url"))
