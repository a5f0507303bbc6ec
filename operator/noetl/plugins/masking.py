"""Secrets masked by value: whatever a step received from its Secret shows as `***`.

A step's Secret reaches it as env vars (locally from `noetl run --secret`, on a cluster from the
Secret mounted into the pod, see runtime.read_secrets), and the request carries the values as
`secrets`. runtime.execute masks every one of them in the outcome: the error, and every string of
the result (a shell step's stdout and stderr included), so they reach no status, Event, event log
or progress line. The value of an env var with a secret-looking name (PGPASSWORD, API_TOKEN...)
is masked as well, for secrets that reach a step some other way.

Values shorter than MIN_LENGTH characters are left alone: masking every "1" or "on" would
garble all output and hide next to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from noetl.plugins.messages import StepRequest

MASK = "***"
MIN_LENGTH = 4

_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|DSN", re.IGNORECASE)


class Mask:
    """Replaces a set of secret values, in text or anywhere in a JSON value."""

    def __init__(self, values: Iterable[str]) -> None:
        found = {form for value in values for form in (value, value.strip())}
        # Longest first: a value that contains another is masked whole.
        self._values = sorted((v for v in found if len(v) >= MIN_LENGTH), key=len, reverse=True)

    @classmethod
    def of(cls, request: StepRequest) -> Mask:
        """The mask for a step: its Secret's values and its secret-looking env vars."""
        named = (value for name, value in request.env.items() if _SECRET_NAME.search(name))
        return cls([*request.secrets.values(), *named])

    def text(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every string (mapping keys included) masked."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        return value
