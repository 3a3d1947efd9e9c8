"""With DATABASE_URL and NATS_URL given, the stack starts no servers of its own."""

from pathlib import Path

import psycopg

from smartid_events.devstack.stack import DevStack
from smartid_events.service import ServiceSpec
from smartid_events.testing.plugin import NatsUnderTest, PostgresUnderTest

SPEC = ServiceSpec("contract", "CONTRACT", 8001, "smartid_contract_ext", "x:create_app")


def test_external_servers_are_used_and_each_service_gets_its_database(
    tmp_path: Path, postgres: PostgresUnderTest, nats: NatsUnderTest
) -> None:
    environ = {"DATABASE_URL": postgres.admin_url, "NATS_URL": nats.url}
    stack = DevStack(tmp_path / "var", [SPEC], environ)
    stack.start()
    try:
        assert stack.postgres is None
        assert stack.nats is None
        env = stack.service_env(SPEC, "127.0.0.1", 8001)
    finally:
        stack.stop()
    assert env["CONTRACT_DATABASE_URL"] == postgres.url_for("smartid_contract_ext")
    assert env["CONTRACT_NATS_URL"] == nats.url
    assert "CONTRACT_NATS_PASSWORD" not in env
    with psycopg.connect(env["CONTRACT_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("smartid_contract_ext",)


def test_a_per_service_url_is_passed_through_untouched(tmp_path: Path) -> None:
    environ = {
        "CONTRACT_DATABASE_URL": "postgresql://db.internal/contract",
        "CONTRACT_NATS_URL": "nats://nats.internal:4222",
    }
    stack = DevStack(tmp_path / "var", [SPEC], environ)
    assert not stack.needs_embedded_postgres
    assert not stack.needs_embedded_nats
    assert stack.database_url(SPEC) == "postgresql://db.internal/contract"


def test_the_embedded_stack_keeps_one_secret_and_password_per_service_across_runs(
    tmp_path: Path,
) -> None:
    first = DevStack(tmp_path / "var", [SPEC], {})
    second = DevStack(tmp_path / "var", [SPEC], {})
    assert first.jwt_secret == second.jwt_secret
    assert first.nats_passwords() == second.nats_passwords()
    assert set(first.nats_passwords()) == {"contract", "ops"}
    assert (tmp_path / "var" / "jwt-secret").stat().st_mode & 0o077 == 0
