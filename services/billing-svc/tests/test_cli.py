"""`smartid-billing run`: a billing run from the command line on a real PostgreSQL."""

from __future__ import annotations

import pytest

from billing_svc.application import Billing
from billing_svc.cli import main
from smartid_events.store import event_store_env

from .stories import an_active_contract


def test_the_cli_runs_a_months_billing_and_reports_what_it_issued(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    billing = Billing(env=event_store_env(database_url))
    an_active_contract(billing, "c-1")
    billing.close()
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    assert main(["run", "--period", "2026-05"]) == 0
    assert "1 accounts, 1 invoices issued" in capsys.readouterr().err
    assert main(["run", "--period", "2026-05"]) == 0
    assert "0 invoices issued" in capsys.readouterr().err


def test_the_cli_refuses_a_month_not_yet_over(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    assert main(["run", "--period", "2999-01"]) == 2
    assert "refused" in capsys.readouterr().err
