"""The `noetl` command: run, validate and plan playbooks locally; operate them on a cluster.

Each command imports what it needs when it runs, so `noetl run` does not pay for the Kubernetes
client and `noetl operator` does not pay for the local runner.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:  # the cluster client is loaded only by the commands that need it
    from noetl.kube.client import StepLog

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
    except UnicodeDecodeError as error:
        _fail(f"{path}: invalid playbook\n  not UTF-8 text: {error.reason} at byte {error.start}")


def _cancellable(command: Callable[..., None]) -> Callable[..., None]:
    """Ctrl-C before the run has its own handlers: exit as cancelled, without a traceback."""

    @functools.wraps(command)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            _fail("cancelled", EXIT_CANCELLED)

    return guarded


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


def _seconds(text: str, option: str) -> float:
    """A duration given on the command line (`30s`, `2m`, `45`), in seconds."""
    from noetl.playbook import duration_seconds

    try:
        return duration_seconds(text if not text.replace(".", "").isdigit() else f"{text}s")
    except ValueError:
        _fail(f"{option}: {text!r} is not a duration (write e.g. 500ms, 30s, 5m or 1h)")


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


def _local_run_options(command: Any) -> Any:
    """The options of every command that runs a playbook here (run, retry, resubmit)."""
    options = [
        click.option(
            "--secret",
            multiple=True,
            metavar="NAME=FILE",
            help="A dotenv file standing for the Secret NAME that steps name in args.secretRef.",
        ),
        click.option(
            "--event-log",
            type=click.Path(path_type=Path),
            help="Where to write the JSON-lines event log: a file, or a directory to write"
            " EXECUTION.jsonl in  [default: .noetl/runs].",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print a JSON summary (execution, phase, result, error).",
        ),
        click.option(
            "--finally-grace",
            default="30s",
            show_default=True,
            metavar="DURATION",
            help="How long finally steps may run after Ctrl-C or the execution timeout.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
        click.option(
            "--max-depth",
            type=click.IntRange(min=0),
            default=None,
            help="How deep child playbooks (tool: playbook) may nest  [default: 10].",
        ),
        click.option(
            "--max-parallel",
            type=click.IntRange(min=1),
            help="At most this many steps at once, whatever the playbook allows"
            " (default: the open-file limit / 8).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@app.command()
@playbook_file
@set_option
@set_string_option
@click.option(
    "--workload-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML/JSON file of workload values.",
)
@_local_run_options
@_cancellable
def run(
    file: Path,
    set_: tuple[str, ...],
    set_string: tuple[str, ...],
    workload_file: Path | None,
    **options: Any,
) -> None:
    """Run a playbook on this machine, each step in a process of its own.

    Ctrl-C cancels it; SIGUSR1 suspends it and SIGUSR2 resumes it (`noetl suspend`/`resume`)."""
    from noetl.engine import merge_workload

    playbook = _load(file)
    workload = _read_mapping(workload_file, "workload file") if workload_file else {}
    workload = merge_workload(workload, workload_overrides(set_, set_string))
    _run_locally(file, playbook, workload, **options)


def _run_locally(
    file: Path,
    playbook: Any,
    workload: dict[str, Any],
    *,
    secret: tuple[str, ...],
    event_log: Path | None,
    as_json: bool,
    finally_grace: str,
    quiet: bool,
    max_depth: int | None,
    max_parallel: int | None,
    seed: dict[str, Any] | None = None,
    retry_of: str | None = None,
) -> None:
    """Run `playbook` here to its end and exit as `noetl run` does; `seed`: what a retry keeps."""
    import asyncio
    import gc
    import os

    from noetl.engine import DEFAULT_MAX_CHILD_DEPTH
    from noetl.local import control
    from noetl.local.eventlog import EventLog, run_log_path
    from noetl.local.progress import make_reporter
    from noetl.local.resolver import playbook_directory_resolver
    from noetl.local.runner import LocalRunner, new_execution_id
    from noetl.local.steps import StepExecutor

    # What is loaded now lives until exit: spare the collector walking it again at every pass.
    gc.freeze()
    secrets = dict(_read_secret(spec) for spec in secret)
    executor = StepExecutor(secrets=secrets, max_parallel=max_parallel)
    execution_id = new_execution_id(playbook.name)
    log_path = event_log or Path(".noetl") / "runs"
    if log_path.is_dir() or not event_log:
        log_path = run_log_path(log_path, execution_id)
    try:
        log = EventLog(log_path)
    except OSError as error:
        _fail(f"cannot write the event log {log_path}: {error.strerror}")
    log.write_run(
        pid=os.getpid(),
        execution=execution_id,
        playbook=str(file.resolve()),
        name=playbook.name,
        spec=playbook.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        workload=workload,
        **({"retryOf": retry_of} if retry_of else {}),
    )
    reporter = make_reporter(quiet or as_json)
    runner = LocalRunner(
        playbook,
        executor,
        workload=workload,
        resolver=playbook_directory_resolver(file.parent),
        reporter=reporter,
        event_log=log,
        execution_id=execution_id,
        finally_grace=_seconds(finally_grace, "--finally-grace"),
        max_child_depth=DEFAULT_MAX_CHILD_DEPTH if max_depth is None else max_depth,
        results=seed,
    )

    async def main() -> Any:
        import signal

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, runner.cancel)
        loop.add_signal_handler(signal.SIGTERM, runner.cancel, "terminated")
        loop.add_signal_handler(signal.SIGHUP, runner.cancel, "hung up")
        loop.add_signal_handler(control.SUSPEND_SIGNAL, runner.suspend)
        loop.add_signal_handler(
            control.RESUME_SIGNAL, lambda: runner.resume(control.take_approval_values(log_path))
        )
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


def _again(
    target: str,
    namespace: str,
    overrides: dict[str, Any],
    keep: bool,
    **options: Any,
) -> None:
    """`noetl retry` (keep=True) or `noetl resubmit` of a local run's log or of an Execution."""
    from noetl.engine import Engine, merge_workload
    from noetl.engine.retry import kept_results
    from noetl.local.replay import NotReplayable, read_run

    log = _local_log(target)
    if log is None:
        name = _cluster(namespace).run_again(target, overrides, keep)
        click.echo(name)
        return
    try:
        earlier = read_run(log)
    except NotReplayable as error:
        _fail(str(error), EXIT_FAILED)
    # The playbook as it is now (a fix made since is what a retry is for), else as it ran.
    path = earlier.playbook_path
    playbook = _load(path) if path.is_file() else earlier.playbook
    workload = merge_workload(earlier.workload, overrides)
    seed = kept_results(Engine(playbook).graph, earlier.results) if keep else None
    retry_of = earlier.execution if keep else None
    _run_locally(earlier.playbook_path, playbook, workload, seed=seed, retry_of=retry_of, **options)


def _again_command(keep: bool) -> Any:
    """The arguments and options of `noetl retry` (keep) and `noetl resubmit`, around `_again`."""

    def command(
        target: str,
        namespace: str,
        set_: tuple[str, ...],
        set_string: tuple[str, ...],
        **options: Any,
    ) -> None:
        _again(target, namespace, workload_overrides(set_, set_string), keep=keep, **options)

    for option in (
        _local_run_options,
        set_string_option,
        set_option,
        namespace_option,
        click.argument("target", metavar="EXECUTION|EVENT_LOG"),
    ):
        command = option(command)
    return command


retry = app.command(
    "retry",
    help="Run a failed execution again, keeping what succeeded: only failed steps and items "
    "(and what follows them) run, with the same workload and any `--set` laid over it.\n\n"
    "TARGET is an Execution (a new one is created with spec.retryOf, and its name printed), or "
    "the event log of a local run (.noetl/runs/NAME.jsonl), run again here.",
)(_again_command(keep=True))
resubmit = app.command(
    "resubmit",
    help="Run an execution again from the start, with the same workload and any `--set` over "
    "it (TARGET as for retry).",
)(_again_command(keep=False))


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
    """Write the CRDs (Playbook, Execution, CronPlaybook) generated from the DSL models."""
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
@click.argument("target", metavar="EXECUTION|EVENT_LOG")
@namespace_option
@click.option("--step", help="Only this step's logs.")
@click.option(
    "--follow", "-f", is_flag=True, help="Stream the logs as they are written, to the end."
)
def logs(target: str, namespace: str, step: str | None, follow: bool) -> None:
    """Print the logs of an Execution's step pods, or the ends of a local run's step logs.

    A step whose pods are gone shows the end of its log kept with its results (said on stderr).
    For the event log of a local run (.noetl/runs/NAME.jsonl): each step run's kept tail, as far
    as the log goes (-f follows an Execution's pods only)."""
    log = _local_log(target)
    if log is not None:
        _local_logs(log, step)
        return
    cluster = _cluster(namespace)
    with _cluster_errors():
        if follow:
            for found in cluster.follow_logs(target, step):
                _say_if_kept(found)
                for line in found.text.split("\n") if found.kept else [found.text]:
                    click.echo(f"[{found.source}] {line}")
            return
        for found in cluster.logs(target, step):
            _say_if_kept(found)
            click.echo(f"==> {found.source} <==")
            click.echo(found.text.rstrip("\n"))


def _say_if_kept(found: StepLog) -> None:
    if found.kept:
        lines = found.text.count("\n") + 1
        click.echo(
            f"step {found.source}: pod gone; showing the last {lines} lines kept with the results",
            err=True,
        )


def _local_logs(log: Path, step: str | None) -> None:
    from noetl.local.eventlog import NotARunLog
    from noetl.local.history import step_logs

    try:
        found = step_logs(log, step)
    except OSError as error:
        _fail(f"{log}: cannot read the event log: {error.strerror}", EXIT_FAILED)
    except NotARunLog as error:
        _fail(str(error), EXIT_FAILED)
    for run, text in found:
        click.echo(f"==> {run} <==")
        click.echo(text.rstrip("\n"))


@app.command(name="list")
@namespace_option
@click.option(
    "--local",
    is_flag=True,
    help="The runs of `noetl run` here (read from .noetl/runs), not the cluster's Executions.",
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".noetl") / "runs",
    show_default=True,
    help="Where --local looks for event logs.",
)
def list_(namespace: str, local: bool, runs_dir: Path) -> None:
    """List Executions (or, with --local, local runs): phase, playbook, start and duration."""
    import time

    from noetl.tables import table

    headers = ["NAME", "PLAYBOOK", "PHASE", "STARTED", "DURATION"]
    now = time.time()
    if local:
        from noetl.local.history import local_runs
        from noetl.tables import duration

        rows: list[list[object]] = []
        for run in local_runs(runs_dir):
            end = run.finished_at or (now if run.phase == "Running" else None)
            started = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at))
                if run.started_at
                else None
            )
            took = duration(end - run.started_at) if end and run.started_at else None
            rows.append([run.execution, run.playbook, run.phase, started, took])
        click.echo(table(headers, rows))
        return
    from noetl.kube.client import execution_rows

    cluster = _cluster(namespace)
    with _cluster_errors():
        click.echo(table(headers, execution_rows(cluster.executions(), now)))


@app.command()
@click.argument("name")
@namespace_option
def get(name: str, namespace: str) -> None:
    """Describe an Execution: phase, times, result, conditions and a table of its steps."""
    import time

    from noetl.kube.client import describe_long

    cluster = _cluster(namespace)
    with _cluster_errors():
        click.echo(describe_long(cluster.execution(name), time.time()))


@app.command()
@click.argument("name")
@namespace_option
def cancel(name: str, namespace: str) -> None:
    """Cancel an Execution: its running Jobs are deleted and it ends Cancelled."""
    with _cluster_errors():
        _cluster(namespace).cancel(name)
    click.echo(f"execution {name}: cancel requested")


def _local_log(target: str) -> Path | None:
    """The event log of a local run when TARGET names one, else None (an Execution's name)."""
    path = Path(target)
    return path if target.endswith(".jsonl") or path.is_file() else None


@app.command()
@click.argument("target", metavar="EXECUTION|EVENT_LOG")
@namespace_option
def suspend(target: str, namespace: str) -> None:
    """Suspend an execution: no new step starts (running ones finish) until `noetl resume`.

    TARGET is an Execution's name, or the event log of a local run (.noetl/runs/NAME.jsonl)."""
    from noetl.local import control

    log = _local_log(target)
    try:
        if log is not None:
            control.suspend(log)
        else:
            _cluster(namespace).suspend(target)
    except control.RunNotReachable as error:
        _fail(str(error), EXIT_FAILED)
    click.echo(f"{target}: suspend requested")


@app.command()
@click.argument("target", metavar="EXECUTION|EVENT_LOG")
@namespace_option
@set_option
def resume(target: str, namespace: str, set_: tuple[str, ...]) -> None:
    """Resume a suspended execution and approve its waiting approval steps.

    The `--set` values become the result of each approval step waiting (none: `{}`)."""
    from noetl.local import control

    log = _local_log(target)
    values = parse_assignments(set_)
    try:
        if log is not None:
            control.resume(log, values)
        else:
            _cluster(namespace).resume(target, values)
    except control.RunNotReachable as error:
        _fail(str(error), EXIT_FAILED)
    click.echo(f"{target}: resume requested")


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on.")
@click.option(
    "--runs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".noetl/runs"),
    show_default=True,
    help="Directory of local event logs.",
)
@click.option(
    "--playbooks",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of playbook files to list and validate (default: ./playbooks if present).",
)
@click.option("--namespace", multiple=True, help="Only these cluster namespaces (repeatable).")
@click.option("--no-cluster", is_flag=True, help="Show local runs only, even with a kubeconfig.")
@click.option(
    "--actions/--no-actions",
    default=False,
    show_default=True,
    help="Offer the cancel, suspend, resume and retry buttons.",
)
@click.option(
    "--token",
    envvar="NOETL_UI_TOKEN",
    help="The access token the buttons need (env NOETL_UI_TOKEN). Made and printed at start when"
    " --actions listens on an address other than loopback.",
)
def ui(
    host: str,
    port: int,
    runs: Path,
    playbooks: Path | None,
    namespace: tuple[str, ...],
    no_cluster: bool,
    actions: bool,
    token: str | None,
) -> None:
    """Serve a web view of playbooks and executions (local runs and the cluster), live."""
    from noetl.ui import serve

    if playbooks is None and Path("playbooks").is_dir():
        playbooks = Path("playbooks")
    serve(host, port, runs, playbooks, list(namespace) or None, actions, not no_cluster, token)


def main() -> None:
    app(prog_name="noetl")


def kubectl_main() -> None:
    """`kubectl noetl ...`: kubectl runs the `kubectl-noetl` executable found on PATH."""
    app(prog_name="kubectl noetl")


if __name__ == "__main__":
    main()
