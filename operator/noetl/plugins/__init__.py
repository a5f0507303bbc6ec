"""NoETL's plugins: one module per tool kind, each runnable as `python -m noetl.plugins.<kind>`.

`run` hands a request to the plugin its `tool` names. Only the kinds in KINDS are plugins (the
runtime's own modules live beside them). A plugin module is imported on first use, so a process
that only runs python steps never pays for importing httpx, psycopg or duckdb.
"""

from __future__ import annotations

import importlib
from typing import Any

from noetl.plugins.messages import PluginError, StepRequest

KINDS = ("shell", "python", "http", "postgres", "duckdb")


def run(request: StepRequest) -> Any:
    """Run a request with the plugin of its tool kind."""
    if request.tool not in KINDS:
        raise PluginError(f"unknown tool {request.tool!r}; the plugins are {', '.join(KINDS)}")
    module = importlib.import_module(f"noetl.plugins.{request.tool}")
    return module.run(request)
