"""The only module of contract-svc that reads the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from smartid_events.settings import ServiceSettings, embedded_database_url


class ContractSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTRACT_", extra="ignore")
    service_name: ClassVar[str] = "contract"

    database_url: str = embedded_database_url("smartid_contract")
    http_port: int = 8001
