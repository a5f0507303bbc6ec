"""How a refusal of the API server reads, for the operator and the CLI alike.

Kept apart from `api.py` (the operator's rate-limited, counted calls) so that the CLI's cluster
commands can word an error without loading the operator's metrics.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


def error_text(error: ApiException) -> str:
    """The API server's words for a refused call: the HTTP reason and the Status message (where
    e.g. "exceeded quota: ..." or the invalid field is), not the status code alone."""
    try:
        message = (json.loads(error.body) if error.body else {}).get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{error.reason} ({error.status})" + (f": {message}" if message else "")
