"""Local runner speed, side by side with NoETL 5.3.2's own CLI (PyPI `noetl`, written in Rust).

    python benchmarks/bench_local.py [--runs 5]

Prints the median wall time of whole `noetl run` commands (interpreter start included) for:
- a chain of 100 trivial shell steps, ours and NoETL 5.3.2's (its local runtime takes
  `apiVersion: noetl.io/v2` playbooks, steps `tool: {kind: shell, cmds: [...]}` chained by
  `next: {arcs: [...]}`);
- a chain of 100 trivial python steps (ours only: NoETL's local runtime has no python tool),
  and a single one, so that the cost of each further step shows apart from start-up.
The reference CLI is installed into a virtualenv under ~/.cache/noetl-bench the first time.
Also printed: the cost of a bare interpreter start here, which every Python command pays.
The two shell chains are timed in alternation, so that a change in the machine's load weighs on
both alike. The package's bytecode is compiled first, as `pip install` does: where
PYTHONDONTWRITEBYTECODE is set (as in some CI images), an editable install would otherwise
recompile every module at every start.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REFERENCE = "noetl==5.3.2"
CACHE = Path.home() / ".cache" / "noetl-bench" / "noetl-5.3.2"
STEPS = 100


def ours(tool: str, steps: int = STEPS) -> str:
    lines = [
        "kind: Playbook",
        f"name: chain-{tool}",
        "workflow:",
        "  - step: start",
        "    next: [{step: s0}]",
    ]
    for i in range(steps):
        following = f"s{i + 1}" if i < steps - 1 else "end"
        body = (
            "    tool: shell\n    args: {command: 'true'}"
            if tool == "shell"
            else "    tool: python\n    code: 'result = 1'"
        )
        lines += [f"  - step: s{i}", body, f"    next: [{{step: {following}}}]"]
    lines.append("  - step: end")
    return "\n".join(lines) + "\n"


def reference() -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata:",
        "  name: chain",
        "  path: bench/chain",
        "workflow:",
    ]
    lines += ["  - step: start", "    next:", "      arcs:", "        - step: s0"]
    for i in range(STEPS):
        following = f"s{i + 1}" if i < STEPS - 1 else "end"
        lines += [
            f"  - step: s{i}",
            "    tool:",
            "      kind: shell",
            '      cmds: ["true"]',
            "    next:",
            "      arcs:",
            f"        - step: {following}",
        ]
    lines.append("  - step: end")
    return "\n".join(lines) + "\n"


def reference_cli() -> Path:
    cli = CACHE / "bin" / "noetl"
    if not cli.exists():
        print(f"installing {REFERENCE} into {CACHE} ...", flush=True)
        venv.create(CACHE, with_pip=True)
        subprocess.run([str(CACHE / "bin" / "pip"), "install", "--quiet", REFERENCE], check=True)
    return cli


def seconds(command: list[str]) -> float:
    begin = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begin


def median_seconds(command: list[str], runs: int) -> float:
    return statistics.median(seconds(command) for _ in range(runs))


def alternating_medians(first: list[str], second: list[str], runs: int) -> tuple[float, float]:
    pairs = [(seconds(first), seconds(second)) for _ in range(runs)]
    return statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    import noetl

    compileall.compile_dir(Path(noetl.__file__).parent, quiet=1)
    ours_cli = [sys.executable, "-m", "noetl", "run", "--quiet"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        texts = {
            "shell.yaml": ours("shell"),
            "python.yaml": ours("python"),
            "python1.yaml": ours("python", 1),
            "ref.yaml": reference(),
        }
        for name, text in texts.items():
            (folder / name).write_text(text)
        bare = median_seconds([sys.executable, "-c", "pass"], runs)
        ref, shell = alternating_medians(
            [str(reference_cli()), "run", str(folder / "ref.yaml")],
            [*ours_cli, str(folder / "shell.yaml")],
            runs,
        )
        python = median_seconds([*ours_cli, str(folder / "python.yaml")], runs)
        python_one = median_seconds([*ours_cli, str(folder / "python1.yaml")], runs)
    print(f"median of {runs} runs, {STEPS}-step chains, whole commands")
    print(f"  python interpreter start (bare)     {bare * 1000:8.0f} ms")
    print(f"  NoETL 5.3.2, shell chain            {ref * 1000:8.0f} ms")
    per_step = (python - python_one) / (STEPS - 1) * 1000
    rows = [
        ("noetl run, shell chain", shell, f"{shell / ref:.1f}x NoETL 5.3.2"),
        ("noetl run, one python step", python_one, "start-up, worker pool included"),
        ("noetl run, python chain", python, f"{per_step:.1f} ms per further step"),
    ]
    for label, seconds_taken, remark in rows:
        print(f"  {label:<35}{seconds_taken * 1000:8.0f} ms  ({remark})")


if __name__ == "__main__":
    main()
