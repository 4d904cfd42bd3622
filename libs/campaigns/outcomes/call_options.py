"""What a run asks of the provider for each of its calls, beyond placing it: recording (and,
answering-machine detection). One read of the run per call placed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from libs.campaigns.outcomes import amd, recordings
from libs.common.db import Database
from libs.common.models import CallJob, Run


def for_job(database: Database, public_base_url: str, job_id: int) -> dict[str, Any]:
    """Extra ``calls.create`` arguments for the job's run (the placer passes them through)."""
    with database.session() as session:
        run = session.scalar(select(Run).join(CallJob, CallJob.run_id == Run.id)
                             .where(CallJob.id == job_id))  # fmt: skip
        if run is None:
            return {}
        return recordings.create_options(run, public_base_url) | amd.create_options(
            run, public_base_url
        )
