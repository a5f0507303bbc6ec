"""`noetl retry` and `noetl resubmit` on a cluster: new Executions, seeded from spec.retryOf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Resources
from tests.operator.test_cli_cluster import noetl

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_a_retry_runs_only_the_failed_item_and_resubmit_runs_all(
    kube_cluster: Any, resources: Resources
):
    ns = resources.namespace
    resources.apply_playbook_file(PLAYBOOKS / "rerun.yaml")
    resources.execute("batch", "rerun", {"broken": 2})
    assert resources.wait_finished("batch")["phase"] == "Failed"
    retried = noetl(kube_cluster, "retry", "batch", "-n", ns, "--set", "broken=0")
    assert retried.returncode == 0, retried.stderr
    name = retried.stdout.strip()
    status = resources.wait_finished(name)
    assert (status["phase"], status["result"]) == ("Succeeded", {"total": 6})
    spec = resources.get("executions", name)["spec"]
    assert (spec["retryOf"], spec["workload"]) == ("batch", {"broken": 0})
    assert [job.metadata.labels["noetl.io/index"] for job in resources.jobs(name)] == ["1"]
    assert status["steps"]["each"]["items"] == "3/3"

    again = noetl(kube_cluster, "resubmit", name, "-n", ns)
    assert again.returncode == 0, again.stderr
    fresh = again.stdout.strip()
    assert resources.wait_finished(fresh)["result"] == {"total": 6}
    assert len(resources.jobs(fresh)) == 3
    assert "retryOf" not in resources.get("executions", fresh)["spec"]


def test_a_retry_of_an_execution_that_is_gone_fails_clearly(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "rerun.yaml")
    resources.execute("orphan-retry", "rerun", retryOf="gone")
    status = resources.wait_finished("orphan-retry")
    assert status["phase"] == "Failed"
    assert status["error"] == (
        f"spec.retryOf: no Execution named 'gone' in namespace {resources.namespace} to retry"
    )
    assert status["conditions"][0]["reason"] == "NothingToRetry"
