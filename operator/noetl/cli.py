"""The `noetl` command: run, validate and plan playbooks locally; operate them on a cluster.

Each command imports what it needs when it runs, so `noetl run` does not pay for the Kubernetes
client and `noetl operator` does not pay for the local runner.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

app = typer.Typer(
    name="noetl",
    help="Run workflow playbooks: locally, or as Kubernetes Jobs through the NoETL operator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_CANCELLED = 130

PlaybookFile = Annotated[Path, typer.Argument(help="A playbook YAML file.", show_default=False)]


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load(path: Path) -> Any:
    from noetl.playbook import PlaybookInvalid, load_playbook

    try:
        return load_playbook(path)
    except PlaybookInvalid as invalid:
        _fail(str(invalid))


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`--set a.b=1 --set c=[x, y]` -> {'a': {'b': 1}, 'c': ['x', 'y']} (values read as YAML)."""
    import yaml

    workload: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            _fail(f"--set expects KEY=VALUE, got {assignment!r}")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        *parents, leaf = key.split(".")
        target = workload
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                _fail(f"--set {key}: {parent} is not a mapping")
        target[leaf] = value
    return workload


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        _fail(f"{what} {path}: {error}")
    if not isinstance(data, dict):
        _fail(f"{what} {path}: expected a mapping")
    return data


def _read_secret(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME=FILE`, FILE holding KEY=VALUE lines (a dotenv file, as a Secret's data would be)."""
    name, sep, file = spec.partition("=")
    if not sep:
        _fail(f"--secret expects NAME=FILE, got {spec!r}")
    try:
        lines = Path(file).read_text().splitlines()
    except OSError as error:
        _fail(f"--secret {name}: cannot read {file}: {error.strerror}")
    values = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return name, values


def _use_pidfd_child_watcher() -> None:
    # Python 3.11's default watcher starts a thread per child process; pidfd needs none.
    # (3.12 picks pidfd itself and deprecates setting watchers.)
    import asyncio
    import os

    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


@app.command()
def run(
    file: PlaybookFile,
    set_: Annotated[
        list[str],
        typer.Option(
            "--set", help="Override a workload value: KEY=VALUE (YAML value; dotted keys nest)."
        ),
    ] = [],  # noqa: B006
    workload_file: Annotated[
        Path | None, typer.Option(help="A YAML/JSON file of workload values.")
    ] = None,
    secret: Annotated[
        list[str],
        typer.Option(
            help="NAME=FILE: a dotenv file standing for the Secret NAME that steps name in args.secretRef."
        ),
    ] = [],  # noqa: B006
    event_log: Annotated[
        Path | None, typer.Option(help="Where to write the JSON-lines event log.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary (execution, phase, result, error).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run a playbook on this machine, each step in a process of its own."""
    import asyncio

    from noetl.engine import merge_workload
    from noetl.local.eventlog import EventLog
    from noetl.local.progress import make_reporter
    from noetl.local.runner import LocalRunner, new_execution_id, playbook_directory_resolver
    from noetl.local.steps import StepExecutor

    playbook = _load(file)
    workload = _read_mapping(workload_file, "workload file") if workload_file else {}
    workload = merge_workload(workload, parse_assignments(set_))
    secrets = dict(_read_secret(spec) for spec in secret)
    executor = StepExecutor(secrets=secrets)
    reporter = make_reporter(quiet or as_json)
    execution_id = new_execution_id(playbook.name)
    log_path = event_log or Path(".noetl") / "runs" / f"{execution_id}.jsonl"
    log = EventLog(log_path)
    runner = LocalRunner(
        playbook,
        executor,
        workload=workload,
        resolver=playbook_directory_resolver(file.parent),
        reporter=reporter,
        event_log=log,
        execution_id=execution_id,
    )

    async def main() -> Any:
        import signal

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, runner.cancel)
        loop.add_signal_handler(signal.SIGTERM, runner.cancel, "terminated")
        try:
            return await runner.run()
        finally:
            await executor.close()

    _use_pidfd_child_watcher()
    try:
        outcome = asyncio.run(main())
    finally:
        if reporter:
            reporter.close()
        log.close()
    if as_json:
        summary = {
            "execution": outcome.execution_id,
            "phase": outcome.phase,
            "result": outcome.result,
            "error": outcome.error,
            "eventLog": str(log_path),
        }
        typer.echo(json.dumps(summary, indent=2, default=str))
    elif outcome.ok:
        typer.echo(json.dumps(outcome.result, indent=2, default=str))
    else:
        typer.echo(f"{outcome.phase}: {outcome.error}", err=True)
    if not quiet and not as_json:
        typer.echo(
            f"{outcome.phase.lower()}: {outcome.execution_id} (event log {log_path})", err=True
        )
    if not outcome.ok:
        raise typer.Exit(EXIT_CANCELLED if outcome.phase == "Cancelled" else EXIT_FAILED)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Playbook files.", show_default=False)],
) -> None:
    """Check playbooks without running them; every error is listed, with the path of its field."""
    from noetl.playbook import PlaybookInvalid, load_playbook

    failed = False
    for file in files:
        try:
            playbook = load_playbook(file)
        except PlaybookInvalid as invalid:
            failed = True
            typer.echo(str(invalid), err=True)
        else:
            typer.echo(f"{file}: valid ({len(playbook.steps)} steps)")
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def plan(
    file: PlaybookFile,
    dot: Annotated[bool, typer.Option("--dot", help="Print the graph in Graphviz dot.")] = False,
) -> None:
    """Show the graph of steps and what each would run."""
    from noetl.plan import describe, to_dot

    playbook = _load(file)
    typer.echo(to_dot(playbook) if dot else describe(playbook))


@app.command()
def crds(
    output: Annotated[Path, typer.Option(help="Directory to write the CRD manifests to.")] = Path(
        "crds"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Only check that the files are up to date.")
    ] = False,
) -> None:
    """Write the Playbook and Execution CRDs generated from the DSL models."""
    import yaml

    from noetl.kube.crds import all_crds

    stale = []
    for name, crd in all_crds().items():
        text = "# Generated by `noetl crds` from the DSL models: do not edit.\n" + yaml.safe_dump(
            crd, sort_keys=False, width=100
        )
        path = output / name
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            output.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            typer.echo(f"wrote {path}")
    if stale:
        _fail(f"out of date (run `noetl crds`): {', '.join(stale)}", EXIT_FAILED)


@app.command()
def operator(
    namespace: Annotated[
        list[str],
        typer.Option(help="Watch this namespace (repeat for more); none: all namespaces."),
    ] = [],  # noqa: B006
    metrics_port: Annotated[
        int, typer.Option(help="Port of the Prometheus /metrics endpoint (0: off).")
    ] = 8080,
    health_port: Annotated[
        int, typer.Option(help="Port of the /healthz liveness endpoint (0: off).")
    ] = 8081,
    peering: Annotated[
        str | None, typer.Option(help="Elect one active instance through this kopf peering object.")
    ] = None,
    log_format: Annotated[
        str, typer.Option(help="json (structured, one object per line) or plain.")
    ] = "json",
) -> None:
    """Run the operator: Playbooks validated, Executions driven step by step as Jobs."""
    from noetl.kube.operator import main as run_operator
    from noetl.kube.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    if namespace:
        settings.namespaces = namespace
    if log_format not in ("json", "plain"):
        _fail(f"--log-format: expected json or plain, got {log_format!r}")
    run_operator(settings, metrics_port or None, health_port or None, peering, log_format)


Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the Execution.")]


def _cluster(namespace: str) -> Any:
    from noetl.kube.client import Cluster

    try:
        return Cluster(namespace)
    except Exception as error:  # no kubeconfig, unreachable cluster...
        _fail(f"cannot reach the cluster: {error}", EXIT_FAILED)


@app.command()
def submit(
    file: PlaybookFile,
    namespace: Namespace = "default",
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a workload value: KEY=VALUE.")
    ] = [],  # noqa: B006
    wait: Annotated[bool, typer.Option("--wait", help="Follow the execution to its end.")] = False,
) -> None:
    """Apply the playbook to the cluster and start an Execution of it."""
    from noetl.kube.client import describe

    playbook = _load(file)
    cluster = _cluster(namespace)
    cluster.apply_playbook(playbook)
    name = cluster.create_execution(playbook.name, parse_assignments(set_))
    typer.echo(f"execution {name} created in namespace {namespace}", err=True)
    if not wait:
        typer.echo(name)
        return
    seen: dict[str, str] = {}

    def progress(execution: dict[str, Any]) -> None:
        for step, summary in ((execution.get("status") or {}).get("steps") or {}).items():
            if seen.get(step) != summary["phase"]:
                seen[step] = summary["phase"]
                typer.echo(
                    f"  {step}: {summary['phase']}"
                    + (f" - {summary['message']}" if summary.get("message") else ""),
                    err=True,
                )

    final = cluster.follow(name, progress)
    typer.echo(describe(final), err=True)
    if final["status"]["phase"] != "Succeeded":
        raise typer.Exit(EXIT_CANCELLED if final["status"]["phase"] == "Cancelled" else EXIT_FAILED)
    typer.echo(json.dumps(cluster.result(final), indent=2, default=str))


@app.command()
def status(name: str, namespace: Namespace = "default") -> None:
    """Show an Execution: phase, steps, error."""
    from noetl.kube.client import describe

    typer.echo(describe(_cluster(namespace).execution(name)))


@app.command()
def logs(
    name: str,
    namespace: Namespace = "default",
    step: Annotated[str | None, typer.Option(help="Only this step's pods.")] = None,
) -> None:
    """Print the logs of an Execution's step pods."""
    for pod, text in _cluster(namespace).logs(name, step):
        typer.echo(f"==> {pod} <==")
        typer.echo(text.rstrip("\n"))


@app.command()
def cancel(name: str, namespace: Namespace = "default") -> None:
    """Cancel an Execution: its running Jobs are deleted and it ends Cancelled."""
    _cluster(namespace).cancel(name)
    typer.echo(f"execution {name}: cancel requested")


def main() -> None:
    app(prog_name="noetl")


if __name__ == "__main__":
    main()
