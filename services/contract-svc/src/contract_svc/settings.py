"""The only module of contract-svc that reads the environment."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic_settings import SettingsConfigDict

from smartid_events.settings import ServiceSettings, embedded_database_url


class ContractSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTRACT_", extra="ignore")
    service_name: ClassVar[str] = "contract"

    database_url: str = embedded_database_url("smartid_contract")
    http_port: int = 8001
    # Where the single writer runs: a thread of the API process, or a process of its own that
    # the API process starts (ADR 0022).
    command_writer: Literal["thread", "process"] = "thread"
