"""nats-server users and permissions: each service publishes only its own subjects.

A service may publish to its subjects (`smartid.<service>.>`), manage and read its own stream,
and create, read and acknowledge consumers on the streams it consumes. Replies come back on its
own inbox prefix (`_INBOX_<user>.>`), the only subject it may subscribe to. The `ops` user may do
anything, including purging streams (erasure).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smartid_events.envelope import stream_name
from smartid_events.natsconn import inbox_prefix_for
from smartid_events.service import ServiceSpec

OPS_USER = "ops"


@dataclass(frozen=True)
class NatsUser:
    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    @property
    def is_unrestricted(self) -> bool:
        return self.publish == (">",) and self.subscribe == (">",)


def producer_permissions(service: str, subjects: Iterable[str]) -> list[str]:
    stream = stream_name(service)
    return [
        *subjects,
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.STREAM.UPDATE.{stream}",
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        # Its own stream may be replayed by the service itself (rebuild, checks).
        *consumer_permissions(service),
    ]


def consumer_permissions(upstream: str) -> list[str]:
    stream = stream_name(upstream)
    return [
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.NAMES.{stream}",
        f"$JS.API.CONSUMER.LIST.{stream}",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def service_user(spec: ServiceSpec, password: str) -> NatsUser:
    publish = producer_permissions(spec.name, spec.publish_subjects)
    for upstream in spec.consumes:
        publish += consumer_permissions(upstream)
    return NatsUser(
        name=spec.name,
        password=password,
        publish=tuple(dict.fromkeys(publish)),
        subscribe=(f"{inbox_prefix_for(spec.name)}.>",),
    )


def ops_user(password: str) -> NatsUser:
    return NatsUser(name=OPS_USER, password=password, publish=(">",), subscribe=(">",))


def users_for(specs: Iterable[ServiceSpec], passwords: Mapping[str, str]) -> list[NatsUser]:
    """Users for `specs` and the ops user, with the passwords given by user name."""
    users = [service_user(s, passwords[s.name]) for s in specs]
    users.append(ops_user(passwords[OPS_USER]))
    return users


def _password(value: str) -> str:
    # `$NAME` is a nats-server variable reference (deploy/ takes passwords from the environment);
    # generated passwords never start with `$`.
    return value if value.startswith("$") else json.dumps(value)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def render_authorization(users: Iterable[NatsUser]) -> str:
    """The `authorization { users = [...] }` block of a nats-server configuration."""
    entries = []
    for user in users:
        # JSON strings are valid nats-server config strings, and quote `$JS...` and `>` safely.
        permissions = (
            ""
            if user.is_unrestricted
            else (
                "\n      permissions: {\n"
                f"        publish: {{ allow: {json.dumps(list(user.publish))} }}\n"
                f"        subscribe: {{ allow: {json.dumps(list(user.subscribe))} }}\n"
                "      }"
            )
        )
        entries.append(
            f"    {{\n      user: {json.dumps(user.name)}\n"
            f"      password: {_password(user.password)}{permissions}\n    }}"
        )
    return "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"
