"""Service settings come from prefixed variables, fall back to shared ones, and fail closed."""

from typing import ClassVar

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from smartid_events.settings import ServiceSettings, embedded_database_url

SECRET = "s" * 40


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")
    service_name: ClassVar[str] = "example"
    database_url: str = embedded_database_url("smartid_example")
    http_port: int = 8009


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "NATS_URL", "SMARTID_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_embedded_stack() -> None:
    settings = ExampleSettings()
    assert settings.database_url == "postgresql://postgres@127.0.0.1:55432/smartid_example"
    assert settings.nats_url == "nats://127.0.0.1:54222"
    assert settings.http_port == 8009


def test_prefixed_variables_configure_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgresql://db.internal/example")
    monkeypatch.setenv("EXAMPLE_NATS_USER", "example")
    monkeypatch.setenv("EXAMPLE_NATS_PASSWORD", "pw")
    monkeypatch.setenv("EXAMPLE_HTTP_PORT", "9000")
    monkeypatch.setenv("EXAMPLE_LOG_LEVEL", "debug")
    settings = ExampleSettings()
    assert settings.database_url == "postgresql://db.internal/example"
    assert settings.nats_user == "example"
    assert settings.nats_password_value() == "pw"
    assert settings.http_port == 9000
    assert settings.log_level == "DEBUG"


def test_shared_variables_apply_when_the_prefixed_ones_are_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    monkeypatch.setenv("NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("SMARTID_JWT_SECRET", SECRET)
    settings = ExampleSettings()
    assert settings.database_url == "postgresql://shared/db"
    assert settings.nats_url == "nats://shared:4222"
    assert settings.jwt_secret.get_secret_value() == SECRET
    assert not settings.jwt_secret_generated


def test_a_prefixed_variable_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgresql://own/db")
    assert ExampleSettings().database_url == "postgresql://own/db"


def test_without_a_secret_a_random_one_is_generated_so_no_outside_token_verifies() -> None:
    first, second = ExampleSettings(), ExampleSettings()
    assert first.jwt_secret_generated
    assert first.jwt_secret.get_secret_value() != second.jwt_secret.get_secret_value()


def test_a_short_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTID_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="jwt_secret"):
        ExampleSettings()


def test_an_unknown_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError, match="log_level"):
        ExampleSettings()


def test_the_event_store_env_points_at_the_service_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", "postgresql://u:p@db.internal:6543/example")
    env = ExampleSettings().event_store_env()
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.internal", "6543")
    assert env["POSTGRES_DBNAME"] == "example"
