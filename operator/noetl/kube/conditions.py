"""Status conditions in the shape Kubernetes tools read (metav1.Condition, KEP-1623).

Each condition carries its own `type`, `status`, `observedGeneration`, `reason` (CamelCase),
`message` and `lastTransitionTime`; the time changes only when `status` flips, so "since when
has this been so" stays true across rewrites of the same condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from noetl.kube.times import timestamp

ConditionStatus = Literal["True", "False", "Unknown"]


def condition(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: float,
    previous: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One condition; its transition time kept from `previous` when its status is unchanged."""
    since = timestamp(now)
    for old in previous or ():
        if old.get("type") == type_ and old.get("status") == status:
            since = old.get("lastTransitionTime") or since
    return {
        "type": type_,
        "status": status,
        "observedGeneration": generation,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
