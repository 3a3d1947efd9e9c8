"""billing-svc's settings: the only module that reads the environment (prefix `BILLING_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from billing_svc.issuer import Issuer, validate_registration_number
from smartid_events.settings import ServiceSettings, embedded_database_url


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")
    service_name: ClassVar[str] = "billing"

    database_url: str = embedded_database_url("smartid_billing")
    http_port: int = 8002
    issuer_name: str = "セコム株式会社"
    # The qualified-invoice registration number: T + the issuer's 13-digit corporate number.
    issuer_registration_number: str = "T7010001008844"

    @field_validator("issuer_registration_number")
    @classmethod
    def _valid_registration_number(cls, value: str) -> str:
        return validate_registration_number(value)

    def issuer(self) -> Issuer:
        return Issuer(self.issuer_name, self.issuer_registration_number)
