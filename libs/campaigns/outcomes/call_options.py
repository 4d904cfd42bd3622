"""What a run asks of the provider for each of its calls, beyond placing it: recording and
answering-machine detection. Read with the claim (``Claim.record_calls``, ``Claim.amd_mode``);
a claim made without them (the reconciler placing an attempt again) reads the run once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from libs.campaigns.lifecycle.dialing import Claim
from libs.campaigns.outcomes import amd, recordings
from libs.common.db import Database
from libs.common.models import CallJob, Run


def for_claim(database: Database, public_base_url: str, claim: Claim) -> dict[str, Any]:
    """Extra ``calls.create`` arguments for the claim's run (the placer passes them through)."""
    record_calls, amd_mode = claim.record_calls, claim.amd_mode
    if record_calls is None or amd_mode is None:
        with database.session() as session:
            row = session.execute(
                select(Run.record_calls, Run.amd_mode)
                .join(CallJob, CallJob.run_id == Run.id)
                .where(CallJob.id == claim.job_id)
            ).first()
        if row is None:
            return {}
        record_calls, amd_mode = row
    return recordings.create_options(record_calls, public_base_url) | amd.create_options(
        amd_mode, public_base_url
    )
