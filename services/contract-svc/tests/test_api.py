"""contract-svc over HTTP against a real PostgreSQL and nats-server: paths, statuses, problems."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from contract_builders import TERMS
from prometheus_client.parser import text_string_to_metric_families

from contract_svc.main import create_app
from contract_svc.projections import ContractProjection
from contract_svc.settings import ContractSettings
from smartid_events.auth import SCOPES, mint_token
from smartid_events.log import read_log
from smartid_events.testing.plugin import NatsUnderTest

SECRET = "s" * 48
pytestmark = pytest.mark.asyncio

OPERATOR = mint_token(SECRET, sub="op-1", role="operator", scopes=SCOPES)
CONTRACTOR_A = mint_token(
    SECRET,
    sub="admin-a",
    role="contractor",
    tenant="tenant-a",
    scopes=["contracts:read", "contracts:write"],
)
CONTRACTOR_B = mint_token(
    SECRET,
    sub="admin-b",
    role="contractor",
    tenant="tenant-b",
    scopes=["contracts:read", "contracts:write"],
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def an_application(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contractor": {
            "name": "株式会社テスト",
            "address": "東京都渋谷区神宮前1-5-1",
            "email": "admin@example.co.jp",
        },
        "plan": {"monthly_fee_per_id": 300, "id_count": 10},
        "terms_version": TERMS,
        "agreed_to_terms": True,
    }
    body.update(changes)
    return body


class Api:
    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    async def apply(self, token: str = OPERATOR, **changes: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/contracts", json=an_application(**changes), headers=auth(token)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def active(self, token: str = OPERATOR, **changes: Any) -> dict[str, Any]:
        contract = await self.apply(token, **changes)
        response = await self.client.post(
            f"/v1/contracts/{contract['id']}/approval",
            json={"start_date": "2026-07-01"},
            headers=auth(OPERATOR),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def history(self, contract_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/contracts/{contract_id}/events", headers=auth(OPERATOR)
        )
        assert response.status_code == 200
        events: list[dict[str, Any]] = response.json()
        return events


# Every test runs with the single writer as a thread of the API process and as a process of
# its own (ADR 0022): both must answer alike.
@pytest_asyncio.fixture(params=["thread", "process"])
async def api(
    database_url: str, nats: NatsUnderTest, request: pytest.FixtureRequest
) -> AsyncIterator[Api]:
    settings = ContractSettings(
        database_url=database_url,
        nats_url=nats.url,
        jwt_secret=SECRET,
        log_level="WARNING",
        command_writer=request.param,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.contracts.publish_terms(TERMS, "第1条 ...", date(2026, 4, 1))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contract") as client:
            yield Api(client, app)


async def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# Application and approval


async def test_an_application_is_recorded_as_applied(api: Api) -> None:
    contract = await api.apply()
    assert contract["status"] == "applied"
    assert contract["version"] == 1
    got = await api.client.get(f"/v1/contracts/{contract['id']}", headers=auth(OPERATOR))
    assert got.json()["contractor"]["name"] == "株式会社テスト"
    assert got.headers["ETag"] == '"1"'


async def test_a_contractors_application_belongs_to_its_own_tenant(api: Api) -> None:
    contract = await api.apply(CONTRACTOR_A)
    assert contract["tenant_id"] == "tenant-a"


async def test_an_application_without_agreement_to_the_terms_names_article_4(api: Api) -> None:
    response = await api.client.post(
        "/v1/contracts", json=an_application(agreed_to_terms=False), headers=auth(OPERATOR)
    )
    body = await problem(response, 422)
    assert body["rule"] == "terms-must-be-agreed"
    assert body["article"] == "4(1)"


async def test_a_missing_field_is_named_in_the_problem(api: Api) -> None:
    application = an_application()
    del application["plan"]["id_count"]
    response = await api.client.post("/v1/contracts", json=application, headers=auth(OPERATOR))
    body = await problem(response, 422)
    assert {"field": "plan.id_count", "message": "Field required"} in body["errors"]


async def test_approval_sets_the_start_date(api: Api) -> None:
    contract = await api.active()
    assert contract["status"] == "active"
    assert contract["start_date"] == "2026-07-01"


async def test_a_rejected_application_cannot_be_approved(api: Api) -> None:
    contract = await api.apply()
    rejected = await api.client.post(
        f"/v1/contracts/{contract['id']}/rejection",
        json={"reason_code": "art4.3.2"},
        headers=auth(OPERATOR),
    )
    assert rejected.json()["status"] == "rejected"
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/approval",
        json={"start_date": "2026-07-01"},
        headers=auth(OPERATOR),
    )
    body = await problem(response, 409)
    assert body["article"]


async def test_a_rejection_reason_outside_article_4_3_is_refused(api: Api) -> None:
    contract = await api.apply()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/rejection",
        json={"reason_code": "art4.3.9"},
        headers=auth(OPERATOR),
    )
    body = await problem(response, 422)
    assert body["rule"] == "reason-code-unknown"
    assert len(await api.history(contract["id"])) == 1


# Authentication and tenancy


async def test_a_request_without_a_token_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/contracts", json=an_application())
    await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_contractor_cannot_approve(api: Api) -> None:
    contract = await api.apply(CONTRACTOR_A)
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/approval",
        json={"start_date": "2026-07-01"},
        headers=auth(CONTRACTOR_A),
    )
    await problem(response, 403)


async def test_another_tenants_contract_is_not_found(api: Api) -> None:
    contract = await api.apply(CONTRACTOR_A)
    for path in ("", "/events", "/export"):
        response = await api.client.get(
            f"/v1/contracts/{contract['id']}{path}", headers=auth(CONTRACTOR_B)
        )
        await problem(response, 404)
    change = await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 3, "effective_date": "2026-08-01"},
        headers=auth(CONTRACTOR_B),
    )
    await problem(change, 404)
    assert len(await api.history(contract["id"])) == 1


async def test_a_contractor_cannot_terminate_on_the_companys_side(api: Api) -> None:
    contract = await api.active(CONTRACTOR_A)
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/termination",
        json={"initiator": "company", "reason_code": "art8.2.1", "effective_date": "2026-09-30"},
        headers=auth(CONTRACTOR_A),
    )
    await problem(response, 403)


async def test_an_unknown_contract_is_not_found(api: Api) -> None:
    response = await api.client.get(f"/v1/contracts/{uuid4()}", headers=auth(OPERATOR))
    await problem(response, 404)


# Versions and retries


async def test_a_stale_if_match_is_refused_with_412_and_changes_nothing(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 12, "effective_date": "2026-08-01"},
        headers={**auth(OPERATOR), "If-Match": '"1"'},
    )
    await problem(response, 412)
    assert len(await api.history(contract["id"])) == 2


async def test_a_current_if_match_is_accepted(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 12, "effective_date": "2026-08-01"},
        headers={**auth(OPERATOR), "If-Match": f'"{contract["version"]}"'},
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == contract["version"] + 1


async def test_a_malformed_if_match_is_a_bad_request(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 12, "effective_date": "2026-08-01"},
        headers={**auth(OPERATOR), "If-Match": "yesterday"},
    )
    await problem(response, 400)


async def test_a_repeated_idempotency_key_returns_the_first_result_and_records_nothing(
    api: Api,
) -> None:
    headers = {**auth(OPERATOR), "Idempotency-Key": "apply-42"}
    first = await api.client.post("/v1/contracts", json=an_application(), headers=headers)
    second = await api.client.post("/v1/contracts", json=an_application(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    contract_id = first.json()["id"]
    change = {"id_count": 11, "effective_date": "2026-08-01"}
    key = {**auth(OPERATOR), "Idempotency-Key": "count-1"}
    await api.client.post(f"/v1/contracts/{contract_id}/approval",
                          json={"start_date": "2026-07-01"}, headers=auth(OPERATOR))  # fmt: skip
    for _ in range(3):
        response = await api.client.post(
            f"/v1/contracts/{contract_id}/id-count", json=change, headers=key
        )
        assert response.status_code == 200
    assert [e["type"] for e in await api.history(contract_id)].count("IdCountChanged") == 1


def stall_the_writer(api: Api, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold every batch until the returned event is set; commands time out after 0.3 s."""
    committer = api.app.state.contracts.committer
    if committer is None:
        pytest.skip("the writer runs in a process of its own: its committer is not at hand")
    release = threading.Event()
    commit = committer._commit

    def stalled(batch: Any) -> None:
        release.wait(10)
        commit(batch)

    monkeypatch.setattr(committer, "submit_timeout_s", 0.3)
    monkeypatch.setattr(committer, "_commit", stalled)
    return release


async def until_settled(
    api: Api, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    for _ in range(100):
        response = await api.client.post(path, json=body, headers=headers)
        if response.status_code != 409 or "in-progress" not in response.text:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError("the Idempotency-Key stayed claimed")


async def test_a_command_still_pending_at_the_timeout_is_answered_once_it_commits(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = await api.active()
    path, change = (
        f"/v1/contracts/{contract['id']}/id-count",
        {"id_count": 11, "effective_date": "2026-08-01"},
    )
    key = {**auth(OPERATOR), "Idempotency-Key": "slow-1"}
    release = stall_the_writer(api, monkeypatch)
    try:
        body = await problem(await api.client.post(path, json=change, headers=key), 503)
        assert body["rule"] == "commit-pending"
        retried = await api.client.post(path, json=change, headers=key)
        assert (await problem(retried, 409))["rule"] == "idempotency-key-in-progress"
    finally:
        release.set()
    settled = await until_settled(api, path, change, key)
    assert settled.status_code == 200 and settled.headers["Idempotent-Replayed"] == "true"
    assert settled.json()["plan"]["id_count"] == 11
    assert [e["type"] for e in await api.history(contract["id"])].count("IdCountChanged") == 1


async def test_a_pending_command_that_is_refused_releases_its_key(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = await api.active()  # approved already: a second approval is refused
    path, approval = f"/v1/contracts/{contract['id']}/approval", {"start_date": "2026-07-01"}
    key = {**auth(OPERATOR), "Idempotency-Key": "slow-2"}
    release = stall_the_writer(api, monkeypatch)
    try:
        response = await api.client.post(path, json=approval, headers=key)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    finally:
        release.set()
    settled = await until_settled(api, path, approval, key)
    assert settled.status_code == 409 and "Idempotent-Replayed" not in settled.headers
    assert (await api.history(contract["id"]))[-1]["type"] == "Approved"


async def test_an_idempotency_key_reused_for_another_request_is_refused(api: Api) -> None:
    headers = {**auth(OPERATOR), "Idempotency-Key": "k-1"}
    await api.client.post("/v1/contracts", json=an_application(), headers=headers)
    other = an_application(plan={"monthly_fee_per_id": 300, "id_count": 99})
    response = await api.client.post("/v1/contracts", json=other, headers=headers)
    body = await problem(response, 422)
    assert body["rule"] == "idempotency-key-reused"


async def test_concurrent_commands_on_one_contract_lose_no_update(api: Api) -> None:
    contract = await api.active()

    async def register(i: int) -> int:
        response = await api.client.post(
            f"/v1/contracts/{contract['id']}/users",
            json={
                "name": f"利用者{i}",
                "email": f"user{i}@example.co.jp",
                "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
            },
            headers=auth(OPERATOR),
        )
        return response.status_code

    statuses = await asyncio.gather(*(register(i) for i in range(8)))
    assert statuses == [201] * 8
    got = await api.client.get(f"/v1/contracts/{contract['id']}", headers=auth(OPERATOR))
    assert len(got.json()["users"]) == 8


# Users, ID counts, suspension, termination


async def test_a_user_without_recorded_consent_is_refused_under_article_26_3(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/users",
        json={"name": "山田太郎", "email": "taro@example.co.jp"},
        headers=auth(OPERATOR),
    )
    body = await problem(response, 422)
    assert body["article"] == "26(3)"


async def test_a_user_with_consent_is_registered(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/users",
        json={
            "name": "山田太郎",
            "email": "taro@example.co.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        },
        headers=auth(OPERATOR),
    )
    assert response.status_code == 201, response.text
    assert response.json()["user_id"]


async def test_the_id_count_never_falls_below_the_registered_users(api: Api) -> None:
    contract = await api.active(plan={"monthly_fee_per_id": 300, "id_count": 1})
    await api.client.post(
        f"/v1/contracts/{contract['id']}/users",
        json={
            "name": "山田太郎",
            "email": "taro@example.co.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        },
        headers=auth(OPERATOR),
    )
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/users",
        json={
            "name": "山田花子",
            "email": "hanako@example.co.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        },
        headers=auth(OPERATOR),
    )
    body = await problem(response, 409)
    assert body["rule"] == "id-count-covers-users"


async def test_a_suspension_without_a_period_is_refused_unless_urgent(api: Api) -> None:
    contract = await api.active()
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/suspension",
        json={"reason_code": "art11.1.1", "start_date": "2026-08-01"},
        headers=auth(OPERATOR),
    )
    body = await problem(response, 422)
    assert body["article"] == "11(2)"
    urgent = await api.client.post(
        f"/v1/contracts/{contract['id']}/suspension",
        json={"reason_code": "art11.1.2", "start_date": "2026-08-01", "urgent": True},
        headers=auth(OPERATOR),
    )
    assert urgent.status_code == 200, urgent.text


async def test_suspension_then_resumption(api: Api) -> None:
    contract = await api.active()
    suspended = await api.client.post(
        f"/v1/contracts/{contract['id']}/suspension",
        json={"reason_code": "art11.1.2", "start_date": "2026-08-01", "urgent": True},
        headers=auth(OPERATOR),
    )
    assert suspended.json()["status"] == "suspended", suspended.text
    resumed = await api.client.post(
        f"/v1/contracts/{contract['id']}/resumption",
        json={"effective_date": "2026-08-10"},
        headers=auth(OPERATOR),
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"


async def test_a_contractors_termination_needs_a_written_notice_under_article_7(
    api: Api,
) -> None:
    contract = await api.active(CONTRACTOR_A)
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/termination",
        json={"initiator": "contractor", "reason_code": "art7", "effective_date": "2026-09-30"},
        headers=auth(CONTRACTOR_A),
    )
    body = await problem(response, 422)
    assert body["article"] == "7"
    accepted = await api.client.post(
        f"/v1/contracts/{contract['id']}/termination",
        json={
            "initiator": "contractor",
            "reason_code": "art7",
            "effective_date": "2026-09-30",
            "written_notice_ref": "DOC-2026-0042",
            "written_notice_received_on": "2026-06-10",
        },
        headers=auth(CONTRACTOR_A),
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["end_date"] == "2026-09-30"


async def test_nothing_changes_a_terminated_contract(api: Api) -> None:
    contract = await api.active()
    ended = await api.client.post(
        f"/v1/contracts/{contract['id']}/termination",
        json={
            "initiator": "contractor",
            "reason_code": "art7",
            "effective_date": "2026-08-10",
            "written_notice_ref": "DOC-1",
            "written_notice_received_on": "2026-08-01",
        },
        headers=auth(OPERATOR),
    )
    assert ended.json()["status"] == "terminated", ended.text
    response = await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 3, "effective_date": "2026-08-05"},
        headers=auth(OPERATOR),
    )
    await problem(response, 409)


# Reads


async def test_history_lists_the_contracts_events_oldest_first(api: Api) -> None:
    contract = await api.active()
    types = [e["type"] for e in await api.history(contract["id"])]
    assert types == ["Applied", "Approved"]


async def test_as_of_shows_the_contract_as_it_was(api: Api) -> None:
    contract = await api.apply()
    history = await api.history(contract["id"])
    applied_at = history[0]["timestamp"]
    await api.client.post(
        f"/v1/contracts/{contract['id']}/approval",
        json={"start_date": "2026-07-01"},
        headers=auth(OPERATOR),
    )
    then = await api.client.get(
        f"/v1/contracts/{contract['id']}", params={"as_of": applied_at}, headers=auth(OPERATOR)
    )
    assert then.json()["status"] == "applied"
    now = await api.client.get(f"/v1/contracts/{contract['id']}", headers=auth(OPERATOR))
    assert now.json()["status"] == "active"


async def test_export_holds_the_contract_and_all_its_events(api: Api) -> None:
    contract = await api.active()
    response = await api.client.get(
        f"/v1/contracts/{contract['id']}/export", headers=auth(OPERATOR)
    )
    assert response.status_code == 200
    document = response.json()
    assert document["contract"]["id"] == contract["id"]
    assert [e["type"] for e in document["events"]] == ["Applied", "Approved"]
    assert "attachment" in response.headers["Content-Disposition"]


async def test_the_service_log_replays_published_events_after_a_position(api: Api) -> None:
    contract = await api.active()
    page = await api.client.get("/v1/events", params={"after": 0}, headers=auth(OPERATOR))
    assert page.status_code == 200, page.text
    events = page.json()["events"]
    types = [e["type"] for e in events if e["subject"] == contract["id"]]
    assert types == ["smartid.contract.Applied.v1", "smartid.contract.Approved.v1"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)
    later = await api.client.get(
        "/v1/events", params={"after": positions[-1]}, headers=auth(OPERATOR)
    )
    assert later.json()["events"] == []


async def test_the_service_log_needs_the_events_scope(api: Api) -> None:
    response = await api.client.get("/v1/events", headers=auth(CONTRACTOR_A))
    await problem(response, 403)


async def project(api: Api) -> None:
    """Fold the whole log into the read model, as the worker does."""
    projection = ContractProjection(api.app.state.contracts, api.app.state.read_model.engine)
    pool = api.app.state.log_pool
    position = await api.app.state.read_model.position()
    while rows := await read_log(pool, projection.table, position, 100):
        await projection.apply(rows)
        position = rows[-1].notification_id


async def test_search_pages_through_contracts_with_a_cursor(api: Api) -> None:
    for i in range(5):
        await api.apply(contractor={"name": f"検索会社{i}", "address": "東京", "email": "a@b.jp"})
    await project(api)
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params: dict[str, Any] = {"limit": 2, "contractor_name": "検索会社"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/contracts", params=params, headers=auth(OPERATOR))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_search_filters_by_status_and_confines_contractors(api: Api) -> None:
    mine = await api.active(CONTRACTOR_A)
    await api.apply(CONTRACTOR_B)
    await project(api)
    page = await api.client.get(
        "/v1/contracts", params={"status": "active"}, headers=auth(CONTRACTOR_A)
    )
    assert [item["id"] for item in page.json()["items"]] == [mine["id"]]
    others = await api.client.get("/v1/contracts", headers=auth(CONTRACTOR_B))
    assert all(item["tenant_id"] == "tenant-b" for item in others.json()["items"])


async def test_a_forged_cursor_is_refused(api: Api) -> None:
    response = await api.client.get(
        "/v1/contracts", params={"cursor": "not-a-cursor"}, headers=auth(OPERATOR)
    )
    body = await problem(response, 422)
    assert body["rule"] == "cursor-invalid"


async def test_erasure_leaves_no_personal_data_in_the_read_model(api: Api) -> None:
    contract = await api.active()
    await api.client.post(
        f"/v1/contracts/{contract['id']}/termination",
        json={
            "initiator": "contractor",
            "reason_code": "art7",
            "effective_date": "2026-08-10",
            "written_notice_ref": "DOC-1",
            "written_notice_received_on": "2026-08-01",
        },
        headers=auth(OPERATOR),
    )
    erased = await api.client.post(
        f"/v1/contracts/{contract['id']}/erasure", headers=auth(OPERATOR)
    )
    assert erased.status_code == 200, erased.text
    await project(api)
    page = await api.client.get("/v1/contracts", headers=auth(OPERATOR))
    names = [i["contractor"]["name"] for i in page.json()["items"] if i["id"] == contract["id"]]
    assert names and "テスト" not in names[0]


async def test_the_requests_correlation_id_travels_into_the_published_event(api: Api) -> None:
    response = await api.client.post(
        "/v1/contracts",
        json=an_application(),
        headers={**auth(OPERATOR), "X-Correlation-Id": "portal-req-0001"},
    )
    assert response.headers["X-Correlation-Id"] == "portal-req-0001"
    contract_id = response.json()["id"]
    page = await api.client.get("/v1/events", params={"after": 0}, headers=auth(OPERATOR))
    applied = [e for e in page.json()["events"] if e["subject"] == contract_id]
    assert applied[0]["correlationid"] == "portal-req-0001"
    history = await api.history(contract_id)
    assert "_correlation_id" not in history[0]["data"]


async def test_a_search_term_with_a_nul_character_is_refused_not_a_server_error(api: Api) -> None:
    response = await api.client.get(
        "/v1/contracts", params={"contractor_name": "a\x00b"}, headers=auth(OPERATOR)
    )
    body = await problem(response, 422)
    assert body["errors"][0]["field"] == "query.contractor_name"


async def test_a_cursor_without_a_time_zone_is_refused(api: Api) -> None:
    import base64

    forged = base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{uuid4()}".encode()).decode()
    forged = forged.rstrip("=")
    response = await api.client.get(
        "/v1/contracts", params={"cursor": forged}, headers=auth(OPERATOR)
    )
    body = await problem(response, 422)
    assert body["rule"] == "cursor-invalid"


async def test_a_name_with_a_control_character_is_refused_naming_the_field(api: Api) -> None:
    application = an_application()
    application["contractor"]["name"] = "株式会社\x00テスト"
    response = await api.client.post("/v1/contracts", json=application, headers=auth(OPERATOR))
    body = await problem(response, 422)
    assert body["errors"][0]["field"] == "contractor.name"


async def test_contract_svc_is_ready_when_postgres_and_nats_answer(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200, response.text
    writer = {"writer": "ok"} if api.app.state.writer is not None else {}
    assert response.json()["checks"] == {"postgres": "ok", "nats": "ok", **writer}


async def test_an_id_change_takes_effect_once_its_notice_is_complete(api: Api) -> None:
    contract = await api.active()
    user = await api.client.post(
        f"/v1/contracts/{contract['id']}/users",
        json={
            "name": "山田太郎",
            "email": "taro@example.co.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        },
        headers=auth(OPERATOR),
    )
    user_id = user.json()["user_id"]
    base = f"/v1/contracts/{contract['id']}/users/{user_id}"
    await api.client.post(f"{base}/compromise", json={}, headers=auth(OPERATOR))
    reissued = await api.client.post(
        f"{base}/reissue", json={"reason": "スマートフォン紛失"}, headers=auth(OPERATOR)
    )
    assert reissued.status_code == 201, reissued.text
    new_id = reissued.json()["user_id"]
    before = await api.client.get(f"/v1/contracts/{contract['id']}", headers=auth(OPERATOR))
    assert [u["user_id"] for u in before.json()["users"]] == [user_id]  # Art. 23(7): not yet
    done = await api.client.post(
        f"/v1/contracts/{contract['id']}/notice-completion",
        json={"notice_for": "reissue", "completed_at": "2026-11-25T09:00:00+09:00",
              "user_id": user_id},
        headers=auth(OPERATOR),
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert [u["user_id"] for u in done.json()["users"]] == [new_id]


async def test_commands_are_refused_with_503_once_the_writer_process_is_gone(api: Api) -> None:
    writer = api.app.state.writer
    if writer is None:
        pytest.skip("the writer is a thread of this process")
    contract = await api.active()
    ready = await api.client.get("/readyz")
    assert ready.json()["checks"]["writer"] == "ok"
    writer.process.kill()
    await asyncio.to_thread(writer.process.wait)
    change = {"id_count": 11, "effective_date": "2026-08-01"}
    path = f"/v1/contracts/{contract['id']}/id-count"
    for _ in range(100):  # until the API process has seen its socket close
        response = await api.client.post(path, json=change, headers=auth(OPERATOR))
        if response.status_code == 503:
            break
        await asyncio.sleep(0.05)
    body = await problem(response, 503)
    assert "writer process" in body["detail"]
    ready = await api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writer"].startswith("failing")
    # Reads still work, and nothing was recorded.
    assert [e["type"] for e in await api.history(contract["id"])].count("IdCountChanged") == 0


async def test_a_command_in_flight_when_the_writer_dies_keeps_its_idempotency_key_claimed(
    api: Api,
) -> None:
    writer = api.app.state.writer
    if writer is None:
        pytest.skip("the writer is a thread of this process")
    contract = await api.active()
    path = f"/v1/contracts/{contract['id']}/id-count"
    change = {"id_count": 11, "effective_date": "2026-08-01"}
    headers = {**auth(OPERATOR), "Idempotency-Key": "in-flight-1"}
    writer.process.send_signal(signal.SIGSTOP)  # the command reaches the socket, not a batch
    try:
        first = asyncio.ensure_future(api.client.post(path, json=change, headers=headers))
        for _ in range(100):
            if writer._waiting:
                break
            await asyncio.sleep(0.01)
        assert writer._waiting, "the command never left the API process"
    finally:
        writer.process.kill()
    await asyncio.to_thread(writer.process.wait)
    body = await problem(await first, 503)
    assert "may have been committed" in body["detail"]
    # Its outcome is unknown: a retry must not run it again, whatever the writer did with it.
    retry = await api.client.post(path, json=change, headers=headers)
    assert (await problem(retry, 409))["rule"] == "idempotency-key-in-progress"
    # A command that never reached the writer frees its key: it recorded nothing.
    other = {**auth(OPERATOR), "Idempotency-Key": "after-death-1"}
    await problem(await api.client.post(path, json=change, headers=other), 503)
    again = await api.client.post(path, json=change, headers=other)
    assert "writer process" in (await problem(again, 503))["detail"]


async def commands_committed(api: Api) -> float:
    """The writer's count of committed commands, as `/metrics` shows it."""
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return sum(
        sample.value
        for sample in families["smartid_group_commit_batch_commands"].samples
        if sample.name.endswith("_sum") and sample.labels["application"] == "contracts"
    )


async def test_metrics_count_the_writers_commands_wherever_it_runs(api: Api) -> None:
    before = await commands_committed(api)
    contract = await api.active()
    await api.client.post(
        f"/v1/contracts/{contract['id']}/id-count",
        json={"id_count": 11, "effective_date": "2026-08-01"},
        headers=auth(OPERATOR),
    )
    assert await commands_committed(api) - before == 3


async def test_many_concurrent_commands_on_one_contract_lose_no_update(api: Api) -> None:
    contract = await api.active(plan={"monthly_fee_per_id": 300, "id_count": 50})
    path = f"/v1/contracts/{contract['id']}/users"
    users = [
        {
            "name": f"利用者{n}",
            "email": f"user{n}@example.jp",
            "consent": {"obtained_at": "2026-06-01T09:00:00+09:00", "method": "paper"},
        }
        for n in range(40)
    ]
    answers = await asyncio.gather(
        *(api.client.post(path, json=user, headers=auth(OPERATOR)) for user in users)
    )
    assert [a.status_code for a in answers] == [201] * 40
    assert len({a.json()["user_id"] for a in answers}) == 40
    history = await api.history(contract["id"])
    assert [e["type"] for e in history].count("UserRegistered") == 40
    final = await api.client.get(f"/v1/contracts/{contract['id']}", headers=auth(OPERATOR))
    assert final.json()["version"] == contract["version"] + 40
