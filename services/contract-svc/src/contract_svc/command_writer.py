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
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.persistence import IntegrityError
from prometheus_client.metrics_core import Metric

from contract_svc.application import MAX_ATTEMPTS, Contracts, visible_to
from smartid_events.auth import Principal
from smartid_events.groupcommit import CommitPendingError, CommitterClosedError
from smartid_events.logs import current_correlation_id, enter_correlation, leave_correlation
from smartid_events.runtime import settle_after_startup
from smartid_events.store import serialized_startup
from smartid_events.web.metrics import own_families

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
# Asked instead of a command: the writer's metric families (its group committer's), for the
# API process's `/metrics`.
METRICS = "metrics"
CONNECT_TIMEOUT_S = 60.0
SUBMIT_TIMEOUT_S = 30.0


class CommitOutcomeUnknownError(CommitterClosedError):
    """The writer process went away while this command was in flight: it may have committed.

    An Idempotency-Key used with it stays claimed (a retry gets 409, as after a crash of the
    API process, ADR 0005) rather than freed for a retry that could apply it twice.
    """


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
        return self._await(self._send(call, principal))

    async def metrics(self) -> list[Metric]:
        """The writer process's metric families (for `metrics_sources`)."""
        families: list[Metric] = await self._send(METRICS, None)
        return families

    def _send(self, call: CommandCall | str, principal: Principal | None) -> asyncio.Future[Any]:
        if self._closed:
            raise CommitterClosedError("the writer process is gone")
        number = next(self._numbers)
        outcome = asyncio.get_running_loop().create_future()
        self._waiting[number] = outcome
        self._writer.write(_frame((number, call, principal, current_correlation_id())))
        return outcome

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
                    outcome.set_exception(
                        CommitOutcomeUnknownError(
                            "the writer process is gone; this command may have been committed"
                        )
                    )
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
async def writer_process(event_store_env: dict[str, str], database_url: str, wait_s: float) -> Any:
    """Start the writer, connect to it, and stop it on the way out. `wait_s` is how long its
    committer waits for more commands before committing a batch."""
    directory = Path(tempfile.mkdtemp(prefix="contract-writer-"))  # mode 0700
    path = directory / "commands.sock"
    process = _start(path, {"env": event_store_env, "url": database_url, "wait_s": wait_s})
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
    """Feeds one API process's calls to `contracts`' group committer, on plain threads.

    This thread reads frames and queues each command; the committer's writer thread sends each
    reply as its batch is decided. No event loop: a task and a future per command, and a loop
    taking turns with the writer on the GIL, were a third of this process's time.
    """

    def __init__(self, contracts: Contracts, connection: socket.socket) -> None:
        assert contracts.committer is not None
        self.contracts = contracts
        self.committer = contracts.committer
        self._connection = connection
        self._sending = threading.Lock()

    def serve(self) -> None:
        """Until the API process hangs up."""
        stream = self._connection.makefile("rb", buffering=1 << 16)
        try:
            while header := stream.read(HEADER.size):
                if len(header) < HEADER.size:
                    break
                (size,) = HEADER.unpack(header)
                number, call, principal, correlation_id = pickle.loads(stream.read(size))
                if call == METRICS:
                    self._reply(number, True, own_families())
                else:
                    self._submit(number, call, principal, correlation_id, MAX_ATTEMPTS)
        except (ConnectionError, OSError):
            pass
        finally:
            stream.close()

    def _submit(
        self,
        number: int,
        call: CommandCall,
        principal: Principal | None,
        correlation_id: str | None,
        attempts: int,
    ) -> None:
        token = enter_correlation(correlation_id) if correlation_id is not None else None
        try:
            command = getattr(self.contracts.commands, call.method)(*call.args, **call.kwargs)
            if principal is not None:
                command = visible_to(command, principal.can_access)
            self.contracts.make_key(command)

            def done(result: Any, error: BaseException | None) -> None:
                if isinstance(error, IntegrityError) and attempts > 1:
                    # A writer outside the committer got there first: again, on fresh state,
                    # from another thread (the writer thread must never wait on its own queue).
                    threading.Thread(
                        target=self._submit,
                        args=(number, call, principal, correlation_id, attempts - 1),
                        daemon=True,
                    ).start()
                elif error is not None:
                    self._reply(number, False, _portable(error))
                else:
                    self._reply(number, True, result)

            self.committer.submit_then(command, done)
        except Exception as error:
            self._reply(number, False, _portable(error))
        finally:
            if token is not None:
                leave_correlation(token)

    def _reply(self, number: int, ok: bool, value: Any) -> None:
        try:
            frame = _frame((number, ok, value))
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            frame = _frame((number, False, _portable(RuntimeError(str(error)))))
        with self._sending, contextlib.suppress(OSError):
            self._connection.sendall(frame)


def _serve(path: str, contracts: Contracts) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(CONNECT_TIMEOUT_S)
        try:
            connection, _ = listener.accept()
        except TimeoutError:  # an API process that died before connecting leaves no writer
            logger.error("no API process connected within %s s", CONNECT_TIMEOUT_S)
            return
        connection.settimeout(None)
        with connection:
            CommandServer(contracts, connection).serve()


def main() -> None:
    """`python -m contract_svc.command_writer SOCKET`, settings as JSON on stdin."""
    logging.basicConfig(level=logging.WARNING)
    path = sys.argv[1]
    given = json.loads(sys.stdin.read())
    with serialized_startup(given["url"]):
        contracts = Contracts(
            env=given["env"], group_commit=True, group_commit_wait_s=given["wait_s"]
        )
    settle_after_startup()
    try:
        _serve(path, contracts)
    finally:
        contracts.close()  # commits what is queued; its replies go nowhere


if __name__ == "__main__":
    main()
