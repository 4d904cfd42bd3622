"""Prometheus metrics shared by the services, in multiprocess mode when run under gunicorn.

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is first imported: the gunicorn
configs and the worker entry point set it, so every process writes to the same directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total",
    "HTTP requests answered, by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "switchboard_http_request_duration_seconds",
    "Time to answer an HTTP request, by service and route template.",
    ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGES_ENQUEUED = Counter(
    "switchboard_messages_enqueued_total",
    "Messages handed to the broker, by actor.",
    ["actor"],
)
BACKGROUND_JOBS_FINISHED = Counter(
    "switchboard_background_jobs_finished_total",
    "BackgroundJobs that reached a final status, by kind and status.",
    ["kind", "status"],
)
ACTOR_MISSING_ROWS = Counter(
    "switchboard_actor_missing_rows_total",
    "Messages skipped because the row they name no longer exists, by actor.",
    ["actor"],
)
RECONCILER_REPAIRS = Counter(
    "switchboard_reconciler_repairs_total",
    "Repairs made by the reconciler, by kind of repair.",
    ["repair"],
)
SCHEDULER_EMISSIONS = Counter(
    "switchboard_scheduler_emissions_total",
    "Periodic messages emitted by the scheduler leader, by periodic job.",
    ["job"],
)

SCHEDULE_OCCURRENCES = Counter(
    "switchboard_schedule_occurrences_total",
    "Daily-schedule occurrences by what became of them (queued, missed, placed, skipped, failed).",
    ["status"],
)
SCHEDULE_FIRE_LAG = Histogram(
    "switchboard_schedule_fire_lag_seconds",
    "Time from a schedule's due instant to the tick that queued its call.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600),
)

MEDIA_STREAMS_ACTIVE = Gauge(
    "switchboard_media_streams_active",
    "Twilio media-stream WebSockets open now, over every calls process.",
    multiprocess_mode="livesum",
)
MEDIA_FRAMES = Counter(
    "switchboard_media_frames_total",
    "Media-stream frames received, by what became of them (handled or why dropped).",
    ["result"],
)
MEDIA_FRAME_SECONDS = Histogram(
    "switchboard_media_frame_seconds",
    "Time to handle one received media-stream frame, replies included.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
)

AGENT_ACTIONS = Counter(
    "switchboard_agent_actions_total",
    "Voice-agent actions (UpdateLead, Transfer, OptOut, …) by outcome (ok, failed).",
    ["action", "outcome"],
)
AGENT_FAILURES = Counter(
    "switchboard_agent_failures_total",
    "Calls whose voice agent failed mid-call (the caller heard the fallback prompt).",
)
AGENT_FIRST_AUDIO = Histogram(
    "switchboard_agent_first_audio_seconds",
    "From a stream's start (the call claimed) to the agent's first audio frame sent.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
MEDIA_PACER_LATENESS = Histogram(
    "switchboard_media_pacer_lateness_seconds",
    "How late the media pacer woke for the first frame due (the loop was busy or the process "
    "was not running): what a caller hears as a gap once it exceeds the playout's lead.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.25),
)
MEDIA_GC_PAUSE = Histogram(
    "switchboard_media_gc_pause_seconds",
    "Garbage collections in the media server by generation, and how long each paused the "
    "event loop (every stream of the process waits meanwhile).",
    ["generation"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
)
MEDIA_FRAMES_DROPPED = Counter(
    "switchboard_media_outbound_dropped_total",
    "Agent audio frames dropped because the caller's socket was not draining.",
)
GMAIL_API_CALLS = Counter(
    "switchboard_gmail_api_calls_total",
    "Gmail API calls made by receipt syncs, by method and outcome (ok, rate_limited, error).",
    ["method", "outcome"],
)
RECEIPTS_CREATED = Counter(
    "switchboard_receipts_created_total", "Receipts stored from synced Gmail messages."
)
RECEIPT_SYNCS = Counter(
    "switchboard_receipt_syncs_total",
    "Receipt syncs finished, by mode (full, incremental) and outcome.",
    ["mode", "outcome"],
)

CALL_STATUSES = Counter(
    "switchboard_call_status_total",
    "Call statuses applied (moved a call forward), by status.",
    ["status"],
)
CALLS_CREATED = Counter(
    "switchboard_calls_created_total",
    "Calls the provider accepted, by outcome of the create request.",
    ["outcome"],
)
CALL_EVENTS = Counter(
    "switchboard_call_events_total",
    "Status callbacks received, by status and what happened (applied, late, duplicate, unknown).",
    ["status", "result"],
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "switchboard_webhook_signature_failures_total",
    "Twilio-facing requests refused for a missing or wrong X-Twilio-Signature, by route.",
    ["route"],
)
DISPATCH_GAP = Histogram(
    "switchboard_dispatch_gap_seconds",
    "Time from a call's final status (slot freed) to the next call created for that business.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
MESSAGES_COALESCED = Counter(
    "switchboard_messages_coalesced_total",
    "Messages not sent because one of the same kind was waiting (libs/queueops/coalescing.py).",
    ["actor"],
)
RUNS_FINISHED = Counter(
    "switchboard_runs_finished_total",
    "Runs that finished, by final status.",
    ["status"],
)
ACTIVE_CALLS = Gauge(
    "switchboard_active_calls",
    "Calls dialing or in progress per business, from database rows (set by the reconciler).",
    ["business_id"],
    multiprocess_mode="mostrecent",
)
RUNS_BY_STATUS = Gauge(
    "switchboard_runs",
    "Runs per status, from database rows (set by the reconciler).",
    ["status"],
    multiprocess_mode="mostrecent",
)

EVENT_WEBHOOK_ATTEMPTS = Counter(
    "switchboard_event_webhook_attempts_total",
    "Event-webhook delivery attempts, by result (succeeded, http_error, timeout, "
    "connection_error, refused, abandoned).",
    ["result"],
)
EVENT_WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "switchboard_event_webhook_attempt_seconds",
    "Time from sending an event-webhook request to its answer (or the error).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
)
EVENT_WEBHOOK_DELIVERIES = Counter(
    "switchboard_event_webhook_deliveries_total",
    "Event-webhook deliveries that became final, by status (succeeded, failed).",
    ["status"],
)
EVENT_WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "switchboard_event_webhook_endpoints_disabled_total",
    "Event-webhook endpoints disabled because their deliveries kept failing.",
)
EVENT_WEBHOOK_DUE = Gauge(
    "switchboard_event_webhook_due",
    "Event-webhook deliveries due now and not sent yet (set by the sweep).",
    multiprocess_mode="mostrecent",
)
EVENT_WEBHOOK_OLDEST_DUE_SECONDS = Gauge(
    "switchboard_event_webhook_oldest_due_seconds",
    "How long the oldest due event-webhook delivery has waited past its time (set by the sweep).",
    multiprocess_mode="mostrecent",
)

DISPOSITIONS_SET = Counter(
    "switchboard_dispositions_total",
    "Dispositions settled on ended calls, by who set them (agent, operator, rule).",
    ["source"],
)
LEAD_RECYCLES = Counter(
    "switchboard_lead_recycles_total",
    "Lead recycling by disposition, by result (retry, never, move, exhausted, run_closed, "
    "target_closed, superseded).",
    ["result"],
)

RECORDINGS_FETCHED = Counter(
    "switchboard_recordings_fetched_total",
    "Outbound recordings fetched from the provider, by result (stored, refused).",
    ["result"],
)
RECORDINGS_EXPIRED = Counter(
    "switchboard_recordings_expired_total",
    "Recordings deleted by their business's retention period.",
)

CALL_COST = Counter(
    "switchboard_call_cost_total",
    "What the provider charged for calls (its price), by currency.",
    ["unit"],
)
CALL_ANSWERS = Counter(
    "switchboard_call_answers_total",
    "Outbound calls answered, by who answered (human, machine, fax, unknown: AnsweredBy).",
    ["answered_by"],
)

MACHINE_ACTIONS = Counter(
    "switchboard_machine_actions_total",
    "What runs' machine policies did when AMD said a machine answered (hang_up, voicemail).",
    ["action"],
)

RUNS_AUTO_PAUSED = Counter(
    "switchboard_runs_auto_paused_total",
    "Runs that paused themselves, by reason (abandonment, provider_failures).",
    ["reason"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def render_latest(extra: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The exposition text: summed over every process when in multiprocess mode, plus
    ``extra`` collectors evaluated now (such as queue depth read from Redis)."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extras = CollectorRegistry()
    for collector in extra:
        extras.register(collector)
    return body + generate_latest(extras), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
