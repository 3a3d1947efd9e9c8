"""The embedded stack behind `make run`: PostgreSQL and nats-server with their data under var/.

Ports, the JWT secret and the NATS users' passwords are kept in var/ so that a second run finds
everything again. `DATABASE_URL` (a server; each service gets its own database on it) and
`NATS_URL`, or per-service `<PREFIX>_DATABASE_URL` / `<PREFIX>_NATS_URL`, point services at
servers of your own; the embedded servers are then not started.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from smartid_events.auth import SCOPES, mint_token
from smartid_events.devstack.nats import NatsServer
from smartid_events.devstack.nats_config import OPS_USER, new_password, render_authorization
from smartid_events.devstack.nats_config import users_for as nats_users_for
from smartid_events.devstack.ports import free_port
from smartid_events.devstack.postgres import PostgresServer
from smartid_events.service import ServiceSpec
from smartid_events.settings import EMBEDDED_NATS_PORT, EMBEDDED_POSTGRES_PORT

logger = logging.getLogger(__name__)

DEV_TOKEN_TTL = timedelta(days=365)
LEFTOVER_STOP_TIMEOUT_S = 20.0


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def database_url_on(server_url: str, database: str) -> str:
    """The URL of `database` on the server that `server_url` names."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ensure_database(admin_url: str, name: str) -> None:
    """Create `name` on the server of `admin_url` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _stop_leftover(pid_file: Path) -> None:
    """Stop a server a killed earlier run left behind on our data (it holds port and files)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return
    logger.warning("stopping a server left over from an earlier run", extra={"pid": pid})
    deadline = time.monotonic() + LEFTOVER_STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


class DevStack:
    """The servers and credentials for `specs`, under `var_dir`."""

    def __init__(
        self,
        var_dir: Path,
        specs: Sequence[ServiceSpec],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.var_dir = var_dir.resolve()
        self.specs = list(specs)
        self.environ = dict(os.environ if environ is None else environ)
        self.postgres: PostgresServer | None = None
        self.nats: NatsServer | None = None
        self._state_file = self.var_dir / "stack.json"
        self._state: dict[str, int] = {}

    # -- what comes from outside -------------------------------------------------------------

    def _own(self, spec: ServiceSpec, field: str) -> str | None:
        return self.environ.get(spec.env_name(field)) or None

    @property
    def needs_embedded_postgres(self) -> bool:
        if self.environ.get("DATABASE_URL"):
            return False
        return not self.specs or any(self._own(s, "database_url") is None for s in self.specs)

    @property
    def needs_embedded_nats(self) -> bool:
        if self.environ.get("NATS_URL"):
            return False
        return not self.specs or any(self._own(s, "nats_url") is None for s in self.specs)

    # -- files in var/ -------------------------------------------------------------------------

    def _load_state(self) -> None:
        if self._state_file.exists():
            self._state = {k: int(v) for k, v in json.loads(self._state_file.read_text()).items()}

    def _save_state(self) -> None:
        self._state_file.write_text(json.dumps(self._state, indent=2) + "\n")

    def _port(self, key: str, preferred: int) -> int:
        """The remembered port if still free, else the preferred one, else any free one."""
        port = free_port(self._state.get(key, preferred))
        if port != self._state.get(key, preferred):
            port = free_port(preferred)
        self._state[key] = port
        return port

    @property
    def jwt_secret(self) -> str:
        given = self.environ.get("SMARTID_JWT_SECRET")
        if given:
            return given
        path = self.var_dir / "jwt-secret"
        if not path.exists():
            _write_secret(path, secrets.token_urlsafe(48))
        return path.read_text().strip()

    def nats_passwords(self) -> dict[str, str]:
        """Passwords by user name, kept in var/; new services get new ones."""
        path = self.var_dir / "nats-passwords.json"
        known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = [s.name for s in self.specs] + [OPS_USER]
        if any(name not in known for name in wanted):
            for name in wanted:
                known.setdefault(name, new_password())
            _write_secret(path, json.dumps(known, indent=2) + "\n")
        return known

    @property
    def dev_token_path(self) -> Path:
        return self.var_dir / "dev-token"

    def write_dev_token(self) -> Path:
        """An operator token with every scope, for trying the APIs with curl."""
        token = mint_token(
            self.jwt_secret, sub="dev", role="operator", scopes=SCOPES, ttl=DEV_TOKEN_TTL
        )
        _write_secret(self.dev_token_path, token + "\n")
        return self.dev_token_path

    # -- servers --------------------------------------------------------------------------------

    def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self._load_state()
        if self.needs_embedded_postgres:
            data_dir = self.var_dir / "postgres"
            _stop_leftover(data_dir / "postmaster.pid")
            self.postgres = PostgresServer(
                data_dir, self._port("postgres_port", EMBEDDED_POSTGRES_PORT), durable=True
            )
        if self.needs_embedded_nats:
            store_dir = self.var_dir / "nats"
            pid_file = store_dir / "nats-server.pid"
            _stop_leftover(pid_file)
            config = render_authorization(nats_users_for(self.specs, self.nats_passwords()))
            self.nats = NatsServer(
                store_dir,
                self._port("nats_port", EMBEDDED_NATS_PORT),
                config=f"pid_file: {json.dumps(str(pid_file))}\n{config}",
            )
        self._save_state()
        try:
            if self.postgres is not None:
                self.postgres.start()
            if self.nats is not None:
                self.nats.start()
            for spec in self.specs:
                self._create_database(spec)
        except BaseException:
            self.stop()
            raise

    def _create_database(self, spec: ServiceSpec) -> None:
        if self._own(spec, "database_url") is not None:
            return  # the operator's own database: we do not create or alter it
        ensure_database(self.admin_database_url, spec.database)

    def stop(self) -> None:
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()

    @property
    def admin_database_url(self) -> str:
        if self.postgres is not None:
            return self.postgres.url
        return self.environ["DATABASE_URL"]

    @property
    def nats_url(self) -> str:
        if self.nats is not None:
            return self.nats.url
        return self.environ["NATS_URL"]

    # -- what each service process gets --------------------------------------------------------

    def database_url(self, spec: ServiceSpec) -> str:
        return self._own(spec, "database_url") or database_url_on(
            self.admin_database_url, spec.database
        )

    def service_env(self, spec: ServiceSpec, http_host: str, http_port: int) -> dict[str, str]:
        """The environment variables that point `spec`'s processes at this stack."""
        env = {
            spec.env_name("database_url"): self.database_url(spec),
            spec.env_name("http_host"): http_host,
            spec.env_name("http_port"): str(http_port),
            "SMARTID_JWT_SECRET": self.jwt_secret,
        }
        if self._own(spec, "nats_url") is None:
            env[spec.env_name("nats_url")] = self.nats_url
            if self.nats is not None:
                env[spec.env_name("nats_user")] = spec.name
                env[spec.env_name("nats_password")] = self.nats_passwords()[spec.name]
        return env
