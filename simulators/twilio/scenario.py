"""How simulated calls behave, chosen per destination number."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

OUTCOMES = ("completed", "busy", "no-answer", "failed", "invalid")
ANSWERED_BY = ("human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown")  # fmt: skip


@dataclass(frozen=True)
class Behaviour:
    #: completed | busy | no-answer | failed | invalid (rejected at create with 21211)
    outcome: str = "completed"
    ring_s: float = 0.2
    talk_s: float = 1.0
    answered_by: str | None = None
    #: Deliver every callback twice.
    duplicate: bool = False
    #: Deliver the final callback before the intermediate ones.
    reorder: bool = False
    #: Extra delay before each callback is delivered.
    callback_delay_s: float = 0.0
    #: When answered, fetch the call's voice Url and play its TwiML, as Twilio does: its
    #: <Connect><Stream> is opened and streamed until the call ends. Off by default: most
    #: tests and the dialer benchmark measure the dialer, not a voice webhook and a stream
    #: per answered call.
    fetch_twiml: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Behaviour | None = None) -> Behaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        behaviour = replace(base or cls(), **raw)
        if behaviour.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        return behaviour


@dataclass
class Scenario:
    default: Behaviour = field(default_factory=Behaviour)
    numbers: dict[str, Behaviour] = field(default_factory=dict)
    #: The account's calls-per-second: faster creates are queued, not rejected.
    cps: float = 1.0
    #: REST requests in flight above this answer 429 / 20429.
    max_concurrent_requests: int = 100
    #: The next N create requests answer 429 / 20429 (to exercise the dialer's retry).
    reject_creates_with_429: int = 0
    #: AnsweredBy of successive answered calls that asked for AMD (cycled), for numbers whose
    #: behaviour names none: a scripted mix of humans, machines and faxes.
    answered_by_schedule: list[str] = field(default_factory=list)
    _schedule_index: int = 0

    def next_answered_by(self) -> str:
        if not self.answered_by_schedule:
            return "human"
        value = self.answered_by_schedule[self._schedule_index % len(self.answered_by_schedule)]
        self._schedule_index += 1
        return value

    def behaviour_for(self, number: str) -> Behaviour:
        return self.numbers.get(number, self.default)

    def update(self, raw: dict[str, Any]) -> None:
        if "default" in raw:
            self.default = Behaviour.from_dict(raw["default"])
        if "numbers" in raw:
            self.numbers = {
                n: Behaviour.from_dict(b, self.default) for n, b in raw["numbers"].items()
            }
        if "answered_by_schedule" in raw:
            schedule = [str(v) for v in raw["answered_by_schedule"]]
            unknown = set(schedule) - set(ANSWERED_BY)
            if unknown:
                raise ValueError(f"unknown AnsweredBy values: {sorted(unknown)}")
            self.answered_by_schedule, self._schedule_index = schedule, 0
        for name in ("cps", "max_concurrent_requests", "reject_creates_with_429"):
            if name in raw:
                setattr(self, name, type(getattr(self, name))(raw[name]))
        if self.cps <= 0:
            raise ValueError("cps must be positive")
