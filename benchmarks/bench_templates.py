"""How long the worst templates take to be stopped, and what validating a hostile playbook costs.

    python benchmarks/bench_templates.py

Each hostile template runs until a limit stops it (docs/dsl.md, Limits), `items` being a list
of 10,000 numbers (a large result of an earlier step); the figure is the time a render can hold
the event loop that runs it. Then `noetl validate` of a playbook whose template
is `{{ (9 ** (9 ** 8)) % 7 }}`, in a process of its own, as a user would run it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from noetl.templating import RenderError, render

HOSTILE = {
    "power": "{{ (9 ** (9 ** 8)) % 7 }}",
    "repeat": "{{ ('x' * 600000000) | length }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
    "doubling": "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "output": "{% for i in range(100000) %}{{ 'x' * 999999 }}{% endfor %}",
    "join": "{{ range(100000) | join('x' * 1000) }}",
    "3 loops / 10k": "{% for a in items %}{% for b in items %}{% for c in items %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "recursive loop": "{% for a in items recursive %}{% if loop.depth < 3 %}{{ loop(items) }}"
    "{% endif %}{% endfor %}",
    "sort per item": "{% for a in items %}{{ items | sort | first }}{% endfor %}",
    "in per item": "{% for a in items %}{% for b in range(99) %}{{ a in items }}"
    "{% endfor %}{% endfor %}",
}
ITEMS = {"items": list(range(10_000))}  # a large result of an earlier step

PLAYBOOK = """\
kind: Playbook
name: hostile
workflow:
  - step: start
    next: [{step: boom}]
  - step: boom
    tool: shell
    args: {command: "echo {{ (9 ** (9 ** 8)) % 7 }}"}
"""


def main() -> None:
    print(f"{'template':<16} {'stopped after':>14}  reason")
    for name, template in HOSTILE.items():
        started = time.perf_counter()
        try:
            render(template, ITEMS)
            reason = "rendered"
        except RenderError as error:
            reason = error.reason.removeprefix("over the template limits: ")
        print(f"{name:<16} {time.perf_counter() - started:>12.3f} s  {reason[:60]}")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hostile.yaml"
        path.write_text(PLAYBOOK)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "noetl", "validate", str(path)], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
    verdict = "invalid" if result.returncode == 2 else f"exit {result.returncode}"
    print(f"noetl validate of the hostile playbook: {elapsed:.2f} s ({verdict})")


if __name__ == "__main__":
    main()
