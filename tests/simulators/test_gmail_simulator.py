"""The simulator speaks Gmail's and Google OAuth's wire formats: the real client libraries
(googleapiclient over httplib2, google-auth credentials) drive it unchanged."""

from __future__ import annotations

import base64
import email
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError

from simulators.gmail.query import QueryError, parse
from tests.support.gmail_sim import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    SCOPE,
    GmailSimulator,
    gmail_simulator_thread,
)

START = "2026-09-01T00:00:00Z"
CALLBACK = "http://127.0.0.1:9/oauth/google/callback"
MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


@pytest.fixture
def sim() -> Iterator[GmailSimulator]:
    with gmail_simulator_thread() as simulator:
        yield simulator


def connected(sim: GmailSimulator, email_address: str = EMAIL) -> Any:
    return sim.service(sim.credentials(sim.issue_refresh_token(email_address)))


def list_all(gmail: Any, q: str, page_size: int = 7) -> tuple[list[str], int]:
    """Every id matching ``q``, following nextPageToken; and how many pages it took."""
    ids: list[str] = []
    pages, token = 0, None
    while True:
        messages = gmail.users().messages()
        response = messages.list(userId="me", q=q, maxResults=page_size, pageToken=token).execute()
        pages += 1
        ids += [m["id"] for m in response.get("messages", [])]
        token = response.get("nextPageToken")
        if not token:
            return ids, pages


def b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data)


def headers_of(part: dict[str, Any]) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in part["headers"]}


def consent(sim: GmailSimulator, **extra: str) -> requests.Response:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": SCOPE,
        "state": "st/ate+1==",
        "access_type": "offline",
        "prompt": "consent",
    }
    return requests.get(sim.auth_uri, params=params | extra, allow_redirects=False, timeout=10)


# --- OAuth -----------------------------------------------------------------------------------


def test_consent_redirect_and_code_exchange_connect_the_real_client(sim: GmailSimulator) -> None:
    response = consent(sim, login_hint="Alice@Example.com")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    reply = parse_qs(location.query)
    assert reply["state"] == ["st/ate+1=="]
    code = reply["code"][0]

    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    tokens = requests.post(sim.token_uri, data=form | secrets, timeout=10).json()
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert tokens["expires_in"] == 3599 and tokens["token_type"] == "Bearer"
    assert tokens["scope"] == SCOPE

    reused = requests.post(sim.token_uri, data=form | secrets, timeout=10)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    gmail = sim.service(sim.credentials(tokens["refresh_token"]))
    assert gmail.users().getProfile(userId="me").execute()["emailAddress"] == "alice@example.com"
    assert sim.counts()["calls"]["token.authorization_code"] == 2


def test_consent_errors(sim: GmailSimulator) -> None:
    assert consent(sim, client_id="someone-else").status_code == 400
    sim.scenario(consent_denied=True)
    denied = parse_qs(urlsplit(consent(sim).headers["Location"]).query)
    assert denied == {"error": ["access_denied"], "state": ["st/ate+1=="]}


def test_token_endpoint_checks_client_and_redirect_uri(sim: GmailSimulator) -> None:
    code = parse_qs(urlsplit(consent(sim).headers["Location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    bad = requests.post(sim.token_uri, data=form, auth=(CLIENT_ID, "wrong"), timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    mismatch = form | {"redirect_uri": "http://127.0.0.1:9/elsewhere"}
    wrong_uri = requests.post(
        sim.token_uri, data=mismatch, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10
    )
    assert wrong_uri.json()["error"] == "redirect_uri_mismatch"

    refresh = {"grant_type": "refresh_token", "refresh_token": sim.issue_refresh_token()}
    ok = requests.post(sim.token_uri, data=refresh, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert set(ok.json()) == {"access_token", "expires_in", "scope", "token_type"}


def test_revoked_refresh_token_is_invalid_grant(sim: GmailSimulator) -> None:
    refresh_token = sim.issue_refresh_token()
    gmail = sim.service(sim.credentials(refresh_token))
    gmail.users().getProfile(userId="me").execute()
    sim.revoke()
    # The live access token went with its refresh token: 401, refresh, invalid_grant.
    with pytest.raises(RefreshError, match="invalid_grant"):
        gmail.users().getProfile(userId="me").execute()
    fresh = sim.service(sim.credentials(refresh_token))
    with pytest.raises(RefreshError, match="Token has been expired or revoked"):
        fresh.users().getProfile(userId="me").execute()


def test_revoke_endpoint_takes_the_whole_grant(sim: GmailSimulator) -> None:
    refresh_token = sim.issue_refresh_token()
    assert requests.post(f"{sim.base_url}/revoke", params={"token": refresh_token}).ok
    again = requests.post(f"{sim.base_url}/revoke", params={"token": refresh_token})
    assert again.status_code == 400
    with pytest.raises(RefreshError, match="invalid_grant"):
        sim.service(sim.credentials(refresh_token)).users().getProfile(userId="me").execute()


def test_expired_access_token_is_refreshed_transparently(sim: GmailSimulator) -> None:
    sim.generate(5, seed=2, start=START)
    credentials = sim.credentials(sim.issue_refresh_token())
    gmail = sim.service(credentials)
    gmail.users().messages().list(userId="me").execute()
    first = credentials.token
    sim.expire_access_tokens()
    assert len(gmail.users().messages().list(userId="me").execute()["messages"]) == 5
    counts = sim.counts()
    assert counts["calls"]["token.refresh"] == 2
    assert credentials.token != first
    assert counts["calls"]["messages.list"] == 2  # the 401 was not charged


def test_missing_token_is_gmails_401_body(sim: GmailSimulator) -> None:
    response = requests.get(f"{sim.base_url}/gmail/v1/users/me/profile", timeout=10)
    assert response.status_code == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["code"] == 401
    assert error["errors"] == [
        {
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }
    ]


# --- Gmail -----------------------------------------------------------------------------------


def test_list_with_query_and_pagination_matches_ground_truth(sim: GmailSimulator) -> None:
    sim.generate(120, receipt_ratio=0.5, attachment_ratio=0.6, seed=7, start=START)
    truth = sim.ground_truth()
    gmail = connected(sim)

    ids, pages = list_all(gmail, 'from:"Acme Hardware"', page_size=3)
    acme = {i for i, r in truth["receipts"].items() if r["vendor"] == "Acme Hardware"}
    assert len(acme) > 3 and set(ids) == acme and len(ids) == len(acme)
    assert pages == -(-len(acme) // 3)
    assert ids == sorted(ids, reverse=True)  # newest first (ids lead with the time)

    pdfs, _ = list_all(gmail, "has:attachment filename:pdf")
    assert set(pdfs) == {
        i
        for i, r in truth["receipts"].items()
        if any(a["mime_type"] == "application/pdf" for a in r["attachments"])
    }

    styled, _ = list_all(gmail, '{subject:"Receipt from" subject:order} -from:amazon.example.co.uk')
    wanted = {"Northwind Coffee", "Bluebird Books", "Amazon"}
    assert set(styled) == {i for i, r in truth["receipts"].items() if r["vendor"] in wanted}

    # Noise says "receipt" too: a bare word is not a classifier.
    bare, _ = list_all(gmail, "receipt", page_size=500)
    assert set(bare) & set(truth["noise"])

    dated, _ = list_all(gmail, "after:2026/10/01 before:2026/10/15", page_size=500)
    assert dated and all("2026-10-01" <= truth["receipts"][i]["date"] < "2026-10-15"
                         for i in dated if i in truth["receipts"])  # fmt: skip


def test_full_message_parts_and_attachments_match_ground_truth(sim: GmailSimulator) -> None:
    sim.generate(40, receipt_ratio=1.0, attachment_ratio=1.0, seed=3, start=START)
    truth = sim.ground_truth()["receipts"]
    gmail = connected(sim)
    seen_types = set()
    for msg_id, receipt in truth.items():
        message = gmail.users().messages().get(userId="me", id=msg_id, format="full").execute()
        assert message["id"] == msg_id and int(message["internalDate"]) > 0
        payload = message["payload"]
        assert payload["mimeType"] == "multipart/mixed"
        assert receipt["vendor"].split()[0] in headers_of(payload)["from"]
        alternative, attachment = payload["parts"]
        assert [p["mimeType"] for p in alternative["parts"]] == ["text/plain", "text/html"]
        assert b64(alternative["parts"][0]["body"]["data"]).decode()
        [expected] = receipt["attachments"]
        assert attachment["filename"] == expected["filename"]
        assert "data" not in attachment["body"]
        got = gmail.users().messages().attachments()
        request = got.get(userId="me", messageId=msg_id, id=attachment["body"]["attachmentId"])
        data = b64(request.execute()["data"])
        assert len(data) == attachment["body"]["size"] == expected["size"]
        assert hashlib.sha256(data).hexdigest() == expected["sha256"]
        assert data.startswith(MAGIC[expected["mime_type"]])
        seen_types.add(expected["mime_type"])
    assert seen_types == set(MAGIC)


def test_raw_and_metadata_formats_agree_with_full(sim: GmailSimulator) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    [msg_id] = sim.add_messages(
        [
            {
                "from": "Corner Deli <till@deli.example>",
                "subject": "Receipt €12,50",
                "text": "Total €12,50 on 2026-10-02",
                "date": "2026-10-02T12:00:00Z",
                "attachments": [{"filename": "r.pdf", "mime_type": "application/pdf",
                                 "content_b64": pdf}],
            }
        ]
    )  # fmt: skip
    gmail = connected(sim)
    messages = gmail.users().messages()
    raw = messages.get(userId="me", id=msg_id, format="raw").execute()
    parsed = email.message_from_bytes(b64(raw["raw"]), policy=policy.default)
    assert parsed["Subject"] == "Receipt €12,50"
    assert raw["sizeEstimate"] == len(b64(raw["raw"]))
    assert raw["internalDate"] == str(int(datetime(2026, 10, 2, 12, tzinfo=UTC).timestamp() * 1000))
    meta = messages.get(userId="me", id=msg_id, format="metadata", metadataHeaders=["Subject"])
    assert meta.execute()["payload"]["headers"] == [{"name": "Subject", "value": "Receipt €12,50"}]
    minimal = messages.get(userId="me", id=msg_id, format="minimal").execute()
    assert "payload" not in minimal and minimal["snippet"].startswith("Total €12,50")


def test_unknown_message_and_bad_query_are_gmail_errors(sim: GmailSimulator) -> None:
    gmail = connected(sim)
    with pytest.raises(HttpError) as missing:
        gmail.users().messages().get(userId="me", id="ffffffffffffffff").execute()
    assert missing.value.status_code == 404
    assert missing.value.error_details[0]["reason"] == "notFound"
    with pytest.raises(HttpError) as bad:
        gmail.users().messages().list(userId="me", q='subject:"unclosed').execute()
    assert bad.value.status_code == 400
    assert bad.value.error_details[0]["reason"] == "invalidArgument"
    with pytest.raises(HttpError) as other:
        gmail.users().getProfile(userId="someone@example.com").execute()
    assert other.value.status_code == 403


def test_history_after_add_messages_returns_exactly_the_new_ids(sim: GmailSimulator) -> None:
    sim.generate(10, seed=4, start=START)
    gmail = connected(sim)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    new_ids = sim.add_messages(
        [{"from": f"Shop {n} <s{n}@shop.example>", "subject": f"Receipt {n}", "text": "Total $1.00"}
         for n in range(3)]
    )  # fmt: skip
    added, token, current = [], None, None
    while True:
        response = (
            gmail.users()
            .history()
            .list(
                userId="me",
                startHistoryId=start,
                historyTypes=["messageAdded"],
                maxResults=2,
                pageToken=token,
            )
            .execute()
        )
        for record in response.get("history", []):
            added += [a["message"]["id"] for a in record["messagesAdded"]]
        current, token = response["historyId"], response.get("nextPageToken")
        if not token:
            break
    assert added == new_ids
    assert current == gmail.users().getProfile(userId="me").execute()["historyId"]
    assert int(current) > int(start)
    nothing = gmail.users().history().list(userId="me", startHistoryId=current).execute()
    assert "history" not in nothing
    future = str(int(current) + 1000)
    assert (
        "history" not in gmail.users().history().list(userId="me", startHistoryId=future).execute()
    )


def test_expired_history_id_is_404(sim: GmailSimulator) -> None:
    sim.generate(5, seed=5, start=START)
    gmail = connected(sim)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    sim.add_messages([{"from": "a@b.example", "subject": "x", "text": "y"}])
    sim.expire_history()
    with pytest.raises(HttpError) as expired:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert expired.value.status_code == 404
    assert expired.value.error_details[0]["reason"] == "notFound"
    # A full sync's fresh historyId is good again.
    now = gmail.users().getProfile(userId="me").execute()["historyId"]
    assert "history" not in gmail.users().history().list(userId="me", startHistoryId=now).execute()


# --- Quota -----------------------------------------------------------------------------------


def test_forced_429_is_rate_limit_exceeded(sim: GmailSimulator) -> None:
    gmail = connected(sim)
    sim.scenario(rate_limit_next=1)
    with pytest.raises(HttpError) as limited:
        gmail.users().messages().list(userId="me").execute()
    assert limited.value.status_code == 429
    detail = limited.value.error_details[0]
    assert detail["reason"] == "rateLimitExceeded" and detail["domain"] == "usageLimits"
    assert limited.value.reason.startswith("User-rate limit exceeded.  Retry after 20")
    assert int(limited.value.resp["retry-after"]) >= 1
    gmail.users().messages().list(userId="me").execute()
    assert sim.counts()["rate_limited"] == 1


def test_quota_units_are_counted_per_method(sim: GmailSimulator) -> None:
    sim.generate(10, receipt_ratio=1.0, attachment_ratio=1.0, seed=6, start=START)
    receipt_id, receipt = next(iter(sim.ground_truth()["receipts"].items()))
    gmail = connected(sim)
    sim.reset_counts()
    users = gmail.users()
    start = users.getProfile(userId="me").execute()["historyId"]  # 1
    ids = [m["id"] for m in users.messages().list(userId="me").execute()["messages"]]  # 5
    users.messages().list(userId="me", q="receipt").execute()  # 5
    for msg_id in ids[:3]:
        users.messages().get(userId="me", id=msg_id).execute()  # 3 x 5
    full = users.messages().get(userId="me", id=receipt_id).execute()  # 5
    attachment_id = full["payload"]["parts"][1]["body"]["attachmentId"]
    users.messages().attachments().get(
        userId="me", messageId=receipt_id, id=attachment_id
    ).execute()
    users.history().list(userId="me", startHistoryId=start).execute()  # 2
    assert receipt["attachments"]
    counts = sim.counts()
    assert counts["calls"] == {
        "users.getProfile": 1,
        "messages.list": 2,
        "messages.get": 4,
        "messages.attachments.get": 1,
        "history.list": 1,
        "token.refresh": 1,  # counted, but costs no Gmail units
        "token.authorization_code": 0,
    }
    assert counts["units_total"] == 1 + 10 + 20 + 5 + 2
    assert counts["peak_units_per_minute"] == counts["units_total"]


def test_per_user_limit_answers_429_with_retry_after(sim: GmailSimulator) -> None:
    sim.scenario(quota_units_per_minute=12)
    gmail = connected(sim)
    users = gmail.users()
    users.getProfile(userId="me").execute()
    users.messages().list(userId="me").execute()
    users.messages().list(userId="me").execute()
    with pytest.raises(HttpError) as limited:
        users.messages().list(userId="me").execute()
    assert limited.value.status_code == 429
    assert 1 <= int(limited.value.resp["retry-after"]) <= 60
    users.getProfile(userId="me").execute()  # 1 unit still fits under 12
    other = connected(sim, "second@example.com")  # the limit is per user
    other.users().messages().list(userId="me").execute()
    counts = sim.counts()
    assert counts["peak_units_per_minute"] == 12 and counts["rate_limited"] == 1


def test_control_rejects_unknown_scenario_fields(sim: GmailSimulator) -> None:
    response = requests.post(f"{sim.base_url}/_sim/scenario", json={"nope": 1}, timeout=5)
    assert response.status_code == 400


def test_generation_is_deterministic() -> None:
    truths = []
    for _ in range(2):
        with gmail_simulator_thread() as sim:
            sim.generate(30, seed=11, start=START)
            truths.append(sim.ground_truth())
    assert truths[0] == truths[1] and truths[0]["receipts"] and truths[0]["noise"]
    currencies = {r["currency"] for r in truths[0]["receipts"].values()}
    assert currencies <= {"USD", "EUR", "GBP"} and len(currencies) > 1


# --- The search subset -------------------------------------------------------------------------


class Doc:
    def __init__(self, subject: str, sender: str, text: str, files: list[str], day: int) -> None:
        self.subject, self.sender, self.text, self.files = subject, sender, text, files
        self.date = datetime(2026, 10, day, 12, tzinfo=UTC)

    @property
    def filenames(self) -> list[str]:
        return self.files


ACME = Doc(
    "Your Acme receipt #12", "Acme <receipts@acme.example>", "Total: $1,234.56", ["r.pdf"], 3
)
NEWS = Doc("This week", "News <n@news.example>", "keep every receipt", [], 10)
INVITE = Doc("Invitation: review", "Cal <cal@cal.example>", "agenda", ["invite.ics"], 20)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"ACME", "NEWS", "INVITE"}),
        ("RECEIPT", {"ACME", "NEWS"}),
        ('"acme receipt"', {"ACME"}),
        ("subject:receipt", {"ACME"}),
        ("from:acme.example", {"ACME"}),
        ("has:attachment", {"ACME", "INVITE"}),
        ("filename:pdf", {"ACME"}),
        ("has:attachment -filename:pdf", {"INVITE"}),
        ("{agenda week}", {"NEWS", "INVITE"}),
        ("agenda OR week", {"NEWS", "INVITE"}),
        ("receipt -subject:receipt", {"NEWS"}),
        ('-{"acme" invite}', {"NEWS"}),
        ("after:2026/10/10", {"NEWS", "INVITE"}),
        ("before:2026/10/10", {"ACME"}),
        ("after:2026/10/05 before:2026/10/15", {"NEWS"}),
        ("in:inbox category:updates receipt", {"ACME", "NEWS"}),
        ("(subject:week) OR filename:ics", {"NEWS", "INVITE"}),
    ],
)
def test_query_subset(query: str, expected: set[str]) -> None:
    docs = {"ACME": ACME, "NEWS": NEWS, "INVITE": INVITE}
    node = parse(query)
    assert {name for name, doc in docs.items() if node.match(doc)} == expected


def test_relative_dates_count_back_from_now() -> None:
    now = datetime(2026, 10, 21, tzinfo=UTC)
    assert parse("newer_than:5d", now).match(INVITE)
    assert not parse("newer_than:5d", now).match(NEWS)
    assert parse("older_than:1m", datetime(2026, 11, 15, tzinfo=UTC)).match(ACME)
    assert not parse("older_than:1y", now).match(ACME)


@pytest.mark.parametrize(
    "query",
    ['"unclosed', "{a b", "a }", "(a", "OR a", "a OR", "subject:", "-", "after:2026/13/40",
     "newer_than:3w", "has:drive"],
)  # fmt: skip
def test_query_syntax_errors(query: str) -> None:
    with pytest.raises(QueryError):
        parse(query)
