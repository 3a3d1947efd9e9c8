"""Properties: state always equals the replay of its events; a refused command records nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from contract_builders import a_consent, an_application, replay, state_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract_svc.domain import Contract, ContractRuleError, Initiator, NoticeFor

DAY0 = date(2026, 4, 1)
Command = Callable[[Contract], object]


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def first_user(contract: Contract) -> object:
    from uuid import UUID, uuid4

    return UUID(next(iter(contract.users), str(uuid4())))


offsets = st.integers(min_value=-10, max_value=120)
commands: st.SearchStrategy[Command] = st.one_of(
    offsets.map(lambda n: lambda c: c.approve(day(n))),
    st.sampled_from(["art4.3.1", "art4.3.6", "bogus"]).map(lambda r: lambda c: c.reject(r)),
    st.tuples(st.sampled_from(["art4.3.2", "art9"]), offsets).map(
        lambda a: lambda c: c.revoke_approval(a[0], day(a[1]))
    ),
    st.tuples(st.integers(-1, 6), offsets).map(
        lambda a: lambda c: c.change_id_count(a[0], day(a[1]))
    ),
    st.tuples(
        st.sampled_from(["art11.1.1", "art11.1.2", "x"]),
        offsets,
        st.none() | offsets,
        st.booleans(),
    ).map(
        lambda a: lambda c: c.suspend(a[0], day(a[1]), None if a[2] is None else day(a[2]), a[3])
    ),
    offsets.map(lambda n: lambda c: c.resume(day(n))),
    st.tuples(
        st.sampled_from(list(Initiator)),
        st.sampled_from(["art7", "art8.1.1", "art8.1.5", "art8.2.3"]),
        offsets,
        st.booleans(),
    ).map(
        lambda a: (
            lambda c: c.terminate(
                initiator=a[0],
                reason_code=a[1],
                effective_date=day(a[2]),
                today=day(a[2]),
                written_notice_ref="L-1" if a[3] else None,
                written_notice_received_on=day(0) if a[3] else None,
            )
        )
    ),
    st.sampled_from(list(NoticeFor)).map(
        lambda k: lambda c: c.record_notice_completion(k, a_consent().obtained_at)
    ),
    offsets.map(lambda n: lambda c: c.take_effect(day(n))),
    st.booleans().map(
        lambda consent: (
            lambda c: c.register_user("U", "u@x.example", a_consent() if consent else None)
        )
    ),
    st.just(lambda c: c.remove_user(first_user(c))),  # type: ignore[arg-type]
    st.just(lambda c: c.report_compromise(first_user(c), a_consent().obtained_at)),  # type: ignore[arg-type]
    st.just(lambda c: c.reissue_user_id(first_user(c), "lost")),  # type: ignore[arg-type]
    offsets.map(lambda n: lambda c: c.start_construction(day(n))),
    offsets.map(lambda n: lambda c: c.cancel_construction(day(n))),
    st.just(lambda c: c.erase_personal_data()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, max_size=25), st.integers(1, 4), st.booleans())
def test_any_command_sequence_equals_the_replay_of_its_events(
    sequence: list[Command], id_count: int, construction: bool
) -> None:
    contract = an_application(id_count=id_count, construction_fee=1000 if construction else None)
    for command in sequence:
        recorded_before = len(contract.pending_events)
        state_before = state_of(contract)
        try:
            command(contract)
        except ContractRuleError:
            assert len(contract.pending_events) == recorded_before
            assert state_of(contract) == state_before
    assert state_of(replay(contract)) == state_of(contract)
