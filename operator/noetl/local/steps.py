"""Running one step on this machine: each in a fresh process forked by the step server.

Every tool, shell included, goes to noetl.local.workers.StepProcesses, started when a playbook
first runs a step. So every step runs in a process of its own, leading its own session: a step
that crashes or hangs cannot take the runner down, a cancelled or timed-out step is killed with
all its children, and no step sees what another left behind. A container step is one `podman run`
(or docker) instead.

A step's `args.secretRef` names a `--secret` of `noetl run`: its keys become env vars of the
step (as a Secret's do in a pod) and its values are masked in the outcome (plugins/masking.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from noetl.engine import StartStep
from noetl.local.workers import StepProcesses
from noetl.plugins.runtime import Outcome, StepRequest


class MissingSecret(Exception):
    """A step names a Secret that `noetl run` was not given."""

    def __init__(self, step: str, name: str) -> None:
        super().__init__(
            f"step {step!r} needs the Secret {name!r} (args.secretRef):"
            f" give it with `noetl run --secret {name}=FILE`"
        )


class StepExecutor:
    """Turns a StartStep command into an Outcome; shared by an execution and its children."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        max_parallel: int | None = None,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._secrets = secrets or {}
        self._processes = StepProcesses(max_parallel)

    @property
    def max_parallel(self) -> int:
        return self._processes.max_parallel

    def request(self, command: StartStep, execution: Mapping[str, str]) -> StepRequest:
        """The step's request: its env is the runner's, with its Secret's keys laid over it."""
        secret_name = command.args.get("secretRef")
        secrets: Mapping[str, str] = {}
        if secret_name is not None:
            if not isinstance(secret_name, str) or secret_name not in self._secrets:
                raise MissingSecret(command.step, str(secret_name))
            secrets = self._secrets[secret_name]
        return StepRequest(
            step=command.step,
            tool=command.tool,
            args=command.args,
            code=command.code,
            attempt=command.attempt,
            index=command.index,
            execution=dict(execution),
            env={**self._env, **secrets},
            secrets=secrets,
        )

    async def run(
        self,
        command: StartStep,
        execution: Mapping[str, str],
        on_started: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run a step to its end. `on_started` is called when it really starts: after waiting
        for its turn under the `max_parallel` cap, and not at all if it cannot be started."""
        try:
            request = self.request(command, execution)
        except MissingSecret as missing:
            return Outcome(ok=False, error=str(missing))
        if command.tool == "container":
            from noetl.local.containers import run_container  # only container steps pay for it

            if on_started is not None:
                on_started()
            return await run_container(request, command.timeout)
        return await self._processes.run(request, command.timeout, on_started)

    async def close(self) -> None:
        await self._processes.close()
