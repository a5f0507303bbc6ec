"""Kubernetes times (RFC 3339, UTC, whole seconds) to and from seconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def timestamp(seconds: float | None) -> str | None:
    """Seconds since the epoch as a Kubernetes (RFC 3339, UTC) time."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_seconds(text: str) -> float:
    """The inverse of `timestamp`, for the times the API server writes."""
    return datetime.fromisoformat(text).timestamp()
