"""The media server: Twilio Media Streams on asyncio (aiohttp, whose WebSocket reader and
writer are compiled), one event loop per gunicorn worker serving hundreds of streams.

``GET /ws/media``: the upgrade's ``X-Twilio-Signature`` is checked against the stream URL Twilio
was given (``Settings.stream_url``; Twilio signs it with no parameters) before the handshake,
403 otherwise. Then each frame goes to the stream's pipeline (``stream.MediaStream``). Also
``/healthz``, ``/readyz`` (database and broker) and ``/metrics``, like every service. The
Twilio webhooks stay on the calls service's Flask app (``services/calls/app.py``).

    gunicorn -c services/calls/media/gunicorn_conf.py
"""

from __future__ import annotations

import asyncio
import gc
import logging
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from aiohttp import WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

from libs.common import metrics
from libs.common.db import Database
from libs.common.logs import configure_logging
from libs.common.settings import Settings, get_settings
from libs.queueops.broker import build_broker
from libs.queueops.queue_health import QueueUnavailable, check_broker
from libs.telephony import twilio_signature
from services.calls.media.context import MediaContext
from services.calls.media.playout import Send
from services.calls.media.stream import MediaStream, StreamRefused

logger = logging.getLogger(__name__)

MEDIA_PATH = "/ws/media"
#: Keepalive pings: a proxy or NAT must not drop a quiet caller's socket.
PING_INTERVAL_S = 20
#: A 20 ms frame is ~400 bytes; larger messages are refused by the reader itself.
MAX_MESSAGE_BYTES = 64 * 1024
#: Outgoing bytes a caller's socket may hold unsent before the agent's frames are dropped
#: (~40 frames). Below asyncio's high-water mark (64 KiB), so a send never waits for a drain:
#: the pacer serves every stream from one task, and one stalled caller must not stall them.
MAX_UNSENT_BYTES = 16 * 1024
SWITCH_INTERVAL_S = 0.001
#: How often streams are checked for idleness (stream.RECEIVE_TIMEOUT_S, START_TIMEOUT_S).
IDLE_SWEEP_S = 1

CONTEXT = web.AppKey("media_context", MediaContext)
#: Open sockets and their streams, for the idle sweep and a clean shutdown.
STREAMS: web.AppKey[dict[web.WebSocketResponse, MediaStream]] = web.AppKey("media_streams", dict)

metrics.WEBHOOK_SIGNATURE_FAILURES.labels(MEDIA_PATH)


def signature_ok(settings: Settings, request: web.Request) -> bool:
    if not settings.twilio_auth_token:
        return False
    signature = request.headers.get("X-Twilio-Signature")
    if request.query_string:
        return False  # Twilio's stream URLs carry no query: this is not Twilio's request
    return twilio_signature.is_valid(settings.twilio_auth_token, settings.stream_url, {}, signature)


#: A server's text frame header (FIN + text opcode, unmasked) by payload length: 7 bits,
#: then 16, then 64 (RFC 6455 §5.2). Outgoing media is ~330 bytes: the 16-bit form.
_TEXT_LEN1 = struct.Struct("!BB").pack
_TEXT_LEN2 = struct.Struct("!BBH").pack
_TEXT_LEN3 = struct.Struct("!BBQ").pack


def text_sender(ws: web.WebSocketResponse, transport: asyncio.Transport) -> Send:
    """Write a text message to the caller as one WebSocket frame, straight to the socket.

    aiohttp's ``send_str`` is two coroutines and a str-to-bytes copy per message: at 50
    frames a second per call that was a measurable share of a worker's CPU (docs/voice.md),
    and the playout already holds the message as bytes. Safe next to aiohttp's own writes
    (pings, pongs, the close frame) because every write is one whole frame on the loop's
    thread, uncompressed frames are valid whatever extension was negotiated (RFC 7692 §6),
    and nothing is written once aiohttp started closing. Flow control is the playout's
    (``writable``: frames are dropped, not buffered, behind a stalled caller)."""

    def send(data: bytes) -> None:
        if ws.closed or transport.is_closing():
            raise ConnectionResetError("the caller's socket is closed")
        size = len(data)
        if size < 126:
            header = _TEXT_LEN1(0x81, size)
        elif size < 65536:
            header = _TEXT_LEN2(0x81, 126, size)
        else:
            header = _TEXT_LEN3(0x81, 127, size)
        transport.write(header + data)

    return send


_DIRECT_TYPES = frozenset((WSMsgType.TEXT, WSMsgType.BINARY))


class _DirectQueue(WebSocketDataQueue):
    """aiohttp's queue of received messages, with a way around it: ``direct`` (once set) is
    offered each message as the socket's data is parsed, while nothing is queued, and handles
    it there and then (True) or declines it (False: it is queued for the handler as usual)."""

    direct: Callable[[str | bytes], bool] | None = None

    def feed_data(self, data: Any, size: int) -> None:
        # ``data`` is aiohttp's message: (type, data, extra). Only text and binary ones are
        # offered; pings, pongs, closes and errors take aiohttp's path.
        direct = self.direct
        if direct is None or self._buffer or data[0] not in _DIRECT_TYPES or not direct(data[1]):
            super().feed_data(data, size)


class MediaSocket(web.WebSocketResponse):
    """A WebSocket response whose received messages can skip aiohttp's queue.

    Queued, every 20 ms frame costs a future, a wake-up of the handler's task, and
    ``receive()``'s Python around it: about as much CPU as the whole media pipeline
    (docs/voice.md). A started stream's media frames are handled from the socket's read
    instead (``MediaStream.receive_now``); every other message, and any frame that arrives
    while an earlier one is still being handled, goes through the queue in order.

    ``_post_start`` is aiohttp's own (3.14, pinned in requirements.lock) with the queue class
    swapped: the parser holds the queue from its construction, and the first messages may
    already be parsed in ``set_parser``, so the queue cannot be replaced afterwards."""

    def _post_start(self, request: Any, protocol: str | None, writer: Any) -> None:
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        assert self._loop is not None
        self.queue = _DirectQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=self._loop)
        self._reader = self.queue
        self._parser = WebSocketReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        cb = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(self._parser, data_received_cb=cb)
        request.protocol.keep_alive(False)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def media_stream(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if not signature_ok(ctx.settings, request):
        metrics.WEBHOOK_SIGNATURE_FAILURES.labels(MEDIA_PATH).inc()
        logger.warning(
            "refused media stream upgrade: %s X-Twilio-Signature",
            "wrong" if request.headers.get("X-Twilio-Signature") else "missing",
        )
        return _error(403, "invalid_signature", "missing or invalid X-Twilio-Signature")
    # No receive_timeout: it re-arms a timer on every frame; the idle sweep reads a timestamp.
    ws = MediaSocket(heartbeat=PING_INTERVAL_S, max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        return _error(400, "bad_request", "a WebSocket upgrade is required")
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    transport = request.transport
    if transport is None:  # the client went away during the handshake
        return ws

    def writable() -> bool:
        return transport.get_write_buffer_size() < MAX_UNSENT_BYTES

    stream = MediaStream(ctx, text_sender(ws, transport), writable)
    request.app[STREAMS][ws] = stream
    ws.queue.direct = stream.receive_now
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                stream.last_frame_at = loop.time()
                await stream.receive(message.data)
                if stream.state == "stopping":
                    break
            elif message.type == WSMsgType.ERROR:
                # Oversized or malformed at the WebSocket level: aiohttp closes the socket.
                logger.warning("media stream %s: socket error: %s", stream._sid(), ws.exception())
                break
    except StreamRefused as exc:
        logger.warning("media stream refused: %s", exc)
    except Exception:
        # One stream's bug must not take the others on this loop down with it.
        logger.exception("media stream failed")
    finally:
        ws.queue.direct = None
        request.app[STREAMS].pop(ws, None)
        try:
            await stream.finish()
        except Exception:
            logger.exception("media stream %s: could not close the call log", stream._sid())
        await ws.close()
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    checks: dict[str, dict[str, Any]] = {}
    try:
        await ctx.blocking(ctx.database.ping)
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        await ctx.blocking(
            check_broker, ctx.settings.redis_url, ctx.settings.broker_check_timeout_s
        )
        checks["broker"] = {"ok": True}
    except QueueUnavailable as exc:
        checks["broker"] = {"ok": False, "error": exc.message}
    down = sorted(name for name, check in checks.items() if not check["ok"])
    if down:
        return web.json_response(
            {
                "status": "unavailable",
                "checks": checks,
                "error": {"code": "not_ready", "message": f"unreachable: {', '.join(down)}"},
            },
            status=503,
        )
    return web.json_response({"status": "ready", "checks": checks})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = metrics.render_latest()
    return web.Response(body=body, headers={"Content-Type": content_type})


def create_app(
    settings: Settings | None = None,
    broker: dramatiq.Broker | None = None,
    database: Database | None = None,
) -> web.Application:
    settings = settings or get_settings()
    configure_logging(settings)
    # The loop must get the GIL back quickly from a pool thread running database code: at the
    # default 5 ms a few busy threads delay every stream's frames by tens of milliseconds.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if broker is None and settings.redis_url:
        broker = build_broker(settings, worker=False)
    if broker is not None:
        dramatiq.set_broker(broker)  # the outbox sends through the global broker
    database = database or Database(settings.database_url)
    app = web.Application(client_max_size=64 * 1024)
    ctx = MediaContext(
        settings, database, broker or dramatiq.get_broker(), settings.media_blocking_threads
    )
    app[CONTEXT] = ctx
    app[STREAMS] = {}
    app.router.add_get(MEDIA_PATH, media_stream)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.on_startup.append(_start)
    app.on_shutdown.append(_close_streams)
    app.on_cleanup.append(_cleanup)
    return app


async def _start(app: web.Application) -> None:
    # What the worker built at startup (modules, the ORM's mappings, settings) lives as long
    # as it does: out of the collector's sight, a full collection walks only the streams'
    # objects instead of pausing every stream on this loop for tens of milliseconds.
    gc.freeze()
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    app[CONTEXT].pacer.start()
    app[CONTEXT].spawn(_sweep_idle(app))


_GC_PAUSES = {
    generation: metrics.MEDIA_GC_PAUSE.labels(str(generation)) for generation in (0, 1, 2)
}
#: Collections timed and not yet in the metrics: (generation, seconds).
_gc_pending: list[tuple[int, float]] = []
_gc_started = 0.0


def _on_collection(phase: str, info: dict[str, int]) -> None:
    """Time every garbage collection: one stops every stream of the loop, so a long one is a
    gap in every caller's audio (``gc.callbacks``). Only noted here: the metric is written by
    the idle sweep, because a collection can start inside prometheus_client's multiprocess
    lock (any allocation under it), which is not reentrant."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    elif len(_gc_pending) < 10_000:
        _gc_pending.append((info["generation"], time.perf_counter() - _gc_started))


def _flush_collections() -> None:
    global _gc_pending
    pending, _gc_pending = _gc_pending, []
    for generation, seconds in pending:
        _GC_PAUSES[generation].observe(seconds)


async def _sweep_idle(app: web.Application) -> None:
    """Close streams that sent nothing (not even media) for their receive timeout."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(IDLE_SWEEP_S)
        _flush_collections()
        now = loop.time()
        for ws, stream in list(app[STREAMS].items()):
            timeout = stream.receive_timeout_s
            if now - stream.last_frame_at > timeout:
                logger.warning("media stream %s idle for %.0f s: closing", stream._sid(), timeout)
                await ws.close(code=1000, message=b"idle")


async def _close_streams(app: web.Application) -> None:
    # A restart: close every caller's socket so each stream finishes its call log now.
    app[CONTEXT].cancel_background()
    for ws in list(app[STREAMS].keys()):
        await ws.close(code=1001, message=b"server shutdown")


async def _cleanup(app: web.Application) -> None:
    ctx = app[CONTEXT]
    await ctx.close()
    ctx.database.dispose()


async def app_factory() -> web.Application:
    """gunicorn's aiohttp worker calls this in each worker process, after the fork."""
    return create_app()
