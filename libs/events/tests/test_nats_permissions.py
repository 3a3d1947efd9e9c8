"""On a real nats-server, each service user publishes only its own subjects and reads only
the streams it consumes."""

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import Error as JetStreamError

from smartid_events.devstack import NatsServer
from smartid_events.devstack.nats import nats_server_binary
from smartid_events.devstack.nats_config import OPS_USER, render_authorization, users_for
from smartid_events.natsconn import connect
from smartid_events.service import ServiceSpec

CONTRACT = ServiceSpec("contract", "CONTRACT", 8001, "smartid_contract", "x:create_app")
BILLING = ServiceSpec(
    "billing", "BILLING", 8002, "smartid_billing", "x:create_app", consumes=("contract",)
)
PASSWORDS = {"contract": "contract-pw", "billing": "billing-pw", OPS_USER: "ops-pw"}
# A request the server refuses by permissions gets no reply: this bounds how long we wait.
REFUSED_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    config = render_authorization(users_for([CONTRACT, BILLING], PASSWORDS))
    nats_server = NatsServer(tmp_path_factory.mktemp("nats-auth"), config=config)
    nats_server.start()
    yield nats_server
    nats_server.stop()


async def as_user(server: NatsServer, user: str) -> Client:
    return await connect(server.url, name=f"test-{user}", user=user, password=PASSWORDS[user])


@pytest_asyncio.fixture
async def contract(server: NatsServer) -> AsyncIterator[Client]:
    client = await as_user(server, "contract")
    yield client
    await client.close()


@pytest_asyncio.fixture
async def billing(server: NatsServer) -> AsyncIterator[Client]:
    client = await as_user(server, "billing")
    yield client
    await client.close()


@pytest_asyncio.fixture
async def ops(server: NatsServer) -> AsyncIterator[Client]:
    client = await as_user(server, OPS_USER)
    yield client
    await client.close()


@pytest.mark.asyncio
async def test_a_service_user_cannot_publish_to_another_services_subjects(
    contract: Client, ops: Client
) -> None:
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_message(msg: Msg) -> None:
        await received.put(msg)

    await ops.subscribe("smartid.>", cb=on_message)
    await ops.flush()
    await contract.publish("smartid.billing.p00._service.Forged", b"forged")
    await contract.publish("smartid.contract.p00._service.Genuine", b"genuine")
    await contract.flush()
    # One connection's messages arrive in order: had the forged one passed, it would be first.
    first = await asyncio.wait_for(received.get(), timeout=5)
    assert first.subject == "smartid.contract.p00._service.Genuine"
    assert received.empty()


@pytest.mark.asyncio
async def test_a_wrong_password_is_refused(server: NatsServer) -> None:
    # The server answers -ERR 'Authorization Violation' and closes while the client's PING is
    # unread, so TCP may reset the connection before the client reads the -ERR: the refusal
    # is certain, its reason is not. The next test pins the reason whenever it arrives.
    with pytest.raises(ConnectionError, match=r"(?i)authorization|reset by peer"):
        await connect(
            server.url, name="intruder", user="contract", password="guess", initial_attempts=1
        )


@pytest.mark.asyncio
async def test_a_service_manages_its_stream_and_its_consumer_reads_it(
    contract: Client, billing: Client
) -> None:
    producer = contract.jetstream()
    await producer.add_stream(name="SMARTID_CONTRACT", subjects=["smartid.contract.>"])
    ack = await producer.publish(
        "smartid.contract.p03.c1.Approved", b"{}", headers={"Nats-Msg-Id": "evt-1"}
    )
    assert ack.stream == "SMARTID_CONTRACT"

    consumer = billing.jetstream()
    subscription = await consumer.pull_subscribe(
        "smartid.contract.>", durable="billing-contract-events", stream="SMARTID_CONTRACT"
    )
    messages = await subscription.fetch(1, timeout=5)
    assert [m.subject for m in messages] == ["smartid.contract.p03.c1.Approved"]
    await messages[0].ack_sync()


@pytest.mark.asyncio
async def test_a_service_cannot_create_another_services_stream(contract: Client) -> None:
    with pytest.raises((TimeoutError, JetStreamError)):
        await contract.jetstream(timeout=REFUSED_WITHIN_S).add_stream(
            name="SMARTID_BILLING", subjects=["smartid.billing.>"]
        )


@pytest.mark.asyncio
async def test_a_service_cannot_read_a_stream_it_does_not_consume(
    contract: Client, ops: Client
) -> None:
    await ops.jetstream().add_stream(name="SMARTID_BILLING", subjects=["smartid.billing.>"])
    with pytest.raises((TimeoutError, JetStreamError)):
        await contract.jetstream(timeout=REFUSED_WITHIN_S).pull_subscribe(
            "smartid.billing.>", durable="contract-billing-events", stream="SMARTID_BILLING"
        )


@pytest.mark.asyncio
async def test_only_the_ops_user_may_purge_a_stream(contract: Client, ops: Client) -> None:
    await ops.jetstream().add_stream(name="SMARTID_CONTRACT", subjects=["smartid.contract.>"])
    with pytest.raises((TimeoutError, JetStreamError)):
        await contract.jetstream(timeout=REFUSED_WITHIN_S).purge_stream("SMARTID_CONTRACT")
    assert await ops.jetstream().purge_stream("SMARTID_CONTRACT")


def test_the_deploy_cluster_configs_are_valid_nats_server_configs() -> None:
    passwords = {
        f"{name}_NATS_PASSWORD": "p"
        for name in ("CONTRACT", "BILLING", "NOTIFICATION", "IDP_BRIDGE", "OPS")
    }
    deploy = Path(__file__).resolve().parents[3] / "deploy" / "nats"
    configs = sorted(deploy.glob("nats-*.conf"))
    assert len(configs) == 3
    for config in configs:
        result = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(config)],
            capture_output=True,
            text=True,
            cwd=deploy,
            env={**os.environ, **passwords},
            timeout=30,
        )
        assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.asyncio
async def test_a_refused_password_is_reported_even_when_the_retry_only_saw_a_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server answers a wrong password with -ERR and hangs up; the client's retry may see
    only the reset. The refusal is what the operator must read (the real-server test above
    hits either order, by timing)."""
    import nats as nats_module
    from nats.errors import AuthorizationError, NoServersError

    async def refused_then_reset(**options: Any) -> None:
        await options["error_cb"](AuthorizationError())
        await options["error_cb"](ConnectionResetError(104, "Connection reset by peer"))
        raise NoServersError

    monkeypatch.setattr(nats_module, "connect", refused_then_reset)
    with pytest.raises(ConnectionError, match=r"(?i)authorization"):
        await connect("nats://127.0.0.1:1", name="intruder", user="contract", password="guess")
