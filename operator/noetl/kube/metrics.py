"""Prometheus metrics of the operator, served on /metrics by `noetl operator`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXECUTIONS_FINISHED = Counter(
    "noetl_executions_finished_total", "Executions that ended, by phase.", ["phase"]
)
EXECUTIONS_ACTIVE = Gauge("noetl_executions_active", "Executions the operator is driving now.")
STEPS_FINISHED = Counter(
    "noetl_steps_finished_total",
    "Step attempts that ended, by tool and outcome.",
    ["tool", "outcome"],
)
STEP_DURATION = Histogram(
    "noetl_step_duration_seconds",
    "Wall time of step attempts, from Job creation to the end, by tool.",
    ["tool"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600),
)
RECONCILE_ERRORS = Counter(
    "noetl_reconcile_errors_total",
    "Errors while driving executions, by where they happened.",
    ["where"],
)
API_CALLS = Counter(
    "noetl_api_calls_total",
    "Calls the operator made to the API server, by verb and resource.",
    ["verb", "resource"],
)
EVENTS_HELD_BACK = Counter(
    "noetl_events_held_back_total",
    "Step Events not posted because their execution spent its Event budget, by reason.",
    ["reason"],
)
EVENTS_DROPPED = Counter(
    "noetl_events_dropped_total",
    "Events not posted because too many waited behind the operator's work, by reason.",
    ["reason"],
)
