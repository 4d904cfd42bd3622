"""THE transition table of a call and of its job. Everything else derives from it.

A call moves through Twilio's statuses forward only; a job follows the call of its current
attempt. The table is data, with no imports, so the statements, the webhook's parser, the
runs' progress and the documentation's state diagram (docs/architecture.md, compared by
tests/common/test_lifecycle_table.py) all read the same thing.
"""

from __future__ import annotations

#: Twilio's call statuses in the order a call moves through them; the finals share one rank.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}
FINAL_CALL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == 4)

#: The reconciler's failure of an attempt whose call, the provider says, does not exist and
#: cannot be placed again (its run ended meanwhile). A provider status arriving later still
#: replaces it (the one move out of a final status).
NO_PROVIDER_CALL_ID = "no_provider_call_id"

#: Call status → the statuses it may move to. Forward only (a callback delivered late or twice
#: is a no-op), plus "failed" → another final status: the provider's word replacing the
#: reconciler's ``NO_PROVIDER_CALL_ID`` (applied only to a call failed with that code).
CALL_TRANSITIONS: dict[str, frozenset[str]] = {
    status: frozenset(s for s, r in STATUS_RANK.items() if r > rank)
    | (FINAL_CALL_STATUSES - {"failed"} if status == "failed" else frozenset())
    for status, rank in STATUS_RANK.items()
}

#: Twilio's ``AnsweredBy`` values that say a machine answered (AMD on).
MACHINE_ANSWERS = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")

#: Job statuses (``CallJobStatus`` values).
JOB_QUEUED, JOB_DIALING, JOB_IN_CALL = "queued", "dialing", "in_call"
#: A call is active exactly while its job is in one of these: the count is the concurrency.
ACTIVE_JOB_STATUSES = (JOB_DIALING, JOB_IN_CALL)
OPEN_JOB_STATUSES = (JOB_QUEUED, *ACTIVE_JOB_STATUSES)

#: A job's status while its current call has this (non-final) status.
JOB_FOLLOWING_CALL: dict[str, str] = {
    "queued": JOB_DIALING,
    "initiated": JOB_DIALING,
    "ringing": JOB_DIALING,
    "in-progress": JOB_IN_CALL,
}
#: Final call status → final job status when no retry follows.
FINAL_JOB_STATUS: dict[str, str] = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
#: Outcomes that queue the job again after the run's retry delay while attempts remain.
RETRIED = frozenset({"busy", "no-answer"})

#: Job status → the statuses it may move to, and what moves it (the diagram's labels).
JOB_TRANSITIONS: dict[str, dict[str, str]] = {
    JOB_QUEUED: {
        JOB_DIALING: "claimed (dialing.fill_slots)",
        "skipped_dnc": "number on the do-not-call list",
        "canceled": "run canceled, or its lead moved to another run",
    },
    JOB_DIALING: {
        JOB_IN_CALL: "call in-progress",
        JOB_QUEUED: "provider busy (nothing created) or busy/no-answer with attempts left",
        **{job: f"call {call}" for call, job in FINAL_JOB_STATUS.items()},
    },
    JOB_IN_CALL: {
        JOB_QUEUED: "busy/no-answer with attempts left",
        **{job: f"call {call}" for call, job in FINAL_JOB_STATUS.items()},
    },
    # The one move out of a final job: the provider's final status replacing NO_PROVIDER_CALL_ID.
    "failed": {
        job: f"call {call} (provider's word)"
        for call, job in FINAL_JOB_STATUS.items()
        if job != "failed"
    },
    "canceled": {},
    "skipped_dnc": {},
}
#: Final jobs an outcome judged after the call may queue again (lifecycle.recycle): a
#: disposition's "retry after N hours", a run's retry of answering machines.
REQUEUED_FROM = ("completed", "busy", "no_answer", "failed")
for _final in REQUEUED_FROM:
    JOB_TRANSITIONS.setdefault(_final, {})[JOB_QUEUED] = (
        "requeued by a disposition or machine retry"
    )


def call_moves(current: str, new: str) -> bool:
    """Whether a call with status ``current`` may take ``new`` (by the table alone)."""
    return new in CALL_TRANSITIONS.get(current, frozenset())
