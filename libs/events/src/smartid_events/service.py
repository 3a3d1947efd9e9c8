"""What a service tells `smartid run` about itself, and how the runner finds and starts it."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "smartid.services"


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its name, environment prefix, port, database and processes.

    `app_factory` is a uvicorn factory (`"contract_svc.main:create_app"`); `worker` a callable
    that runs the relay and consumers until SIGTERM (`"contract_svc.worker:main"`), or None.
    `publishes` are the subject patterns it may publish to (default `smartid.<name>.>`);
    `consumes` the names of the services whose streams it reads.
    """

    name: str
    env_prefix: str
    http_port: int
    database: str
    app_factory: str
    worker: str | None = None
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()

    @property
    def publish_subjects(self) -> tuple[str, ...]:
        return self.publishes or (f"smartid.{self.name}.>",)

    def env_name(self, field: str) -> str:
        """`database_url` → `CONTRACT_DATABASE_URL`."""
        prefix = self.env_prefix if self.env_prefix.endswith("_") else f"{self.env_prefix}_"
        return f"{prefix}{field}".upper()


def load_object(target: str) -> Any:
    """`"package.module:attribute"` → the attribute."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def load_spec(target: str) -> ServiceSpec:
    spec = load_object(target)
    if not isinstance(spec, ServiceSpec):
        raise TypeError(f"{target} is not a ServiceSpec")
    return spec


def discover() -> list[ServiceSpec]:
    """Every service registered under the `smartid.services` entry-point group, by name."""
    specs = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name} is not a ServiceSpec")
        specs.append(spec)
    return sorted(specs, key=lambda s: s.name)


def run_target(target: str) -> None:
    """Run a worker given as `module:callable`; a coroutine function runs in its own event loop."""
    function = load_object(target)
    result = function()
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(awaitable: Any) -> None:
    await awaitable
