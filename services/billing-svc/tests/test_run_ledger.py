"""RunLedger: a finished period stays finished; it is recorded once."""

from datetime import date

from billing_svc.domain.run_ledger import RunLedger


def test_a_finished_period_is_recorded_once_and_only_it_is_finished() -> None:
    ledger = RunLedger()
    ledger.finish("2026-05", date(2026, 6, 1), accounts=3, issued=2)
    ledger.finish("2026-05", date(2026, 6, 2), accounts=3, issued=0)
    assert ledger.is_finished("2026-05")
    assert not ledger.is_finished("2026-06")
    assert [type(e).__name__ for e in ledger.collect_events()] == ["Created", "RunFinished"]
    assert ledger.finished == {"2026-05": date(2026, 6, 1)}
