"""The hub's database: SQLite (the default, one file) or PostgreSQL (psycopg 3), behind one
small interface so the store and the rollouts never branch on the engine.

URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's
spelling) and ``postgresql://user@host:port/dbname`` (any libpq connection URL; a
``host=/socket/dir`` query parameter reaches a unix socket).

One parameter style for callers: ``?`` placeholders (SQLite's qmark). For PostgreSQL each
``?`` outside a quoted literal becomes ``%s``, and a literal ``%`` is doubled, so the same
SQL text runs on both.

Schemas are registered by name (``register_schema``) and applied once per database, at
open, inside one transaction each; ``edgekit_schema`` records which names are applied. The
statements of a schema may differ per engine: pass ``{"sqlite": [...], "postgresql": [...]}``
instead of one list.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

from edgekit.errors import BadInputError, EdgekitError

SchemaStatements = Union[Sequence[str], dict]

# name -> statements, in registration order (dicts keep it): later schemas may refer to earlier ones.
_SCHEMAS: dict = {}
_SCHEMA_LOCK = threading.Lock()

# A quoted literal (kept as it is) or a placeholder / percent sign (translated for psycopg).
_PG_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")

# Errors that mean "another writer got there first; the same transaction again will work".
_PG_RETRYABLE = ("40001", "40P01")  # serialization_failure, deadlock_detected
_SCHEMA_LOCK_KEY = 0x65646B68  # "edkh": the advisory lock that serializes schema application


class DatabaseError(EdgekitError):
    """The hub's database cannot be reached or refused a statement."""


def register_schema(name: str, statements: SchemaStatements) -> None:
    """Register the tables a part of the hub needs. Applied to every database opened later
    (and to open ones by ``Database.apply_schemas()``), once per database: change a
    registered schema by registering a new name holding the migration."""
    if not name or not isinstance(name, str):
        raise ValueError("a schema needs a name")
    with _SCHEMA_LOCK:
        if name in _SCHEMAS and _SCHEMAS[name] != statements:
            raise ValueError(f"schema {name!r} is already registered with other statements")
        _SCHEMAS[name] = statements


def registered_schemas() -> list:
    with _SCHEMA_LOCK:
        return list(_SCHEMAS)


def to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s``, leaving quoted literals alone."""
    def swap(m: re.Match) -> str:
        tok = m.group(0)
        return "%s" if tok == "?" else "%%" if tok == "%" else tok
    return _PG_TOKENS.sub(swap, sql)


class Rows(list):
    """The rows a statement returned (tuples), with the number of rows it changed."""

    rowcount: int = -1


class Database:
    """One connection to the hub's database, shared by the threads of one process behind a
    lock (SQLite allows one writer at a time anyway; run more processes for more ingest).

    ``with db.transaction():`` groups statements into one transaction; ``execute`` outside
    one runs in a transaction of its own. Nested ``transaction()`` blocks join the outer one.
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0):
        self.url = url
        self.dialect, target = _parse_url(url)
        self._lock = threading.RLock()
        self._depth = 0
        self._busy_timeout_s = busy_timeout_s
        self._applied: set = set()  # schema names known to be applied here: no query needed
        if self.dialect == "sqlite":
            self._conn = _open_sqlite(target, busy_timeout_s)
        else:
            self._conn = _open_postgresql(target)
        try:
            self.apply_schemas()
        except BaseException:
            self.close()
            raise

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Database"]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            self._commit()

    def run_transaction(self, work, *, attempts: int = 8):
        """``work(db)`` inside one transaction, run again when the engine reports a
        conflict with another writer (PostgreSQL deadlock or serialization failure, SQLite
        busy past its timeout). Returns what ``work`` returns."""
        if self._depth:  # inside an outer transaction: only the outer one can be run again
            return work(self)
        for attempt in range(attempts):
            try:
                with self.transaction():
                    return work(self)
            except DatabaseError as exc:
                if not getattr(exc, "retryable", False) or attempt == attempts - 1:
                    raise
                time.sleep(min(0.5, 0.01 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _begin(self) -> None:
        # SQLite: IMMEDIATE takes the write lock now, so two writers never deadlock upgrading
        # a read lock; the busy timeout makes the second one wait.
        self._raw("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")

    def _commit(self) -> None:
        self._raw("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._raw("ROLLBACK")

    def _raw(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except Exception as exc:
            raise self._wrap(exc, sql) from exc

    # -- statements ---------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence = ()) -> Rows:
        """Run one statement with ``?`` placeholders; returns its rows (empty when it
        returns none) with ``rowcount``."""
        with self.transaction():
            try:
                if self.dialect == "sqlite":
                    cur = self._conn.execute(sql, tuple(params))
                    rows = Rows(cur.fetchall())
                else:
                    cur = self._conn.execute(to_pyformat(sql), tuple(params))
                    rows = Rows(cur.fetchall() if cur.description is not None else [])
            except Exception as exc:
                raise self._wrap(exc, sql) from exc
            rows.rowcount = cur.rowcount
            return rows

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence]) -> int:
        """Run one statement for each parameter tuple, in one transaction; returns the
        total rows changed."""
        seq = [tuple(p) for p in seq_of_params]
        if not seq:
            return 0
        with self.transaction():
            try:
                if self.dialect == "sqlite":
                    cur = self._conn.executemany(sql, seq)
                    return cur.rowcount
                with self._conn.cursor() as cur:
                    cur.executemany(to_pyformat(sql), seq)
                    return cur.rowcount
            except Exception as exc:
                raise self._wrap(exc, sql) from exc

    def _wrap(self, exc: Exception, sql: str) -> DatabaseError:
        if isinstance(exc, DatabaseError):
            return exc
        first = " ".join(sql.split())[:80]
        err = DatabaseError(f"{self.dialect} refused `{first}`: {exc}")
        if self.dialect == "sqlite":
            err.retryable = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        else:
            err.retryable = getattr(exc, "sqlstate", None) in _PG_RETRYABLE
        return err

    # -- schemas ------------------------------------------------------------------------

    def apply_schemas(self) -> list:
        """Apply every registered schema this database lacks, in one transaction; returns
        the names applied."""
        wanted = registered_schemas()
        if all(name in self._applied for name in wanted):
            return []

        def work(db: Database) -> list:
            if db.dialect == "postgresql":
                # Processes opening a new database at once: one applies, the others wait and
                # then find it done (CREATE ... IF NOT EXISTS alone races in PostgreSQL).
                db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
            db.execute("CREATE TABLE IF NOT EXISTS edgekit_schema (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
            done = {row[0] for row in db.execute("SELECT name FROM edgekit_schema")}
            applied = []
            for name in wanted:
                if name in done:
                    continue
                for statement in _statements_for(_SCHEMAS[name], db.dialect, name):
                    db.execute(statement)
                db.execute("INSERT INTO edgekit_schema (name, applied_ms) VALUES (?, ?)",
                           (name, int(time.time() * 1000)))
                applied.append(name)
            return applied

        applied = self.run_transaction(work)
        self._applied.update(wanted)
        return applied

    def applied_schemas(self) -> list:
        return [r[0] for r in self.execute("SELECT name FROM edgekit_schema ORDER BY name")]

    def has_table(self, table: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        return bool(self.execute(sql, (table,)))

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _statements_for(statements: SchemaStatements, dialect: str, name: str) -> list:
    if isinstance(statements, dict):
        if dialect not in statements:
            raise DatabaseError(f"schema {name!r} has no statements for {dialect}")
        return list(statements[dialect])
    return list(statements)


def _parse_url(url: str) -> tuple:
    if not isinstance(url, str) or "://" not in url:
        raise BadInputError(f"database URL {url!r} has no scheme: use sqlite:///hub.db or postgresql://host/dbname")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise BadInputError(f"SQLite URL {url!r} needs a path: sqlite:///relative.db or sqlite:////absolute.db")
        return "sqlite", urllib.parse.unquote(url[len("sqlite:///"):])
    if scheme in ("postgresql", "postgres"):
        return "postgresql", url
    raise BadInputError(f"database URL scheme {scheme!r} is not supported: use sqlite:/// or postgresql://")


def _open_sqlite(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"SQLite database {path} is a folder")
    if not p.parent.is_dir():
        raise BadInputError(f"SQLite database {path}: folder {p.parent} does not exist")
    try:
        # isolation_level=None: no implicit transactions; ours are explicit BEGIN/COMMIT.
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit the hub acked survives power loss
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    except sqlite3.DatabaseError as exc:
        raise BadInputError(f"SQLite database {path} cannot be opened: {exc}") from exc
    return conn


def _open_postgresql(url: str):
    try:
        import psycopg
    except ImportError as exc:
        raise BadInputError("a postgresql:// database needs psycopg: pip install 'edgekit[hub]'") from exc
    try:
        # autocommit: transactions are our explicit BEGIN/COMMIT, as on SQLite.
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseError(f"PostgreSQL at {_redact(url)} cannot be reached: {exc}") from exc


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
