"""Hub fixtures: a throwaway PostgreSQL cluster for the session (tests/support/postgres.py),
``hub_store`` over SQLite and PostgreSQL, and a real Mosquitto."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.support.postgres import PG_BIN, postgres_available, throwaway_postgres
from tests.sync.conftest import mosquitto_broker  # noqa: F401 - the sync tests' real broker fixture, shared


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql://...`` of a fresh cluster for this test session (database ``postgres``)."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} "
                    "(apt-get install postgresql; scripts/install_system_deps.sh)")
    with throwaway_postgres() as url:
        yield url


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


