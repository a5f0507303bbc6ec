"""What the operator says: the API server's own words on refusals, results with their JSON types,
and logs without a line per watch event."""

from __future__ import annotations

import json
import logging

from kubernetes.client.exceptions import ApiException

from noetl.kube.operator import configure_logging
from noetl.kube.refusals import error_text
from noetl.kube.status import fits_inline


def test_a_refusal_keeps_the_api_servers_message():
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps(
        {
            "kind": "Status",
            "message": 'jobs "x" is forbidden: exceeded quota: q, requested: count/jobs.batch=1',
            "reason": "Forbidden",
            "code": 403,
        }
    ).encode()
    assert error_text(error) == (
        'Forbidden (403): jobs "x" is forbidden: exceeded quota: q, requested: count/jobs.batch=1'
    )
    assert error_text(ApiException(status=500, reason="Internal Server Error")) == (
        "Internal Server Error (500)"
    )


def test_a_result_with_a_whole_float_is_not_kept_inline():
    # The API server would give 19.0 back as 19: such a result goes to a ConfigMap, as text.
    assert fits_inline({"average": 6.5, "count": 2})
    assert not fits_inline({"average": 19.0})
    assert not fits_inline([[1, 2.0]])


def test_kopf_handler_successes_are_logged_at_debug(caplog):
    configure_logging("plain")
    objects = logging.getLogger("kopf.objects")
    with caplog.at_level(logging.INFO):
        objects.info("Handler 'register.<locals>.job_event' succeeded.")
        objects.info("Something else.")
        objects.warning("Handler 'register.<locals>.job_event' failed.")
    shown = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kopf.objects"]
    assert shown == [
        ("INFO", "Something else."),
        ("WARNING", "Handler 'register.<locals>.job_event' failed."),
    ]
    with caplog.at_level(logging.DEBUG, logger="kopf.objects"):
        objects.info("Handler 'register.<locals>.job_event' succeeded.")
    assert caplog.records[-1].levelname == "DEBUG"
