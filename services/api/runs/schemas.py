"""Runs: what a client sends to create one, and how a run and its progress are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from libs.campaigns.outcomes import compliance
from libs.common.models import Run as RunRow
from libs.common.models import RunStatus
from libs.telephony.calling_window import check_window
from services.api.runs.service import MAX_LEADS_PER_RUN, TRANSITIONS, LeadSelection
from services.api.schemas import Body, LocalTime, Page, Paging, RowId, Shape, optional

MAX_RETRY_DELAY_S = 7 * 86400
MAX_NAME_LENGTH = 200
MAX_FILTER_LENGTH = 100

RunAction = Literal["start", "pause", "resume", "cancel"]


class Window(Body):
    start: LocalTime = "08:00"
    end: LocalTime = "21:00"

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        check_window(self.start, self.end)  # InvalidWindow is a ValueError: a 400 naming it
        return self


class RunLeadFilter(Body):
    """Leads to call; {} selects every lead of the business."""

    source: str | None = Field(None, max_length=MAX_FILTER_LENGTH)
    last_call_status: str | None = Field(None, max_length=MAX_FILTER_LENGTH)
    q: str | None = Field(None, max_length=MAX_FILTER_LENGTH, description="name or phone contains")


class MachinePolicyInput(Body):
    """Answering-machine detection (asynchronous: a person is connected at once) and what a
    machine gets. voicemail needs DetectMessageEnd (it starts after the greeting's beep)."""

    detection: Literal["off", "Enable", "DetectMessageEnd"] = "off"
    action: Literal["hang_up", "voicemail", "agent"] = Field(
        "hang_up", description="for a machine: hang up, leave the voicemail after the beep, or "
        "let the voice agent talk anyway; a fax is always hung up on",
    )  # fmt: skip
    voicemail_text: str | None = optional(min_length=1, max_length=1000,
                                          description="voicemail spoken by <Say>")  # fmt: skip
    voicemail_audio_url: str | None = optional(
        max_length=500, pattern=r"^https://[^\s]+$",
        description="voicemail played by <Play>: an https URL of an audio file (wins over text)",
    )  # fmt: skip
    counts_as_attempt: bool = Field(True, description="a machine uses up one of max_attempts")
    retry_after_s: int | None = optional(
        ge=60, le=MAX_RETRY_DELAY_S, description="call a machine's lead again after this long "
        "(left out: not again for the machine)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _voicemail(self) -> MachinePolicyInput:
        if self.action != "hang_up" and self.detection == "off":
            raise ValueError("amd.action needs detection Enable or DetectMessageEnd")
        if self.action == "voicemail":
            if self.detection != "DetectMessageEnd":
                raise ValueError("a voicemail needs detection DetectMessageEnd (after the beep)")
            if not (self.voicemail_text or self.voicemail_audio_url):
                raise ValueError("a voicemail needs voicemail_text or voicemail_audio_url")
        return self


class MachinePolicy(Shape):
    detection: str
    action: str
    voicemail_text: str | None
    voicemail_audio_url: str | None
    counts_as_attempt: bool
    retry_after_s: int | None


class ComplianceInput(Body):
    """When the run pauses itself (it says why; resume clears it). The abandonment limit may be
    lowered, never raised: 3 % over 30 days is the US telemarketing limit."""

    max_abandon_rate: float = Field(
        compliance.MAX_ABANDON_RATE, ge=0, le=compliance.LEGAL_MAX_ABANDON_RATE,
        description="pause before abandoned / answered-by-a-person calls of the last 30 days "
        "would pass this (a call is abandoned when no agent was heard within 2 s of the "
        "answer); at most 0.03, the legal limit",
    )  # fmt: skip
    max_failure_rate: float = Field(
        compliance.MAX_FAILURE_RATE, gt=0, le=1,
        description="pause when more than this share of the calls that ended within "
        "failure_window_s failed at the provider (carrier errors, invalid numbers)",
    )  # fmt: skip
    failure_window_s: int = Field(
        int(compliance.FAILURE_WINDOW.total_seconds()), ge=60, le=86400,
        description="the provider failures' window, in seconds",
    )  # fmt: skip
    min_failure_sample: int = Field(
        compliance.MIN_FAILURE_SAMPLE, ge=1, le=10000,
        description="judge provider failures only once this many calls ended in the window",
    )  # fmt: skip


class Compliance(Shape):
    max_abandon_rate: float
    max_failure_rate: float
    failure_window_s: int
    min_failure_sample: int


class RunInput(Body):
    """Exactly one of lead_ids or filter ({} selects every lead)."""

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    lead_ids: list[RowId] | None = Field(None, min_length=1, max_length=MAX_LEADS_PER_RUN)
    filter: RunLeadFilter | None = None
    max_attempts: int = Field(1, ge=1, le=10)
    retry_delay_s: int = Field(3600, ge=0, le=MAX_RETRY_DELAY_S)
    window: Window = Field(
        default_factory=Window,
        description="local calling hours of the called party (default 08:00-21:00)",
    )
    record: bool = Field(
        False, description="record the run's calls, dual channel (GET /api/calls/{id}/recording)"
    )
    # optional() fields look required to the pydantic mypy plugin; each has a default.
    amd: MachinePolicyInput = Field(default_factory=MachinePolicyInput)  # type: ignore[arg-type]
    compliance: ComplianceInput = Field(default_factory=ComplianceInput)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _one_selection(self) -> RunInput:
        if (self.lead_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of lead_ids (array) or filter (object, {} for all)")
        if not self.name.strip():
            raise ValueError("name must not be blank")
        return self

    def selection(self) -> LeadSelection:
        if self.lead_ids is not None:
            return LeadSelection(lead_ids=sorted(set(self.lead_ids)))
        assert self.filter is not None
        return LeadSelection(**self.filter.model_dump())


class RunProgress(Shape):
    total: int
    done: int
    percent: float
    active_calls: int
    attempts: int
    by_status: dict[str, int]
    eta_s: float | None


class RunWindow(Shape):
    start: str
    end: str


class Run(Shape):
    id: int
    name: str
    status: Literal["draft", "running", "paused", "canceled", "completed"]
    max_attempts: int
    retry_delay_s: int
    window: RunWindow
    record: bool
    amd: MachinePolicy
    compliance: Compliance
    paused_reason: str | None = Field(
        description="why the run paused itself (abandonment near 3 %, provider failures); "
        "cleared by resume"
    )
    auto_paused_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: RunProgress
    actions: list[RunAction] = Field(
        description="what POST /api/runs/{id}/{action} allows now; others answer 409"
    )

    @classmethod
    def of(cls, run: RunRow, progress: dict[str, Any]) -> Run:
        return cls(
            id=run.id,
            name=run.name,
            status=run.status.value,
            max_attempts=run.max_attempts,
            retry_delay_s=run.retry_delay_s,
            window=RunWindow(start=run.window_start, end=run.window_end),
            record=run.record_calls,
            paused_reason=run.paused_reason,
            auto_paused_at=run.auto_paused_at,
            amd=MachinePolicy(
                detection=run.amd_mode,
                action=run.machine_action,
                voicemail_text=run.voicemail_text,
                voicemail_audio_url=run.voicemail_audio_url,
                counts_as_attempt=run.machine_counts_as_attempt,
                retry_after_s=run.machine_retry_delay_s,
            ),
            compliance=Compliance(
                max_abandon_rate=run.max_abandon_rate,
                max_failure_rate=run.max_failure_rate,
                failure_window_s=run.failure_window_s,
                min_failure_sample=run.min_failure_sample,
            ),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            progress=RunProgress(**progress),
            actions=allowed_actions(run.status),
        )


def allowed_actions(status: RunStatus) -> list[RunAction]:
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]  # type: ignore[misc]


class RunPage(Page[Run]):
    pass


class RunPaging(Paging):
    per_page: int = Field(50, ge=1, le=100)
