"""The call lifecycle's table, its diagrams in docs/architecture.md, and the status-write guard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libs.common import call_status as table
from libs.common.db import Database
from libs.common.models import CallJobStatus
from services.calls.media import call_log
from tests.campaign_factories import make_campaign, start_attempt
from tests.support import status_guard

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
EDGE = re.compile(r"^\s*(\w+) --> (\w+)(?::.*)?$")


def _diagrams() -> list[set[tuple[str, str]]]:
    blocks = re.findall(r"```mermaid\n(.*?)```", ARCHITECTURE.read_text(), re.DOTALL)
    diagrams = []
    for block in blocks:
        edges = {m.groups() for line in block.splitlines() if (m := EDGE.match(line))}
        diagrams.append({(a, b) for a, b in edges})
    return diagrams


def _name(status: str) -> str:
    return status.replace("-", "_")  # mermaid state names cannot hold "-"


def test_the_call_diagram_is_the_table() -> None:
    call_diagram = _diagrams()[0]
    expected = {(_name(a), _name(b)) for a, moves in table.CALL_TRANSITIONS.items() for b in moves}
    assert call_diagram - {("[*]", "queued")} == expected


def test_the_job_diagram_is_the_table() -> None:
    job_diagram = _diagrams()[1]
    expected = {(a, b) for a, moves in table.JOB_TRANSITIONS.items() for b in moves}
    assert job_diagram - {("[*]", "queued")} == expected


def test_a_call_moves_forward_only() -> None:
    for current, moves in table.CALL_TRANSITIONS.items():
        for new in moves:
            forward = table.STATUS_RANK[new] > table.STATUS_RANK[current]
            assert forward or (current == "failed" and new in table.FINAL_CALL_STATUSES)
    assert not table.call_moves("completed", "ringing")
    assert not table.call_moves("in-progress", "ringing")


def test_the_table_names_every_status_of_the_models_and_no_other() -> None:
    every_job_status = set(table.JOB_TRANSITIONS)
    assert every_job_status == {s.value for s in CallJobStatus}
    assert set(table.JOB_FOLLOWING_CALL.values()) <= every_job_status
    assert set(table.FINAL_JOB_STATUS.values()) <= every_job_status


@pytest.mark.parametrize(
    ("statement", "table_written"),
    [
        ("UPDATE calls SET status=%(new_status)s WHERE calls.id = %(row_id)s", "calls"),
        ("UPDATE call_jobs SET attempt=1, status='queued' WHERE id = 1", "call_jobs"),
        ("INSERT INTO calls (business_id, status) VALUES (1, 'queued')", "calls"),
        # The status in a WHERE clause is read, not written.
        ("UPDATE calls SET stream_sid=%(s)s WHERE calls.status NOT IN ('completed')", None),
        ("UPDATE calls SET error_status_note=1 WHERE id = 2", None),
        ("UPDATE runs SET status='completed' WHERE id = 1", None),
    ],
)
def test_the_guard_reads_which_status_a_statement_writes(
    statement: str, table_written: str | None
) -> None:
    assert status_guard.writes_status(statement) == table_written


def test_a_status_written_outside_the_lifecycle_fails_the_test(db: Database) -> None:
    campaign = make_campaign(db, 1)
    call_id = start_attempt(db, campaign.job_ids[0], sid="CA" + "a" * 32)
    # call_log.update_call sets plain columns of the call log; a status through it would be a
    # second writer of the call's status, which the lifecycle exists to prevent.
    with pytest.raises(status_guard.StatusWrittenOutsideLifecycle, match=r"call_log\.py"):
        call_log.update_call(db, call_id, status="completed")
    call_log.update_call(db, call_id, disposition="interested")  # plain columns are fine
