"""Hub fixtures: a throwaway PostgreSQL cluster (initdb + pg_ctl on a free loopback port,
its files and unix socket in a temp dir) and ``hub_store`` over SQLite and PostgreSQL.

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` user the
Debian package creates (else ``nobody``), in a temp dir that user owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("EDGEKIT_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_user() -> str | None:
    """The user to run the cluster as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root and neither the postgres nor the nobody user exists for PostgreSQL")


def _as_user(user: str | None, argv: list) -> list:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql://...`` of a fresh cluster for this test session (database ``postgres``)."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not initdb.exists() or not pg_ctl.exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} "
                    "(apt-get install postgresql; scripts/install_system_deps.sh)")
    user = _pg_user()
    root = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for p in (root, sock):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    subprocess.run(_as_user(user, [str(initdb), "-D", str(data), "-A", "trust", "-U", "edgekit", "-E", "UTF8",
                                   "--no-sync"]),
                   check=True, capture_output=True, env=env, cwd=root)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run(_as_user(user, [str(pg_ctl), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
                                   "-t", "60", "start"]),
                   check=True, capture_output=True, env=env, cwd=root)
    try:
        yield f"postgresql://edgekit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_user(user, [str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, env=env, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


_db_numbers = itertools.count()


@pytest.fixture
def postgres_db_url(postgres_url):
    """A new, empty database in the session's cluster for one test."""
    import psycopg

    name = f"t{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db_url(request, tmp_path):
    """A database URL for one test, over SQLite and over PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def hub_store(hub_db_url):
    """A ``HubStore`` over an empty database, SQLite and PostgreSQL."""
    from edgekit.hub import Database, HubStore

    db = Database(hub_db_url)
    try:
        yield HubStore(db)
    finally:
        db.close()


@pytest.fixture
def mosquitto_broker(tmp_path_factory):
    """A real Mosquitto on loopback (the sync tests' broker: stop(), start(), restart(), kill())."""
    from tests.sync.conftest import MOSQUITTO, MosquittoBroker

    if shutil.which(MOSQUITTO) is None and not Path(MOSQUITTO).exists():
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
