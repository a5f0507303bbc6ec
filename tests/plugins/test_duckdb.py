"""The duckdb plugin, with DuckDB itself: in memory and on a database file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noetl.plugins import duckdb
from noetl.plugins.runtime import Outcome, execute
from tests.plugins import step


def sql(command: str, **args: Any) -> Outcome:
    return execute(duckdb.run, step("duckdb", {"command": command, **args}))


def test_rows_of_the_last_statement_that_returns_rows() -> None:
    outcome = sql(
        "CREATE TABLE t (id INTEGER, name VARCHAR);"
        "INSERT INTO t VALUES (1, 'a'), (2, 'b');"
        "SELECT * FROM t ORDER BY id;"
        "INSERT INTO t VALUES (3, 'c');"
    )
    assert outcome == Outcome(
        ok=True,
        result={
            "rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "columns": ["id", "name"],
            "rowCount": 2,
        },
    )


def test_without_rows_the_row_count_of_the_last_statement() -> None:
    outcome = sql("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1), (2), (3)")
    assert outcome.result == {"rows": [], "columns": [], "rowCount": 3}


def test_update_returning_gives_rows() -> None:
    command = (
        "CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1); UPDATE t SET id = 5 RETURNING id"
    )
    assert sql(command).result["rows"] == [{"id": 5}]


def test_positional_and_named_params() -> None:
    assert sql("SELECT ? + 1 AS n", params=[41]).result["rows"] == [{"n": 42}]
    assert sql("SELECT $who AS who", params={"who": "me"}).result["rows"] == [{"who": "me"}]


def test_params_go_to_the_statements_with_placeholders() -> None:
    outcome = sql(
        "CREATE TABLE t AS SELECT * FROM (VALUES ('a', 1), ('b', 5)) AS v(name, n);"
        "SELECT name FROM t WHERE n >= ?",
        params=[3],
    )
    assert outcome.result["rows"] == [{"name": "b"}]


def test_params_without_placeholders_are_an_error() -> None:
    outcome = sql("SELECT 1; SELECT 2", params=[1])
    assert outcome.error == "args.params is given, but no statement has a placeholder"


def test_values_are_made_json() -> None:
    row = sql(
        "SELECT 1.25::DECIMAL(10,2) AS dec, 10::DECIMAL(10,0) AS whole, DATE '2024-02-29' AS day,"
        " TIMESTAMP '2024-01-02 03:04:05' AS ts, INTERVAL 90 SECOND AS span, 'ab'::BLOB AS blob,"
        " '00000000-0000-0000-0000-000000000001'::UUID AS id, [1, 2] AS list,"
        " {'k': 'v'} AS struct, 'inf'::DOUBLE AS inf, NULL AS nothing"
    ).result["rows"][0]
    assert row == {
        "dec": 1.25,
        "whole": 10,
        "day": "2024-02-29",
        "ts": "2024-01-02T03:04:05",
        "span": 90.0,
        "blob": "YWI=",
        "id": "00000000-0000-0000-0000-000000000001",
        "list": [1, 2],
        "struct": {"k": "v"},
        "inf": "inf",
        "nothing": None,
    }


def test_a_database_file_keeps_what_succeeded_and_nothing_of_what_failed(tmp_path: Path) -> None:
    database = str(tmp_path / "data.duckdb")
    assert sql("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1)", database=database).ok
    failed = sql("INSERT INTO t VALUES (2); SELECT * FROM missing", database=database)
    assert not failed.ok
    assert failed.error is not None and failed.error.startswith("CatalogException: ")
    assert sql("SELECT id FROM t", database=database).result["rows"] == [{"id": 1}]


def test_a_command_that_manages_its_own_transaction(tmp_path: Path) -> None:
    command = (
        "BEGIN; CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (7); COMMIT; SELECT * FROM t"
    )
    assert sql(command).result["rows"] == [{"id": 7}]


def test_a_command_is_required() -> None:
    assert execute(duckdb.run, step("duckdb", {})).error == (
        "a SQL step needs args.command, a string of SQL"
    )
