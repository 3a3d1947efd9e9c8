"""The README's quickstart, run word for word against `smartid run` on its embedded defaults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTED = "SmartID is running"
START_TIMEOUT_S = 120.0


def quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README's quickstart has no sh block"
    return match.group(1)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Path]:
    """`smartid run` with its data in tmp_path/var; yields the folder to run commands in."""
    log = (tmp_path / "run.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "smartid_events.cli", "run", "--var-dir", str(tmp_path / "var")],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while STARTED.encode() not in (tmp_path / "run.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("smartid run did not start:\n" + (tmp_path / "run.log").read_text())
            time.sleep(0.2)
        yield tmp_path
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


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
