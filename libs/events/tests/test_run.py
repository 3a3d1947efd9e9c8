"""`smartid run` end to end: servers, a service, the dev token, Ctrl-C, and a second start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartid_events.devstack.ports import port_is_free

TESTS = Path(__file__).resolve().parent
STARTED = "Ctrl-C stops everything"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


class RunningStack:
    """`smartid run` in a subprocess, its output collected line by line."""

    def __init__(self, var_dir: Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("DATABASE_URL", "NATS_URL")) and k != "SMARTID_JWT_SECRET"
        }
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        smartid = Path(sys.executable).parent / "smartid"
        spec = "test_run_tiny_service:SPEC"
        self.process = subprocess.Popen(
            [str(smartid), "run", "--no-discover", "--spec", spec, "--var-dir", str(var_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared:\n{self.output}")
            time.sleep(0.05)

    def url_of(self, service: str) -> str:
        match = re.search(rf"^\s+{service}\s+(http://\S+)", self.output, re.MULTILINE)
        assert match, self.output
        return match.group(1)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=STOP_TIMEOUT_S)
        self._reader.join(timeout=STOP_TIMEOUT_S)
        return code

    def close(self) -> None:
        """Stop it if the test did not, and release the pipe."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=STOP_TIMEOUT_S)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def started(var_dir: Path) -> Iterator[RunningStack]:
    stack = RunningStack(var_dir)
    try:
        stack.wait_for(STARTED)
        yield stack
    finally:
        stack.close()


def bearer(var_dir: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {(var_dir / 'dev-token').read_text().strip()}"}


def test_run_serves_the_service_with_its_dev_token_and_stops_on_ctrl_c(
    started: RunningStack, var_dir: Path
) -> None:
    url = started.url_of("tiny")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").json()["checks"] == {"postgres": "ok", "nats": "ok"}
    assert httpx.get(f"{url}/v1/marks").status_code == 401
    assert httpx.get(f"{url}/v1/marks", headers=bearer(var_dir)).status_code == 200
    started.wait_for("tiny worker connected")
    assert "dev-token" in started.output

    assert started.interrupt() == 0
    assert "tiny worker stopped" in started.output
    ports = (var_dir / "stack.json").read_text()
    for port in re.findall(r"\d{4,5}", ports):
        assert port_is_free(int(port)), f"port {port} still listens after Ctrl-C"
    assert port_is_free(int(url.rsplit(":", 1)[1]))


def test_a_second_run_finds_the_data_of_the_first(var_dir: Path) -> None:
    first = RunningStack(var_dir)
    try:
        first.wait_for(STARTED)
        url = first.url_of("tiny")
        response = httpx.post(f"{url}/v1/marks/kept", headers=bearer(var_dir))
        assert response.status_code == 201
        first_ports = (var_dir / "stack.json").read_text()
        assert first.interrupt() == 0
    finally:
        first.close()

    second = RunningStack(var_dir)
    try:
        second.wait_for(STARTED)
        url = second.url_of("tiny")
        assert httpx.get(f"{url}/v1/marks", headers=bearer(var_dir)).json() == ["kept"]
        assert (var_dir / "stack.json").read_text() == first_ports
    finally:
        second.close()
