"""Business A's rows, one of each kind an operation can name, made through the api itself (and
Twilio's and Google's simulated sides when the target allows), so B can be aimed at them.

Every row carries a marker that only A's data contains: B's answers are searched for it.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probe.model import ISOLATION, Check
from probe.target import Client
from probe.twilio import InboundCall, whole_call


class SetupFailed(Exception):
    pass


@dataclass
class Owned:
    #: Path and body parameter name → A's id (lead_id, run_id, …, business_id).
    ids: dict[str, Any] = field(default_factory=dict)
    #: Strings only A's rows contain.
    markers: list[str] = field(default_factory=list)
    inbound: InboundCall | None = None


def _phone() -> str:
    return f"+1415555{random.randint(0, 9999):04d}"


def make(client: Client, record: Callable[[Check], Check]) -> Owned:
    a = client.target.business_a
    owned = Owned()
    marker = "probe-a-" + secrets.token_hex(6)
    owned.markers.append(marker)

    def create(what: str, method: str, path: str, status: set[int], **kwargs: Any) -> Any:
        response = client.api(method, path, a, **kwargs)
        if response.status_code not in status:
            record(Check(ISOLATION, f"{method} {path}", f"setup: {what}", response.status_code,
                         f"could not create A's {what}: {response.text[:200]}"))  # fmt: skip
            raise SetupFailed(what)
        return response.json() if response.content else None

    try:
        _rows(client, owned, marker, create)
    except SetupFailed:
        pass  # recorded as a failed check; the probe goes on with the rows it has
    return owned


def _rows(client: Client, owned: Owned, marker: str, create: Callable[..., Any]) -> None:
    owned.ids["business_id"] = create("profile", "GET", "/api/me", {200})["business"]["id"]
    lead_phone, dnc_phone = _phone(), _phone()
    lead = create("lead", "POST", "/api/leads", {201},
                  json={"phone": lead_phone, "name": marker, "notes": marker})  # fmt: skip
    dnc = create("DNC entry", "POST", "/api/dnc", {200, 201},
                 json={"phone": dnc_phone, "reason": marker})  # fmt: skip
    run = create("run", "POST", "/api/runs", {201}, json={"name": marker, "filter": {}})
    schedule = create("schedule", "POST", "/api/schedules", {201},
                      json={"lead_id": lead["id"], "local_time": "09:00"})  # fmt: skip
    ping = create("job", "POST", "/api/system/ping", {202})
    owned.ids |= {"lead_id": lead["id"], "entry_id": dnc["id"], "run_id": run["id"],
                  "schedule_id": schedule["id"], "job_id": ping["job"]["id"]}  # fmt: skip
    owned.markers += [lead["phone"], dnc["phone"]]
    _calls(client, owned)
    _receipts(client, owned, create)


def _calls(client: Client, owned: Owned) -> None:
    target = client.target
    if target.may_place_calls and target.twilio_auth_token and target.a_number:
        caller = _phone()
        owned.inbound = whole_call(client, target.twilio_auth_token, caller, target.a_number)
        owned.markers += [caller, owned.inbound.call_sid]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = client.api("GET", "/api/calls", target.business_a).json().get("items", [])
        if items:
            owned.ids["call_id"] = items[0]["id"]
            owned.markers.append(items[0]["provider_call_sid"] or items[0]["to"])
            return
        if owned.inbound is None:
            return  # A has no calls and the probe may not place one
        time.sleep(0.2)


def _receipts(client: Client, owned: Owned, create: Callable[..., Any]) -> None:
    a = client.target.business_a
    connections = client.api("GET", "/api/gmail/connections", a).json()["items"]
    if not connections and client.target.may_place_calls:
        _connect_gmail(client)
        connections = client.api("GET", "/api/gmail/connections", a).json()["items"]
    if not connections:
        return
    owned.ids["connection_id"] = connections[0]["id"]
    if client.target.may_place_calls:
        job = create("receipts sync", "POST", "/api/receipts/sync", {202, 409},
                     json={"connection_id": connections[0]["id"]})  # fmt: skip
        job_id = job["job"]["id"] if "job" in job else connections[0]["sync_job_id"]
        wait_for_job(client, a, job_id)
    receipts = client.api("GET", "/api/receipts", a, params={"per_page": 100}).json()["items"]
    for receipt in receipts:
        owned.ids.setdefault("receipt_id", receipt["id"])
        owned.markers.append(receipt["gmail_message_id"])
        if receipt.get("attachments"):
            owned.ids["receipt_id"] = receipt["id"]
            owned.ids["attachment_id"] = receipt["attachments"][0]["id"]
            return


def _connect_gmail(client: Client) -> None:
    """The consent round trip of the README, with the probe as the browser."""
    consent = client.api("GET", "/api/gmail/connect", client.target.business_a)
    if consent.status_code != 200:
        return  # Gmail not configured on this target: no receipts to aim at
    approved = client.send("GET", consent.json()["url"])
    callback = approved.headers.get("Location", "")
    if callback:
        client.send("GET", callback)


def wait_for_job(client: Client, token: str, job_id: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.api("GET", f"/api/jobs/{job_id}", token).json()
        if job.get("status") in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    return job


#: Fields of A's rows that nothing but A may change, by how A reads them.
SNAPSHOT_READS = {
    "lead_id": ("/api/leads/{lead_id}", ("name", "phone", "notes", "email", "timezone")),
    "run_id": ("/api/runs/{run_id}", ("name", "status")),
    "schedule_id": ("/api/schedules/{schedule_id}", ("local_time", "enabled", "timezone", "days")),
    "call_id": ("/api/calls/{call_id}", ("status", "duration_s", "ended_at", "lead_id")),
    "receipt_id": ("/api/receipts/{receipt_id}", ("vendor", "total_amount", "subject")),
}
SNAPSHOT_LISTS = {
    "entry_id": "/api/dnc",
    "connection_id": "/api/gmail/connections",
}


def snapshot(client: Client, owned: Owned) -> dict[str, Any]:
    """What A sees of its rows, for the comparison after B's attempts."""
    a = client.target.business_a
    state: dict[str, Any] = {}
    for name, (path, fields) in SNAPSHOT_READS.items():
        if name in owned.ids:
            response = client.api("GET", path.replace("{" + name + "}", str(owned.ids[name])), a)
            body = response.json() if response.status_code == 200 else {}
            state[name] = (response.status_code, {f: body.get(f) for f in fields})
    for name, path in SNAPSHOT_LISTS.items():
        if name in owned.ids:
            items = client.api("GET", path, a, params={"per_page": 100}).json().get("items", [])
            state[name] = sorted(str(item.get("id")) for item in items)
    return state
