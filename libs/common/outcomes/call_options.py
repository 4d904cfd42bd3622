"""What a run asks of the provider for each of its calls, beyond placing it: recording (and,
as runs gain them, answering-machine detection). One read of the run per call placed."""

from __future__ import annotations

from typing import Any

from libs.common.db import Database
from libs.common.outcomes import recordings


def for_job(database: Database, public_base_url: str, job_id: int) -> dict[str, Any]:
    """Extra ``calls.create`` arguments for the job's run (the placer passes them through)."""
    with database.session() as session:
        return recordings.create_options(session, public_base_url, job_id)
