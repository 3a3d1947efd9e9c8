"""Fixtures for flows across services: the whole stack as `make run` starts it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTED = "SmartID is running"
START_TIMEOUT_S = 120.0


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
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
