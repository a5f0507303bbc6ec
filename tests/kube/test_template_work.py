"""A template past the work budget, in the operator: the render fails at once, in the driver's
turn, and the step fails naming its expression; no Job is created for
it, and the Warning Event of the execution's end says so."""

from __future__ import annotations

from noetl.template_limits import MAX_OPERATIONS
from tests.kube.fake_api import FakeKubeApi
from tests.kube.test_driver import Operator, shell, submit

LOOPS = "{% for a in workload.items %}{% for b in workload.items %}{% for c in workload.items %}"
COMMAND = f"echo {LOOPS}{{% endfor %}}{{% endfor %}}{{% endfor %}}"
NESTED = {
    "workload": {"items": list(range(10_000))},
    "workflow": [
        {"step": "start", "next": [{"step": "cube"}]},
        {**shell("cube"), "args": {"command": COMMAND}},
    ],
}


async def test_nested_loops_over_a_large_list_fail_the_step_naming_the_expression():
    api = FakeKubeApi()
    submit(api, NESTED)
    status = await Operator(api).run()
    assert status["phase"] == "Failed"
    why = (
        f"step 'cube' failed: args: template {COMMAND!r}: over the template limits:"
        f" more than {MAX_OPERATIONS:,} units of work"
    )
    assert status["error"].startswith(why)
    assert api.of_kind("Job") == []
    [told] = [(e["type"], e["message"]) for e in api.of_kind("Event")]
    assert told[0] == "Warning" and told[1].startswith(f"execution failed: {why}")
