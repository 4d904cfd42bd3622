"""The simulated telephone network: call lives on a timeline, callbacks signed and delivered.

Callbacks are separate HTTP requests from a thread pool, as Twilio's are: no order is
guaranteed, and a failed delivery is retried for up to 15 s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from libs.telephony.twilio_signature import sign
from simulators.twilio.callback_client import CallbackClient, DeliveryError
from simulators.twilio.media_client import stream_from_twiml
from simulators.twilio.outbound_streams import OutboundStream, StreamRunner
from simulators.twilio.recordings import Recording, new_recording
from simulators.twilio.scenario import Behaviour, Scenario

logger = logging.getLogger(__name__)

#: Twilio gives up on a callback after retrying for this long.
CALLBACK_RETRY_WINDOW_S = 15.0
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
#: What an answered outbound minute costs (USD), as Twilio's US rate roughly is.
PRICE_PER_MINUTE = 0.014
#: AnsweredBy values DetectMessageEnd gives once the greeting is over (after the beep).
AFTER_GREETING = ("machine_end_beep", "machine_end_silence", "machine_end_other")
#: How long detection takes: a first verdict, and the end of a machine's greeting.
AMD_FIRST_S, AMD_GREETING_S = 0.15, 0.4
#: How long a redirect's TwiML that ends with <Hangup/> plays before the call ends.
VOICEMAIL_S = 0.3
#: Which StatusCallbackEvent asks for which status's callback.
EVENT_FOR_STATUS = {
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
}


@dataclass
class SimCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    status_callback: str | None
    events: set[str]
    behaviour: Behaviour
    created_at: float
    start_at: float
    status: str = "queued"
    answered_at: float | None = None
    ended_at: float | None = None
    duration_s: int | None = None
    sequence: int = 0
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    #: The TwiML the call was created with, then each TwiML a REST update redirected it to
    #: (how an agent transfers a call), in order.
    twiml: list[str] = field(default_factory=list)
    direction: str = "outbound-api"
    #: Record=true: where the recording status callback goes, and its channels (1 or 2).
    recording_callback: str | None = None
    recording_channels: int = 1
    recording: Recording | None = None
    #: MachineDetection (Enable, DetectMessageEnd) with AsyncAmd: where the verdict goes.
    amd_mode: str | None = None
    amd_callback: str | None = None
    #: Who answered: the behaviour's AnsweredBy, else (with AMD) the scenario's schedule.
    answered_by: str | None = None
    amd_at: float | None = None
    #: When each TwiML of ``twiml`` was given (the creation's, then each redirect).
    twiml_at: list[float] = field(default_factory=list)
    #: The create's Url: the voice TwiML Twilio fetches when the call is answered.
    voice_url: str | None = None
    #: Why fetching the voice TwiML failed (Twilio then ends the call).
    voice_error: str | None = None
    #: The media stream the voice TwiML's <Connect><Stream> asked for.
    stream: OutboundStream | None = None

    @property
    def voicemail_after_beep(self) -> bool:
        """A message was played (<Play> or <Say>) after AMD said the greeting had ended."""
        if self.amd_at is None or self.answered_by not in AFTER_GREETING:
            return False
        return any(at >= self.amd_at and ("<Play" in twiml or "<Say" in twiml)
                   for twiml, at in zip(self.twiml, self.twiml_at, strict=False))  # fmt: skip

    @property
    def price(self) -> str | None:
        """Twilio's price of an ended call (negative: a charge): per started minute answered."""
        if self.status not in FINAL or not self.answered_at:
            return None
        minutes = max(1, -(-(self.duration_s or 0) // 60))
        return f"{-PRICE_PER_MINUTE * minutes:.5f}"

    @property
    def started_at(self) -> float | None:
        """Twilio's start time: when the call was dialed; None while it is still queued."""
        return None if self.status == "queued" else self.start_at

    @property
    def queue_time_ms(self) -> int:
        return int((self.start_at - self.created_at) * 1000)

    def query(self, name: str) -> str | None:
        if not self.status_callback:
            return None
        values = parse_qs(urlsplit(self.status_callback).query).get(name)
        return values[0] if values else None

    def to_json(self) -> dict[str, Any]:
        """The call resource as Twilio's REST API returns it."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "status": self.status,
            "direction": self.direction,
            "api_version": "2010-04-01",
            "answered_by": self.answered_by if self.answered_at else None,
            "date_created": _rfc2822(self.created_at),
            "date_updated": _rfc2822(time.time()),
            "start_time": _rfc2822(self.started_at),
            "end_time": _rfc2822(self.ended_at) if self.ended_at else None,
            "duration": str(self.duration_s) if self.duration_s is not None else None,
            "queue_time": str(self.queue_time_ms),
            "price": self.price,
            "price_unit": "USD",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }

    def to_ledger(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "to": self.to,
            "status": self.status,
            "job": self.query("job"),
            "attempt": self.query("attempt"),
            "created_at": self.created_at,
            "start_at": self.start_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "queue_time_ms": self.queue_time_ms,
            "callbacks": list(self.callbacks),
            "from": self.from_,
            "direction": self.direction,
            "twiml": list(self.twiml),
            "recording": self.recording.to_ledger() if self.recording else None,
            "answered_by": self.answered_by if self.answered_at else None,
            "duration_s": self.duration_s,
            "amd": {"mode": self.amd_mode, "at": self.amd_at} if self.amd_mode else None,
            "twiml_at": list(self.twiml_at),
            "voicemail_after_beep": self.voicemail_after_beep,
            "price": self.price,
            "voice_error": self.voice_error,
            "stream": self.stream.to_ledger() if self.stream else None,
        }


@dataclass(frozen=True)
class CallFilter:
    """The Calls list's filters as Twilio reads them: ``StartTime>`` (sent by the SDK's
    ``start_time_after``) is "on or after", ``StartTime<`` "on or before"; a date or an ISO
    8601 UTC time. A call's start time is when it was dialed (none while still queued)."""

    to: str | None = None
    from_: str | None = None
    status: str | None = None
    start_on: float | None = None
    start_after: float | None = None
    start_before: float | None = None

    @classmethod
    def from_args(cls, args: Any) -> CallFilter:
        def when(name: str) -> float | None:
            raw = args.get(name)
            if not raw:
                return None
            try:
                if len(raw) == 10:
                    return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
                return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            except ValueError:
                raise ValueError(f"{name} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from None

        return cls(
            to=args.get("To") or None,
            from_=args.get("From") or None,
            status=args.get("Status") or None,
            start_on=when("StartTime"),
            start_after=when("StartTime>"),
            start_before=when("StartTime<"),
        )

    def matches(self, call: SimCall) -> bool:
        if (self.to, self.from_, self.status) != (
            self.to and call.to,
            self.from_ and call.from_,
            self.status and call.status,
        ):
            return False
        if self.start_on is None and self.start_after is None and self.start_before is None:
            return True
        started = call.started_at
        if started is None:
            return False
        if self.start_on is not None and not self.start_on <= started < self.start_on + 86400:
            return False
        if self.start_after is not None and started < self.start_after:
            return False
        return self.start_before is None or started <= self.start_before


def _rfc2822(ts: float | None) -> str | None:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True) if ts else None


class Network:
    def __init__(self, account_sid: str, auth_token: str, scenario: Scenario) -> None:
        self.account_sid, self.auth_token, self.scenario = account_sid, auth_token, scenario
        self.calls: dict[str, SimCall] = {}
        self.recordings: dict[str, Recording] = {}
        #: Where this simulator is reached (the media URLs of recordings name it).
        self.base_url = ""
        self.lock = threading.RLock()
        self._timeline: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition(self.lock)
        self._last_start = 0.0
        self._senders = ThreadPoolExecutor(max_workers=32, thread_name_prefix="callback")
        # One kept-alive connection per sender thread (the calls service's gunicorn keeps
        # them open), as Twilio's callback senders do.
        self._client = CallbackClient()
        self._stopped = False
        self.streams = StreamRunner(auth_token, account_sid)
        self._clock = threading.Thread(target=self._run_timeline, name="timeline", daemon=True)
        self._clock.start()

    # --- REST operations -------------------------------------------------------------------
    def create(self, to: str, from_: str, status_callback: str | None, events: set[str],
               voice_url: str | None = None) -> SimCall:  # fmt: skip
        now = time.time()
        with self.lock:
            # Calls beyond the account's CPS are queued by Twilio and start late, not rejected.
            start_at = max(now, self._last_start + 1.0 / self.scenario.cps)
            self._last_start = start_at
            call = SimCall(
                sid="CA" + uuid.uuid4().hex,
                account_sid=self.account_sid,
                to=to,
                from_=from_,
                status_callback=status_callback,
                events=events | {"completed"},
                behaviour=self.scenario.behaviour_for(to),
                created_at=now,
                start_at=start_at,
                voice_url=voice_url,
            )
            call.answered_by = call.behaviour.answered_by
            self.calls[call.sid] = call
            self._plan(call)
        return call

    def register_inbound(self, sid: str, from_: str, to: str) -> SimCall:
        """An inbound call a test's caller placed (as Twilio knows the calls it delivers), so
        that REST updates of it (transfers, hang-ups) find it; it is in progress."""
        now = time.time()
        with self.lock:
            call = SimCall(
                sid=sid,
                account_sid=self.account_sid,
                to=to,
                from_=from_,
                status_callback=None,
                events=set(),
                behaviour=self.scenario.behaviour_for(to),
                created_at=now,
                start_at=now,
                status="in-progress",
                answered_at=now,
                direction="inbound",
            )
            self.calls[sid] = call
        return call

    def redirect(self, call: SimCall, twiml: str) -> None:
        with self.lock:
            call.twiml.append(twiml)
            call.twiml_at.append(time.time())
            if "<Hangup" in twiml and call.answered_at and call.status not in FINAL:
                # The message plays (briefly, here), then the call ends as the TwiML says.
                self._at(time.time() + VOICEMAIL_S, lambda: self._transition(call, "completed"))

    def hang_up(self, call: SimCall, status: str) -> None:
        """REST update with Status=canceled (not yet answered) or completed (hang up)."""
        with self.lock:
            if call.status in FINAL:
                return
            if status == "canceled" and call.status in ("queued", "initiated", "ringing"):
                self._transition(call, "canceled")
            elif status == "completed":
                self._transition(call, "completed" if call.answered_at else "canceled")

    # --- the timeline ----------------------------------------------------------------------
    def _plan(self, call: SimCall) -> None:
        b, t0 = call.behaviour, call.start_at
        self._at(t0, lambda: self._transition(call, "initiated"))
        self._at(t0 + 0.02, lambda: self._transition(call, "ringing"))
        if b.outcome == "completed":
            self._at(t0 + b.ring_s, lambda: self._transition(call, "in-progress"))
            self._at(t0 + b.ring_s + b.talk_s, lambda: self._transition(call, "completed"))
        elif b.outcome in ("busy", "no-answer"):
            self._at(t0 + b.ring_s, lambda: self._transition(call, b.outcome))
        else:
            self._at(t0 + 0.03, lambda: self._transition(call, "failed"))

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timeline, (when, next(self._counter), action))
        self._wake.notify()

    def _run_timeline(self) -> None:
        with self.lock:
            while not self._stopped:
                now = time.time()
                if self._timeline and self._timeline[0][0] <= now:
                    _, _, action = heapq.heappop(self._timeline)
                    action()
                    continue
                timeout = self._timeline[0][0] - now if self._timeline else 1.0
                self._wake.wait(timeout=min(timeout, 1.0))

    def _transition(self, call: SimCall, status: str) -> None:
        if call.status in FINAL:
            return  # a hang-up already ended it; the planned steps no longer apply
        now = time.time()
        call.status = status
        if status == "in-progress":
            call.answered_at = now
            if call.amd_callback:
                self._detect(call, now)
            if call.behaviour.fetch_twiml and call.voice_url:
                self._senders.submit(self._answer, call)
        if status in FINAL:
            call.ended_at = now
            if call.stream is not None:
                self.streams.end(call.stream)
            call.duration_s = round(now - call.answered_at) if call.answered_at else 0
        if status in FINAL and call.recording_callback and call.answered_at:
            self._record(call)
        wanted = status in FINAL or EVENT_FOR_STATUS.get(status) in call.events
        if call.status_callback and wanted:
            params = self._callback_params(call, status)
            call.sequence += 1
            self._deliver(call, params)

    def _callback_params(self, call: SimCall, status: str) -> dict[str, str]:
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            "SequenceNumber": str(call.sequence),
            "Timestamp": _rfc2822(time.time()) or "",
            "CallbackSource": "call-progress-events",
        }
        if status in FINAL:
            params["CallDuration"] = str(call.duration_s or 0)
            params["Duration"] = str(((call.duration_s or 0) + 59) // 60)
        if status == "failed":
            params["ErrorCode"] = "31005"
        if call.answered_by and call.answered_at:
            params["AnsweredBy"] = call.answered_by
        return params

    def _detect(self, call: SimCall, now: float) -> None:
        """Async AMD: one verdict, after the greeting for DetectMessageEnd's machine_end_*."""
        if not call.answered_by:
            call.answered_by = self.scenario.next_answered_by()
        greeting = call.amd_mode == "DetectMessageEnd" and call.answered_by in AFTER_GREETING
        delay = AMD_FIRST_S + (AMD_GREETING_S if greeting else 0.0)
        self._at(now + delay, lambda: self._amd_verdict(call))

    def _amd_verdict(self, call: SimCall) -> None:
        if call.status in FINAL or not call.amd_callback:
            return
        call.amd_at = time.time()
        record = {"status": "amd", "delivered": False, "attempts": 0, "queued_at": call.amd_at}
        call.callbacks.append(record)
        params = {"AccountSid": call.account_sid, "CallSid": call.sid,
                  "AnsweredBy": call.answered_by or "unknown",
                  "MachineDetectionDuration": str(int((call.amd_at - (call.answered_at or 0))
                                                      * 1000))}  # fmt: skip
        self._senders.submit(self._post, call.amd_callback, params, record, 0.0)

    def _record(self, call: SimCall) -> None:
        assert call.recording_callback is not None
        recording = new_recording(self.base_url, call.account_sid, call.sid,
                                  call.recording_channels, call.duration_s or 0,
                                  call.recording_callback)  # fmt: skip
        call.recording = self.recordings[recording.sid] = recording
        record = {"status": "recording", "delivered": False, "attempts": 0,
                  "queued_at": time.time()}  # fmt: skip
        call.callbacks.append(record)
        params = recording.callback_params(call.account_sid)
        # Twilio announces a recording a moment after the call's own final callback.
        self._senders.submit(self._post, recording.callback, params, record, 0.2)

    # --- the voice TwiML and its stream ----------------------------------------------------
    def _answer(self, call: SimCall) -> None:
        """Fetch the answered call's voice TwiML, as Twilio does (signed, no AnsweredBy: the
        simulator's machine detection is asynchronous), and play it: a <Connect><Stream>
        opens the media stream until the call ends; a <Hangup/> ends the call."""
        assert call.voice_url is not None
        params = {"AccountSid": call.account_sid, "ApiVersion": "2010-04-01",
                  "CallSid": call.sid, "CallStatus": "in-progress", "Called": call.to,
                  "Caller": call.from_, "Direction": "outbound-api", "From": call.from_,
                  "To": call.to}  # fmt: skip
        headers = {"X-Twilio-Signature": sign(self.auth_token, call.voice_url, params)}
        try:
            response = self._client.post_form(call.voice_url, params, headers, timeout=15)
            twiml = response.text if response.status_code == 200 else None
            error = None if twiml is not None else f"voice webhook answered {response.status_code}"
        except DeliveryError as exc:
            twiml, error = None, f"{type(exc).__name__}: {exc}"
        with self.lock:
            if call.status in FINAL:
                return
            if twiml is None:
                # Twilio says "an application error has occurred" and hangs up.
                call.voice_error = error
                self._transition(call, "completed")
                return
            self.redirect(call, twiml)
            if "<Stream" not in twiml:
                return
            try:
                url, parameters = stream_from_twiml(twiml)
            except (ValueError, SyntaxError) as exc:
                call.voice_error = f"unreadable TwiML: {exc}"
                return
            b = call.behaviour
            planned_end = call.start_at + b.ring_s + b.talk_s
            call.stream = OutboundStream(url, parameters)
            self.streams.open(call.sid, call.stream, max(planned_end - time.time(), 0.0))

    # --- callback delivery -----------------------------------------------------------------
    def _deliver(self, call: SimCall, params: dict[str, str]) -> None:
        b = call.behaviour
        delay = b.callback_delay_s
        if b.reorder and params["CallStatus"] not in FINAL:
            delay += b.ring_s + b.talk_s + 0.3  # arrive after the final one
        copies = 2 if b.duplicate else 1
        for _ in range(copies):
            record = {
                "status": params["CallStatus"],
                "delivered": False,
                "attempts": 0,
                "queued_at": time.time(),
            }
            call.callbacks.append(record)
            assert call.status_callback is not None
            self._senders.submit(self._post, call.status_callback, params, record, delay)

    def _post(self, url: str, params: dict[str, str], record: dict[str, Any], delay: float) -> None:
        if delay:
            time.sleep(delay)
        deadline = time.monotonic() + CALLBACK_RETRY_WINDOW_S
        backoff = 0.25
        signature = sign(self.auth_token, url, params)
        while True:
            record["attempts"] += 1
            try:
                response = self._client.post_form(
                    url, params, {"X-Twilio-Signature": signature}, timeout=5
                )
                if response.status_code < 500:
                    record["delivered"] = response.status_code < 300
                    record["http_status"] = response.status_code
                    record["delivered_at"] = time.time()
                    return
            except DeliveryError:
                pass
            if self._stopped or time.monotonic() + backoff > deadline:
                logger.warning(
                    "callback %s to %s given up", params.get("CallStatus", "recording"), url
                )
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, 4.0)

    # --- inspection ------------------------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        with self.lock:
            calls = [c.to_ledger() for c in self.calls.values()]
        return {"calls": sorted(calls, key=lambda c: c["created_at"])}

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.recordings.clear()
            self._timeline.clear()
            self._last_start = 0.0

    def stop(self) -> None:
        with self.lock:
            self._stopped = True
            self._wake.notify()
        self._senders.shutdown(wait=False, cancel_futures=True)
        self.streams.stop()
