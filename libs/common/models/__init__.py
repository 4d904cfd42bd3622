"""All models, importable from one place so API and worker share them without cycles."""

from libs.common.models.agent import AGENT_KINDS, AGENT_TOOLS, AgentSettings, TranscriptLine
from libs.common.models.api_token import ApiToken, TokenRole
from libs.common.models.background_job import BackgroundJob, JobStatus
from libs.common.models.base import Base, utcnow
from libs.common.models.business import Business
from libs.common.models.call import Call, CallEvent
from libs.common.models.campaign import (
    CallJob,
    CallJobStatus,
    Run,
    RunStatus,
)
from libs.common.models.disposition import OUTCOMES, Disposition, RecycleAction
from libs.common.models.lead import DncEntry, Lead
from libs.common.models.phone_number import PhoneNumber
from libs.common.models.receipt import GmailConnection, Receipt, ReceiptAttachment
from libs.common.models.schedule import (
    ALL_DAYS,
    OccurrenceStatus,
    Schedule,
    ScheduleOccurrence,
)
from libs.common.models.upload import Upload
from libs.common.models.webhook import (
    AttemptOutcome,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "AGENT_KINDS",
    "AGENT_TOOLS",
    "ALL_DAYS",
    "OUTCOMES",
    "AgentSettings",
    "ApiToken",
    "AttemptOutcome",
    "BackgroundJob",
    "Base",
    "Business",
    "Call",
    "CallEvent",
    "CallJob",
    "CallJobStatus",
    "DeliveryStatus",
    "Disposition",
    "DncEntry",
    "GmailConnection",
    "JobStatus",
    "Lead",
    "OccurrenceStatus",
    "PhoneNumber",
    "Receipt",
    "ReceiptAttachment",
    "RecycleAction",
    "Run",
    "RunStatus",
    "Schedule",
    "ScheduleOccurrence",
    "TokenRole",
    "TranscriptLine",
    "Upload",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "utcnow",
]
