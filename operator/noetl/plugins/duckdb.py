"""The duckdb plugin: SQL run in-process by DuckDB, on a database file or in memory.

Args: `command` (one or more statements), `params` (a list for `?`/`$1` placeholders or a
mapping for `$name`, bound to each statement that has placeholders, so set-up statements can
come first), `database` (a file path; in memory by default).
The statements run in one transaction, committed when all succeed, unless the command manages
transactions itself (BEGIN/COMMIT). Result: see sqlresult.py.
"""

from __future__ import annotations

from typing import Any

import duckdb

from noetl.plugins import runtime, sqlresult
from noetl.plugins.runtime import PluginError, StepRequest


def run(request: StepRequest) -> Any:
    sql = sqlresult.command(request.args)
    params = request.args.get("params")
    try:
        with duckdb.connect(str(request.args.get("database", ":memory:"))) as con:
            statements = con.extract_statements(sql)
            if params is not None and not any(s.named_parameters for s in statements):
                raise PluginError("args.params is given, but no statement has a placeholder")
            own_transaction = any(s.type == duckdb.StatementType.TRANSACTION for s in statements)
            if not own_transaction:
                con.begin()
            result = _run_all(con, statements, params)
            if not own_transaction:
                con.commit()
            return result
    except duckdb.Error as exc:
        # Closing the connection rolls back a transaction left open.
        raise PluginError(f"{type(exc).__name__}: {exc}") from None


def _run_all(con: duckdb.DuckDBPyConnection, statements: list[Any], params: Any) -> dict[str, Any]:
    result, row_count = None, 0
    for statement in statements:
        con.execute(statement, params if statement.named_parameters else None)
        columns = [d[0] for d in con.description or ()]
        rows = con.fetchall() if columns else []
        # DuckDB answers INSERT/UPDATE/DELETE/DDL with one "Count" column, not with rows.
        if columns == ["Count"] and statement.type != duckdb.StatementType.SELECT:
            row_count = rows[0][0] if rows else 0
        else:
            result = sqlresult.table(columns, rows)
    return result or sqlresult.no_rows(row_count)


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
