"""Every Gmail API call of a sync goes through here: quota first, then the call; rate-limit
answers back off and resume, a refused refresh token becomes NeedsReauth."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError

from libs.common import metrics
from services.worker.receipts.gmail_quota import GmailQuota

logger = logging.getLogger(__name__)

RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
#: Consecutive rate-limited or 5xx answers to one call before the sync gives up (it is retried
#: as a whole later, and resumes: stored receipts are skipped).
MAX_ATTEMPTS = 6
MAX_BACKOFF_S = 32.0


class NeedsReauth(Exception):
    """Google refused the refresh token (revoked, expired): only the owner can fix it."""


class GmailUnavailable(Exception):
    """Rate-limited or failing past MAX_ATTEMPTS: the sync is retried later."""


def http_reason(exc: HttpError) -> str:
    # HttpError.reason is the message; the machine-readable reason is in error_details.
    details = getattr(exc, "error_details", None)
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return str(details[0].get("reason", ""))
    return ""


class GmailCalls:
    def __init__(self, quota: GmailQuota, sleep: Any = time.sleep) -> None:
        self.quota = quota
        self.sleep = sleep
        self.counts: dict[str, int] = {}
        self.rate_limited = 0

    def execute(self, method: str, request: Any) -> Any:
        for attempt in range(MAX_ATTEMPTS):
            self.quota.take(method)
            self.counts[method] = self.counts.get(method, 0) + 1
            try:
                result = request.execute(num_retries=0)
            except RefreshError as exc:
                if "invalid_grant" in str(exc):
                    metrics.GMAIL_API_CALLS.labels(method, "error").inc()
                    raise NeedsReauth(str(exc)) from None
                raise
            except HttpError as exc:
                status = exc.resp.status
                limited = status == 429 or (
                    status == 403 and http_reason(exc) in RATE_LIMIT_REASONS
                )
                if not limited and status < 500:
                    metrics.GMAIL_API_CALLS.labels(method, "error").inc()
                    raise
                metrics.GMAIL_API_CALLS.labels(method, "rate_limited" if limited else "error").inc()
                self.rate_limited += int(limited)
                self.sleep(self._backoff(exc, attempt))
                continue
            metrics.GMAIL_API_CALLS.labels(method, "ok").inc()
            return result
        raise GmailUnavailable(f"{method}: still refused after {MAX_ATTEMPTS} attempts")

    @staticmethod
    def _backoff(exc: HttpError, attempt: int) -> float:
        retry_after = exc.resp.get("retry-after")
        if retry_after and str(retry_after).isdigit():
            return min(float(str(retry_after)), MAX_BACKOFF_S)
        # Exponential with jitter, so workers rate-limited together do not return together.
        return min(MAX_BACKOFF_S, 2.0**attempt) * (0.5 + random.random() / 2)
