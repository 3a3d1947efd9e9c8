"""Bulk loading and COPY-based saving on real PostgreSQL: same outcome as the library's paths."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from eventsourcing.persistence import IntegrityError

from billing_svc.application import Billing
from billing_svc.bulk import BulkWriter
from billing_svc.domain import facts
from billing_svc.domain.account import Account
from smartid_events.pgstore import PgProcessRecorder
from smartid_events.store import event_store_env


@pytest.fixture
def pg_billing(database_url: str) -> Iterator[Billing]:
    app = Billing(env=event_store_env(database_url))
    yield app
    app.close()


def opened(contract_id: str) -> Account:
    account = Account.open(contract_id, facts.Applied("株式会社テスト", 1000, 10, None))
    account.record(facts.Approved(date(2026, 5, 1)))
    return account


def test_copied_events_are_in_the_notification_log_in_order(pg_billing: Billing) -> None:
    writer = BulkWriter(pg_billing)
    assert writer.is_bulk
    accounts = [opened(f"c-{n}") for n in range(3)]
    to_stored = pg_billing.mapper.to_stored_event
    writer.insert([to_stored(e) for a in accounts for e in a.collect_events()])
    log = pg_billing.recorder.select_notifications(start=None, limit=10)
    assert [(n.originator_id, n.originator_version) for n in log] == [
        (a.id, v) for a in accounts for v in (1, 2)
    ]
    assert [n.id for n in log] == sorted(n.id for n in log)
    assert pg_billing.repository.get(accounts[1].id).tariff.start == date(2026, 5, 1)


def test_a_copied_batch_with_a_stale_version_is_refused_whole(pg_billing: Billing) -> None:
    writer = BulkWriter(pg_billing)
    first = opened("c-1")
    pg_billing.save(first)
    again = opened("c-1")  # the same account's versions 1 and 2, already stored
    other = opened("c-2")
    to_stored = pg_billing.mapper.to_stored_event
    with pytest.raises(IntegrityError):
        writer.insert([to_stored(e) for a in (other, again) for e in a.collect_events()])
    assert len(pg_billing.recorder.select_notifications(start=None, limit=10)) == 2


def test_a_bulk_run_issues_the_same_invoices_as_one_by_one_saves(pg_billing: Billing) -> None:
    for n in range(5):
        pg_billing.record_contract_fact(
            f"c-{n}", facts.Applied("株式会社テスト", 1000, n + 1, None)
        )
        pg_billing.record_contract_fact(f"c-{n}", facts.Approved(date(2026, 5, 1 + 7 * n)))
    report = pg_billing.run_billing("2026-05", issued_on=date(2026, 6, 1), batch_size=2)
    assert report.issued == 5
    totals = [pg_billing.invoices_of(f"c-{n}")[0].total for n in range(5)]
    # 1 ID from May 1: 1000 + tax 100 = 1100. 2 IDs from May 8 (24 d): floor(48000 / 30.4)
    # = 1578, + 157 = 1735. 3 IDs from May 15 (17 d): floor(51000 / 30.4) = 1677, + 167 = 1844.
    # 4 IDs from May 22 (10 d): floor(40000 / 30.4) = 1315, + 131 = 1446. 5 IDs from May 29
    # (3 d): floor(15000 / 30.4) = 493, + 49 = 542.
    assert totals == [1100, 1735, 1844, 1446, 542]
    assert pg_billing.run_billing("2026-05", issued_on=date(2026, 6, 2)).issued == 0


def test_billing_saves_through_our_one_statement_process_recorder(pg_billing: Billing) -> None:
    assert type(pg_billing.recorder) is PgProcessRecorder
