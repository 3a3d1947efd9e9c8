"""`smartid run`: the embedded stack and every registered service, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from smartid_events.devstack.ports import free_port
from smartid_events.devstack.stack import DevStack
from smartid_events.service import ServiceSpec, discover, load_spec

STARTUP_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 15.0
POLL_S = 0.2


@dataclass
class Child:
    """One service process and the thread that copies its output to ours."""

    label: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.pump = threading.Thread(target=self._copy_output, daemon=True)
        self.pump.start()

    def _copy_output(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            print(f"{self.label:<18}| {line}", flush=True)

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{self.label} did not stop in time; killing it", flush=True)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.pump.join(timeout=CHILD_STOP_TIMEOUT_S)


@dataclass(frozen=True)
class Endpoint:
    spec: ServiceSpec
    url: str


class Runner:
    def __init__(self, specs: Sequence[ServiceSpec], var_dir: Path, host: str) -> None:
        self.specs = list(specs)
        self.stack = DevStack(var_dir, self.specs)
        self.host = host
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        say(f"starting the stack in {self.stack.var_dir}")
        self.stack.start()
        try:
            return self._run_services()
        finally:
            say("stopping services")
            self._stop_children()
            say("stopping servers")
            self.stack.stop()
            say("stopped")

    def _run_services(self) -> int:
        token_path = self.stack.write_dev_token()
        endpoints = [self._launch(spec) for spec in self.specs]
        if not self._wait_until_healthy(endpoints):
            return 1
        self._print_table(endpoints, token_path)
        while not self.stopping.wait(POLL_S):
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    say(f"{child.label} exited with status {code}; stopping everything")
                    return 1
        return 0

    def _launch(self, spec: ServiceSpec) -> Endpoint:
        port = free_port(spec.http_port, self.host)
        env = {
            **os.environ,
            **self.stack.service_env(spec, self.host, port),
            "PYTHONUNBUFFERED": "1",
        }
        api = [sys.executable, "-m", "uvicorn", "--factory", spec.app_factory]
        api += ["--host", self.host, "--port", str(port), "--no-access-log"]
        self.children.append(Child(f"{spec.name}-api", _spawn(api, env)))
        if spec.worker is not None:
            code = f"from smartid_events.service import run_target; run_target({spec.worker!r})"
            self.children.append(
                Child(f"{spec.name}-worker", _spawn([sys.executable, "-c", code], env))
            )
        return Endpoint(spec, f"http://{self.host}:{port}")

    def _wait_until_healthy(self, endpoints: Sequence[Endpoint]) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        waiting = list(endpoints)
        while waiting:
            if self.stopping.is_set():
                return False
            for child in self.children:
                if child.process.poll() is not None:
                    code = child.process.returncode
                    say(f"{child.label} exited during start-up with status {code}")
                    return False
            waiting = [e for e in waiting if not _answers(f"{e.url}/healthz")]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(e.spec.name for e in waiting)
                say(f"not healthy after {STARTUP_TIMEOUT_S:.0f}s: {names}")
                return False
            if waiting:
                self.stopping.wait(POLL_S)
        return True

    def _print_table(self, endpoints: Sequence[Endpoint], token_path: Path) -> None:
        lines = ["", "SmartID is running. Ctrl-C stops everything.", ""]
        if self.stack.postgres is not None:
            data = self.stack.postgres.data_dir
            lines.append(f"  PostgreSQL  {self.stack.admin_database_url}  (data: {data})")
        else:
            lines.append("  PostgreSQL  external (DATABASE_URL / <PREFIX>_DATABASE_URL)")
        if self.stack.nats is not None:
            lines.append(
                f"  NATS        {self.stack.nats_url}  (data: {self.stack.nats.store_dir})"
            )
        else:
            lines.append("  NATS        external (NATS_URL / <PREFIX>_NATS_URL)")
        lines.append("")
        if not endpoints:
            lines.append("  No services are registered (entry-point group smartid.services).")
        for e in endpoints:
            worker = "  + worker" if e.spec.worker else ""
            lines.append(f"  {e.spec.name:<14} {e.url}  ({e.url}/openapi.json){worker}")
        lines += [
            "",
            f"  Dev token (operator, every scope): {token_path}",
            f'  curl -H "Authorization: Bearer $(cat {token_path})" <service URL>/v1/...',
            "",
        ]
        say("\n".join(lines))

    def _stop_children(self) -> None:
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for child in self.children:
            child.wait_or_kill(deadline)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def say(text: str, stream: IO[str] | None = None) -> None:
    print(text, file=stream or sys.stdout, flush=True)


def run_command(args: argparse.Namespace) -> int:
    specs = [] if args.no_discover else discover()
    specs += [load_spec(target) for target in args.spec]
    return Runner(specs, args.var_dir, args.host).run()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run", help="start PostgreSQL, NATS and every service on embedded defaults"
    )
    run.add_argument("--var-dir", type=Path, default=Path("var"), help="data, ports and secrets")
    run.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="also run this ServiceSpec (repeatable)",
    )
    run.add_argument(
        "--no-discover", action="store_true", help="ignore services registered as entry points"
    )
    run.add_argument("--host", default="127.0.0.1", help="where the services listen")
    run.set_defaults(func=run_command)
