"""The only module of contract-svc that reads the environment."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from smartid_events.settings import ServiceSettings, embedded_database_url

THREAD_WAIT_S = 0.0005
PROCESS_WAIT_S = 0.0


class ContractSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTRACT_", extra="ignore")
    service_name: ClassVar[str] = "contract"

    database_url: str = embedded_database_url("smartid_contract")
    http_port: int = 8001
    # Where the single writer runs: a process of its own that the API process starts, or a
    # thread of the API process (ADR 0022).
    command_writer: Literal["thread", "process"] = "process"
    # How long the writer waits for more commands before it commits a batch. Unset: 0.5 ms for
    # the thread (its waits give the event loop the GIL), none for the process (the queue
    # fills while a batch commits). Measured in docs/performance.md.
    group_commit_wait_ms: float | None = Field(default=None, ge=0, le=100)

    def group_commit_wait_s(self) -> float:
        if self.group_commit_wait_ms is not None:
            return self.group_commit_wait_ms / 1000
        return THREAD_WAIT_S if self.command_writer == "thread" else PROCESS_WAIT_S
