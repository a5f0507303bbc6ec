"""`noetl run --secret` (the local runner): a Secret's values never show, whatever its keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

VALUES = {"DB_PW": "pw-hunter22", "X": "xylophone-77", "API_TOKEN": "tok-0123456789"}

PLAYBOOK = """
kind: Playbook
name: leaky
workflow:
  - step: start
    next: [{step: show}]
  - step: show
    tool: shell
    args:
      secretRef: api
      command: 'echo "$DB_PW $X $API_TOKEN"; echo "$DB_PW $X $API_TOKEN" >&2; exit 4'
"""


def test_a_failing_shell_step_shows_its_secret_nowhere(tmp_path: Path) -> None:
    (tmp_path / "pb.yaml").write_text(textwrap.dedent(PLAYBOOK))
    (tmp_path / "api.env").write_text("".join(f"{k}={v}\n" for k, v in VALUES.items()))
    result = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "--secret", "api=api.env", "pb.yaml",
         "--event-log", "events.jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "command exited with code 4: *** *** ***" in result.stderr
    log = (tmp_path / "events.jsonl").read_text()
    assert '"stdout":"*** *** ***"' in log
    for value in VALUES.values():
        assert value not in result.stdout + result.stderr + log


def test_a_secret_ref_without_its_secret_is_an_error_naming_step_and_flag(tmp_path: Path) -> None:
    (tmp_path / "pb.yaml").write_text(textwrap.dedent(PLAYBOOK))
    result = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "pb.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "step 'show' needs the Secret 'api' (args.secretRef)" in result.stderr
    assert "noetl run --secret api=FILE" in result.stderr
