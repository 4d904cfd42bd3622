"""One media stream: the Twilio protocol's order, the recording, the agent, the caller's choices.

Once a stream has started, frames that are malformed, unknown, oversized or out of order are
logged (without audio) and counted, and the stream carries on: one bad frame must not cost the
caller the call. Before that there is no call to protect, so the stream is refused (closed,
with one log line) by anything but ``connected`` and a valid ``start`` naming a call the voice
webhook answered that has neither streamed nor ended: Twilio signs the upgrade over the URL
alone, so a captured upgrade and ``start`` can be replayed, and Twilio can open a second
WebSocket for one call. The first stream of a call claims it; every later one is refused and
changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import dramatiq
from sqlalchemy import Table, update

from libs.common import metrics
from libs.common.audio.wav import MulawWavWriter
from libs.common.contracts import LEADS_CREATE_FROM_CALL, RECORDINGS_PROCESS
from libs.common.db import Database, insert_ignoring_conflicts
from libs.common.models import FINAL_CALL_STATUSES, Call, DncEntry, utcnow
from libs.common.outbox import enqueue_after_commit
from libs.common.queue_health import QueueUnavailable
from libs.common.settings import Settings
from services.calls.media import protocol
from services.calls.media.agent import (
    FRAME_BYTES,
    Agent,
    CallInfo,
    Clear,
    Mark,
    OptOut,
    Play,
    Reply,
    RequestCallback,
)
from services.calls.media.protocol import FrameError

logger = logging.getLogger(__name__)

for _result in ("ok", "malformed", "oversized", "unknown", "out_of_order"):
    metrics.MEDIA_FRAMES.labels(_result)

#: Frame counts are added up per stream and written to the metrics every this many frames (one
#: second of audio) and at the end: prometheus_client's multiprocess values share one
#: process-wide lock, and taking it three times per frame from a hundred stream threads
#: convoyed them behind each other (p99 frame latency over a second in bench/media_streams.py).
METRICS_FLUSH_FRAMES = 50
#: One frame in this many has its handling time observed: the histogram is a distribution, and
#: five samples per second per stream describe it as well as fifty.
TIMING_SAMPLE_EVERY = 10
#: An idle stream (no frame at all, not even media) is closed after this long.
RECEIVE_TIMEOUT_S = 60.0
#: Twilio sends ``start`` right after ``connected``: a socket that has not started by then is
#: not a call, and must not hold a thread for the minute an idle call is given.
START_TIMEOUT_S = 5.0

CALLS = cast(Table, Call.__table__)


class StreamRefused(Exception):
    """The stream does not belong to a call we answered, or that call already streamed or
    ended: close it."""


class MediaStream:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        broker: dramatiq.Broker,
        agent: Agent,
        send: Callable[[str], None],
    ) -> None:
        self.settings, self.database, self.broker = settings, database, broker
        self.agent, self.send = agent, send
        self.state = "connecting"  # → started → stopped
        self.start: protocol.Start | None = None
        self.recorder: MulawWavWriter | None = None
        self.frames = 0
        self.received = 0
        self._unflushed: dict[str, int] = {}

    # -- receiving -------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> None:
        started = time.perf_counter()
        result = "ok"
        try:
            self._handle(protocol.parse(raw))
        except FrameError as exc:
            result = exc.result
            if self.state == "connecting":
                raise StreamRefused(f"{exc} (before a valid start)") from None
            logger.warning("media stream %s: dropped a frame: %s", self._sid(), exc)
        finally:
            self.received += 1
            self._unflushed[result] = self._unflushed.get(result, 0) + 1
            if self.received % TIMING_SAMPLE_EVERY == 1:
                metrics.MEDIA_FRAME_SECONDS.observe(time.perf_counter() - started)
            if self.received % METRICS_FLUSH_FRAMES == 0:
                self.flush_metrics()

    def flush_metrics(self) -> None:
        for result, count in self._unflushed.items():
            metrics.MEDIA_FRAMES.labels(result).inc(count)
        self._unflushed.clear()

    def _handle(self, message: dict[str, object]) -> None:
        event = message["event"]
        if event == "connected":
            return
        if event == "start":
            if self.state != "connecting":
                raise FrameError("out_of_order", "a second start")
            self._on_start(protocol.parse_start(message))  # type: ignore[arg-type]
            return
        if self.state != "started":
            raise FrameError("out_of_order", f"{event} before start or after stop")
        if event == "media":
            audio = protocol.media_payload(message)  # type: ignore[arg-type]
            assert self.recorder is not None
            self.recorder.write(audio)
            self.frames += 1
            self._reply(self.agent.audio(audio))
        elif event == "dtmf":
            self._reply(self.agent.dtmf(protocol.dtmf_digit(message)))  # type: ignore[arg-type]
        elif event == "mark":
            self._reply(self.agent.mark(protocol.mark_name(message)))  # type: ignore[arg-type]
        elif event == "stop":
            self.finish()

    @property
    def receive_timeout_s(self) -> float:
        """How long the transport waits for the next frame before it closes the socket."""
        return START_TIMEOUT_S if self.state == "connecting" else RECEIVE_TIMEOUT_S

    def _on_start(self, start: protocol.Start) -> None:
        relative = Path(str(start.business_id)) / f"{start.call_sid}.wav"
        with self.database.session() as session:
            # One conditional UPDATE claims the call: two starts racing for it (a replay, a
            # second socket) cannot both see it unclaimed, and a refused one writes nothing.
            claimed = session.execute(
                update(CALLS)
                .where(
                    CALLS.c.id == start.call_id,
                    CALLS.c.business_id == start.business_id,
                    CALLS.c.provider_call_sid == start.call_sid,
                    CALLS.c.direction == "inbound",
                    CALLS.c.stream_sid.is_(None),
                    CALLS.c.ended_at.is_(None),
                    CALLS.c.status.not_in(FINAL_CALL_STATUSES),
                )
                .values(stream_sid=start.stream_sid, recording_path=str(relative))
                .returning(CALLS.c.from_number)
            ).first()
            if claimed is None:
                session.rollback()
                raise StreamRefused(
                    f"start names call {start.call_id} ({start.call_sid}), which we did not "
                    "answer or which already streamed or ended"
                )
            from_number = claimed.from_number
            session.commit()
        self.start = start
        self.recorder = MulawWavWriter(self.settings.recordings_dir / relative)
        self.state = "started"
        metrics.MEDIA_STREAMS_ACTIVE.inc()
        info = CallInfo(start.business_id, start.call_id, start.call_sid, from_number)
        self._reply(self.agent.start(info))

    # -- replying --------------------------------------------------------------------------

    def _reply(self, replies: list[Reply]) -> None:
        assert self.start is not None
        sid = self.start.stream_sid
        for reply in replies:
            if isinstance(reply, Play):
                for offset in range(0, len(reply.audio), FRAME_BYTES):
                    chunk = reply.audio[offset : offset + FRAME_BYTES]
                    self.send(protocol.outgoing_media(sid, chunk))
            elif isinstance(reply, Mark):
                self.send(protocol.outgoing_mark(sid, reply.name))
            elif isinstance(reply, Clear):
                self.send(protocol.outgoing_clear(sid))
            elif isinstance(reply, RequestCallback):
                self._record_choice(callback=True)
            elif isinstance(reply, OptOut):
                self._record_choice(opt_out=True)

    def _record_choice(self, callback: bool = False, opt_out: bool = False) -> None:
        assert self.start is not None
        with self.database.session() as session:
            call = session.get_one(Call, self.start.call_id)
            if callback:
                call.callback_requested = True
            if opt_out:
                call.opted_out = True
                # At once, not after the call: the dialer must never call this number again.
                if call.from_number:
                    insert_ignoring_conflicts(
                        session,
                        DncEntry.__table__,
                        {
                            "business_id": call.business_id,
                            "phone_e164": call.from_number,
                            "reason": "caller opted out by keypad",
                        },
                    )
            session.commit()
        logger.info(
            "call %s: caller %s",
            self.start.call_sid,
            "asked for a callback" if callback else "opted out",
        )

    # -- ending ----------------------------------------------------------------------------

    def finish(self) -> None:
        """On ``stop`` or when the socket closes: idempotent."""
        self.flush_metrics()
        if self.state != "started":
            self.state = "stopped"
            return
        self.state = "stopped"
        metrics.MEDIA_STREAMS_ACTIVE.dec()
        assert self.start is not None and self.recorder is not None
        self.recorder.close()
        self.agent.stop()
        call_sid = self.start.call_sid
        with self.database.session() as session:
            call = session.get_one(Call, self.start.call_id)
            call.ended_at = call.ended_at or utcnow()
            if call.status == "in-progress":
                call.status = "completed"
            call.duration_s = self.recorder.duration_ms // 1000
            enqueue_after_commit(
                session, LEADS_CREATE_FROM_CALL.message(call_sid=call_sid), self.broker
            )
            enqueue_after_commit(
                session, RECORDINGS_PROCESS.message(call_sid=call_sid), self.broker
            )
            try:
                session.commit()
            except QueueUnavailable:
                # The call log is saved; the reconciler finds calls without a processed
                # recording and sends both follow-ups again.
                logger.error("call %s: follow-up messages not queued (broker down)", call_sid)

    def _sid(self) -> str:
        return self.start.stream_sid if self.start else "(not started)"
