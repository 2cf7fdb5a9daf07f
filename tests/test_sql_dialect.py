"""The dialect seam below SqlStore: table descriptions, placeholders, and the generic insert path
that a new table (added by a migration) gets without dialect code. The Store contract itself is in
tests/contract/test_store_contract.py."""

from __future__ import annotations

import sqlite3

import pytest

from beffroi.postgres_store import PostgresDialect
from beffroi.settings import PostgresSettings
from beffroi.sql_dialect import Table
from beffroi.sqlite_store import SqliteDialect


def test_a_table_with_kinds_for_other_columns_is_refused():
    with pytest.raises(ValueError, match="table t: 2 columns but 1 kinds"):
        Table("t", ("a", "b"), key=("a",), bulk=("text",))


def test_a_table_inserts_its_columns_in_order_and_sorts_rows_by_key():
    table = Table("t", ("a", "b", "c"), key=("c", "a"))
    assert table.insert == "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    rows = [("x", 1, "k2"), ("y", 2, "k1"), ("a", 3, "k2")]
    assert sorted(rows, key=table.key_of()) == [("y", 2, "k1"), ("a", 3, "k2"), ("x", 1, "k2")]


def test_postgres_spells_placeholders_as_psycopg_does():
    dialect = PostgresDialect(PostgresSettings())
    query = "SELECT * FROM t WHERE a = ? AND b LIKE '5%' LIMIT ?"
    assert dialect.sql(query) == "SELECT * FROM t WHERE a = %s AND b LIKE '5%%' LIMIT %s"
    assert SqliteDialect(":memory:").sql(query) == query


def test_a_new_table_gets_idempotent_inserts_from_the_generic_path(tmp_path):
    dialect = SqliteDialect(tmp_path / "s.db")
    table = Table("users", ("name", "role"), key=("name",))

    def create(conn: sqlite3.Connection) -> None:
        with dialect.write(conn):
            conn.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL)")

    dialect.run("create", create)
    rows = [("zoe", "admin"), ("ana", "viewer"), ("zoe", "viewer")]
    assert dialect.run("insert", lambda conn: dialect.insert_new(conn, table, rows)) == 2
    assert dialect.run("insert", lambda conn: dialect.insert_new(conn, table, rows[:2])) == 0
    stored = dialect.run("read", lambda conn: conn.execute("SELECT * FROM users ORDER BY name").fetchall())
    assert stored == [("ana", "viewer"), ("zoe", "admin")]  # of one key, the first in the batch wins
    dialect.close()
