"""A throwaway PostgreSQL cluster (initdb + pg_ctl on a free loopback port, its files and
unix socket in a temp dir) for the hub tests and bench/hub_ingest.py.

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` user the
Debian package creates (else ``nobody``), in a temp dir that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("EDGEKIT_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_user() -> str | None:
    """The user to run the cluster as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither the postgres nor the nobody user exists for PostgreSQL")


def _as_user(user: str | None, argv: list) -> list:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


@contextlib.contextmanager
def throwaway_postgres(*, durable: bool = False):
    """Yields ``postgresql://edgekit@127.0.0.1:PORT/postgres`` of a new cluster; stops and
    deletes it afterwards. ``durable``: keep fsync on (for measurements); tests turn it off."""
    user = _cluster_user()
    root = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for p in (root, sock):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    pg_ctl = str(PG_BIN / "pg_ctl")
    try:
        subprocess.run(_as_user(user, [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "edgekit",
                                       "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, env=env, cwd=root)
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=50"
        if not durable:
            opts += " -c fsync=off"
        subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
                                       "-t", "60", "start"]),
                       check=True, capture_output=True, env=env, cwd=root)
        yield f"postgresql://edgekit@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, env=env, cwd=root)
        shutil.rmtree(root, ignore_errors=True)
