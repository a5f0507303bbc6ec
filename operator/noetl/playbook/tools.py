"""What each tool accepts in `args`: one pydantic model per tool, used twice.

At validation (`noetl validate`, the Playbook controller) the args are checked as written: a value
that is a template is not known yet, so only its presence counts. At run time the engine checks
the rendered args before a step starts, so a template that renders to the wrong type (an http
`timeout` of "abc", a child `workload` that is a string) fails the step naming the field instead
of failing inside the plugin. Unknown args are let through: they are not certain to fail.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError

from noetl.playbook.errors import PlaybookError, join_path
from noetl.templating import is_template

NonBlank = Annotated[str, StringConstraints(pattern=r"\S")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    secret_ref: str | None = Field(
        default=None,
        alias="secretRef",
        description="A Secret whose keys become the step's environment variables.",
    )


class ShellArgs(_Args):
    command: NonBlank = Field(description="The command, run by `sh -c`.")
    env: dict[str, Any] | None = Field(
        default=None, description="Variables laid over the step's environment."
    )
    cwd: str | None = Field(default=None, description="The working directory.")


class HttpArgs(_Args):
    url: NonBlank = Field(description="The URL to request.")
    method: NonBlank = "GET"
    headers: dict[str, Any] | None = None
    data: dict[str, Any] | str | None = None
    timeout: float | None = Field(default=None, gt=0, description="Seconds; 30 by default.")
    fail_on_status: StrictBool = Field(default=True, alias="failOnStatus")


class SqlArgs(_Args):
    command: NonBlank = Field(description="One or more SQL statements.")
    params: list[Any] | dict[str, Any] | None = None


class DuckdbArgs(SqlArgs):
    database: str | None = Field(default=None, description="A database file; in memory if none.")


class PostgresArgs(SqlArgs):
    dsn: str | dict[str, Any] | None = None
    connection: str | dict[str, Any] | None = None


class PythonArgs(_Args):
    """Free: the args are the keyword arguments of the code's `main`."""


class PlaybookArgs(_Args):
    name: NonBlank = Field(description="The playbook to run as a child execution.")
    workload: dict[str, Any] | None = Field(
        default=None, description="The child's inputs, merged over its playbook's workload."
    )


class ContainerArgs(_Args):
    image: NonBlank = Field(description="The image to run.")
    command: list[str] | None = Field(default=None, description="The entrypoint.")
    args: list[str] | None = Field(default=None, description="The entrypoint's arguments.")
    env: dict[str, Any] | None = Field(default=None, description="Environment variables.")
    working_dir: str | None = Field(default=None, alias="workingDir")


class ApprovalArgs(_Args):
    message: str | None = Field(default=None, description="What the approver is asked.")


ARGS_MODELS: dict[str, type[_Args]] = {
    "shell": ShellArgs,
    "python": PythonArgs,
    "http": HttpArgs,
    "postgres": PostgresArgs,
    "duckdb": DuckdbArgs,
    "playbook": PlaybookArgs,
    "container": ContainerArgs,
    "approval": ApprovalArgs,
}


def check_args(tool: str, args: dict[str, Any], path: str, rendered: bool) -> list[PlaybookError]:
    """The problems of a tool's args; before rendering, a template stands for any value."""
    model = ARGS_MODELS.get(tool)
    if model is None:
        return []
    templated = set() if rendered else {k for k, v in args.items() if _is_template(v)}
    try:
        model.model_validate({k: v for k, v in args.items() if k not in templated})
    except ValidationError as invalid:
        return _problems(tool, invalid, path, templated)
    return []


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and is_template(value)


def _problems(
    tool: str, invalid: ValidationError, path: str, templated: set[str]
) -> list[PlaybookError]:
    """One problem per arg: pydantic reports a union once per member it tried."""
    wrong: dict[str, tuple[Any, list[str]]] = {}
    problems = []
    for item in invalid.errors():
        field = str(item["loc"][0])
        if item["type"] == "missing":
            if field not in templated:  # a template is known only once rendered
                problems.append(
                    PlaybookError(join_path(path, field), f"{tool} steps need args.{field}")
                )
            continue
        message = item["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        if item["type"] == "string_pattern_mismatch":
            message = "a string that is not blank"
        wrong.setdefault(field, (item["input"], []))[1].append(message)
    for field, (value, expected) in wrong.items():
        problems.append(
            PlaybookError(
                join_path(path, field),
                f"expected {' or '.join(dict.fromkeys(expected))}, got {_shown(value)}",
            )
        )
    return problems


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
