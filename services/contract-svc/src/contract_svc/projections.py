"""The contracts read model (search and lists) and how the event log folds into it.

The projection follows contract-svc's own log: for each row it applies the decoded domain event
to the contract as it stood before (kept in memory during a batch, loaded at the previous
version otherwise), and upserts the summary. The summary row and the projection's position are
written in one transaction, so a crash replays a batch rather than skipping it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    and_,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from contract_svc.application import Contracts
from contract_svc.domain import Contract, next_due_date
from contract_svc.personal import PersonalDataMapper
from smartid_events.log import LogRow

logger = logging.getLogger(__name__)

# A change to the table's shape is a new version: the new table fills itself from position 0
# while the old one is left for dropping, so no migration ever rewrites a read model in place.
READ_MODEL_VERSION = 2
PROJECTION_NAME = f"contract-summaries-v{READ_MODEL_VERSION}"
CACHE_SIZE = 200_000  # contracts kept between batches (a few KiB each)

metadata = MetaData()

summaries = Table(
    f"contract_summaries_v{READ_MODEL_VERSION}",
    metadata,
    Column("id", Uuid(as_uuid=True), primary_key=True),
    Column("tenant_id", String(100), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("contractor_name", Text, nullable=False),
    Column("id_count", Integer, nullable=False),
    Column("monthly_fee_per_id", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, index=True),
    Column("start_date", Date),
    Column("end_date", Date),
    # The first day the scheduler has a change to record (ADR 0011); NULL: nothing pending.
    Column("next_due_date", Date, index=True),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)

positions = Table(
    "projection_positions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class ContractSearch:
    tenant_id: str | None = None
    status: str | None = None
    contractor_name: str | None = None
    applied_from: date | None = None
    applied_to: date | None = None
    start_from: date | None = None
    start_to: date | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class InvalidCursorError(ValueError):
    rule = "cursor-invalid"
    field = "cursor"


def encode_cursor(applied_at: datetime, contract_id: UUID) -> str:
    raw = f"{applied_at.isoformat()}|{contract_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        applied_at, contract_id = base64.urlsafe_b64decode(padded).decode().split("|")
        moment = datetime.fromisoformat(applied_at)
        if moment.tzinfo is None:
            raise ValueError("naive moment")
        return moment, UUID(contract_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursorError("cursor is not one this API returned") from None


def summary_row(contract: Contract, applied_at: datetime, position: int) -> dict[str, Any]:
    return {
        "id": contract.id,
        "tenant_id": contract.tenant_id,
        "status": contract.status.value,
        "contractor_name": contract.contractor.name,
        "id_count": contract.id_count,
        "monthly_fee_per_id": contract.monthly_fee_per_id,
        "applied_at": applied_at,
        "start_date": contract.start_date,
        "end_date": contract.end_date,
        "next_due_date": next_due_date(contract),
        "version": contract.version,
        "position": position,
    }


def item_of(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant_id": row.tenant_id,
        "status": row.status,
        "contractor": {"name": row.contractor_name},
        "plan": {"monthly_fee_per_id": row.monthly_fee_per_id, "id_count": row.id_count},
        "applied_at": row.applied_at.isoformat(),
        "start_date": row.start_date.isoformat() if row.start_date else None,
        "end_date": row.end_date.isoformat() if row.end_date else None,
        "version": row.version,
    }


class ReadModel:
    """Queries over the read model (async SQLAlchemy on asyncpg)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def search(self, query: ContractSearch) -> Page:
        conditions = []
        if query.tenant_id is not None:
            conditions.append(summaries.c.tenant_id == query.tenant_id)
        if query.status is not None:
            conditions.append(summaries.c.status == query.status)
        if query.contractor_name:
            pattern = "%" + query.contractor_name.replace("%", r"\%").replace("_", r"\_") + "%"
            conditions.append(summaries.c.contractor_name.ilike(pattern))
        if query.applied_from is not None:
            conditions.append(func.date(summaries.c.applied_at) >= query.applied_from)
        if query.applied_to is not None:
            conditions.append(func.date(summaries.c.applied_at) <= query.applied_to)
        if query.start_from is not None:
            conditions.append(summaries.c.start_date >= query.start_from)
        if query.start_to is not None:
            conditions.append(summaries.c.start_date <= query.start_to)
        if query.cursor is not None:
            applied_at, contract_id = decode_cursor(query.cursor)
            conditions.append(
                tuple_(summaries.c.applied_at, summaries.c.id) < tuple_(applied_at, contract_id)
            )
        statement = (
            select(summaries)
            .where(and_(True, *conditions))
            .order_by(summaries.c.applied_at.desc(), summaries.c.id.desc())
            .limit(query.limit + 1)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = encode_cursor(rows[-1].applied_at, rows[-1].id) if more and rows else None
        return Page(items=[item_of(r) for r in rows], next_cursor=next_cursor)

    async def due_on(self, day: date) -> list[UUID]:
        """Contracts with a change to record on or before `day`."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(summaries.c.id).where(summaries.c.next_due_date <= day)
            )
            return [row.id for row in rows]

    async def position(self) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(positions.c.position).where(positions.c.name == PROJECTION_NAME)
            )
        return int(value or 0)


def _upsert_summaries() -> TextClause:
    """One statement for a whole batch: a column array per parameter, `unnest`ed into rows.

    The same upsert as `insert(summaries).values(rows).on_conflict_do_update(...)`, with a
    fixed text, so nothing is compiled per batch (compiling 1,000 rows' VALUES cost more than
    folding them).
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = [c.name for c in summaries.c]
    arrays = ", ".join(
        f"CAST(:{c.name} AS {c.type.compile(dialect=dialect)}[])" for c in summaries.c
    )
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != "id")
    return text(
        f"INSERT INTO {summaries.name} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates} "
        f"WHERE {summaries.name}.position < excluded.position"
    )


_UPSERT = _upsert_summaries()
_COLUMN_NAMES = tuple(c.name for c in summaries.c)


def _columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in _COLUMN_NAMES}


class ContractProjection:
    """Folds contract-svc's log into the `contract_summaries_v<N>` table."""

    def __init__(
        self, contracts: Contracts, engine: AsyncEngine, *, cache_size: int = CACHE_SIZE
    ) -> None:
        self.contracts = contracts
        self.engine = engine
        self.table = f"{contracts.name}_events"
        # Contracts as of the last committed batch: without them every contract continued from
        # an earlier batch (all of them, in a rebuild) would be loaded from the event store.
        self._cache: dict[UUID, tuple[Contract, datetime]] = {}
        self._cache_size = cache_size
        self.loads = 0  # contracts loaded from the event store (a rebuild should need none)

    async def reset(self) -> None:
        self._cache.clear()
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(summaries.delete())
            await conn.execute(positions.delete().where(positions.c.name == PROJECTION_NAME))

    async def apply(self, rows: Sequence[LogRow]) -> None:
        """Fold `rows` (in log order) in, and move the position, in one transaction."""
        if not rows:
            return
        working: dict[UUID, tuple[Contract, datetime]] = {}
        try:
            async with self.engine.begin() as conn:
                current = await self._position(conn)
                fresh = [r for r in rows if r.notification_id > current]
                if not fresh:
                    return
                changed = await self._fold(conn, fresh, working)
                if changed:
                    await conn.execute(_UPSERT, _columns_of(list(changed.values())))
                await self._advance(conn, fresh[-1].notification_id)
        except BaseException:
            # Folding mutates cached contracts in place: a rolled-back batch spoils them.
            self._cache.clear()
            raise
        # Only once committed: a rolled-back batch must not leave its states behind.
        self._cache.update(working)
        while len(self._cache) > self._cache_size:
            del self._cache[next(iter(self._cache))]

    async def _fold(
        self,
        conn: AsyncConnection,
        rows: Sequence[LogRow],
        working: dict[UUID, tuple[Contract, datetime]],
    ) -> dict[UUID, Any]:
        mapper = self.contracts.mapper
        changed: dict[UUID, dict[str, Any]] = {}
        stored = [
            StoredEvent(
                originator_id=row.originator_id,
                originator_version=row.originator_version,
                topic=row.topic,
                state=row.state,
            )
            for row in rows
        ]
        # The batch's keys in one query, not one per contract (ADR 0015).
        if isinstance(mapper, PersonalDataMapper):
            mapper.prefetch(stored)
        for row, stored_event in zip(rows, stored, strict=True):
            event = mapper.to_domain_event(stored_event)
            contract_id = UUID(str(row.originator_id))
            contract: object
            if isinstance(event, Contract.Applied):
                contract = event.mutate(None)
                applied_at: datetime = event.timestamp
            elif contract_id in working:
                before, applied_at = working[contract_id]
                contract = cast(Any, event).mutate(before)
            elif (cached := self._cached(contract_id, row.originator_version)) is not None:
                before, applied_at = cached
                contract = cast(Any, event).mutate(before)
            else:
                prior = await self._prior(conn, contract_id, row.originator_version)
                if prior is None:
                    continue  # not a contract (the service aggregate)
                before, applied_at = prior
                contract = cast(Any, event).mutate(before)
            if not isinstance(contract, Contract):
                continue
            working[contract_id] = (contract, applied_at)
            changed[contract_id] = summary_row(contract, applied_at, row.notification_id)
        return changed

    def _cached(self, contract_id: UUID, version: int) -> tuple[Contract, datetime] | None:
        """The cached contract if it stands just before `version`."""
        cached = self._cache.get(contract_id)
        if cached is None or cached[0].version != version - 1:
            return None
        return cached

    async def _prior(
        self, conn: AsyncConnection, contract_id: UUID, version: int
    ) -> tuple[Contract, datetime] | None:
        applied_at = await conn.scalar(
            select(summaries.c.applied_at).where(summaries.c.id == contract_id)
        )
        if applied_at is None:
            return None
        self.loads += 1
        contract: object = self.contracts.repository.get(contract_id, version=version - 1)
        assert isinstance(contract, Contract)
        return contract, applied_at

    async def _position(self, conn: AsyncConnection) -> int:
        value = await conn.scalar(
            select(positions.c.position)
            .where(positions.c.name == PROJECTION_NAME)
            .with_for_update()
        )
        return int(value or 0)

    async def _advance(self, conn: AsyncConnection, position: int) -> None:
        statement = insert(positions).values(name=PROJECTION_NAME, position=position)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[positions.c.name],
                set_={"position": statement.excluded.position},
                where=positions.c.position < statement.excluded.position,
            )
        )
