"""What a plugin is given (StepRequest) and what comes back from running it (Outcome).

These are the only types a plugin, the local step server and the operator share. A request
travels as JSON (`to_json`/`from_json`); its `env` and `secrets` never do: in a container they
are the pod's own environment and its mounted Secret, locally the runner hands them over beside
the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class PluginError(Exception):
    """A step failure a plugin reports on purpose; its `result` is reported all the same."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


@dataclass(frozen=True)
class Outcome:
    """How one run of a step ended: `ok` and a JSON `result`, or an `error` (maybe a result too).

    `log` is the end of what the run printed, secrets masked (logtail.py), or None."""

    ok: bool
    result: Any = None
    error: str | None = None
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "result": self.result, "error": self.error, "log": self.log}


@dataclass(frozen=True)
class StepRequest:
    """One run of one step: the tool, its rendered args and, for python steps, the code."""

    step: str
    tool: str
    args: dict[str, Any]
    code: str | None = None
    attempt: int = 1
    index: int | None = None
    execution: dict[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # The step's Secret (also in `env`): every value is masked wherever the outcome goes.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tool": self.tool,
            "args": self.args,
            "code": self.code,
            "attempt": self.attempt,
            "index": self.index,
            "execution": self.execution,
        }

    @classmethod
    def from_json(
        cls,
        data: Any,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> StepRequest:
        """Build a request from its JSON form, saying which field is wrong if one is."""
        if not isinstance(data, dict):
            raise ValueError(f"a step request is a JSON object, not {type(data).__name__}")
        args = {} if data.get("args") is None else data["args"]
        execution = {} if data.get("execution") is None else data["execution"]
        _expect(data.get("step"), str, "step")
        _expect(data.get("tool"), str, "tool")
        _expect(args, dict, "args")
        _expect(data.get("code"), (str, type(None)), "code")
        _expect(data.get("attempt", 1), int, "attempt")
        _expect(data.get("index"), (int, type(None)), "index")
        _expect(execution, dict, "execution")
        return cls(
            step=data["step"],
            tool=data["tool"],
            args=args,
            code=data.get("code"),
            attempt=data.get("attempt", 1),
            index=data.get("index"),
            execution={str(k): str(v) for k, v in execution.items()},
            env=env if env is not None else {},
            secrets=secrets if secrets is not None else {},
        )


def _expect(value: Any, kind: type | tuple[type, ...], name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"step request field {name!r} has the wrong type: {value!r}")
