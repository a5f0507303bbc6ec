"""Reading YAML with the 1.2 core schema keeps libyaml's speed.

    python benchmarks/bench_yaml.py

Reads a 5,000-step playbook three ways: PyYAML's libyaml loader (YAML 1.1, what was used
before), PyYAML's pure-Python loader, and `load_yaml` (libyaml's parser, the 1.2 core
resolvers, duplicate-key and alias checks). Prints the best of three, in ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import yaml

from noetl.playbook.yaml_core import load_yaml


def playbook_text(steps: int) -> str:
    lines = ["kind: Playbook", "name: big", "workflow:"]
    lines += ["  - step: start", "    next: [{step: s0}]"]
    for i in range(steps):
        following = f"[{{step: s{i + 1}}}]" if i < steps - 1 else "[]"
        lines += [
            f"  - step: s{i}",
            "    tool: shell",
            f"    args: {{command: 'echo {i} {{{{ workload.x }}}}', env: {{DAY: 2024-05-01}}}}",
            f"    next: {following}",
        ]
    return "\n".join(lines) + "\n"


def best_ms(read: Callable[[], Any]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    text = playbook_text(5000)
    print(f"a 5,000-step playbook, {len(text) // 1024} KiB")
    readers: dict[str, Callable[[], Any]] = {
        "libyaml, YAML 1.1 (CSafeLoader)": lambda: yaml.load(text, Loader=yaml.CSafeLoader),
        "pure Python, YAML 1.1 (SafeLoader)": lambda: yaml.load(text, Loader=yaml.SafeLoader),
        "load_yaml, YAML 1.2 core": lambda: load_yaml(text),
    }
    for name, read in readers.items():
        print(f"{name:<36} {best_ms(read):8.1f} ms")


if __name__ == "__main__":
    main()
