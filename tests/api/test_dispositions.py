"""Dispositions API: CRUD with the cross-row rules (an outcome sets one disposition, a move
names a run of the business), and an operator's disposition on a call."""

from __future__ import annotations

from typing import get_args

from flask.testing import FlaskClient
from sqlalchemy import select

from libs.common.db import Database
from libs.common.models import OUTCOMES, Call, Run, RunStatus
from services.api.dispositions.schemas import Outcome
from tests.conftest import Tenant


def make_call(db: Database, business_id: int, status: str = "in-progress") -> int:
    with db.session() as session:
        call = Call(business_id=business_id, direction="outbound", to_number="+14155550100",
                    status=status)  # fmt: skip
        session.add(call)
        session.commit()
        return call.id


def make_run(db: Database, business_id: int) -> int:
    with db.session() as session:
        run = Run(business_id=business_id, name="next", status=RunStatus.DRAFT)
        session.add(run)
        session.commit()
        return run.id


def test_the_outcome_literals_match_the_model() -> None:
    assert get_args(Outcome) == OUTCOMES


def test_create_list_update_delete(client: FlaskClient, tenant_a: Tenant) -> None:
    headers = tenant_a.headers
    created = client.post("/api/dispositions", headers=headers, json={
        "code": "callback", "label": "Call back", "outcomes": ["no-answer", "busy", "busy"],
        "action": "retry", "retry_after_h": 24,
    })  # fmt: skip
    assert created.status_code == 201, created.json
    body = created.json
    assert body["outcomes"] == ["no-answer", "busy"]
    assert (body["action"], body["retry_after_h"]) == ("retry", 24)
    listed = client.get("/api/dispositions", headers=headers).json["items"]
    assert [d["code"] for d in listed] == ["callback"]
    patched = client.patch(f"/api/dispositions/{body['id']}", headers=headers,
                           json={"action": "never", "outcomes": []})  # fmt: skip
    assert patched.status_code == 200
    assert (patched.json["action"], patched.json["outcomes"]) == ("never", [])
    assert client.delete(f"/api/dispositions/{body['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/dispositions/{body['id']}", headers=headers).status_code == 404


def test_refusals(client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant) -> None:
    headers = tenant_a.headers

    def create(**body: object) -> tuple[int, str]:
        response = client.post("/api/dispositions", headers=headers, json=body)
        return response.status_code, response.json["error"]["code"] if response.json.get(
            "error") else ""  # fmt: skip

    assert create(code="Bad Code") == (400, "bad_request")
    assert create(code="retry", action="retry") == (400, "bad_request")
    assert create(code="move", action="move") == (400, "bad_request")
    assert create(code="move", action="move", move_to_run_id=99999) == (400, "bad_request")
    b_run = make_run(db, tenant_b.business_id)
    assert create(code="move", action="move", move_to_run_id=b_run) == (400, "bad_request")
    assert create(code="machine", outcomes=["machine"]) == (201, "")
    assert create(code="machine") == (409, "duplicate")
    assert create(code="machine2", outcomes=["fax", "machine"]) == (409, "outcome_taken")
    run = make_run(db, tenant_a.business_id)
    assert create(code="move", action="move", move_to_run_id=run) == (201, "")


def test_an_operator_sets_a_call_s_disposition(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    call_id = make_call(db, tenant_a.business_id)
    url = f"/api/calls/{call_id}/disposition"
    refused = client.put(url, headers=tenant_a.headers, json={"code": "interested"})
    assert refused.status_code == 400 and "interested" in refused.json["error"]["message"]
    client.post("/api/dispositions", headers=tenant_a.headers, json={"code": "interested"})
    answer = client.put(url, headers=tenant_a.headers, json={"code": "interested"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["disposition"], answer.json["disposition_source"]) == (
        "interested", "operator"
    )  # fmt: skip
    shown = client.get(f"/api/calls/{call_id}", headers=tenant_a.headers).json
    assert shown["disposition"] == "interested"
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.id == call_id)).one()
        # Not ended: the worker recycles the lead once its final status comes.
        assert call.outcome_applied_at is None


def test_a_patch_naming_an_unknown_run_is_refused(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    created = client.post("/api/dispositions", headers=tenant_a.headers, json={"code": "x"}).json
    answer = client.patch(f"/api/dispositions/{created['id']}", headers=tenant_a.headers,
                          json={"action": "move", "move_to_run_id": 987654})  # fmt: skip
    assert answer.status_code == 400 and "987654" in answer.json["error"]["message"]
    assert client.get(f"/api/dispositions/{created['id']}", headers=tenant_a.headers).json[
        "action"] == "none"  # fmt: skip
