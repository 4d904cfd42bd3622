"""One sync of one Gmail connection.

First sync: ``users.messages.list`` with the receipts query over the look-back window, then
each message not stored yet. Later syncs: ``users.history.list`` from the stored historyId and
only the messages added since. An expired history (404) falls back to a full sync, which skips
what is stored (receipts are unique per message): nothing is duplicated.

The historyId a full sync stores is read *before* listing, so mail arriving during the sync is
in the next incremental one. Progress is on the BackgroundJob; a Redis lock per connection
keeps a redelivered message from running the same sync twice at once.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from googleapiclient.errors import HttpError

from libs.common import metrics
from libs.common.crypto import secret_box
from libs.common.models import BackgroundJob, GmailConnection, JobStatus, utcnow
from libs.gmail.client import gmail_service
from libs.queueops.middleware.worker_context import WorkerContext
from services.worker.receipts.extract import AttachmentRef, extract
from services.worker.receipts.gmail_calls import GmailCalls, NeedsReauth
from services.worker.receipts.gmail_quota import GmailQuota
from services.worker.receipts.store import already_stored, store_receipt
from services.worker.registry import MissingRow

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
#: Progress is written (and the lock renewed) every this many messages.
PROGRESS_EVERY = 10
LOCK_TTL_S = 300
#: Labels of mail the owner sent or is writing: never a receipt they received.
SKIPPED_LABELS = {"SENT", "DRAFT"}


class SyncBusy(Exception):
    """Another worker holds this connection's sync lock: retried later (then it is done)."""


class HistoryExpired(Exception):
    """The stored historyId is older than Gmail keeps: a full sync is needed."""


@dataclass
class Outcome:
    mode: str = "incremental"
    listed: int = 0
    fetched: int = 0
    created: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    quota_units: int = 0
    quota_wait_s: float = 0.0
    rate_limited: int = 0


@dataclass(frozen=True)
class Target:
    business_id: int
    email: str
    refresh_token: str
    history_id: str | None


def run(ctx: WorkerContext, connection_id: int, job_id: int) -> None:
    target = _start(ctx, connection_id, job_id)
    if target is None:
        return
    lock = ctx.redis.lock(f"receipts-sync:{connection_id}", timeout=LOCK_TTL_S)
    if not lock.acquire(blocking=False):
        raise SyncBusy(f"connection {connection_id} is being synced by another worker")
    try:
        _sync(ctx, connection_id, job_id, target, lock)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass  # expired: nobody else could have started meanwhile without it


def _start(ctx: WorkerContext, connection_id: int, job_id: int) -> Target | None:
    with ctx.database.session() as session:
        job = session.get(BackgroundJob, job_id)
        if job is None:
            raise MissingRow(f"background job {job_id} does not exist")
        if job.status.is_final:
            return None
        connection = session.get(GmailConnection, connection_id)
        if connection is None or connection.refresh_token_encrypted is None:
            _finish(session, job, None, error=("disconnected", "the inbox was disconnected"))
            return None
        if connection.status == "needs_reauth":
            _finish(session, job, None, error=("needs_reauth", "reconnect the Gmail inbox"))
            return None
        job.status, job.started_at = JobStatus.RUNNING, job.started_at or utcnow()
        token = secret_box(ctx.settings).decrypt(connection.refresh_token_encrypted)
        target = Target(connection.business_id, connection.email, token, connection.history_id)
        session.commit()
    return target


def _sync(ctx: WorkerContext, connection_id: int, job_id: int, target: Target,
          lock: Any) -> None:  # fmt: skip
    settings = ctx.settings
    service = gmail_service(settings, target.refresh_token)
    quota = GmailQuota(ctx.redis, target.email, settings.gmail_quota_units_per_minute)
    calls = GmailCalls(quota)
    outcome = Outcome()
    try:
        try:
            if target.history_id is None:
                raise HistoryExpired("no history yet")
            ids, history_id = _added_since(calls, service, target.history_id)
        except HistoryExpired as why:
            logger.info("gmail %s: full sync (%s)", connection_id, why)
            outcome.mode = "full"
            ids, history_id = _listed(ctx, calls, service)
        outcome.listed = len(ids)
        _fetch_and_store(ctx, calls, service, connection_id, job_id, target, ids, outcome, lock)
    except NeedsReauth:
        logger.warning("gmail %s: Google refused the refresh token: needs reauth", connection_id)
        with ctx.database.session() as session:
            connection = session.get_one(GmailConnection, connection_id)
            connection.status = "needs_reauth"
            connection.last_error = "Google refused the stored authorization; reconnect the inbox"
            job = session.get_one(BackgroundJob, job_id)
            _finish(session, job, _result(outcome, calls),
                    error=("needs_reauth", "Google refused the stored authorization"))  # fmt: skip
        metrics.RECEIPT_SYNCS.labels(outcome.mode, "needs_reauth").inc()
        return  # not retried: only the owner reconnecting can fix it
    with ctx.database.session() as session:
        connection = session.get_one(GmailConnection, connection_id)
        connection.history_id = history_id
        connection.last_synced_at = utcnow()
        connection.last_error = None
        job = session.get_one(BackgroundJob, job_id)
        _finish(session, job, _result(outcome, calls))
    metrics.RECEIPT_SYNCS.labels(outcome.mode, "succeeded").inc()
    logger.info(
        "gmail %s: %s sync done: %d listed, %d fetched, %d new receipts",
        connection_id, outcome.mode, outcome.listed, outcome.fetched, outcome.created,
    )  # fmt: skip


def _listed(ctx: WorkerContext, calls: GmailCalls, service: Any) -> tuple[list[str], str]:
    users = service.users()
    history_id = str(calls.execute("users.getProfile", users.getProfile(userId="me"))["historyId"])
    after = (utcnow() - timedelta(days=ctx.settings.gmail_lookback_days)).strftime("%Y/%m/%d")
    query = f"{ctx.settings.gmail_receipts_query} after:{after}"
    ids: list[str] = []
    page: str | None = None
    while True:
        request = users.messages().list(userId="me", q=query, maxResults=PAGE_SIZE, pageToken=page)
        response = calls.execute("users.messages.list", request)
        ids += [m["id"] for m in response.get("messages", [])]
        page = response.get("nextPageToken")
        if not page:
            return ids, history_id


def _added_since(calls: GmailCalls, service: Any, start: str) -> tuple[list[str], str]:
    ids: list[str] = []
    latest, page = start, None
    while True:
        request = service.users().history().list(
            userId="me", startHistoryId=start, historyTypes="messageAdded",
            maxResults=PAGE_SIZE, pageToken=page,
        )  # fmt: skip
        try:
            response = calls.execute("users.history.list", request)
        except HttpError as exc:
            if exc.resp.status == 404:
                raise HistoryExpired(f"history {start} expired") from None
            raise
        for record in response.get("history", []):
            for added in record.get("messagesAdded", []):
                message = added.get("message", {})
                if not SKIPPED_LABELS & set(message.get("labelIds", [])):
                    ids.append(message["id"])
        latest = str(response.get("historyId", latest))
        page = response.get("nextPageToken")
        if not page:
            return list(dict.fromkeys(ids)), latest


def _fetch_and_store(ctx: WorkerContext, calls: GmailCalls, service: Any, connection_id: int,
                     job_id: int, target: Target, ids: list[str], outcome: Outcome,
                     lock: Any) -> None:  # fmt: skip
    with ctx.database.session() as session:
        todo = [i for i in ids if i not in already_stored(session, target.business_id, ids)]
        job = session.get_one(BackgroundJob, job_id)
        job.progress_total, job.progress_done = len(todo), 0
        session.commit()
    messages = service.users().messages()
    for n, message_id in enumerate(todo, 1):
        try:
            message = calls.execute(
                "users.messages.get", messages.get(userId="me", id=message_id, format="full")
            )
        except HttpError as exc:
            if exc.resp.status != 404:
                raise
            message = None  # deleted since it was listed
        if message is not None:
            outcome.fetched += 1
            extracted = extract(message)
            if extracted.is_receipt:
                files = [(ref, _download(calls, messages, message_id, ref))
                         for ref in extracted.attachments]  # fmt: skip
                with ctx.database.session() as session:
                    if store_receipt(session, target.business_id, connection_id, message,
                                     extracted, files, ctx.broker):  # fmt: skip
                        outcome.created += 1
                        metrics.RECEIPTS_CREATED.inc()
                    session.commit()
        if n % PROGRESS_EVERY == 0 or n == len(todo):
            with ctx.database.session() as session:
                session.get_one(BackgroundJob, job_id).progress_done = n
                session.commit()
            lock.reacquire()


def _download(calls: GmailCalls, messages: Any, message_id: str, ref: AttachmentRef) -> bytes:
    request = messages.attachments().get(userId="me", messageId=message_id, id=ref.attachment_id)
    body = calls.execute("users.messages.attachments.get", request)
    data = str(body.get("data", ""))
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _result(outcome: Outcome, calls: GmailCalls) -> dict[str, Any]:
    return {
        "mode": outcome.mode,
        "listed": outcome.listed,
        "fetched": outcome.fetched,
        "receipts_created": outcome.created,
        "api_calls": dict(calls.counts),
        "quota_units": calls.quota.units,
        "quota_wait_s": round(calls.quota.waited_s, 2),
        "rate_limited": calls.rate_limited,
    }


def _finish(session: Any, job: BackgroundJob, result: dict[str, Any] | None,
            error: tuple[str, str] | None = None) -> None:  # fmt: skip
    job.status = JobStatus.FAILED if error else JobStatus.SUCCEEDED
    if error:
        job.error_code, job.error_message = error
    if result is not None:
        job.result = result
    job.finished_at = utcnow()
    session.commit()
    metrics.BACKGROUND_JOBS_FINISHED.labels(job.kind, job.status.value).inc()


def mark_failed(ctx: WorkerContext, job_id: int, why: str) -> None:
    """The last attempt failed: the job says so, and a new sync may start."""
    with ctx.database.session() as session:
        job = session.get(BackgroundJob, job_id)
        if job is not None and not job.status.is_final:
            _finish(session, job, None, error=("sync_failed", why[:500]))
