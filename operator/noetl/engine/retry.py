"""What a retry keeps of an earlier run, to seed the result store of the run that retries it.

A retry runs the same graph again, with the earlier run's results in its store: a step whose
record there says it succeeded is not run again (the engine completes it at once with its kept
result, and routes on from it as before, with the same conditions); every other step runs. So:

- kept: every workflow step that succeeded (its result and its record);
- of a loop step that did not succeed (failed or cancelled), the items that succeeded, when the
  loop's items render to the same list again (else the loop runs whole);
- run again: the steps that failed (with `onError: continue` too), were skipped, cancelled or
  never started, the items that did not succeed, and every `finally` step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.engine.graph import Graph
from noetl.engine.machine import item_key, items_key
from noetl.engine.state import record_key


def kept_results(graph: Graph, results: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an earlier run's result store that a retry starts from."""
    kept: dict[str, Any] = {}
    for name in graph.successors:
        record = results.get(record_key(name))
        if record is None or name in graph.finally_steps:
            continue
        if record.get("phase") == "Succeeded":
            kept[record_key(name)] = record
            if name in results:
                kept[name] = results[name]
        elif items_key(name) in results:
            items = results[items_key(name)]
            kept[items_key(name)] = items
            for index in range(len(items)):
                if item_key(name, index) in results:
                    kept[item_key(name, index)] = results[item_key(name, index)]
    return kept
