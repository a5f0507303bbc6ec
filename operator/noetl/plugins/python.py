"""The python plugin: a step's `code` run in a fresh namespace, `main(**args)` as the result.

If the code defines `main`, the result is `main(**args)` (awaited when `main` is async);
otherwise it is the module-level `result` the code assigns, or None. The code also sees the
step's args as the global `args`. An exception in the code, `sys.exit()` included, fails the
step with the exception's type, its message and the line of the code it was raised from; the
traceback of the user's code goes to stderr. `args.secretRef` names the step's Secret for the
runner: it is not passed on (the Secret's keys are env vars, as for a shell step).
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import linecache
import sys
import traceback
from types import TracebackType
from typing import Any

from noetl.plugins import runtime
from noetl.plugins.masking import Mask
from noetl.plugins.runtime import PluginError, StepRequest


def run(request: StepRequest) -> Any:
    if not request.code:
        raise PluginError("a python step needs its source in the step's `code` field")
    filename = f"<step {request.step}>"
    # Registered so that tracebacks can quote the user's lines.
    linecache.cache[filename] = (len(request.code), None, request.code.splitlines(True), filename)
    args = {name: value for name, value in request.args.items() if name != "secretRef"}
    namespace: dict[str, Any] = {"__name__": "__step__", "__builtins__": builtins, "args": args}
    try:
        exec(compile(request.code, filename, "exec"), namespace)
        main = namespace.get("main")
        if main is None:
            return namespace.get("result")
        result = main(**args)
        return asyncio.run(result) if inspect.iscoroutine(result) else result
    except (Exception, SystemExit) as exc:
        trace = traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__))
        sys.stderr.write(Mask.of(request).text("".join(trace)))
        raise PluginError(_describe(exc, filename)) from None


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    # The first frame is this plugin's own call into the user's code.
    return tb.tb_next if tb is not None else None


def _describe(exc: BaseException, filename: str) -> str:
    if isinstance(exc, SyntaxError):
        message, line = exc.msg, exc.lineno if exc.filename == filename else None
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        message, line = str(exc), frames[-1].lineno if frames else None
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{text} (line {line})" if line else text


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
