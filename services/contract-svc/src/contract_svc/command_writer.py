"""The single writer in a process of its own (ADR 0022): commands cross a Unix socket.

With `CONTRACT_COMMAND_WRITER=process` the API process does HTTP, validation, auth and
rendering, and hands each command, described by its `ContractCommands` method and arguments,
to a writer process that runs the group committer. Two processes use both cores: in one, the
event loop and the writer thread take turns on one GIL.

A frame is a 4-byte big-endian length and a pickle. Only our two processes speak on the
socket, which lives in a directory only the service's user can enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract_svc.application import Contracts, visible_to
from smartid_events.auth import Principal
from smartid_events.groupcommit import CommitPendingError, CommitterClosedError
from smartid_events.logs import current_correlation_id, enter_correlation
from smartid_events.runtime import settle_after_startup
from smartid_events.store import serialized_startup

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
CONNECT_TIMEOUT_S = 60.0
SUBMIT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class CommandCall:
    """A command as a description: `ContractCommands.<method>(*args, **kwargs)`."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class RemoteCommands:
    """`ContractCommands`' methods, each returning a `CommandCall` instead of a command."""

    def __getattr__(self, method: str) -> Callable[..., CommandCall]:
        if method.startswith("_"):
            raise AttributeError(method)

        def describe(*args: Any, **kwargs: Any) -> CommandCall:
            return CommandCall(method, args, kwargs)

        return describe


def _portable(error: BaseException) -> tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]:
    return type(error), error.args, dict(vars(error))


def _rebuilt(portable: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]) -> Exception:
    """The writer's exception, without calling its `__init__` (whose signature varies)."""
    cls, args, state = portable
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error if isinstance(error, Exception) else RuntimeError(str(error))


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))  # only our own writer process speaks here


# The API process's side


class WriterClient:
    """The API process's connection to its writer; one socket, replies matched by number."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.commands = RemoteCommands()
        self._reader = reader
        self._writer = writer
        self._numbers = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._closed = False
        self._closing = False
        self.process: subprocess.Popen[bytes] | None = None
        self._receiving = asyncio.get_running_loop().create_task(self._receive())

    @classmethod
    async def connect(
        cls, path: Path, process: subprocess.Popen[bytes] | None = None
    ) -> WriterClient:
        deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT_S
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
                return cls(reader, writer)
            except OSError:
                if process is not None and process.poll() is not None:
                    raise CommitterClosedError(
                        f"the writer process exited with {process.returncode}"
                    ) from None
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    @property
    def closed(self) -> bool:
        return self._closed

    def execute(self, call: object, principal: Principal | None = None) -> Awaitable[Any]:
        """Run `call` in the writer; a contractor's call fails there as not-found on a
        contract of another tenant, like `visible_to`."""
        if not isinstance(call, CommandCall):
            raise TypeError(f"not a command description: {call!r}")
        if self._closed:
            raise CommitterClosedError("the writer process is gone")
        number = next(self._numbers)
        outcome = asyncio.get_running_loop().create_future()
        self._waiting[number] = outcome
        self._writer.write(_frame((number, call, principal, current_correlation_id())))
        return self._await(outcome)

    async def _await(self, outcome: asyncio.Future[Any]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), SUBMIT_TIMEOUT_S)
        except TimeoutError:
            raise CommitPendingError(outcome) from None

    async def _receive(self) -> None:
        try:
            while True:
                number, ok, value = await _read_frame(self._reader)
                outcome = self._waiting.pop(number, None)
                if outcome is None or outcome.done():
                    continue
                if ok:
                    outcome.set_result(value)
                else:
                    outcome.set_exception(_rebuilt(value))
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._closing:
                logger.error("the writer process closed its socket")
        finally:
            self._closed = True
            # Their outcome is unknown to us: each may or may not have committed.
            for outcome in self._waiting.values():
                if not outcome.done():
                    outcome.set_exception(CommitterClosedError("the writer process is gone"))
            self._waiting.clear()

    async def close(self) -> None:
        self._closing = True
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._receiving


def writer_check(get_client: Callable[[], WriterClient | None]) -> Callable[[], Awaitable[None]]:
    """For `/readyz`: not ready once the writer process is gone (commands would get 503)."""

    async def check() -> None:
        client = get_client()
        if client is None or client.closed:
            raise ConnectionError("the writer process is gone")

    return check


@contextlib.asynccontextmanager
async def writer_process(event_store_env: dict[str, str], database_url: str) -> Any:
    """Start the writer, connect to it, and stop it on the way out."""
    directory = Path(tempfile.mkdtemp(prefix="contract-writer-"))  # mode 0700
    path = directory / "commands.sock"
    process = _start(path, {"env": event_store_env, "url": database_url})
    client: WriterClient | None = None
    try:
        client = await WriterClient.connect(path, process)
        client.process = process
        yield client
    finally:
        if client is not None:
            await client.close()  # the writer stops when its API process hangs up
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        _remove(directory)


def _start(path: Path, given: dict[str, Any]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "contract_svc.command_writer", str(path)],
        stdin=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert process.stdin is not None
    # The settings on stdin: the store's password stays out of the process list.
    process.stdin.write(json.dumps(given).encode())
    process.stdin.close()
    return process


def _remove(directory: Path) -> None:
    for leftover in directory.iterdir():
        leftover.unlink(missing_ok=True)
    directory.rmdir()


# The writer process's side


class CommandServer:
    """Runs the calls of one API process through `contracts`' group committer."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts
        self.connected = asyncio.Event()
        self.hung_up = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        try:
            while True:
                number, call, principal, correlation_id = await _read_frame(reader)
                task = asyncio.get_running_loop().create_task(
                    self._run(writer, number, call, principal, correlation_id)
                )
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            writer.close()
            self.hung_up.set()

    async def _run(
        self,
        writer: asyncio.StreamWriter,
        number: int,
        call: CommandCall,
        principal: Principal | None,
        correlation_id: str | None,
    ) -> None:
        if correlation_id is not None:  # the task's own context: the committer stamps with it
            enter_correlation(correlation_id)
        try:
            command = getattr(self.contracts.commands, call.method)(*call.args, **call.kwargs)
            if principal is not None:
                command = visible_to(command, principal.can_access)
            try:
                result = await self.contracts.execute_async(command)
            except CommitPendingError as pending:  # the API process keeps its own time
                result = await pending.outcome
            reply: tuple[int, bool, Any] = (number, True, result)
        except Exception as error:
            reply = (number, False, _portable(error))
        try:
            writer.write(_frame(reply))
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            writer.write(_frame((number, False, _portable(RuntimeError(str(error))))))


async def _serve(path: str, contracts: Contracts) -> None:
    server = CommandServer(contracts)
    unix = await asyncio.start_unix_server(server.serve, path=path)
    try:
        try:  # an API process that died before connecting leaves no writer behind
            await asyncio.wait_for(server.connected.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            logger.error("no API process connected within %s s", CONNECT_TIMEOUT_S)
            return
        await server.hung_up.wait()
    finally:
        unix.close()


def main() -> None:
    """`python -m contract_svc.command_writer SOCKET`, settings as JSON on stdin."""
    logging.basicConfig(level=logging.WARNING)
    path = sys.argv[1]
    given = json.loads(sys.stdin.read())
    with serialized_startup(given["url"]):
        contracts = Contracts(env=given["env"], group_commit=True)
    settle_after_startup()
    try:
        import uvloop

        uvloop.run(_serve(path, contracts))
    finally:
        contracts.close()


if __name__ == "__main__":
    main()
