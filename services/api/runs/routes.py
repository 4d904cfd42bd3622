"""Runs (campaigns): create, start, pause, resume, cancel, progress."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import func, select

from libs.campaigns.lifecycle import followups
from libs.common.models import Business, utcnow
from libs.common.models import Run as RunRow
from libs.common.settings import Settings
from libs.queueops.outbox import enqueue_after_commit
from libs.queueops.queue_health import check_broker
from libs.web.db import get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.auth import current_business_id
from services.api.runs import service
from services.api.runs.schemas import Run, RunInput, RunPage, RunPaging
from services.api.spec import answers, api

blueprint = Blueprint("runs", __name__)


def _run_or_404(run_id: int, lock: bool = False) -> RunRow:
    query = select(RunRow).where(RunRow.id == run_id, RunRow.business_id == current_business_id())
    # FOR NO KEY UPDATE, not FOR UPDATE: a claim inserting a call row (which references the
    # run, so takes FOR KEY SHARE on it) while holding the job rows a cancel must update would
    # otherwise deadlock with that cancel.
    run = get_session().scalar(query.with_for_update(key_share=True) if lock else query)
    if run is None:
        raise ApiError(404, "not_found", f"no run {run_id}")
    return run


def _shown(run: RunRow) -> Run:
    return Run.of(run, service.progress(get_session(), [run], utcnow())[run.id])


@blueprint.post("/runs")
@api.validate(resp=answers({201: Run}))
def create_run(json: RunInput) -> tuple[Run, int]:
    """Create a run (draft) with one job per selected lead."""
    selection = json.selection()
    session = get_session()
    business = session.get_one(Business, current_business_id())
    leads = service.select_leads(session, business.id, selection)
    if selection.lead_ids is not None and len(leads) != len(selection.lead_ids):
        found = {lead.id for lead in leads}
        missing = [i for i in selection.lead_ids if i not in found][:50]
        raise bad_request("unknown lead ids", details={"lead_ids": missing})
    if not leads:
        raise bad_request("the selection matches no lead")
    if len(leads) > service.MAX_LEADS_PER_RUN:
        raise bad_request(f"at most {service.MAX_LEADS_PER_RUN} leads per run")
    run, _ = service.create_run(
        session,
        business,
        leads,
        name=json.name.strip(),
        max_attempts=json.max_attempts,
        retry_delay_s=json.retry_delay_s,
        window_start=json.window.start,
        window_end=json.window.end,
        record_calls=json.record,
        amd_mode=json.amd.detection,
        machine_action=json.amd.action,
        voicemail_text=json.amd.voicemail_text,
        voicemail_audio_url=json.amd.voicemail_audio_url,
        machine_counts_as_attempt=json.amd.counts_as_attempt,
        machine_retry_delay_s=json.amd.retry_after_s,
        max_abandon_rate=json.compliance.max_abandon_rate,
        max_failure_rate=json.compliance.max_failure_rate,
        failure_window_s=json.compliance.failure_window_s,
        min_failure_sample=json.compliance.min_failure_sample,
    )
    session.commit()
    return _shown(run), 201


@blueprint.get("/runs")
@api.validate(resp=answers({200: RunPage}))
def list_runs(query: RunPaging) -> RunPage:
    """Runs, newest first, with progress."""
    session = get_session()
    rows = select(RunRow).where(RunRow.business_id == current_business_id())
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    runs = list(
        session.scalars(rows.order_by(RunRow.id.desc()).offset(query.offset).limit(query.per_page))
    )
    progress = service.progress(session, runs, utcnow())
    items = [Run.of(run, progress[run.id]) for run in runs]
    return RunPage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.get("/runs/<int:run_id>")
@api.validate(resp=answers({200: Run}, 404))
def get_run(run_id: int) -> Run:
    """A run with progress computed from its jobs."""
    return _shown(_run_or_404(run_id))


def _act(run_id: int, action: str) -> Run:
    settings: Settings = current_app.config["SETTINGS"]
    dispatches = action in ("start", "resume")
    if dispatches:
        check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    run = _run_or_404(run_id, lock=True)
    try:
        service.transition(session, run, action, utcnow())
    except service.InvalidTransition as exc:
        raise ApiError(409, "invalid_state", str(exc)) from None
    if dispatches:
        enqueue_after_commit(session, followups.dispatch(run.business_id, repairable=False))
    session.commit()
    return _shown(run)


_ACTED = {200: (Run, "the run with its progress and the actions it now allows")}


@blueprint.post("/runs/<int:run_id>/start")
@api.validate(resp=answers(_ACTED, 404, 409, 503))
def start_run(run_id: int) -> Run:
    """Start a draft run."""
    return _act(run_id, "start")


@blueprint.post("/runs/<int:run_id>/pause")
@api.validate(resp=answers(_ACTED, 404, 409))
def pause_run(run_id: int) -> Run:
    """Pause: no new dials; calls in progress finish."""
    return _act(run_id, "pause")


@blueprint.post("/runs/<int:run_id>/resume")
@api.validate(resp=answers(_ACTED, 404, 409, 503))
def resume_run(run_id: int) -> Run:
    """Resume a paused run."""
    return _act(run_id, "resume")


@blueprint.post("/runs/<int:run_id>/cancel")
@api.validate(resp=answers(_ACTED, 404, 409))
def cancel_run(run_id: int) -> Run:
    """Cancel: queued jobs are canceled; calls in progress finish and are recorded."""
    return _act(run_id, "cancel")
