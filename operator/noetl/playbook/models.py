"""The playbook DSL as pydantic models: the shape of a Playbook and of an Execution.

These models check types and shapes only. Rules that need the whole document (unique step names,
edges that point somewhere, reachability, template syntax) live in `noetl.playbook.validation`.
The CRDs in crds/ are generated from these models (`noetl.kube.crds`), so every field carries a
description that `kubectl explain` shows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

API_GROUP = "noetl.io"
GROUP_VERSION = "v1alpha1"  # the one served version of the CRDs
API_VERSION = f"{API_GROUP}/{GROUP_VERSION}"

STEP_NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$"
POSITIVE_DURATION_PATTERN = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(ms|s|m|h)$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(DURATION_PATTERN)

PLUGIN_TOOLS = ("shell", "python", "http", "postgres", "duckdb")
"""Tools that run a plugin image (on a cluster) or a plugin process (locally)."""
TOOLS = (*PLUGIN_TOOLS, "container", "playbook", "approval")
"""Tools a step may name: the plugins, `container` (any image: `args.image`), `playbook` (a child
execution) and `approval` (a wait for someone to resume the execution, decided by the engine
without a process)."""


def _duration_from_number(value: Any) -> Any:
    # YAML users write `timeout: 30`; keep one canonical string form so the CRD schema stays simple.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}s"
    return value


Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN),
    BeforeValidator(_duration_from_number),  # listed last so that it runs first
    Field(description="A duration such as 500ms, 30s, 5m or 1h (a bare number means seconds)."),
]


PositiveDuration = Annotated[
    str,
    StringConstraints(pattern=POSITIVE_DURATION_PATTERN),
    BeforeValidator(_duration_from_number),
    Field(description="A duration above zero such as 500ms, 30s, 5m or 1h (a number: seconds)."),
]


def duration_seconds(duration: str) -> float:
    """Seconds in a duration string that the model already accepted, e.g. '5m' -> 300.0."""
    match = _DURATION_RE.match(duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    unit = match.group(2)
    return float(duration[: -len(unit)]) * _DURATION_UNITS[unit]


class _Model(BaseModel):
    # Fields are read by their playbook names only (`onError`, never `on_error`): the CRD schema
    # knows those, and a cluster silently drops a field it does not know.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class Target(_Model):
    """A step to start next."""

    step: str = Field(description="Name of the step to start.")


class NextEntry(_Model):
    """One entry of a step's `next` list.

    Plain entries (`{step: x}`) always fire, so several of them fan out in parallel. Entries with
    `when` form an if/elif chain in list order: the first whose condition holds fires its `then`;
    an `else` entry fires when none did.
    """

    step: str | None = Field(default=None, description="Start this step unconditionally.")
    when: str | None = Field(
        default=None, description="A template; when it renders truthy, `then` fires."
    )
    then: list[Target] | None = Field(default=None, description="Steps started when `when` holds.")
    else_: list[Target] | None = Field(
        default=None,
        alias="else",
        description="Steps started when no `when` entry of this list held.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> NextEntry:
        shapes = {
            "step": self.step is not None,
            "when/then": self.when is not None or self.then is not None,
            "else": self.else_ is not None,
        }
        chosen = [name for name, present in shapes.items() if present]
        if len(chosen) != 1:
            raise ValueError(
                "a next entry takes exactly one of `step`, `when` with `then`, or `else`"
                + (f" (found {', '.join(chosen)})" if chosen else "")
            )
        if chosen == ["when/then"] and (self.when is None or self.then is None):
            raise ValueError("`when` and `then` go together")
        return self

    def edges(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(where in this entry, target) for every step this entry may start: the one place
        a step's edges are enumerated (the graph, validation and `noetl plan` all read them)."""
        if self.step is not None:
            return [(("step",), self.step)]
        key, targets = ("then", self.then) if self.then is not None else ("else", self.else_)
        return [((key, k, "step"), target.step) for k, target in enumerate(targets or [])]

    def targets(self) -> list[str]:
        """Every step this entry may start."""
        return [target for _, target in self.edges()]


class Loop(_Model):
    """Run the step once for each item of a list."""

    in_: str | list[Any] = Field(
        alias="in",
        description="The items: a list, or a template that renders to one.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    iterator: str = Field(
        default="item",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name under which each item is seen in templates.",
    )
    mode: Literal["sequential", "parallel"] = Field(
        default="sequential", description="Run the items one after the other, or concurrently."
    )
    max_in_flight: int = Field(
        default=16,
        alias="maxInFlight",
        ge=1,
        le=1000,
        description="At most this many items run at once in parallel mode.",
    )
    max_failures: int = Field(
        default=0,
        alias="maxFailures",
        ge=0,
        description="Items that may fail for good while the step still succeeds; one more stops "
        "launching items and fails the step.",
    )


class Retry(_Model):
    """Run a failed step again, after a delay, up to `maxAttempts` times in all."""

    max_attempts: int = Field(
        default=3,
        alias="maxAttempts",
        ge=1,
        le=100,
        description="Attempts in all, the first included.",
    )
    backoff: Literal["fixed", "exponential"] = Field(
        default="exponential", description="Wait the same delay each time, or double it."
    )
    initial_delay: Duration = Field(default="1s", alias="initialDelay")
    max_delay: Duration = Field(default="5m", alias="maxDelay")
    when: str | None = Field(
        default=None,
        description="Retry only when this template holds; it sees `error` and `result`.",
    )

    def delay_seconds(self, failed_attempt: int) -> float:
        """The delay before the attempt that follows `failed_attempt` (1-based)."""
        initial = duration_seconds(self.initial_delay)
        factor = 2 ** (failed_attempt - 1) if self.backoff == "exponential" else 1
        return min(initial * factor, duration_seconds(self.max_delay))


QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def _quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a quantity (write e.g. 500m, 2, 64Mi or 1Gi)")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_quantity),
    Field(
        description="A Kubernetes quantity such as 500m, 2, 64Mi or 1Gi.",
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN},
    ),
]


class ResourceRequirements(_Model):
    """Kubernetes ResourceRequirements of the step's container."""

    limits: dict[str, Quantity] | None = Field(
        default=None, description="At most this much of each resource (cpu, memory, ...)."
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="At least this much of each resource, reserved at scheduling."
    )


class Toleration(_Model):
    """A Kubernetes Toleration: lets the step's pod onto nodes with a matching taint."""

    key: str | None = Field(default=None, description="The taint key; empty with Exists: all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Equal (the default) compares `value`; Exists any value."
    )
    value: str | None = Field(default=None, description="The taint value, for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="The taint effect matched; empty: all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        alias="tolerationSeconds",
        description="With NoExecute: how long the pod stays once the taint appears.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no `value`")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without `key` needs operator Exists")
        return self


class PodOptions(_Model):
    """Kubernetes settings for the Job of a step (ignored by `noetl run`)."""

    resources: ResourceRequirements | None = Field(
        default=None, description="Container resources (requests/limits) for the step's pod."
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        alias="nodeSelector",
        description="Node labels the step's pod must run on (as the operator allows).",
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Taints the step's pod tolerates (as the operator allows)."
    )


class Task(_Model):
    """A reusable unit of work in the workbook; steps refer to it with `task`."""

    name: str = Field(pattern=STEP_NAME_PATTERN, description="Name steps use to refer to it.")
    tool: str = Field(description=f"What runs it: one of {', '.join(TOOLS)}.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the tool; strings are templates.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    code: str | None = Field(default=None, description="Source of a python task.")


class Step(_Model):
    """A node of the workflow: a tool to run (or none, for routing steps) and where to go next."""

    step: str = Field(
        pattern=STEP_NAME_PATTERN, description="The step's name, unique in the workflow."
    )
    description: str | None = None
    tool: str | None = Field(
        default=None,
        description=f"What runs the step: one of {', '.join(TOOLS)}; none for routing steps.",
    )
    task: str | None = Field(
        default=None, description="Run this workbook task (instead of `tool`)."
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the tool; strings are templates. Merged over the task's args.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    code: str | None = Field(default=None, description="Source of a python step.")
    loop: Loop | None = None
    retry: Retry | None = None
    timeout: PositiveDuration | None = Field(
        default=None, description="Fail an attempt that runs longer."
    )
    on_error: Literal["fail", "continue"] = Field(
        default="fail",
        alias="onError",
        description="`continue` routes a failed step onward with `<step>.error` set.",
    )
    pod: PodOptions | None = None
    next: list[NextEntry] = Field(default_factory=list, description="Where to go after this step.")


class Semaphore(_Model):
    """A limit shared by the Executions of every playbook of a namespace that names it."""

    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$", description="The semaphore's name."
    )
    max: int = Field(ge=1, description="Executions holding it at once.")


class Concurrency(_Model):
    """How many Executions of this playbook run at once in a namespace (cluster only)."""

    max: int | None = Field(
        default=None, ge=1, description="Executions of this playbook running at once."
    )
    policy: Literal["Queue", "Forbid", "Replace"] = Field(
        default="Queue",
        description="When `max` run already: wait (Queue, phase Queued), fail at once (Forbid), "
        "or cancel the oldest running one and take its place (Replace).",
    )
    semaphore: Semaphore | None = Field(
        default=None, description="A named limit shared with other playbooks (always queues)."
    )


class PlaybookSpec(_Model):
    """A workflow: default inputs, reusable tasks and the graph of steps."""

    description: str | None = None
    workload: dict[str, Any] = Field(
        default_factory=dict,
        description="Default inputs, seen as `workload` in templates; an Execution overrides them.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    workbook: list[Task] = Field(default_factory=list, description="Reusable named tasks.")
    workflow: list[Step] = Field(
        min_length=1, description="The steps; the graph begins at `start`."
    )
    finally_: list[Step] = Field(
        default_factory=list,
        alias="finally",
        description="Steps run after the workflow ends, whatever its outcome (success, failure, "
        "timeout, cancel); they see `execution.phase` and `execution.error`. A graph of its own: "
        "the steps no other finally step routes to begin it.",
    )
    output: Any = Field(
        default=None,
        description="The execution's result, a template rendered when it ends; by default the "
        "result of the last tool step that finished.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="Fail the whole execution after this."
    )
    concurrency: Concurrency | None = Field(
        default=None,
        description="Limits on Executions running at once, across runs (cluster only).",
    )


class PlaybookRef(_Model):
    name: str = Field(description="Name of a Playbook in the Execution's namespace.")


class _RunsAPlaybook(_Model):
    """What names the playbook to run (by reference, or embedded) and its inputs."""

    playbook_ref: PlaybookRef | None = Field(default=None, alias="playbookRef")
    playbook: PlaybookSpec | None = Field(default=None, description="An embedded playbook.")
    workload: dict[str, Any] = Field(
        default_factory=dict,
        description="Inputs merged over the playbook's workload.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @model_validator(mode="after")
    def _one_playbook(self) -> _RunsAPlaybook:
        if (self.playbook_ref is None) == (self.playbook is None):
            raise ValueError("exactly one of `playbookRef` or `playbook` is needed")
        return self


class ExecutionSpec(_RunsAPlaybook):
    """One run of a playbook, with its inputs."""

    cancel: bool = Field(default=False, description="Set to true to cancel the execution.")
    priority: int = Field(
        default=0,
        description="Among queued Executions (spec.concurrency), higher starts first; equal "
        "priorities start in the order they were created.",
    )
    suspend: bool = Field(
        default=False,
        description="While true, no new step starts (running ones finish); false resumes.",
    )
    approvals: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Approvals by step name: an approval step waiting completes with these values "
        "as its result (`noetl resume NAME --set key=value` writes them).",
        json_schema_extra={
            "additionalProperties": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
        },
    )
    retry_of: str | None = Field(
        default=None,
        alias="retryOf",
        description="Retry this earlier Execution (same namespace): keep the results of its "
        "steps that succeeded and run the rest (`noetl retry NAME` sets it).",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        alias="ttlSecondsAfterFinished",
        ge=0,
        description="Delete the execution this long after it finished (else the operator default).",
    )


class CronPlaybookSpec(_RunsAPlaybook):
    """Executions of a playbook started on a schedule, as a CronJob starts Jobs."""

    schedule: str = Field(
        min_length=1,
        description="A cron expression: minute hour day-of-month month day-of-week, or six "
        "fields with seconds first.",
    )
    time_zone: str | None = Field(
        default=None,
        alias="timeZone",
        description="The IANA time zone the schedule is read in (default UTC).",
    )
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Allow",
        alias="concurrencyPolicy",
        description="When a run is due while the previous one still runs: start it anyway "
        "(Allow), skip it (Forbid), or cancel the running one and start it (Replace).",
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        alias="startingDeadlineSeconds",
        ge=0,
        description="A run missed (the operator down, a Forbid skip) starts late only within "
        "this many seconds of its time; unset: however late.",
    )
    suspend: bool = Field(default=False, description="True: start no new runs.")
    successful_history_limit: int = Field(
        default=3,
        alias="successfulHistoryLimit",
        ge=0,
        description="How many succeeded Executions to keep.",
    )
    failed_history_limit: int = Field(
        default=1,
        alias="failedHistoryLimit",
        ge=0,
        description="How many failed or cancelled Executions to keep.",
    )
