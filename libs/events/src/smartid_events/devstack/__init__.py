"""Embedded PostgreSQL and nats-server, started from the binaries that pip packages ship."""

from smartid_events.devstack.nats import NatsServer
from smartid_events.devstack.ports import free_port
from smartid_events.devstack.postgres import PostgresServer

__all__ = ["NatsServer", "PostgresServer", "free_port"]
