"""The stack under probe and the HTTP client every check goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from probe.model import Recorder

#: Every request's bound: a stall is a finding, not a hang.
TIMEOUT_S = 30


@dataclass
class Target:
    #: Where clients reach /api/ (nginx in production, the console of `switchboard run`).
    api: str
    #: Where Twilio reaches /webhook/ and /ws/: the URL its signatures are computed over.
    calls: str
    #: Two businesses' tokens (A owns the rows, B tries to reach them) and an operator's.
    business_a: str
    business_b: str
    operator: str
    #: With Twilio's auth token the probe also sends genuine signatures (replays, altered
    #: parameters, streams); without it, only unsigned and forged ones.
    twilio_auth_token: str | None = None
    #: A number business A owns, for a signed inbound call.
    a_number: str | None = None
    #: Log files searched for secrets after the probe.
    logs: list[Path] = field(default_factory=list)
    #: Starts runs, inbound calls, Gmail connections and syncs as A (the embedded stack's
    #: simulators make them harmless; against a real deployment they would be real).
    may_place_calls: bool = False
    label: str = ""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Client:
    """requests, counted, bounded, never following redirects."""

    def __init__(self, target: Target, recorder: Recorder) -> None:
        self.target, self.recorder = target, recorder
        self.session = requests.Session()

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        return self.send(method, self.target.api + path, token, **kwargs)

    def calls(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.send(method, self.target.calls + path, None, **kwargs)

    def send(
        self, method: str, url: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers.update(bearer(token))
        self.recorder.requests += 1
        return self.session.request(
            method, url, headers=headers, timeout=TIMEOUT_S, allow_redirects=False, **kwargs
        )
