"""The outcome of an ended call, and the disposition a business's rules give it."""

from __future__ import annotations

from collections.abc import Iterable

from libs.common.models import Disposition

#: What a completed call's AnsweredBy says about who answered (None and "unknown": a person,
#: as far as anyone knows; AMD off never sends it).
_ANSWERED_BY_OUTCOME = {
    "machine_start": "machine",
    "machine_end_beep": "machine",
    "machine_end_silence": "machine",
    "machine_end_other": "machine",
    "fax": "fax",
}


def outcome_of(status: str, answered_by: str | None) -> str:
    """One of models.OUTCOMES for a call with final ``status``."""
    if status == "completed":
        return _ANSWERED_BY_OUTCOME.get(answered_by or "", "completed")
    return status


def by_rule(dispositions: Iterable[Disposition], outcome: str) -> Disposition | None:
    """The business's disposition for ``outcome``, if a rule names it (at most one does)."""
    return next((d for d in dispositions if outcome in (d.outcomes or ())), None)
