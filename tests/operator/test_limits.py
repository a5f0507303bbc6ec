"""Operator settings at work: the per-namespace cap on running Jobs, the TTL of finished
executions, and the metrics endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import OperatorProcess, Resources
from tests.operator.test_operator import pod_spans

pytestmark = pytest.mark.cluster


def test_running_jobs_are_capped_per_namespace_and_finished_executions_expire(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    env = {"NOETL_NAMESPACES": isolated.namespace, "NOETL_MAX_RUNNING_JOBS_PER_NAMESPACE": "2"}
    operator = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", env)
    operator.start()
    try:
        each = {
            "step": "each",
            "tool": "shell",
            "loop": {"in": list(range(6)), "iterator": "i", "mode": "parallel", "maxInFlight": 10},
            "args": {"command": "sleep 1; echo {{ i }}"},
        }
        isolated.create(
            "playbooks",
            {
                "kind": "Playbook",
                "metadata": {"name": "wide"},
                "spec": {"workflow": [{"step": "start", "next": [{"step": "each"}]}, each]},
            },
        )
        isolated.execute("wide", "wide", ttlSecondsAfterFinished=3)
        status = isolated.wait_finished("wide", timeout=120)
        assert status["phase"] == "Succeeded"
        spans = sorted(pod_spans(isolated, "wide").values())
        most = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
        assert most == 2
        metrics = operator.metrics()
        assert 'noetl_executions_finished_total{phase="Succeeded"} 1.0' in metrics
        assert 'noetl_steps_finished_total{outcome="succeeded",tool="shell"} 6.0' in metrics
        assert "noetl_step_duration_seconds_bucket" in metrics
        isolated.wait("executions", "wide", lambda obj: not obj, timeout=120)  # deleted by its TTL
    finally:
        operator.stop()
