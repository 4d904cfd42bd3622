"""All models, importable from one place so API and worker share them without cycles."""

from libs.common.models.api_token import ApiToken, TokenRole
from libs.common.models.background_job import BackgroundJob, JobStatus
from libs.common.models.base import Base, utcnow
from libs.common.models.business import Business

__all__ = ["ApiToken", "BackgroundJob", "Base", "Business", "JobStatus", "TokenRole", "utcnow"]
