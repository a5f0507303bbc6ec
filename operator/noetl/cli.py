"""The `noetl` command: run, validate and plan playbooks locally; operate them on a cluster.

Each command imports what it needs when it runs, so `noetl run` does not pay for the Kubernetes
client and `noetl operator` does not pay for the local runner.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_CANCELLED = 130


@click.group(name="noetl", context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Run workflow playbooks: locally, or as Kubernetes Jobs through the NoETL operator."""


playbook_file = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
namespace_option = click.option(
    "--namespace", "-n", default="default", show_default=True, help="Namespace of the Execution."
)
set_option = click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a workload value (a YAML 1.2 value; dotted keys nest). Repeatable.",
)
set_string_option = click.option(
    "--set-string",
    "set_string",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a workload value with VALUE as a string, verbatim. Repeatable.",
)


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _load(path: Path) -> Any:
    from noetl.playbook import PlaybookInvalid, load_playbook

    try:
        return load_playbook(path)
    except PlaybookInvalid as invalid:
        _fail(str(invalid))


def parse_assignments(assignments: Iterable[str], as_string: bool = False) -> dict[str, Any]:
    """`--set a.b=1 --set c=[x, y]` -> {'a': {'b': 1}, 'c': ['x', 'y']}.

    Values are read as YAML 1.2 (`NO` and `2024-05-01` stay strings; text that is not YAML
    stays text), or taken verbatim with `as_string` (`--set-string`).
    """
    from noetl.playbook.yaml_core import YamlError, load_yaml

    option = "--set-string" if as_string else "--set"
    workload: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            _fail(f"{option} expects KEY=VALUE, got {assignment!r}")
        try:
            value = raw if as_string or not raw else load_yaml(raw)
        except YamlError:
            value = raw
        *parents, leaf = key.split(".")
        target = workload
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                _fail(f"{option} {key}: {parent} is not a mapping")
        target[leaf] = value
    return workload


def workload_overrides(set_: Iterable[str], set_string: Iterable[str]) -> dict[str, Any]:
    """The workload of `--set` and `--set-string` (the latter wins, as in Helm)."""
    from noetl.engine import merge_workload

    return merge_workload(parse_assignments(set_), parse_assignments(set_string, as_string=True))


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    from noetl.playbook.yaml_core import YamlError, load_yaml

    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        _fail(f"{what} {path}: {error.strerror}")
    except YamlError as error:
        _fail(f"{what} {path}: not valid YAML: {error}")
    if not isinstance(data, dict):
        _fail(f"{what} {path}: expected a mapping")
    return data


def _read_secret(spec: str) -> tuple[str, dict[str, str]]:
    """`NAME=FILE`, FILE a dotenv file (KEY=VALUE lines, as a Secret's data would be).

    python-dotenv reads it: quotes, escapes, `export` and comments as in shells.
    """
    from dotenv import dotenv_values

    name, sep, file = spec.partition("=")
    if not sep:
        _fail(f"--secret expects NAME=FILE, got {spec!r}")
    try:
        with open(file, encoding="utf-8") as stream:
            values = dotenv_values(stream=stream, interpolate=False)
    except OSError as error:
        _fail(f"--secret {name}: cannot read {file}: {error.strerror}")
    return name, {key: value for key, value in values.items() if value is not None}


def _use_pidfd_child_watcher() -> None:
    # Python 3.11's default watcher starts a thread per child process; pidfd needs none.
    # (3.12 picks pidfd itself and deprecates setting watchers.)
    import asyncio
    import os

    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


@app.command()
@playbook_file
@set_option
@set_string_option
@click.option(
    "--workload-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML/JSON file of workload values.",
)
@click.option(
    "--secret",
    multiple=True,
    metavar="NAME=FILE",
    help="A dotenv file standing for the Secret NAME that steps name in args.secretRef.",
)
@click.option(
    "--event-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON-lines event log.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON summary (execution, phase, result, error).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option(
    "--max-depth",
    type=click.IntRange(min=0),
    default=None,
    help="How deep child playbooks (tool: playbook) may nest  [default: 10].",
)
def run(
    file: Path,
    set_: tuple[str, ...],
    set_string: tuple[str, ...],
    workload_file: Path | None,
    secret: tuple[str, ...],
    event_log: Path | None,
    as_json: bool,
    quiet: bool,
    max_depth: int | None,
) -> None:
    """Run a playbook on this machine, each step in a process of its own."""
    import asyncio
    import gc

    from noetl.engine import DEFAULT_MAX_CHILD_DEPTH, merge_workload
    from noetl.local.eventlog import EventLog, run_log_path
    from noetl.local.progress import make_reporter
    from noetl.local.resolver import playbook_directory_resolver
    from noetl.local.runner import LocalRunner, new_execution_id
    from noetl.local.steps import StepExecutor

    playbook = _load(file)
    # What is loaded now lives until exit: spare the collector walking it again at every pass.
    gc.freeze()
    workload = _read_mapping(workload_file, "workload file") if workload_file else {}
    workload = merge_workload(workload, workload_overrides(set_, set_string))
    secrets = dict(_read_secret(spec) for spec in secret)
    executor = StepExecutor(secrets=secrets)
    reporter = make_reporter(quiet or as_json)
    execution_id = new_execution_id(playbook.name)
    log_path = event_log or run_log_path(Path(".noetl") / "runs", execution_id)
    log = EventLog(log_path)
    runner = LocalRunner(
        playbook,
        executor,
        workload=workload,
        resolver=playbook_directory_resolver(file.parent),
        reporter=reporter,
        event_log=log,
        execution_id=execution_id,
        max_child_depth=DEFAULT_MAX_CHILD_DEPTH if max_depth is None else max_depth,
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
        click.echo(json.dumps(summary, indent=2, default=str))
    elif outcome.ok:
        click.echo(json.dumps(outcome.result, indent=2, default=str))
    else:
        click.echo(f"{outcome.phase}: {outcome.error}", err=True)
    if not quiet and not as_json:
        click.echo(
            f"{outcome.phase.lower()}: {outcome.execution_id} (event log {log_path})", err=True
        )
    if not outcome.ok:
        sys.exit(EXIT_CANCELLED if outcome.phase == "Cancelled" else EXIT_FAILED)


@app.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check playbooks without running them; every error is listed, with the path of its field.

    Child playbooks (`tool: playbook`) are looked up beside each file, as `noetl run` would.
    """
    from noetl.local.resolver import playbook_directory_resolver
    from noetl.playbook import PlaybookInvalid, load_playbook

    failed = False
    resolvers: dict[Path, Any] = {}
    for file in files:
        directory = file.parent.resolve()
        if directory not in resolvers:  # one per directory: each reads its files once
            resolvers[directory] = playbook_directory_resolver(directory)
        resolve = resolvers[directory]
        try:
            playbook = load_playbook(file, resolve)
        except PlaybookInvalid as invalid:
            failed = True
            click.echo(str(invalid), err=True)
        else:
            click.echo(f"{file}: valid ({len(playbook.steps)} steps)")
    if failed:
        sys.exit(EXIT_INVALID)


@app.command()
@playbook_file
@click.option("--dot", is_flag=True, help="Print the graph in Graphviz dot.")
def plan(file: Path, dot: bool) -> None:
    """Show the graph of steps and what each would run."""
    from noetl.plan import describe, to_dot

    playbook = _load(file)
    click.echo(to_dot(playbook) if dot else describe(playbook))


@app.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crds"),
    show_default=True,
    help="Directory to write the CRD manifests to.",
)
@click.option("--check", is_flag=True, help="Only check that the files are up to date.")
def crds(output: Path, check: bool) -> None:
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
            click.echo(f"wrote {path}")
    if stale:
        _fail(f"out of date (run `noetl crds`): {', '.join(stale)}", EXIT_FAILED)


@app.command()
@click.option(
    "--namespace",
    multiple=True,
    help="Watch this namespace (repeat for more); none: all namespaces.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=8080,
    show_default=True,
    help="Port of the Prometheus /metrics endpoint (0: off).",
)
@click.option(
    "--health-port",
    type=int,
    default=8081,
    show_default=True,
    help="Port of the /healthz liveness endpoint (0: off).",
)
@click.option("--peering", help="Elect one active instance through this kopf peering object.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "plain"]),
    default="json",
    show_default=True,
    help="json (structured, one object per line) or plain.",
)
def operator(
    namespace: tuple[str, ...],
    metrics_port: int,
    health_port: int,
    peering: str | None,
    log_format: str,
) -> None:
    """Run the operator: Playbooks validated, Executions driven step by step as Jobs."""
    from noetl.kube.operator import main as run_operator
    from noetl.kube.settings import OperatorSettings

    settings = OperatorSettings.from_env()
    if namespace:
        settings.namespaces = list(namespace)
    run_operator(settings, metrics_port or None, health_port or None, peering, log_format)


def _cluster(namespace: str) -> Any:
    from noetl.kube.client import Cluster

    try:
        return Cluster(namespace)
    except Exception as error:  # no kubeconfig, unreachable cluster...
        _fail(f"cannot reach the cluster: {error}", EXIT_FAILED)


@contextmanager
def _cluster_errors() -> Iterator[None]:
    """A missing execution or a refused call ends the command with one line, not a traceback."""
    from kubernetes.client.exceptions import ApiException

    from noetl.kube.client import NotFound
    from noetl.kube.refusals import error_text

    try:
        yield
    except NotFound as missing:
        _fail(str(missing), EXIT_FAILED)
    except ApiException as error:
        _fail(f"the API server refused: {error_text(error)}", EXIT_FAILED)


@app.command()
@playbook_file
@namespace_option
@set_option
@set_string_option
@click.option("--wait", is_flag=True, help="Follow the execution to its end.")
def submit(
    file: Path, namespace: str, set_: tuple[str, ...], set_string: tuple[str, ...], wait: bool
) -> None:
    """Apply the playbook to the cluster and start an Execution of it."""
    from noetl.kube.client import describe

    playbook = _load(file)
    cluster = _cluster(namespace)
    with _cluster_errors():
        cluster.apply_playbook(playbook)
        name = cluster.create_execution(playbook.name, workload_overrides(set_, set_string))
    click.echo(f"execution {name} created in namespace {namespace}", err=True)
    if not wait:
        click.echo(name)
        return
    seen: dict[str, str] = {}

    def progress(execution: dict[str, Any]) -> None:
        for step, summary in ((execution.get("status") or {}).get("steps") or {}).items():
            if seen.get(step) != summary["phase"]:
                seen[step] = summary["phase"]
                click.echo(
                    f"  {step}: {summary['phase']}"
                    + (f" - {summary['message']}" if summary.get("message") else ""),
                    err=True,
                )

    final = cluster.follow(name, progress)
    click.echo(describe(final), err=True)
    if final["status"]["phase"] != "Succeeded":
        sys.exit(EXIT_CANCELLED if final["status"]["phase"] == "Cancelled" else EXIT_FAILED)
    click.echo(json.dumps(cluster.result(final), indent=2, default=str))


@app.command()
@click.argument("name")
@namespace_option
def status(name: str, namespace: str) -> None:
    """Show an Execution: phase, steps, error."""
    from noetl.kube.client import describe

    with _cluster_errors():
        click.echo(describe(_cluster(namespace).execution(name)))


@app.command()
@click.argument("name")
@namespace_option
@click.option("--step", help="Only this step's pods.")
def logs(name: str, namespace: str, step: str | None) -> None:
    """Print the logs of an Execution's step pods."""
    with _cluster_errors():
        for pod, text in _cluster(namespace).logs(name, step):
            click.echo(f"==> {pod} <==")
            click.echo(text.rstrip("\n"))


@app.command()
@click.argument("name")
@namespace_option
def cancel(name: str, namespace: str) -> None:
    """Cancel an Execution: its running Jobs are deleted and it ends Cancelled."""
    with _cluster_errors():
        _cluster(namespace).cancel(name)
    click.echo(f"execution {name}: cancel requested")


def main() -> None:
    app(prog_name="noetl")


if __name__ == "__main__":
    main()
