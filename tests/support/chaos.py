"""Chaos scenarios' measuring side: a campaign, what the provider saw (the simulator's ledger),
what the database says, and one row per scenario for ``docs/reliability.md``.

The ledger is the provider's truth, independent of the system under test: every call created
and every callback attempt, delivered or given up. The checks compare it with the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from libs.common.call_status import OPEN_JOB_STATUSES
from libs.common.db import Database
from libs.common.models import Call, CallJob, Run
from libs.common.settings import ROOT
from simulators.twilio.engine import CALLBACK_RETRY_WINDOW_S, FINAL
from tests.support.stack import Business, Stack, make_business
from tests.support.waiting import wait_until


@dataclass
class Campaign:
    runs: list[tuple[Business, int]]
    slots: int
    expected_jobs: int
    #: Wall-clock time (``time.time()``) the first run was started.
    started_at: float = 0.0

    @property
    def run_ids(self) -> list[int]:
        return [run_id for _, run_id in self.runs]


def phone(exchange: int, business: int, lead: int) -> str:
    """Valid, distinct US numbers: one exchange per campaign, a digit per business."""
    return f"+1415{exchange:03d}{business}{lead:03d}"


def create_campaign(
    stack: Stack, db: Database, exchange: int, businesses: int, leads: int, slots: int
) -> Campaign:
    """Businesses with their leads and a draft run each; nothing is dialed before ``start``."""
    runs = []
    for b in range(businesses):
        business = make_business(db, f"Chaos {exchange}-{b}", limit=slots)
        body = {"leads": [{"phone": phone(exchange, b, i)} for i in range(leads)]}
        requests.post(f"{stack.api}/api/leads/bulk", json=body, headers=business.headers,
                      timeout=30).raise_for_status()  # fmt: skip
        run = requests.post(
            f"{stack.api}/api/runs",
            json={"name": "chaos", "filter": {}, "window": {"start": "00:00", "end": "23:59"}},
            headers=business.headers,
            timeout=30,
        )
        run.raise_for_status()
        runs.append((business, int(run.json()["id"])))
    return Campaign(runs, slots, businesses * leads)


def start_campaign(stack: Stack, campaign: Campaign) -> None:
    campaign.started_at = time.time()
    for business, run_id in campaign.runs:
        requests.post(f"{stack.api}/api/runs/{run_id}/start", headers=business.headers,
                      timeout=30).raise_for_status()  # fmt: skip


def calls_placed(db: Database, campaign: Campaign) -> int | None:
    """Call rows of the campaign so far; None while the database cannot answer."""
    try:
        with db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(Call).where(Call.run_id.in_(campaign.run_ids))
            )
        return int(count or 0)
    except SQLAlchemyError:
        return None


def wait_until_placed(db: Database, campaign: Campaign, n: int, timeout_s: float = 120) -> None:
    if not wait_until(lambda: (calls_placed(db, campaign) or 0) >= n, timeout_s):
        raise AssertionError(f"fewer than {n} calls placed after {timeout_s}s")


def runs_finished(db: Database, run_ids: Iterable[int]) -> bool:
    """Every run finished (``finished_at``) and no job open: read from the rows, once."""
    ids = list(run_ids)
    try:
        with db.session() as session:
            unfinished = session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.id.in_(ids), Run.finished_at.is_(None))
            )
            open_jobs = session.scalar(
                select(func.count())
                .select_from(CallJob)
                .where(CallJob.run_id.in_(ids), CallJob.status.in_(OPEN_JOB_STATUSES))
            )
        return not unfinished and not open_jobs
    except SQLAlchemyError:
        return False  # the database is down: certainly not finished as far as we can tell


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def settled_ledger(stack: Stack, job_ids: set[str], timeout_s: float) -> list[dict[str, Any]]:
    """The ledger's calls for these jobs once every call has ended and every callback has been
    delivered, or given up: the simulator stops retrying after its window, so waiting longer
    than that cannot change the answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        calls = [c for c in stack.sim.ledger()["calls"] if c["job"] in job_ids]
        pending = [
            c
            for c in calls
            if c["status"] not in FINAL or any(not cb["delivered"] for cb in c["callbacks"])
        ]
        if not pending or time.monotonic() > deadline:
            return calls
        time.sleep(1.0)


def _peak_by(calls: list[dict[str, Any]], key: str) -> dict[Any, int]:
    """Most calls live at once on the provider side, per value of ``key``."""
    edges: dict[Any, list[tuple[float, int]]] = defaultdict(list)
    for call in calls:
        edges[call[key]].append((call["start_at"], 1))
        if call["ended_at"] is not None:
            edges[call[key]].append((call["ended_at"], -1))
    peaks = {}
    for value, steps in edges.items():
        live = peak = 0
        for _, step in sorted(steps):  # an end before a start at the same instant
            live += step
            peak = max(peak, live)
        peaks[value] = peak
    return peaks


@dataclass
class Measured:
    """What the provider and the database say once the system has settled."""

    expected_jobs: int
    jobs: int
    non_final: int
    outcomes: dict[str, int]
    #: Failed jobs by error code (a worker killed between claim and create: no_provider_call_id).
    failures: dict[str, int]
    provider_calls: int
    #: Extra creates for one job attempt, plus overlapping live calls to one number.
    duplicates: int
    callbacks: int
    callbacks_undelivered: int
    #: Provider calls whose row is missing or whose status differs from the provider's.
    log_mismatches: int
    peak_per_business: int
    #: Wall-clock instants: the last job's end and each provider call's creation.
    last_final_at: float | None
    creates: list[float] = field(default_factory=list)

    @property
    def jobs_lost(self) -> int:
        return self.expected_jobs - self.jobs + self.non_final

    @property
    def callbacks_lost(self) -> int:
        return self.callbacks_undelivered + self.log_mismatches

    def first_create_after(self, instant: float) -> float | None:
        later = [t for t in self.creates if t >= instant]
        return min(later) - instant if later else None


def measure(stack: Stack, db: Database, run_ids: list[int], expected_jobs: int) -> Measured:
    with db.session() as session:
        job_ids = {
            str(i) for i in session.scalars(select(CallJob.id).where(CallJob.run_id.in_(run_ids)))
        }
    # The provider settles first: a callback still being retried may yet change a row.
    ledger = settled_ledger(stack, job_ids, timeout_s=CALLBACK_RETRY_WINDOW_S + 15)
    with db.session() as session:
        jobs = session.scalars(select(CallJob).where(CallJob.run_id.in_(run_ids))).all()
        rows = session.scalars(select(Call).where(Call.run_id.in_(run_ids))).all()
        last_update = session.scalar(
            select(func.max(CallJob.updated_at)).where(CallJob.run_id.in_(run_ids))
        )

    per_attempt = Counter((c["job"], c["attempt"]) for c in ledger)
    overlapping = sum(max(0, peak - 1) for peak in _peak_by(ledger, "to").values())
    business_of_job = {str(j.id): j.business_id for j in jobs}
    for call in ledger:
        call["business"] = business_of_job[call["job"]]
    by_sid = {row.provider_call_sid: row for row in rows if row.provider_call_sid}
    mismatches = sum(
        1
        for c in ledger
        if c["sid"] not in by_sid or by_sid[c["sid"]].status != c["status"]
    )  # fmt: skip
    callbacks = [cb for c in ledger for cb in c["callbacks"]]
    return Measured(
        expected_jobs=expected_jobs,
        jobs=len(jobs),
        non_final=sum(1 for j in jobs if j.status in OPEN_JOB_STATUSES),
        outcomes=dict(Counter(j.status.value for j in jobs)),
        failures=dict(Counter(j.error_code or "?" for j in jobs if j.status.value == "failed")),
        provider_calls=len(ledger),
        duplicates=sum(n - 1 for n in per_attempt.values()) + overlapping,
        callbacks=len(callbacks),
        callbacks_undelivered=sum(1 for cb in callbacks if not cb["delivered"]),
        log_mismatches=mismatches,
        peak_per_business=max(_peak_by(ledger, "business").values(), default=0),
        last_final_at=last_update.replace(tzinfo=last_update.tzinfo or UTC).timestamp()
        if last_update
        else None,
        creates=sorted(c["created_at"] for c in ledger),
    )


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosRow:
    scenario: str
    fault: str
    jobs: int
    provider_calls: int
    duplicates: int
    jobs_lost: int
    callbacks: int
    callbacks_lost: int
    peak: int
    limit: int
    readyz_down: str
    producers_503: str
    resumed: str
    #: Seconds from the fault's end: services ready, first new provider call, every job final.
    ready_after_s: float | None
    dialing_after_s: float | None
    recovered_after_s: float | None
    duration_s: float
    notes: str
    #: The broker the scenario ran on (``redis`` or ``rabbitmq``).
    broker: str = "redis"


def yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def row_for(
    scenario: str,
    fault: str,
    campaign_runs: int,
    slots: int,
    measured: Measured,
    *,
    fault_end: float | None,
    duration_s: float,
    ready_after_s: float | None = None,
    readyz_down: bool | None = None,
    producers_503: bool | None = None,
    resumed: bool | None,
    notes: str = "",
) -> ChaosRow:
    """``fault_end`` None: no fault, so nothing to recover from (the baseline)."""
    outcome = ", ".join(f"{k} {v}" for k, v in sorted(measured.outcomes.items()))
    failures = ", ".join(f"{k} {v}" for k, v in sorted(measured.failures.items()))
    recovered = (
        max(0.0, measured.last_final_at - fault_end)
        if measured.last_final_at is not None and fault_end is not None
        else None
    )
    return ChaosRow(
        scenario=scenario,
        fault=fault,
        jobs=measured.jobs,
        provider_calls=measured.provider_calls,
        duplicates=measured.duplicates,
        jobs_lost=measured.jobs_lost,
        callbacks=measured.callbacks,
        callbacks_lost=measured.callbacks_lost,
        peak=measured.peak_per_business,
        limit=slots,
        readyz_down=yes_no(readyz_down),
        producers_503=yes_no(producers_503),
        resumed=yes_no(resumed),
        ready_after_s=ready_after_s,
        dialing_after_s=measured.first_create_after(fault_end) if fault_end is not None else None,
        recovered_after_s=recovered,
        duration_s=duration_s,
        notes="; ".join(
            part
            for part in (
                f"{campaign_runs} run{'s' if campaign_runs != 1 else ''}",
                f"jobs: {outcome}",
                f"failed: {failures}" if failures else "",
                f"callbacks undelivered: {measured.callbacks_undelivered}, call rows differing "
                f"from the provider: {measured.log_mismatches}",
                notes,
            )
            if part
        ),
    )


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=ROOT, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


#: The chaos section of docs/reliability.md lies between these; the rest of the file (other
#: reliability figures, e.g. the soak's) is never touched by a chaos run.
BEGIN = "<!-- chaos:begin: written by tests/chaos (tests/support/chaos.py); do not edit -->"
END = "<!-- chaos:end -->"
TITLE = "# Reliability\n"

INTRO = """\
## Chaos scenarios

Produced by `tests/chaos/test_dialer_chaos.py`, which CI runs with the rest of the suite
(`.ci/run` → `make test` → `pytest`; alone: `pytest tests/chaos`). Every scenario runs the real
processes (api and calls under gunicorn, two Dramatiq worker processes, the scheduler, the Twilio
simulator) against a Redis server and a PostgreSQL cluster started for the module alone, so they
can be killed and restarted without touching anything else on the machine. Every scenario runs
twice: on Redis as the broker, then on RabbitMQ (a node started for the module, on free ports,
with `BROKER_URL=amqp://…`; Redis then holds only the coordination state: locks, the CPS
limiter, heartbeats). Each campaign is
several businesses dialing at once, each under its own concurrency limit; simulated calls ring
0.1 s and talk 0.5 s. A complete run of the module saves its rows to
`var/test-results/chaos.json` (a test run never changes the work tree) and `make
reliability-report` renders them here; the test fails if a promised zero or yes is not one.

### Scenarios

- **no fault (baseline)**: the 500-call campaign of the repeated kills below, left alone: the
  difference in duration is what the kills cost.
- **worker SIGKILL**: one worker's whole process group is killed with `kill -9` while calls are
  in flight, and started again a second later.
- **Redis FLUSHDB**: every Redis key (queues, delayed and in-flight messages, locks, the CPS
  limiter) is deleted mid-run; the processes stay connected. On RabbitMQ (**RabbitMQ purged**):
  every queue (ready, delayed, dead-lettered) is purged and the coordination Redis flushed.
- **workers SIGKILLed x3 (500 calls)**: three `kill -9` at random moments of a 500-call campaign
  (10 businesses x 50 leads x 5 slots), each followed by a restart after a random pause; the
  last kill takes every worker at once. The seed is in the notes: `CHAOS_SEED=<seed>` replays it.
- **Redis restarted, data lost**: the Redis server is killed with SIGKILL mid-campaign (300
  calls: 6 businesses x 50 leads x 5 slots, plus 5 calls started after the outage; no
  persistence: everything in it is lost), kept down for a few seconds, and started again empty
  on the same port.
- **RabbitMQ node restarted**: the RabbitMQ half's broker outage: the node is killed with
  SIGKILL mid-campaign (the same 305 calls), kept down for a few seconds and started again on
  the same port and data directory; durable queues and persistent (publisher-confirmed)
  messages come back with it, unacknowledged ones return to their queues.
- **PostgreSQL restarted**: `pg_ctl stop -m immediate` mid-campaign (the same 305 calls; every
  backend killed, no checkpoint), kept down for a few seconds, then started again (WAL recovery).
- **calls service SIGKILLed**: the Twilio-facing service (gunicorn master and workers) is killed
  mid-campaign (300 calls) and started again two seconds later, while the simulator keeps
  posting status callbacks and retries each failed delivery for 15 s, as Twilio does. Callbacks
  are lost only if the service stays unreachable (down plus its boot) longer than that window;
  the notes give how long it was.

During the broker (Redis or RabbitMQ) and PostgreSQL outages the test asks `/readyz` of api
and calls, and tries two producers (`POST /api/runs/{id}/start` and a CSV lead import); after
the outage it checks that they wrote nothing, then that the same start succeeds, with no
process restarted by the test.

### Columns

- **jobs**: call jobs of the scenario's runs; **provider calls**: calls the simulator created.
- **duplicate provider calls**: creates beyond the first for one job attempt, plus calls to one
  number live at the same time (from the simulator's ledger). Promised: 0.
- **jobs lost / non-final**: jobs missing, or still queued, dialing or in a call, once the
  system has settled. Promised: 0. (A job whose worker died between claiming it and asking the
  provider is resolved by the reconciler asking the provider: the call adopted, or placed again.
  Before issue 19 it was failed with `no_provider_call_id` and its lead never called.)
- **callbacks lost**: status callbacks the simulator could not deliver within its retry window,
  plus provider calls whose call row is missing or disagrees with the provider's final status.
  Promised: 0.
- **peak / limit**: most calls live at once for one business at the provider, against its
  concurrency limit. Promised: never above it.
- **readyz down**, **producers 503**: during a Redis or PostgreSQL outage, `/readyz` of api and
  calls answered 503 naming the component, and both producers answered 503 and wrote nothing.
  **resumed by itself**: after the fault, every run finished (and, for outages, `/readyz` was
  ready again and the refused start then succeeded) with nothing restarted but the faulty part.
- **ready / dialing / all final after**: seconds from the fault's end (the component started
  again) until `/readyz` answered 200 on api and calls, until the provider saw its first new
  call, and until the last job of the scenario was final (full recovery; it includes the
  campaign's remaining work).
- **duration**: the scenario's campaign, from its start to its last job's end.

### What the scenarios found

The first runs of the PostgreSQL scenario failed; these changes made it pass:

- A request that found the database unreachable answered `500 internal_error`. Both services
  now answer `503 database_unavailable` with `Retry-After` (`libs/web/errors.py`), as
  they answer `503 queue_unavailable` for the broker; Twilio retries a 5xx callback.
- A worker whose provider call was created while PostgreSQL was down lost the call id when
  storing it failed. The job stayed `dialing` without an id; when the database came back, the
  reconciler failed it (`no_provider_call_id`) before the retried callbacks arrived, so the call
  log said `failed` for calls that had completed, and the slot was given back while the call was
  live. (The test stack's dialing timeout is 5 s; with production's 60 s the same happens after
  a longer outage, when the callbacks are no longer retried.) The worker now keeps the id and
  stores it again through an outage of up to 60 s (`services/worker/dialer/placer.py`), and a
  final status from the provider replaces such an inferred failure on the call and its job
  (`libs/campaigns/lifecycle/status.py`); the reconciler also asks the provider about those
  calls once their id is known (`services/worker/reconciler.py`).
"""


#: Where a complete chaos run leaves its rows: an ignored folder, so a test run never changes
#: the work tree. ``make reliability-report`` renders them into docs/reliability.md.
RESULTS = ROOT / "var" / "test-results" / "chaos.json"
REPORT = ROOT / "docs" / "reliability.md"


def save_results(path: Path, rows: list[ChaosRow], command: str, elapsed_s: float) -> None:
    """Write a complete run's rows with what the report's footer states about the run."""
    run = {
        "command": command,
        "finished_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "commit": _git_revision(),
        "elapsed_s": elapsed_s,
        "cores": os.cpu_count(),
        "load": list(os.getloadavg()),
        "rows": [asdict(row) for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1) + "\n")


def render_reliability(run: dict[str, Any]) -> str:
    rows = [ChaosRow(**row) for row in run["rows"]]
    header = (
        "| scenario | broker | fault | jobs | provider calls | duplicate provider calls | "
        "jobs lost / non-final | callbacks (lost) | peak / limit | readyz down | producers 503 | "
        "resumed by itself | ready after | dialing after | all final after | duration |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.broker} | {r.fault} | {r.jobs} | {r.provider_calls} | "
            f"**{r.duplicates}** | "
            f"**{r.jobs_lost}** | {r.callbacks} (**{r.callbacks_lost}**) | {r.peak} / {r.limit} | "
            f"{r.readyz_down} | {r.producers_503} | {r.resumed} | {_seconds(r.ready_after_s)} | "
            f"{_seconds(r.dialing_after_s)} | {_seconds(r.recovered_after_s)} | "
            f"{r.duration_s:.1f} s |"
        )
    notes = [f"- **{r.scenario}** ({r.broker}): {r.notes}" for r in rows]
    load = ", ".join(f"{x:.1f}" for x in run["load"])
    footer = (
        f"Produced by `{run['command']}` on {run['finished_at']} UTC at commit "
        f"`{run['commit']}`; the chaos module took {run['elapsed_s']:.0f} s on {run['cores']} "
        f"cores (load average {load} at the end)."
    )
    return "\n".join([INTRO, "### Results", "", *lines, "", footer, "", "Notes:", "", *notes])


def write_reliability(path: Path, run: dict[str, Any]) -> None:
    """Replace the chaos section of ``path`` (appended when it has none), keeping the rest."""
    section = f"{BEGIN}\n{render_reliability(run)}\n{END}\n"
    current = path.read_text() if path.exists() else TITLE
    if BEGIN in current and END in current:
        before, rest = current.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = before + section + (f"\n{after}" if after else "")
    else:
        text = current.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    """``make reliability-report``: the last complete chaos run's rows into the report."""
    if not RESULTS.exists():
        print(f"no chaos results at {RESULTS}: run `pytest tests/chaos` first")
        return 1
    write_reliability(REPORT, json.loads(RESULTS.read_text()))
    print(f"{REPORT} written from {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
