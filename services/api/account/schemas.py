"""Who is calling: the token's role and business."""

from __future__ import annotations

from typing import Literal

from services.api.schemas import Shape


class Business(Shape):
    id: int
    name: str
    timezone: str
    max_concurrent_calls: int


class Me(Shape):
    role: Literal["business", "operator"]
    token_id: int
    business: Business | None
