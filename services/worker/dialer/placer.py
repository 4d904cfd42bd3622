"""Asking the provider to create the call for a claimed attempt, and recording its answer."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import urlencode

import requests
from sqlalchemy.exc import InterfaceError, OperationalError
from twilio.base.exceptions import TwilioException, TwilioRestException

from libs.campaigns.lifecycle import status as lifecycle
from libs.campaigns.lifecycle.dialing import Claim
from libs.campaigns.outcomes import call_options
from libs.common import metrics
from libs.common.models import utcnow
from libs.queueops.middleware.worker_context import WorkerContext
from libs.queueops.outbox import enqueue_after_commit
from libs.telephony.twilio_provider import ProviderError, provider_error

logger = logging.getLogger(__name__)

#: 20429 (too many concurrent requests) is always safe to retry: nothing was created.
RETRIES = 4
#: After the in-place retries, the attempt is given back and the job waits this long.
REQUEUE_AFTER_S = 10
#: The provider's answer (the call id) exists only in this worker until it is stored: through a
#: database outage it is kept and stored again for up to this long (within the actor's limit).
STORE_SID_RETRY_S = 60.0

#: The callbacks asked for: the final one only (docs/architecture.md, "Status callbacks"). The
#: worker stores the call id from the create answer (when it dies first, the final callback,
#: whose URL names the job and attempt, or the reconciler's look-up attaches it), and the voice
#: webhook Twilio fetches when the call is answered moves it in-progress.
STATUS_CALLBACK_EVENTS = ["completed"]

for _outcome in ("created", "requeued", "refused", "unknown"):
    metrics.CALLS_CREATED.labels(_outcome)


def status_callback_url(public_base_url: str, claim: Claim) -> str:
    # The URL names the job and attempt: the first callback can attach the call id even if
    # this worker died between the provider's answer and storing it.
    query = urlencode({"job": claim.job_id, "attempt": claim.attempt})
    return f"{public_base_url}/webhook/twilio/status?{query}"


def voice_url(public_base_url: str, claim: Claim) -> str:
    query = urlencode({"job": claim.job_id, "attempt": claim.attempt})
    return f"{public_base_url}/webhook/twilio/voice?{query}"


def place_call(ctx: WorkerContext, claim: Claim) -> str:
    """Create the provider call; returns created, requeued, failed or unknown."""
    settings = ctx.settings
    backoff = 0.25
    options = call_options.for_claim(ctx.database, settings.public_base_url, claim)
    for attempt in range(RETRIES + 1):
        try:
            resource = ctx.twilio.calls.create(
                to=claim.phone,
                from_=settings.twilio_from_number,
                # Answered: the voice webhook connects the person to the voice agent.
                url=voice_url(settings.public_base_url, claim),
                status_callback=status_callback_url(settings.public_base_url, claim),
                status_callback_method="POST",
                status_callback_event=STATUS_CALLBACK_EVENTS,
                timeout=settings.ring_timeout_s,
                **options,
            )
        except TwilioRestException as exc:
            error = provider_error(exc)
            if error.retryable and attempt < RETRIES:
                time.sleep(backoff)
                backoff *= 2
                continue
            return _refused(ctx, claim, error)
        except (TwilioException, requests.RequestException) as exc:
            # The provider may or may not have created the call. Not retrying is the only way
            # to never dial twice: a callback attaches the call if it exists, and after the
            # creation window the reconciler asks the provider, then adopts or places it.
            logger.warning("job %s attempt %s: create outcome unknown (%s)", claim.job_id,
                           claim.attempt, type(exc).__name__)  # fmt: skip
            metrics.CALLS_CREATED.labels("unknown").inc()
            return "unknown"
        _store_sid(ctx, claim, str(resource.sid))
        metrics.CALLS_CREATED.labels("created").inc()
        return "created"
    raise AssertionError("unreachable")


def _store_sid(ctx: WorkerContext, claim: Claim, sid: str) -> None:
    # Dropping the id on a database error would leave the job "dialing" with no call id, for
    # the reconciler to fail while the call rings; callbacks might attach it, but only if they
    # are delivered after the database is back. Storing it is idempotent, so it is retried.
    deadline = time.monotonic() + STORE_SID_RETRY_S
    delay, first = 0.1, True
    while True:
        try:
            _store_sid_once(ctx, claim, sid)
            return
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            if first:
                logger.warning(
                    "job %s attempt %s: call id %s not stored yet (%s); retrying",
                    claim.job_id, claim.attempt, sid, type(exc.orig).__name__,
                )  # fmt: skip
                first = False
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _store_sid_once(ctx: WorkerContext, claim: Claim, sid: str) -> None:
    with ctx.database.session() as session:
        # Guarded: a callback may have attached the sid first, or moved the job on.
        applied = lifecycle.store_sid(
            session, claim.call_id, claim.job_id, claim.attempt, sid, utcnow()
        )
        for outgoing in (o for a in applied for o in a.followups):
            enqueue_after_commit(session, outgoing, ctx.broker)
        session.commit()


def _refused(ctx: WorkerContext, claim: Claim, error: ProviderError) -> str:
    now = utcnow()
    with ctx.database.session() as session:
        if error.retryable:
            # Nothing was created: the attempt never happened. Give it back and wait.
            retry_at = now + timedelta(seconds=REQUEUE_AFTER_S)
            if not lifecycle.give_back_attempt(
                session, claim.job_id, claim.attempt, claim.call_id, retry_at
            ):
                return "failed"
            session.commit()
            metrics.CALLS_CREATED.labels("requeued").inc()
            logger.warning("job %s: provider busy (%s); requeued", claim.job_id, error)
            return "requeued"
        call = lifecycle.lock_call(session, call_id=claim.call_id)
        if call is None or call.attempt != claim.attempt:
            return "failed"
        for outgoing in lifecycle.fail_attempt(session, call, error.code, error.message, now):
            enqueue_after_commit(session, outgoing, ctx.broker)
        session.commit()
    metrics.CALLS_CREATED.labels("refused").inc()
    logger.info("job %s: provider refused the call (%s)", claim.job_id, error)
    return "failed"
