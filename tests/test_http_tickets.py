"""The ticket and silence JSON API over a real loopback socket, behind the token check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from elvwatch.config.schema import HttpConfig
from elvwatch.rules.faults import FaultState
from elvwatch.rules.silence import Silencer
from elvwatch.tickets import silence_store
from elvwatch.tickets.manager import TicketManager
from elvwatch.tickets.store import Store
from elvwatch.web.api import openapi_document
from elvwatch.web.server import access
from elvwatch.web.tickets import add_ticket_routes
from elvwatch.web.view import VIEW
from tests.ticket_fixtures import SITE, T0, TERMS, Clock, archive, fault

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application],
                                                    TicketManager, Silencer]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}") as store:
        await store.sync_archive(archive(), datetime.fromtimestamp(T0, UTC))
        clock = Clock(T0)
        manager = TicketManager(store, lambda: {SITE: TERMS}, clock)
        silencer = Silencer(clock)
        web_app = web.Application(middlewares=[access])
        # The token middleware reads only this from the daemon's App.
        web_app[VIEW] = SimpleNamespace(  # type: ignore[assignment]
            config=SimpleNamespace(model=SimpleNamespace(http=HttpConfig(
                token_file=token_file, loopback_reads=True))))
        add_ticket_routes(web_app, lambda: manager, lambda: silencer)
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
            yield client, manager, silencer


async def test_ticket_actions_need_the_token_and_report_refusals(
        api: tuple[TestClient[web.Request, web.Application], TicketManager, Silencer]) -> None:
    client, manager, _ = api
    number = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0].ticket
    listed = await (await client.get("/api/v1/tickets?state=open")).json()
    assert [t["number"] for t in listed["tickets"]] == [number]

    url = f"/api/v1/tickets/{number}"
    assert (await client.post(f"{url}/ack", json={"actor": "李四"})).status == 401
    ok = await client.post(f"{url}/ack", json={"actor": "李四", "note": "到场"}, headers=AUTH)
    assert ok.status == 200
    body = await ok.json()
    assert body["ticket"]["state"] == "acknowledged" and body["events"][0]["actor"] == "李四"

    again = await client.post(f"{url}/ack", json={"actor": "李四"}, headers=AUTH)
    assert again.status == 409
    assert "it is acknowledged" in (await again.json())["error"]
    resolved = await client.post(f"{url}/resolve", headers=AUTH, json={
        "actor": "王工", "engineer": "王工", "work_done": "换电源",
        "parts": [{"part": "12V PSU"}]})
    assert resolved.status == 200
    failing = await client.post(f"{url}/sign_off", headers=AUTH,
                                json={"actor": "王工", "name": "张经理", "receipt": "HZ-1"})
    assert failing.status == 409
    assert "cam-01 is still failing" in (await failing.json())["error"]
    bad = await client.post(f"{url}/feedback", headers=AUTH, json={"actor": "a", "rating": 9})
    assert bad.status == 422
    missing = await client.post("/api/v1/tickets/T-1-1/ack", headers=AUTH, json={"actor": "a"})
    assert missing.status == 404

    shown = await (await client.get(url)).json()
    assert [e["kind"] for e in shown["events"]] == ["opened", "acknowledged", "resolved"]
    assert shown["service_records"][0]["parts"][0]["coverage"] == "warranty"


async def test_silences_are_added_listed_expired_and_kept_in_the_store(
        api: tuple[TestClient[web.Request, web.Application], TicketManager, Silencer]) -> None:
    client, manager, silencer = api
    until = datetime.fromtimestamp(T0 + 7200, UTC).isoformat()
    created = await client.post("/api/v1/silences", headers=AUTH, json={
        "matchers": {"site": SITE, "device": ["cam-01", "cam-02"]}, "who": "王工",
        "why": "更换交换机", "until": until})
    assert created.status == 201
    silence = await created.json()
    assert silence["active"] and silence["matchers"]["device"] == ["cam-01", "cam-02"]
    assert silencer.mutes({"site": SITE, "device": "cam-02"}) == silence["id"]
    assert [s.id for s in await silence_store.load(manager.store)] == [silence["id"]]

    listed = await (await client.get("/api/v1/silences")).json()
    assert [s["id"] for s in listed["silences"]] == [silence["id"]]
    expired = await client.post(f"/api/v1/silences/{silence['id']}/expire", headers=AUTH)
    assert expired.status == 200
    assert silencer.mutes({"site": SITE, "device": "cam-02"}) is None
    assert (await silence_store.load(manager.store))[0].until == T0
    assert (await (await client.get("/api/v1/silences")).json())["silences"] == []
    unknown = await client.post("/api/v1/silences", headers=AUTH, json={
        "matchers": {"colour": "red"}, "who": "a", "why": "b", "until": until})
    assert unknown.status == 422 and "unknown matcher" in (await unknown.json())["error"]


def test_ticket_and_silence_routes_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    assert {"/api/v1/tickets", "/api/v1/tickets/{number}", "/api/v1/tickets/{number}/verify",
            "/api/v1/tickets/{number}/sign_off", "/api/v1/tickets/{number}/reclassify",
            "/api/v1/tickets/{number}/rma", "/api/v1/silences",
            "/api/v1/silences/{id}/expire"} <= set(paths)
    assert paths["/api/v1/tickets/{number}/ack"]["post"]["security"] == [{"bearer": []}]
    create = paths["/api/v1/tickets"]["post"]
    assert create["security"] == [{"bearer": []}] and "201" in create["responses"]
    schemas = openapi_document()["components"]["schemas"]
    assert {"site", "description", "reporter", "channel"} <= set(
        schemas["CreateBody"]["required"])
    for model in ("SignOffBody", "ReclassifyBody", "RmaBody", "ResolveBody"):
        assert model in schemas


async def test_a_json_body_nested_too_deep_is_refused_with_400_not_500(
        api: tuple[TestClient[web.Request, web.Application], TicketManager, Silencer]) -> None:
    client, manager, _ = api
    number = (await manager.handle([fault("cam-01", FaultState.FIRING, T0)]))[0].ticket
    for body in ("[" * 100_000 + "]" * 100_000, '{"actor": ' * 40 + '"x"' + "}" * 40):
        answer = await client.post(f"/api/v1/tickets/{number}/ack", data=body,
                                   headers={**AUTH, "Content-Type": "application/json"})
        assert answer.status == 400
        assert (await answer.json())["error"] == \
            "the JSON body is nested more than 32 levels deep"
    assert (await manager.get(number)).ticket.state == "open"
