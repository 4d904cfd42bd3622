"""Queries on the foundation models, shared by the api, the worker and the CLI."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.models import ApiToken, BackgroundJob, Business, TokenRole
from libs.common.tokens import generate_token, hash_token


def create_business(
    session: Session, name: str, timezone: str = "UTC", max_concurrent_calls: int = 3
) -> Business:
    business = Business(name=name, timezone=timezone, max_concurrent_calls=max_concurrent_calls)
    session.add(business)
    session.flush()
    return business


def create_token(
    session: Session, role: TokenRole, business_id: int | None, name: str = ""
) -> tuple[ApiToken, str]:
    """A new token row and the secret, which exists only in this return value."""
    secret = generate_token()
    token = ApiToken(
        role=role,
        business_id=business_id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:10],
    )
    session.add(token)
    session.flush()
    return token, secret


def find_active_token(session: Session, secret: str) -> ApiToken | None:
    return session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None)
        )
    )


def get_job_for(session: Session, job_id: int, business_id: int | None) -> BackgroundJob | None:
    """A job visible to the caller: any job for an operator (None), else only the business's."""
    query = select(BackgroundJob).where(BackgroundJob.id == job_id)
    if business_id is not None:
        query = query.where(BackgroundJob.business_id == business_id)
    return session.scalar(query)
