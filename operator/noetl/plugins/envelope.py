"""How a step's outcome leaves its container: the termination message and, when large, the log.

Kubernetes keeps at most 4096 bytes of a container's termination message. An outcome whose JSON
envelope fits in ENVELOPE_LIMIT bytes goes there whole: `{"ok": true, "result": ...}`. Otherwise
the result is printed to stdout on one line between the BEGIN and END markers, and the envelope
only says so: `{"ok": true, "resultInLog": true, "bytes": N}`. A failure carries its `error`,
clipped to ERROR_LIMIT. `encode` is the plugin's side; `read_outcome`, its inverse, the operator's.
"""

from __future__ import annotations

import json
from typing import Any

from noetl.plugins.messages import Outcome

BEGIN = "::noetl-result-begin::"
END = "::noetl-result-end::"
ENVELOPE_LIMIT = 3072
ERROR_LIMIT = 2048
_TRUNCATED = " ... (truncated)"


def dumps(value: Any) -> str:
    """Compact, strict JSON (no NaN): the one encoding of results everywhere."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(outcome: Outcome) -> tuple[str, str | None]:
    """The termination message for an outcome, and the result's log line when it does not fit."""
    envelope: dict[str, Any] = {"ok": outcome.ok}
    if not outcome.ok:
        envelope["error"] = clip(outcome.error or "step failed", ERROR_LIMIT)
    envelope["result"] = outcome.result
    message = dumps(envelope)
    if len(message.encode()) <= ENVELOPE_LIMIT:
        return message, None
    # Markers can only occur inside JSON strings, where an escaped colon reads back the same:
    # this keeps a result that quotes the markers from confusing `read_outcome`.
    payload = dumps(outcome.result).replace("::noetl-result-", "\\u003a:noetl-result-")
    del envelope["result"]
    envelope.update(resultInLog=True, bytes=len(payload.encode()))
    return dumps(envelope), payload


def log_block(payload: str) -> str:
    """The stdout text that carries a large result, on a fresh line whatever came before it."""
    return f"\n{BEGIN}\n{payload}\n{END}\n"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters and `limit` bytes of JSON, marked when cut."""

    def size(candidate: str) -> int:
        return max(len(candidate), len(dumps(candidate).encode()) - 2)

    if size(text) <= limit:
        return text
    cut = text[: limit - len(_TRUNCATED)]
    while size(cut + _TRUNCATED) > limit:
        # Escapes and multi-byte characters make bytes outgrow characters: shrink in proportion.
        cut = cut[: max(0, len(cut) * limit // size(cut + _TRUNCATED) - len(_TRUNCATED))]
    return cut + _TRUNCATED


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
    if envelope["ok"]:
        return Outcome(ok=True, result=result)
    return Outcome(ok=False, result=result, error=str(envelope.get("error") or "step failed"))


def _unreadable(why: str) -> Outcome:
    return Outcome(ok=False, error=f"step finished without a readable result: {why}")
