"""Database: URLs, the one parameter style, transactions, schema registration."""

from __future__ import annotations

import pytest

from edgekit.errors import BadInputError
from edgekit.hub import Database, DatabaseError, register_schema
from edgekit.hub.db import to_pyformat


@pytest.mark.parametrize("url, words", [
    ("mysql://localhost/hub", "'mysql'"),
    ("hub.db", "no scheme"),
    ("sqlite://", "needs a path"),
    ("sqlite:///", "needs a path"),
])
def test_bad_url_names_the_problem(url, words):
    with pytest.raises(BadInputError, match=words):
        Database(url)


def test_sqlite_folder_missing_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        Database(f"sqlite:///{tmp_path}/nope/hub.db")


def test_placeholders_translate_outside_literals():
    assert to_pyformat("SELECT ? , '?', 'it''s ?', \"a?\" WHERE x LIKE '5%' AND y = ?") == \
        "SELECT %s , '?', 'it''s ?', \"a?\" WHERE x LIKE '5%' AND y = %s"
    assert to_pyformat("SELECT 10 % ?") == "SELECT 10 %% %s"


def test_transaction_commits_or_rolls_back(hub_db_url):
    register_schema("test.db.kv", ["CREATE TABLE IF NOT EXISTS test_kv (k TEXT PRIMARY KEY, v INTEGER)"])
    with Database(hub_db_url) as db:
        assert "test.db.kv" in db.applied_schemas()
        with db.transaction():
            db.execute("INSERT INTO test_kv (k, v) VALUES (?, ?)", ("a", 1))
            db.executemany("INSERT INTO test_kv (k, v) VALUES (?, ?)", [("b", 2), ("c", 3)])
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.execute("INSERT INTO test_kv (k, v) VALUES (?, ?)", ("d", 4))
                with db.transaction():  # nested: joins, and the outer failure rolls it back too
                    db.execute("UPDATE test_kv SET v = ? WHERE k = ?", (10, "a"))
                raise RuntimeError("abort")
        assert db.execute("SELECT k, v FROM test_kv ORDER BY k") == [("a", 1), ("b", 2), ("c", 3)]
        rows = db.execute("UPDATE test_kv SET v = v + ? WHERE v >= ?", (100, 2))
        assert rows == [] and rows.rowcount == 2
        with pytest.raises(DatabaseError, match="test_kv"):
            db.execute("INSERT INTO test_kv (k, v) VALUES (?, ?)", ("a", 5))
        assert db.has_table("test_kv") and not db.has_table("no_such_table")
    # Opened again: the schema is not applied twice (its table and rows are as they were).
    with Database(hub_db_url) as db:
        assert db.apply_schemas() == []
        assert db.execute("SELECT COUNT(*) FROM test_kv") == [(3,)]


def test_schema_per_dialect_and_conflicting_registration(hub_db_url):
    register_schema("test.db.blob", {"sqlite": ["CREATE TABLE test_blob (b BLOB)"],
                                     "postgresql": ["CREATE TABLE test_blob (b BYTEA)"]})
    with pytest.raises(ValueError, match="already registered"):
        register_schema("test.db.blob", ["CREATE TABLE other (x INTEGER)"])
    with Database(hub_db_url) as db:
        db.execute("INSERT INTO test_blob (b) VALUES (?)", (b"\x00\xff",))
        assert bytes(db.execute("SELECT b FROM test_blob")[0][0]) == b"\x00\xff"


def test_many_connections_opening_a_new_database_at_once(hub_db_url):
    """Workers starting together on a new database: one applies the schemas, the others
    find them applied; none fails (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL)."""
    import threading

    from edgekit.hub import HubStore

    opened, errors = [], []
    start = threading.Barrier(6)

    def open_one():
        try:
            start.wait()
            opened.append(HubStore(Database(hub_db_url)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in opened:
        store.db.close()
    assert errors == [] and len(opened) == 6
    with Database(hub_db_url) as db:
        names = db.applied_schemas()
        assert len(names) == len(set(names)) and "hub.store.v1" in names
