"""The playbook DSL: models, loading from YAML, and whole-document validation."""

from noetl.playbook.errors import PlaybookError, PlaybookInvalid
from noetl.playbook.loader import Playbook, load_playbook, parse_playbook
from noetl.playbook.models import (
    API_GROUP,
    API_VERSION,
    GROUP_VERSION,
    ExecutionSpec,
    PlaybookSpec,
    Step,
    duration_seconds,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "ExecutionSpec",
    "Playbook",
    "PlaybookError",
    "PlaybookInvalid",
    "PlaybookSpec",
    "Step",
    "duration_seconds",
    "load_playbook",
    "parse_playbook",
]
