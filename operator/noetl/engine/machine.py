"""The engine: given a playbook, the recorded state and one event, decide what happens next.

`Engine.handle(state, results, event)` updates `state` and `results` in place and returns the
commands for the shell to carry out. It does no I/O, reads no clock and draws no random numbers,
so the same inputs always give the same outputs; the shells (the local runner and the operator)
turn the world into events and commands into the world. Updating in place rather than copying
keeps the cost of one event independent of how many steps have finished.

Semantics in brief (docs/architecture.md has the whole story):
- a step runs when a predecessor routes to it; a join (a step with several predecessors) waits
  until no running step can still reach it, and is skipped if any step upstream of it failed;
- steps without a tool are routing steps: decided here, no process;
- a failed step fails only itself and what depends on it; the execution fails when all is done,
  unless the step says `onError: continue`;
- retries and timeouts (of a step attempt, of the execution) are timers the shell keeps and
  reports back as `TimerFired`; a step that times out is cancelled and fails with one message;
- a result over `result_limit` fails its step: the shell's store never meets one it cannot keep;
- when the workflow ends, however it ends, its `finally` steps run (a graph of their own) and see
  the outcome as `execution.phase` and `execution.error`; after a cancel or the execution timeout
  they have `finally_grace` seconds. The execution keeps the workflow's failure; a workflow that
  succeeded fails with the first finally step that fails.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Literal

from noetl.engine.graph import Graph
from noetl.engine.messages import (
    ApprovalGiven,
    AwaitApproval,
    CancelRequested,
    CancelStep,
    Command,
    Event,
    ExecutionStarted,
    FinishExecution,
    ResumeRequested,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepStarted,
    StepSucceeded,
    SuspendRequested,
    TimerFired,
    run_key,
)
from noetl.engine.state import (
    FINISHED_STEP_PHASES,
    ExecutionState,
    FinishedPhase,
    FinishedStepPhase,
    LoopState,
    StepState,
    Timer,
    clip,
    log_key,
    record_key,
    short,
)
from noetl.playbook import Playbook, duration_seconds
from noetl.playbook.tools import check_args
from noetl.playbook.validation import START
from noetl.templating import RenderError, render, render_string, render_workload, truthy

EXECUTION_TIMEOUT = "execution-timeout"
FINALLY_GRACE = "finally-grace"
OUTPUT_KEY = "#output"
"""Where the workflow's rendered `output` waits in the result store while finally steps run."""
DEFAULT_FINALLY_GRACE = 30.0
DEFAULT_MAX_CHILD_DEPTH = 10


def item_key(step: str, index: int) -> str:
    """Where a loop item's result is kept in the result store until the loop ends."""
    return f"{step}[{index}]"


def item_error_key(step: str, index: int) -> str:
    """Where a loop item's error is kept in the result store until the loop ends."""
    return f"{step}#error-{index}"  # the operator's ConfigMap keys keep this form


def items_key(step: str) -> str:
    """Where a running loop's rendered item list is kept in the result store."""
    return f"{step}#items"


def timeout_timer(step: str, index: int | None, attempt: int) -> str:
    """The id of the timer that ends one attempt when its step's `timeout` passes."""
    return "timeout:" + run_key(step, index, attempt)


def merge_workload(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, nested mappings merged key by key (lists and values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_workload(merged[key], value)
        else:
            merged[key] = value
    return merged


class Engine:
    """The rules of one execution: its playbook, its workload and its identity.

    `depth` is how many parent executions this one has (0 for a run started by a person);
    a `tool: playbook` step fails instead of starting a child deeper than `max_child_depth`.
    """

    def __init__(
        self,
        playbook: Playbook,
        workload: Mapping[str, Any] | None = None,
        execution: Mapping[str, str] | None = None,
        depth: int = 0,
        max_child_depth: int = DEFAULT_MAX_CHILD_DEPTH,
        result_limit: int | None = None,
        finally_grace: float = DEFAULT_FINALLY_GRACE,
    ) -> None:
        """`result_limit`: the most bytes (as compact JSON) a result may take; None for no cap.
        `finally_grace`: seconds the finally steps have after a cancel or the execution timeout."""
        self.playbook = playbook
        self.result_limit = result_limit
        self.finally_grace = finally_grace
        self.graph = Graph(playbook)
        self.execution = dict(execution or {})
        # The playbook's own workload templates (`"{{ execution.id }}"`) are rendered once, here:
        # the same inputs give the same workload, so a restarted shell gets it back unstored.
        # Values given for the run are data, used as given: data never becomes a template.
        defaults = playbook.spec.workload
        self.workload_error: str | None = None
        try:
            defaults = render_workload(defaults, self.execution)
        except RenderError as error:
            self.workload_error = str(error)
        self.workload = merge_workload(defaults, workload or {})
        self.depth = depth
        self.max_child_depth = max_child_depth

    def handle(
        self, state: ExecutionState, results: MutableMapping[str, Any], event: Event
    ) -> list[Command]:
        if state.finished:
            return []
        transition = _Transition(self, state, results, event.at)
        transition.apply(event)
        transition.settle()
        return transition.commands


class RenderContext(Mapping[str, Any]):
    """What templates see, looked up on demand so rendering costs the same however far along.

    Names, first match wins: `workload`, `execution` (its identity, `phase` and `error`), the
    per-render extras (loop iterator, `error`...), then the result of each finished step under
    the step's name (with `_` for `-`).
    """

    def __init__(
        self,
        engine: Engine,
        results: Mapping[str, Any],
        extras: Mapping[str, Any],
        state: ExecutionState | None = None,
    ):
        execution: dict[str, Any] = dict(engine.execution)
        if state is not None:
            # While finally steps run, `phase` is how the workflow ended; before, "Running".
            execution.update(phase=state.ending or state.phase, error=state.error)
        self._fixed = {**extras, "workload": engine.workload, "execution": execution}
        self._steps = engine.playbook.template_names  # fetch_data -> fetch-data
        self._results = results

    def __getitem__(self, name: str) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        step = self._steps.get(name)
        if step is not None and step in self._results:
            return self._results[step]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._fixed
        yield from (name for name, step in self._steps.items() if step in self._results)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Transition:
    """The work of one event: mutates the state and collects commands."""

    def __init__(
        self, engine: Engine, state: ExecutionState, results: MutableMapping[str, Any], at: float
    ):
        self.engine = engine
        self.playbook = engine.playbook
        self.graph = engine.graph
        self.state = state
        self.results = results
        self.at = at
        self.commands: list[Command] = []
        self.launching = False  # inside _launch_items: a failed item does not re-enter it
        self.log: tuple[str, str] | None = None  # (step, the end of its run's log) of this event
        # Steps routed to and ready to begin. A worklist, not recursion: a chain of thousands of
        # routing steps finishes in one transition without growing the call stack.
        self.ready: deque[str] = deque()

    # Events -----------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        match event:
            case ExecutionStarted():
                self._execution_started()
            case StepStarted():
                step = self._current(event.step, event.index, event.attempt)
                if step is not None and step.started_at is None:
                    step.started_at = self.at
            case StepSucceeded():
                if self._current(event.step, event.index, event.attempt) is not None:
                    self._keep_log(event.step, event.log)
                    self._attempt_succeeded(event.step, event.index, event.attempt, event.result)
            case StepFailed():
                if self._current(event.step, event.index, event.attempt) is not None:
                    self._keep_log(event.step, event.log)
                    self._attempt_failed(
                        event.step, event.index, event.attempt, event.error, event.result
                    )
            case TimerFired():
                self._timer_fired(event.timer)
            case CancelRequested():
                self._abort("Cancelled", event.reason)
            case SuspendRequested():
                if self.state.suspended is None:
                    self.state.suspended = event.reason
            case ResumeRequested():
                self._resume()
            case ApprovalGiven():
                self._approved(event.step, event.values)

    def _execution_started(self) -> None:
        if self.state.phase != "Pending":
            return
        self.state.phase = "Running"
        self.state.started_at = self.at
        if self.engine.workload_error is not None:
            self._abort("Failed", self.engine.workload_error)
            return
        timeout = self.playbook.spec.timeout
        if timeout is not None:
            due = self.at + duration_seconds(timeout)
            self.state.timers[EXECUTION_TIMEOUT] = Timer(due=due, kind="execution")
            self.commands.append(ScheduleTimer(EXECUTION_TIMEOUT, due))
        self.ready.append(START)

    def _keep_log(self, name: str, log: str | None) -> None:
        """Remember the run's log: if its end ends the step, the log is kept with its record."""
        self.log = (name, log) if log else None

    def _current(self, name: str, index: int | None, attempt: int) -> StepState | None:
        """The step's state if this (index, attempt) is the one running now (else stale: None)."""
        return self.state.running_step(name, index, attempt)

    def _timer_fired(self, timer_id: str) -> None:
        timer = self.state.timers.pop(timer_id, None)
        if timer is None:
            return
        if timer.kind == "execution":
            self._abort("Failed", f"execution timed out after {self.playbook.spec.timeout}")
            return
        if timer.kind == "grace":
            self._stop_runs(f"stopped after the {self.engine.finally_grace:g}s finally grace")
            self._finish_after_finally(grace_expired=True)
            return
        assert timer.step is not None
        if timer.kind == "retry":
            self.state.steps[timer.step].phase = "Running"
            self._start_attempt(timer.step, timer.index, timer.attempt)
        elif timer.step in self.state.approvals:
            timeout = self.playbook.steps[timer.step].timeout
            assert timeout is not None
            self._fail(timer.step, f"no approval within {duration_seconds(timeout):g}s")
        elif self._current(timer.step, timer.index, timer.attempt) is not None:
            timeout = self.playbook.steps[timer.step].timeout
            assert timeout is not None
            self.commands.append(CancelStep(timer.step, timer.index, timer.attempt))
            self._attempt_failed(
                timer.step,
                timer.index,
                timer.attempt,
                f"timed out after {duration_seconds(timeout):g}s",
                None,
            )

    # Starting steps ---------------------------------------------------------------------------

    def _route_to(self, target: str) -> None:
        if not self.graph.is_join(target):
            self.ready.append(target)
            return
        self.state.steps.setdefault(target, StepState(phase="Waiting"))
        self.state.waiting[target] = None

    def _begin(self, name: str) -> None:
        kept = self.results.get(record_key(name))
        if kept is not None:  # succeeded in the run this one retries: its result stands
            self._keep(name, kept)
            return
        spec = self.playbook.steps[name]
        step = self.state.steps.setdefault(name, StepState(phase="Running"))
        step.phase, step.started_at = "Running", self.at
        self.state.active[name] = None
        if spec.tool is None:
            self._complete(name, None, has_result=False)
        elif spec.tool == "approval":
            self._await_approval(name, step)
        elif spec.loop is not None:
            self._begin_loop(name, step)
        else:
            self._start_attempt(name, None, 1)

    def _keep(self, name: str, record: dict[str, Any]) -> None:
        step = self.state.steps[name] = StepState.from_dict(record)
        step.message = "kept from the run retried"
        self.state.active[name] = None
        self._complete(name, self.results.get(name), has_result=name in self.results)

    def _await_approval(self, name: str, step: StepState) -> None:
        spec = self.playbook.steps[name]
        try:
            message = str(render(spec.args.get("message", ""), self._context(name)))
        except RenderError as error:
            self._fail(name, f"args.message: {error}")
            return
        step.phase, step.attempt = "Waiting", 1
        step.message = short(
            f"waiting for approval: {message}" if message else "waiting for approval"
        )
        self.state.approvals[name] = None
        timeout = duration_seconds(spec.timeout) if spec.timeout else None
        if timeout is not None:
            timer_id, due = timeout_timer(name, None, 1), self.at + timeout
            self.state.timers[timer_id] = Timer(due, "timeout", name, None, 1)
            self.commands.append(ScheduleTimer(timer_id, due))
        self.commands.append(AwaitApproval(name, message, timeout))

    def _approved(self, name: str, values: Mapping[str, Any]) -> None:
        """An approval for a step that waits completes it; any other (late, repeated) is moot."""
        if name not in self.state.approvals:
            return
        self.state.timers.pop(timeout_timer(name, None, 1), None)
        self.state.steps[name].message = "approved"
        self._complete(name, dict(values))

    def _begin_loop(self, name: str, step: StepState) -> None:
        loop = self.playbook.steps[name].loop
        assert loop is not None
        try:
            items = render(loop.in_, self._context(name))
        except RenderError as error:
            self._fail(name, f"loop.in: {error}")
            return
        if not isinstance(items, list):
            self._fail(name, f"loop.in rendered to {type(items).__name__}, expected a list")
            return
        if too_large := self._too_large(items):
            self._fail(name, f"loop.in: {too_large}")
            return
        kept = self.results.get(items_key(name))
        if kept is not None and kept != items:  # items kept from a retried run, for other items
            for index in range(len(kept)):
                self.results.pop(item_key(name, index), None)
        self.results[items_key(name)] = items
        step.loop = LoopState(total=len(items))
        self._launch_items(name, step.loop)
        self._maybe_finish_loop(name, step)

    def _launch_items(self, name: str, loop: LoopState) -> None:
        if self.launching:
            return  # an item that failed as it started: the loop below launches its successor
        spec_loop = self.playbook.steps[name].loop
        assert spec_loop is not None
        limit = spec_loop.max_in_flight if spec_loop.mode == "parallel" else 1
        self.launching = True
        try:
            while (
                len(loop.in_flight) < limit
                and loop.next_index < loop.total
                and loop.failed_index is None
            ):
                index = loop.next_index
                loop.next_index += 1
                if item_key(name, index) in self.results:  # kept from the run retried
                    loop.done += 1
                else:
                    self._start_attempt(name, index, 1)
        finally:
            self.launching = False

    def _start_attempt(self, name: str, index: int | None, attempt: int) -> None:
        spec = self.playbook.steps[name]
        step = self.state.steps[name]
        if index is None:
            step.attempt = attempt
        else:
            assert step.loop is not None
            step.loop.in_flight[index] = attempt
        if self.state.suspended is not None:
            # Held, not started: it starts when the execution is resumed.
            self.state.held.append((name, index, attempt))
            if index is None:
                step.phase = "Waiting"
            return
        try:
            args = render(spec.args, self._context(name, index, {"attempt": attempt}))
        except RenderError as error:
            self._attempt_failed(name, index, attempt, f"args: {error}", None, retryable=False)
            return
        assert spec.tool is not None
        problem = self._cannot_start(spec.tool, args)
        if problem is not None:
            self._attempt_failed(name, index, attempt, problem, None, retryable=False)
            return
        timeout = duration_seconds(spec.timeout) if spec.timeout else None
        if timeout is not None:
            timer_id, due = timeout_timer(name, index, attempt), self.at + timeout
            self.state.timers[timer_id] = Timer(due, "timeout", name, index, attempt)
            self.commands.append(ScheduleTimer(timer_id, due))
        if spec.tool == "playbook":
            self.commands.append(
                StartChildExecution(
                    name, index, attempt, args["name"], args.get("workload") or {}, timeout
                )
            )
        else:
            self.commands.append(
                StartStep(name, index, attempt, spec.tool, args, spec.code, timeout)
            )

    def _cannot_start(self, tool: str, args: dict[str, Any]) -> str | None:
        """Why rendered args cannot start the tool (a wrong type, a child too deep), or None."""
        problems = check_args(tool, args, "args", rendered=True)
        if problems:
            return "; ".join(
                f"{problem.path} rendered wrong: {problem.message}" for problem in problems
            )
        limit = self.engine.max_child_depth
        if tool == "playbook" and self.engine.depth >= limit:
            return (
                f"child playbook {args['name']!r} not started: it would be nested"
                f" {self.engine.depth + 1} deep, over the limit of {limit}"
                " (does a playbook call itself?)"
            )
        return None

    # Finishing steps --------------------------------------------------------------------------

    def _attempt_succeeded(self, name: str, index: int | None, attempt: int, result: Any) -> None:
        self.state.timers.pop(timeout_timer(name, index, attempt), None)
        step = self.state.steps[name]
        if index is None:
            self._complete(name, result)
            return
        assert step.loop is not None
        if too_large := self._too_large(result):
            self._attempt_failed(name, index, attempt, too_large, None, retryable=False)
            return
        self.results[item_key(name, index)] = result
        del step.loop.in_flight[index]
        step.loop.done += 1
        self._launch_items(name, step.loop)
        self._maybe_finish_loop(name, step)

    def _attempt_failed(
        self,
        name: str,
        index: int | None,
        attempt: int,
        error: str,
        result: Any,
        retryable: bool = True,
    ) -> None:
        self.state.timers.pop(timeout_timer(name, index, attempt), None)
        step = self.state.steps[name]
        error = clip(error)
        if retryable and self._should_retry(name, attempt, error, result):
            self._schedule_retry(name, index, attempt, error)
            return
        if index is None:
            self._fail(name, error, result)
            return
        loop = step.loop
        assert loop is not None
        del loop.in_flight[index]
        self.results[item_error_key(name, index)] = error
        loop.failures += 1
        step.message = short(f"item {index} failed: {error}")
        spec_loop = self.playbook.steps[name].loop
        assert spec_loop is not None
        if loop.failed_index is None and loop.failures > spec_loop.max_failures:
            loop.failed_index = index
        self._launch_items(name, loop)
        self._maybe_finish_loop(name, step)

    def _should_retry(self, name: str, attempt: int, error: str, result: Any) -> bool:
        retry = self.playbook.steps[name].retry
        if retry is None or attempt >= retry.max_attempts:
            return False
        if retry.when is None:
            return True
        try:
            return truthy(
                render_string(
                    retry.when, self._context(name, extras={"error": error, "result": result})
                )
            )
        except RenderError:
            return False  # a condition that cannot be read does not earn another attempt

    def _schedule_retry(self, name: str, index: int | None, attempt: int, error: str) -> None:
        retry = self.playbook.steps[name].retry
        assert retry is not None
        step = self.state.steps[name]
        next_attempt = attempt + 1
        timer_id = "retry:" + run_key(name, index, next_attempt)
        due = self.at + retry.delay_seconds(attempt)
        self.state.timers[timer_id] = Timer(due, "retry", name, index, next_attempt)
        if index is None:
            step.phase, step.attempt = "Retrying", next_attempt
        else:
            assert step.loop is not None
            step.loop.in_flight[index] = next_attempt
        step.message = short(f"attempt {attempt} failed: {error}")
        self.commands.append(ScheduleRetry(name, index, next_attempt, timer_id, due, short(error)))

    def _maybe_finish_loop(self, name: str, step: StepState) -> None:
        loop = step.loop
        if loop is None or step.phase in FINISHED_STEP_PHASES or loop.in_flight:
            return
        if loop.failed_index is None and loop.next_index < loop.total:
            return
        # A loop that fails leaves its items' results in the store: a retry of the execution
        # keeps them (engine/retry.py).
        outcome = self._collect_loop(name, loop, keep_items=loop.failed_index is not None)
        if loop.failed_index is None:
            self._complete(name, outcome)
            return
        deciding = next(e["error"] for e in outcome["errors"] if e["index"] == loop.failed_index)
        error = f"item {loop.failed_index} failed: {deciding}"
        if loop.failures > 1:
            spec_loop = self.playbook.steps[name].loop
            assert spec_loop is not None
            limit = spec_loop.max_failures
            error = f"{loop.failures} items failed (loop.maxFailures is {limit}); {error}"
        self._fail(name, error, outcome)

    def _collect_loop(self, name: str, loop: LoopState, keep_items: bool) -> dict[str, Any]:
        """The loop's result, `{"results": [...], "errors": [...]}`; item records leave the store.

        `results` has one entry per item, in item order (null for an item that failed or never
        ran); `errors` has `{"index", "error"}` for each item that failed, in item order.
        """
        results: list[Any] = [None] * loop.total
        errors: list[dict[str, Any]] = []
        take = self.results.get if keep_items else self.results.pop
        for index in range(loop.next_index):
            results[index] = take(item_key(name, index), None)
            error = self.results.pop(item_error_key(name, index), None)
            if error is not None:
                errors.append({"index": index, "error": error})
        if not keep_items:
            self.results.pop(items_key(name), None)
        return {"results": results, "errors": errors}

    def _too_large(self, value: Any) -> str | None:
        """Why a value cannot be kept in the result store, or None when it can."""
        limit = self.engine.result_limit
        if limit is None:
            return None
        size = len(json.dumps(value, separators=(",", ":"), default=str))
        return f"result is {size} bytes, over the {limit} byte limit" if size > limit else None

    def _complete(self, name: str, result: Any, has_result: bool = True) -> None:
        if has_result and (too_large := self._too_large(result)):
            self._fail(name, too_large)
            return
        if has_result:
            self.results[name] = result
            self.state.last_result_step = name
        try:
            targets = self._next_targets(name)
        except RenderError as error:
            self._fail(name, str(error))
            return
        self._settle_step(name, "Succeeded")
        for target in targets:
            self._route_to(target)

    def _fail(self, name: str, error: str, result: Any = None) -> None:
        self._settle_step(name, "Failed", error)
        if self.playbook.steps[name].on_error == "continue":
            kept = None if self._too_large(result) else result
            self.results[name] = {"error": error, "result": kept}
            try:
                targets = self._next_targets(name)
            except RenderError as routing_error:
                self._record_failure(name, str(routing_error))
                return
            for target in targets:
                self._route_to(target)
        else:
            self._record_failure(name, error)

    def _record_failure(self, name: str, error: str) -> None:
        self.state.failed.append(name)
        failure = f"step {name!r} failed: {error}"
        if self.state.error is None:
            self.state.error = failure
        elif self.state.ending is not None:
            # A finally step's failure is told after the workflow's own, never instead of it.
            self.state.error += f"; then finally {failure}"

    def _settle_step(self, name: str, phase: FinishedStepPhase, message: str | None = None) -> None:
        """The step is done: its record leaves the state for the result store."""
        step = self.state.steps.pop(name)
        step.phase, step.finished_at = phase, self.at
        if message is not None:
            step.message = short(message)
        self.state.active.pop(name, None)
        self.state.approvals.pop(name, None)
        self.results[record_key(name)] = step.to_dict()
        if self.log is not None and self.log[0] == name:
            self.results[log_key(name)] = self.log[1]

    def _next_targets(self, name: str) -> list[str]:
        """The steps `next` starts: plain entries, and the first `when` that holds, else `else`."""
        spec = self.playbook.steps[name]
        targets: list[str] = []
        otherwise: list[str] = []
        matched = False
        context = self._context(name)
        for position, entry in enumerate(spec.next):
            if entry.step is not None:
                targets += entry.targets()
            elif entry.else_ is not None:
                otherwise += entry.targets()
            elif not matched and entry.when is not None:
                try:
                    matched = truthy(render_string(entry.when, context))
                except RenderError as error:
                    raise RenderError(
                        error.expression, f"next[{position}].when: {error.reason}"
                    ) from None
                if matched:
                    targets += entry.targets()
        if not matched:
            targets += otherwise
        return list(dict.fromkeys(targets))

    # The whole execution ----------------------------------------------------------------------

    def settle(self) -> None:
        """Start what is ready; when nothing is left to do, begin the finally steps or finish."""
        while self.state.phase == "Running":
            self._start_ready()
            if self.state.phase != "Running" or self.state.active or self.state.waiting:
                return
            if self.state.ending is not None:
                self._finish_after_finally()
            elif self.graph.finally_roots:
                phase, result, error = self._workflow_outcome()
                if result is not None:
                    self.results[OUTPUT_KEY] = result
                self._begin_finally(phase, error, bounded=False)
            else:
                self._finish(*self._workflow_outcome())

    def _start_ready(self) -> None:
        """Begin the ready steps, and the joins nothing can reach any more, until none is left."""
        progress = True
        while progress and self.state.phase == "Running":
            while self.ready and self.state.phase == "Running":
                self._begin(self.ready.popleft())
            progress = False
            for join in list(self.state.waiting):
                if not self._may_still_arrive(join):
                    del self.state.waiting[join]
                    self._start_join(join)
                    progress = True
                    break  # a join that starts may route on: begin those steps first

    def _may_still_arrive(self, join: str) -> bool:
        reaches = self.graph.reaches
        return any(reaches(name, join) for name in self.state.active) or any(
            other != join and reaches(other, join) for other in self.state.waiting
        )

    def _start_join(self, name: str) -> None:
        # A join merges branches: if any step upstream failed, its inputs are incomplete.
        failed = [failure for failure in self.state.failed if self.graph.reaches(failure, name)]
        if failed:
            self._settle_step(name, "Skipped", f"skipped: upstream {', '.join(failed)} failed")
        else:
            self.ready.append(name)

    def _abort(self, phase: Literal["Failed", "Cancelled"], reason: str) -> None:
        """End the workflow now (a cancel, the execution timeout); finally steps then get grace."""
        if self.state.ending is not None:
            # The workflow has ended already: what its finally steps do now is bounded instead.
            self._arm_grace()
            return
        self._stop_runs(reason)
        self.state.timers.clear()
        if self.graph.finally_roots and self.state.phase == "Running":
            self._begin_finally(phase, reason, bounded=True)
        else:
            self._finish(phase, error=reason)

    def _resume(self) -> None:
        """Start what the suspension held, in the order it was held."""
        self.state.suspended = None
        held, self.state.held = self.state.held, []
        for name, index, attempt in held:
            step = self.state.steps[name]
            if index is None:
                step.phase = "Running"
            self._start_attempt(name, index, attempt)

    def _stop_runs(self, reason: str) -> None:
        for name, index, attempt in self.state.runs_in_flight():
            self.commands.append(CancelStep(name, index, attempt))
        # A cancel ends a suspension too: the finally steps must be able to start.
        self.state.suspended = None
        self.state.held.clear()
        for name in [*self.state.active, *self.state.waiting]:
            self._settle_step(name, "Cancelled", reason)
        self.state.waiting.clear()

    def _begin_finally(self, phase: FinishedPhase, error: str | None, bounded: bool) -> None:
        self.state.ending, self.state.error = phase, error
        if bounded:
            self._arm_grace()
        self.ready.extend(self.graph.finally_roots)

    def _arm_grace(self) -> None:
        if FINALLY_GRACE not in self.state.timers:
            due = self.at + self.engine.finally_grace
            self.state.timers[FINALLY_GRACE] = Timer(due=due, kind="grace")
            self.commands.append(ScheduleTimer(FINALLY_GRACE, due))

    def _finish_after_finally(self, grace_expired: bool = False) -> None:
        """The workflow's outcome, unless it succeeded and a finally step did not."""
        ending, error = self.state.ending, self.state.error
        assert ending is not None
        finally_failed = any(name in self.graph.finally_steps for name in self.state.failed)
        if ending == "Succeeded" and (finally_failed or grace_expired):
            reason = f"finally steps stopped after the {self.engine.finally_grace:g}s grace"
            self._finish("Failed", error=error or reason)
        elif ending == "Succeeded":
            self._finish("Succeeded", self.results.pop(OUTPUT_KEY, None))
        else:
            self._finish(ending, error=error)

    def _workflow_outcome(self) -> tuple[FinishedPhase, Any, str | None]:
        """How the workflow ended by itself: (phase, result, error)."""
        if self.state.failed:
            return "Failed", None, self.state.error
        try:
            result = self._final_result()
        except RenderError as render_error:
            return "Failed", None, f"output: {render_error}"
        if too_large := self._too_large(result):
            return "Failed", None, f"output: {too_large}"
        return "Succeeded", result, None

    def _finish(self, phase: FinishedPhase, result: Any = None, error: str | None = None) -> None:
        self.state.phase = phase
        self.state.finished_at = self.at
        self.state.error = error
        self.state.timers.clear()
        self.commands.append(FinishExecution(phase, result, error))

    def _final_result(self) -> Any:
        output = self.playbook.spec.output
        if output is not None:
            return render(output, self._context(None))
        last = self.state.last_result_step
        return self.results.get(last) if last is not None else None

    def _context(
        self, name: str | None, index: int | None = None, extras: Mapping[str, Any] | None = None
    ) -> RenderContext:
        values = dict(extras or {})
        if name is not None and index is not None:
            spec_loop = self.playbook.steps[name].loop
            assert spec_loop is not None
            items = self.results[items_key(name)]
            values[spec_loop.iterator] = items[index]
            values["loop"] = {"index": index, "length": len(items)}
        return RenderContext(self.engine, self.results, values, self.state)
