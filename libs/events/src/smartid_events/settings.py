"""Settings every service reads from its environment; services subclass with their own prefix."""

from __future__ import annotations

import os
import secrets
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartid_events.store import event_store_env

# The embedded stack's preferred ports (`make run`); 5432/4222 are often taken by the machine's own.
EMBEDDED_POSTGRES_PORT = 55432
EMBEDDED_NATS_PORT = 54222

# Shared variables a prefixed one falls back to: `CONTRACT_DATABASE_URL`, else `DATABASE_URL`.
SHARED_FALLBACKS = {
    "database_url": "DATABASE_URL",
    "nats_url": "NATS_URL",
    "jwt_secret": "SMARTID_JWT_SECRET",
}

MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash are weak (and PyJWT warns)


class ServiceSettings(BaseSettings):
    """The environment of one service process.

    Subclass with the service's prefix and database::

        class Settings(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="CONTRACT_")
            service_name: ClassVar[str] = "contract"
            database_url: str = embedded_database_url("smartid_contract")
            http_port: int = 8001

    Without a JWT secret (neither `<PREFIX>_JWT_SECRET` nor `SMARTID_JWT_SECRET`) a random one is
    generated: the service then starts but rejects every token, which fails closed.
    """

    model_config = SettingsConfigDict(env_prefix="SMARTID_", extra="ignore")
    service_name: ClassVar[str] = "smartid"

    database_url: str = f"postgresql://postgres@127.0.0.1:{EMBEDDED_POSTGRES_PORT}/postgres"
    nats_url: str = f"nats://127.0.0.1:{EMBEDDED_NATS_PORT}"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    jwt_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(48)))
    jwt_secret_generated: bool = False
    log_level: str = "INFO"
    # JetStream replicas of the service's stream: 1 on the embedded server, 3 on the cluster.
    stream_replicas: int = 1
    # The worker's Prometheus endpoint (relay and consumer lag, parked messages); 0: none.
    # Default: the HTTP port + 1000 (contract-svc 9001, billing-svc 9002).
    worker_metrics_port: int | None = None

    def worker_metrics_port_value(self) -> int:
        if self.worker_metrics_port is None:
            return self.http_port + 1000
        return self.worker_metrics_port

    @model_validator(mode="before")
    @classmethod
    def _fall_back_to_shared_variables(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for field_name, shared in SHARED_FALLBACKS.items():
            if data.get(field_name) is None and os.environ.get(shared):
                data[field_name] = os.environ[shared]
        if data.get("jwt_secret") is None:
            data["jwt_secret_generated"] = True
        return data

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    def event_store_env(self, **options: Any) -> dict[str, str]:
        """The env dict for the service's `eventsourcing` application (`smartid_events.store`)."""
        return event_store_env(self.database_url, **options)

    def nats_password_value(self) -> str | None:
        return None if self.nats_password is None else self.nats_password.get_secret_value()


def embedded_database_url(database: str) -> str:
    """The URL of `database` on the embedded PostgreSQL that `make run` starts."""
    return f"postgresql://postgres@127.0.0.1:{EMBEDDED_POSTGRES_PORT}/{database}"
