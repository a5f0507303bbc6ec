"""What the SQL plugins share: the command check and a result made of JSON-safe rows.

Result: `{"rows": [{column: value}], "columns": [names], "rowCount": n}`, for the last statement
that returns rows; when none does, no rows and the row count of the last statement. Values are
made JSON: Decimal becomes a number (an int when whole; a string when a float cannot hold it
exactly), date/time an ISO 8601 string, timedelta its seconds, UUID and other odd types their
text, bytes base64, NaN and infinities their text; lists and mappings are converted inside.
"""

from __future__ import annotations

import base64
import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from noetl.plugins.messages import PluginError


def command(args: Mapping[str, Any]) -> str:
    """The SQL of a step: `args.command`, one or more statements."""
    sql = args.get("command")
    if not isinstance(sql, str) or not sql.strip():
        raise PluginError("a SQL step needs args.command, a string of SQL")
    return sql


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The result of a statement that returned rows."""
    records = [dict(zip(columns, map(json_value, row), strict=True)) for row in rows]
    return {"rows": records, "columns": list(columns), "rowCount": len(records)}


def no_rows(row_count: int) -> dict[str, Any]:
    """The result when no statement returned rows."""
    return {"rows": [], "columns": [], "rowCount": row_count}


def json_value(value: Any) -> Any:
    """A database value as JSON."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    return str(value)  # UUID, IP addresses, ranges...


def _decimal(value: Decimal) -> int | float | str:
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)
