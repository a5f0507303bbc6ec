"""The postgres plugin: SQL against PostgreSQL with psycopg 3, in one transaction.

Args: `command` (one or more statements), `params` (a list or mapping, for a single statement:
`%s` / `%(name)s` placeholders), optionally `dsn` or `connection` (a conninfo string or URL, or
a mapping of libpq keywords) without a password. The rest of the connection comes from the
libpq variables of the step's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...),
which in Kubernetes come from the Secret the step's `secretRef` names. The transaction commits
when every statement succeeds and rolls back otherwise. Result: see sqlresult.py, plus
`status`, the server's status line for the last statement (e.g. "INSERT 0 3").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from noetl.plugins import runtime, sqlresult
from noetl.plugins.runtime import PluginError, StepRequest

# libpq's environment variables and the connection keywords they stand for.
_ENV_KEYWORDS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGPASSFILE": "passfile",
    "PGOPTIONS": "options",
    "PGAPPNAME": "application_name",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGSSLCERT": "sslcert",
    "PGSSLKEY": "sslkey",
    "PGCONNECT_TIMEOUT": "connect_timeout",
}


def connection_params(request: StepRequest) -> dict[str, Any]:
    """libpq keywords: the step's PG* variables, overridden by `args.dsn`/`args.connection`."""
    params: dict[str, Any] = {"connect_timeout": 10}
    params.update({kw: request.env[var] for var, kw in _ENV_KEYWORDS.items() if var in request.env})
    explicit = request.args.get("dsn", request.args.get("connection"))
    if isinstance(explicit, str):
        explicit = conninfo_to_dict(explicit)
    elif explicit is None:
        explicit = {}
    elif not isinstance(explicit, Mapping):
        raise PluginError("args.dsn / args.connection must be a conninfo string or a mapping")
    if "password" in explicit:
        # Args are visible in the Job and the Execution; a password belongs in a Secret.
        raise PluginError("args.dsn / args.connection must not carry a password: use PGPASSWORD")
    params.update(explicit)
    return params


def run(request: StepRequest) -> Any:
    sql = sqlresult.command(request.args)
    params = request.args.get("params")
    try:
        # The connection's context commits on success and rolls back on an exception.
        with psycopg.connect(**connection_params(request)) as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return _last_result(cursor)
    except psycopg.Error as exc:
        raise PluginError(f"{type(exc).__name__}: {exc}".strip()) from None


def _last_result(cursor: psycopg.Cursor[Any]) -> dict[str, Any]:
    result: dict[str, Any] | None = None
    while True:  # one pass per statement of the command
        if cursor.description is not None:
            result = sqlresult.table([c.name for c in cursor.description], cursor.fetchall())
        status, row_count = cursor.statusmessage, cursor.rowcount
        if not cursor.nextset():
            break
    return {**(result or sqlresult.no_rows(row_count)), "status": status}


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
