"""The postgres plugin against a real PostgreSQL server (tests/fixtures/postgres.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from noetl.plugins import postgres
from noetl.plugins.runtime import Outcome, execute, read_outcome
from tests.fixtures.postgres import PostgresServer
from tests.plugins import step

pytestmark = pytest.mark.postgres


def sql(
    server: PostgresServer, command: str, env: dict[str, str] | None = None, **args: Any
) -> Outcome:
    return execute(
        postgres.run, step("postgres", {"command": command, **args}, env=env or server.env())
    )


def test_positional_and_named_params(postgres_server: PostgresServer) -> None:
    outcome = sql(postgres_server, "SELECT %s::int + 1 AS n, %s AS word", params=[41, "hi"])
    assert outcome == Outcome(
        ok=True,
        result={"rows": [{"n": 42, "word": "hi"}], "columns": ["n", "word"], "rowCount": 1,
                "status": "SELECT 1"},
    )  # fmt: skip
    named = sql(postgres_server, "SELECT %(a)s::text || %(b)s AS ab", params={"a": "x", "b": "y"})
    assert named.result["rows"] == [{"ab": "xy"}]


def test_several_statements_give_the_last_rows(postgres_server: PostgresServer) -> None:
    outcome = sql(
        postgres_server,
        "CREATE TABLE several (id int, name text);"
        "INSERT INTO several VALUES (1, 'a'), (2, 'b');"
        "SELECT * FROM several ORDER BY id;"
        "INSERT INTO several VALUES (3, 'c');",
    )
    assert outcome.result == {
        "rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "columns": ["id", "name"],
        "rowCount": 2,
        "status": "INSERT 0 1",
    }


def test_without_rows_the_row_count_and_status(postgres_server: PostgresServer) -> None:
    outcome = sql(
        postgres_server,
        "CREATE TABLE counted (id int); INSERT INTO counted SELECT generate_series(1, 4)",
    )
    assert outcome.result == {"rows": [], "columns": [], "rowCount": 4, "status": "INSERT 0 4"}


def test_success_commits(postgres_server: PostgresServer) -> None:
    assert sql(postgres_server, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)").ok
    assert sql(postgres_server, "SELECT count(*) AS n FROM kept").result["rows"] == [{"n": 1}]


def test_an_error_rolls_everything_back(postgres_server: PostgresServer) -> None:
    outcome = sql(
        postgres_server, "CREATE TABLE rolled (id int); INSERT INTO rolled VALUES (1); SELECT 1/0"
    )
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.startswith(
        "DivisionByZero: division by zero"
    )
    check = sql(postgres_server, "SELECT to_regclass('rolled') AS t")
    assert check.result["rows"] == [{"t": None}]


def test_values_are_made_json(postgres_server: PostgresServer) -> None:
    row = sql(
        postgres_server,
        "SELECT 12.50::numeric AS price, 3::numeric AS whole, 0.1::numeric(30,25) AS exact,"
        " DATE '2024-02-29' AS day, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS at,"
        " INTERVAL '1 minute' AS span, '\\x6162'::bytea AS raw,"
        " '00000000-0000-0000-0000-000000000001'::uuid AS id,"
        " '{\"k\": [1, 2]}'::jsonb AS doc, ARRAY[1, 2] AS list, '10.0.0.1'::inet AS ip,"
        " NULL AS nothing",
    ).result["rows"][0]
    assert row == {
        "price": 12.5,
        "whole": 3,
        "exact": 0.1,
        "day": "2024-02-29",
        "at": "2024-01-02T03:04:05+00:00",
        "span": 60.0,
        "raw": "YWI=",
        "id": "00000000-0000-0000-0000-000000000001",
        "doc": {"k": [1, 2]},
        "list": [1, 2],
        "ip": "10.0.0.1",
        "nothing": None,
    }


def test_a_dsn_overrides_the_environment(postgres_server: PostgresServer) -> None:
    outcome = sql(postgres_server, "SELECT current_database() AS db", dsn="dbname=postgres")
    assert outcome.result["rows"] == [{"db": "postgres"}]
    mapping = sql(
        postgres_server, "SELECT current_database() AS db", connection={"dbname": "postgres"}
    )
    assert mapping.result["rows"] == [{"db": "postgres"}]


def test_a_wrong_password_fails_without_showing_it(postgres_server: PostgresServer) -> None:
    env = {**postgres_server.env(), "PGPASSWORD": "wrong-password-xyz"}
    outcome = sql(postgres_server, "SELECT 1", env=env)
    assert not outcome.ok
    assert outcome.error is not None
    assert "password authentication failed" in outcome.error
    assert "wrong-password-xyz" not in outcome.error
    assert postgres_server.password not in outcome.error


def test_a_password_in_args_is_refused(postgres_server: PostgresServer) -> None:
    url = f"postgresql://{postgres_server.user}:{postgres_server.password}@127.0.0.1/x"
    outcome = sql(postgres_server, "SELECT 1", dsn=url)
    assert outcome.error == "args.dsn / args.connection must not carry a password: use PGPASSWORD"


def test_as_a_container_would_run_it(postgres_server: PostgresServer, tmp_path: Path) -> None:
    # The Secret's keys arrive as env vars (envFrom); `secretRef` itself is only for the operator.
    request = {
        "step": "s",
        "tool": "postgres",
        "args": {"secretRef": "pg", "command": "SELECT 1 AS one"},
    }
    termination = tmp_path / "termination-log"
    env = {**os.environ, **postgres_server.env(), "NOETL_INPUT_JSON": json.dumps(request),
           "NOETL_TERMINATION_LOG": str(termination)}  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "noetl.plugins.postgres"], env=env, check=True, timeout=60
    )
    assert read_outcome(termination.read_text()).result["rows"] == [{"one": 1}]
