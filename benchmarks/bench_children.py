"""`noetl run` of a loop over 100 child playbooks, found by file name and by `metadata.name`.

    python benchmarks/bench_children.py

A parent loops over 100 items, each a `tool: playbook` step whose child (a chain of 40 routing
steps) is named either as its file (`child-7` -> child-7.yaml) or by a `metadata.name` that
differs from the file name, in a directory of 100 playbooks. Finding a child by `metadata.name`
reads the directory once per run (an index), and each child is read once per run, so both ways
take about as long. Prints the wall time of each run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILDREN = 100


STEPS = 40  # per child: a chain of routing steps, so that reading a child costs something


def child(i: int) -> str:
    chain = "".join(
        f"    - step: s{n}\n      next: [{{step: s{n + 1}}}]\n" for n in range(1, STEPS)
    )
    return (
        f"kind: Playbook\nmetadata: {{name: named-{i}}}\nspec:\n  output: {i}\n  workflow:\n"
        f"    - step: start\n      next: [{{step: s1}}]\n{chain}    - step: s{STEPS}\n"
    )


def write_directory(directory: Path) -> None:
    for i in range(CHILDREN):
        (directory / f"child-{i}.yaml").write_text(child(i))
    for how, prefix in (("file", "child"), ("name", "named")):
        (directory / f"parent-by-{how}.yaml").write_text(
            textwrap.dedent(
                f"""
                name: parent-by-{how}
                workflow:
                  - step: start
                    next: [{{step: each}}]
                  - step: each
                    tool: playbook
                    loop: {{in: "{{{{ range({CHILDREN}) | list }}}}", iterator: i, mode: parallel}}
                    args: {{name: "{prefix}-{{{{ i }}}}"}}
                """
            )
        )


def timed_run(directory: Path, parent: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "noetl", "run", "-q", "--event-log", "/dev/null", parent],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_directory(directory)
        for how in ("file", "name"):
            seconds = timed_run(directory, f"parent-by-{how}.yaml")
            print(f"{CHILDREN} children found by {how:4}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
