"""BackgroundJobs the SPA follows."""

from __future__ import annotations

from flask import Blueprint

from libs.common import repositories
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.auth import current_principal
from services.api.schemas import Job
from services.api.spec import answers, api

blueprint = Blueprint("jobs", __name__)


@blueprint.get("/jobs/<int:job_id>")
@api.validate(resp=answers({200: Job}, 404, auth="any"))
def get_job(job_id: int) -> Job:
    principal = current_principal()
    scope = None if principal.is_operator else principal.business_id
    job = repositories.get_job_for(get_session(), job_id, scope)
    if job is None:
        # Another business's job is indistinguishable from a missing one.
        raise ApiError(404, "not_found", f"no job {job_id}")
    return Job.of(job)
