"""How a step's outcome leaves its container: the termination message and, when large, the log.

Kubernetes keeps at most 4096 bytes of a container's termination message. An outcome whose JSON
envelope fits in ENVELOPE_LIMIT bytes goes there whole: `{"ok": true, "result": ...}`. Otherwise
the result is printed to stdout on one line between the BEGIN and END markers, and the envelope
only says so: `{"ok": true, "resultInLog": true, "bytes": N}`. A failure carries its `error`,
clipped to ERROR_LIMIT. The end of the step's log (`log`, logtail.py) takes the room left under
MESSAGE_LIMIT, keeping its last lines: the tail is cut, never the result. `encode` is the
plugin's side; `read_outcome`, its inverse, the operator's.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from noetl.plugins.messages import Outcome

BEGIN = "::noetl-result-begin::"
END = "::noetl-result-end::"
ENVELOPE_LIMIT = 3072
MESSAGE_LIMIT = 4000  # Kubernetes keeps 4096 bytes of a termination message: stay clear of it
ERROR_LIMIT = 2048
_TRUNCATED = " ... (truncated)"
_CUT_BEFORE = "(truncated) ... "


def dumps(value: Any) -> str:
    """Compact, strict JSON (no NaN): the one encoding of results everywhere."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(outcome: Outcome) -> tuple[str, str | None]:
    """The termination message for an outcome, and the result's log line when it does not fit."""
    envelope: dict[str, Any] = {"ok": outcome.ok}
    if not outcome.ok:
        envelope["error"] = clip(outcome.error or "step failed", ERROR_LIMIT)
    envelope["result"] = outcome.result
    message, payload = dumps(envelope), None
    if len(message.encode()) > ENVELOPE_LIMIT:
        # Markers can only occur inside JSON strings, where an escaped colon reads back the
        # same: this keeps a result that quotes the markers from confusing `read_outcome`.
        payload = dumps(outcome.result).replace("::noetl-result-", "\\u003a:noetl-result-")
        del envelope["result"]
        envelope.update(resultInLog=True, bytes=len(payload.encode()))
        message = dumps(envelope)
    if outcome.log:
        # The log's tail has the room the rest leaves: it is cut first, never the result.
        room = MESSAGE_LIMIT - len(message.encode()) - len(',"log":""')
        if tail := clip(outcome.log, room, keep="end"):
            envelope["log"] = tail
            message = dumps(envelope)
    return message, payload


def log_block(payload: str) -> str:
    """The stdout text that carries a large result, on a fresh line whatever came before it."""
    return f"\n{BEGIN}\n{payload}\n{END}\n"


def clip(text: str, limit: int, keep: Literal["start", "end"] = "start") -> str:
    """`text` cut to at most `limit` characters and `limit` bytes of JSON, marked where cut;
    `keep` says which end of it stays (a log's tail keeps its end)."""

    def size(candidate: str) -> int:
        return max(len(candidate), len(dumps(candidate).encode()) - 2)

    def marked(part: str) -> str:
        return part + _TRUNCATED if keep == "start" else _CUT_BEFORE + part

    def part(length: int) -> str:
        if length <= 0:
            return ""
        return text[:length] if keep == "start" else text[-length:]

    if size(text) <= limit:
        return text
    if limit <= len(_TRUNCATED):
        return ""
    cut = part(limit - len(_TRUNCATED))
    while cut and size(marked(cut)) > limit:
        # Escapes and multi-byte characters make bytes outgrow characters: shrink in proportion.
        cut = part(len(cut) * limit // size(marked(cut)) - len(_TRUNCATED))
    return marked(cut)


def read_outcome(termination_message: str | None, log_text: str | None = None) -> Outcome:
    """The outcome a step reported, from its termination message and (if needed) its log."""
    if not termination_message or not termination_message.strip():
        return _unreadable("the termination message is empty")
    try:
        envelope = json.loads(termination_message)
    except ValueError:
        return _unreadable(f"the termination message is not JSON: {termination_message[:200]!r}")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
        return _unreadable(
            f"the termination message is not an outcome: {termination_message[:200]!r}"
        )
    result = envelope.get("result")
    if envelope.get("resultInLog"):
        if log_text is None:
            return _unreadable("the result is in the log, and no log was given")
        end = log_text.rfind(END)
        begin = log_text.rfind(BEGIN, 0, max(end, 0))
        if end < 0 or begin < 0:
            return _unreadable("the result markers are missing from the log")
        try:
            result = json.loads(log_text[begin + len(BEGIN) : end])
        except ValueError:
            return _unreadable("the result between the log markers is not JSON")
    log = envelope.get("log") if isinstance(envelope.get("log"), str) else None
    if envelope["ok"]:
        return Outcome(ok=True, result=result, log=log)
    error = str(envelope.get("error") or "step failed")
    return Outcome(ok=False, result=result, error=error, log=log)


def _unreadable(why: str) -> Outcome:
    return Outcome(ok=False, error=f"step finished without a readable result: {why}")
