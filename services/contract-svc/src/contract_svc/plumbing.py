"""contract-svc's plugs for the `smartid` CLI: its log source and its read model."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from contract_svc.application import Contracts
from contract_svc.projections import ContractProjection
from contract_svc.published import publish_correlated
from smartid_events.log import LogSource, events_table, translator_from_application
from smartid_events.store import event_store_env, sqlalchemy_url


def log_source(database_url: str) -> LogSource:
    """`smartid stream rebuild --service contract`: the events table and the relay's translator."""
    contracts = Contracts(env=event_store_env(database_url))
    return LogSource(
        table=events_table(Contracts.name),
        translator=translator_from_application(contracts, publish_correlated),
    )


class OwnedContractProjection(ContractProjection):
    """The projection with the application and engine it made, closed after the rebuild."""

    async def close(self) -> None:
        await self.engine.dispose()
        self.contracts.close()


async def projection(database_url: str) -> OwnedContractProjection:
    """`smartid read-model rebuild --projection contract-summaries`."""
    contracts = Contracts(env=event_store_env(database_url))
    engine = create_async_engine(sqlalchemy_url(database_url), pool_size=2)
    return OwnedContractProjection(contracts, engine)
