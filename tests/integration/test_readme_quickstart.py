"""The README's quickstart, run word for word against `smartid run` on its embedded defaults."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README's quickstart has no sh block"
    return match.group(1)


@pytest.mark.integration
def test_the_readme_quickstart_runs_as_written(stack: Path) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart_block()],
        cwd=stack,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    history = lines[-1]
    for event in ("Applied", "Approved", "IdCountChanged", "UserRegistered", "Suspended",
                  "Resumed", "Terminated"):  # fmt: skip
        assert f'"type":"{event}"' in history, history
