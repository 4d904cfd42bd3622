"""The simulator speaks Twilio's wire format: the official SDK drives it unchanged."""

import time

import pytest
from twilio.base.exceptions import TwilioRestException

from libs.common.settings import Settings
from libs.telephony.twilio_provider import make_client, provider_error
from libs.telephony.twilio_signature import sign
from tests.support.twilio_sim import ACCOUNT_SID, AUTH_TOKEN, simulator_thread


def _client(base: str):  # type: ignore[no-untyped-def]
    return make_client(
        Settings(twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_api_base=base)
    )


def test_sdk_creates_and_fetches_a_call() -> None:
    with simulator_thread() as sim:
        client = _client(sim.base_url)
        call = client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice")
        assert call.sid.startswith("CA") and len(call.sid) == 34
        assert call.status == "queued"
        fetched = client.calls(call.sid).fetch()
        assert fetched.to == "+14155550100"


def test_invalid_number_is_21211_and_not_retryable() -> None:
    with simulator_thread() as sim:
        sim.scenario(numbers={"+14155550199": {"outcome": "invalid"}})
        with pytest.raises(TwilioRestException) as excinfo:
            _client(sim.base_url).calls.create(
                to="+14155550199", from_="+15005550006", url="http://x/voice"
            )
        error = provider_error(excinfo.value)
        assert error.code == "21211" and not error.retryable


def test_429_is_retryable() -> None:
    with simulator_thread() as sim:
        sim.scenario(reject_creates_with_429=1)
        client = _client(sim.base_url)
        with pytest.raises(TwilioRestException) as excinfo:
            client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice")
        assert provider_error(excinfo.value).code == "20429"
        assert provider_error(excinfo.value).retryable
        client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice")


def test_calls_beyond_cps_are_queued_not_rejected() -> None:
    with simulator_thread(cps=5) as sim:
        client = _client(sim.base_url)
        for _ in range(5):
            client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice")
        calls = sim.ledger()["calls"]
        assert len(calls) == 5
        starts = sorted(c["start_at"] for c in calls)
        assert starts[-1] - starts[0] == pytest.approx(0.8, abs=0.05)
        assert max(c["queue_time_ms"] for c in calls) >= 600


def test_wrong_credentials_are_refused() -> None:
    with simulator_thread() as sim:
        client = make_client(
            Settings(
                twilio_account_sid=ACCOUNT_SID,
                twilio_auth_token="wrong",
                twilio_api_base=sim.base_url,
            )
        )
        with pytest.raises(TwilioRestException) as excinfo:
            client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice")
        assert excinfo.value.status == 401


def test_callbacks_are_signed_with_twilios_algorithm() -> None:
    from flask import Flask, request
    from werkzeug.serving import make_server

    received: list[tuple[str, dict[str, str], str]] = []
    receiver = Flask("receiver")

    @receiver.post("/status")
    def status() -> str:
        received.append(
            (request.url, request.form.to_dict(), request.headers["X-Twilio-Signature"])
        )
        return ""

    import threading

    from tests.support.services import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, receiver, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with simulator_thread() as sim:
            sim.scenario(default={"ring_s": 0.05, "talk_s": 0.05})
            url = f"http://127.0.0.1:{port}/status?job=7&attempt=1"
            _client(sim.base_url).calls.create(
                to="+14155550100",
                from_="+15005550006",
                url="http://x/voice",
                status_callback=url,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
            deadline = time.monotonic() + 5
            while len(received) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.shutdown()
    statuses = [params["CallStatus"] for _, params, _ in received]
    assert sorted(statuses) == sorted(["initiated", "ringing", "in-progress", "completed"])
    for got_url, params, signature in received:
        assert sign(AUTH_TOKEN, got_url, params) == signature
    completed = next(p for _, p, _ in received if p["CallStatus"] == "completed")
    assert "CallDuration" in completed


def test_async_amd_answers_on_a_scripted_schedule_and_prices_answered_calls() -> None:
    """Every AnsweredBy value in turn, each in a signed AMD callback (DetectMessageEnd's
    machine_end_* after the greeting); a redirect that ends with <Hangup/> ends the call."""
    import threading

    from flask import Flask, request
    from werkzeug.serving import make_server

    from tests.support.services import free_port

    verdicts: list[tuple[str, dict[str, str], str]] = []
    receiver = Flask("receiver")

    @receiver.post("/amd")
    def amd() -> str:
        verdicts.append(
            (request.url, request.form.to_dict(), request.headers["X-Twilio-Signature"])
        )
        return ""

    schedule = ["human", "machine_start", "machine_end_beep", "machine_end_silence",
                "machine_end_other", "fax", "unknown"]  # fmt: skip
    port = free_port()
    server = make_server("127.0.0.1", port, receiver, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with simulator_thread() as sim:
            sim.scenario(default={"ring_s": 0.05, "talk_s": 2.0}, answered_by_schedule=schedule)
            client = _client(sim.base_url)
            sids = [client.calls.create(
                to=f"+1415555{i:04d}", from_="+15005550006", url="http://x/voice",
                machine_detection="DetectMessageEnd", async_amd="true",
                async_amd_status_callback=f"http://127.0.0.1:{port}/amd").sid
                for i in range(len(schedule))]  # fmt: skip
            deadline = time.monotonic() + 5
            while len(verdicts) < len(schedule) and time.monotonic() < deadline:
                time.sleep(0.05)
            beep = next(
                p["CallSid"] for _, p, _ in verdicts if p["AnsweredBy"] == "machine_end_beep"
            )
            client.calls(beep).update(twiml="<Response><Say>Hi</Say><Hangup/></Response>")
            time.sleep(2.5)
            ledger = {c["sid"]: c for c in sim.ledger()["calls"]}
            with pytest.raises(TwilioRestException):  # only asynchronous detection is simulated
                client.calls.create(to="+14155550100", from_="+15005550006", url="http://x/voice",
                                    machine_detection="Enable")  # fmt: skip
    finally:
        server.shutdown()
    assert sorted(p["AnsweredBy"] for _, p, _ in verdicts) == sorted(schedule)
    for url, params, signature in verdicts:
        assert sign(AUTH_TOKEN, url, params) == signature
    waited = {p["AnsweredBy"]: int(p["MachineDetectionDuration"]) for _, p, _ in verdicts}
    assert waited["machine_end_beep"] > waited["human"]  # after the greeting
    played = ledger[beep]
    assert played["voicemail_after_beep"] and played["ended_at"] - played["answered_at"] < 1.5
    assert all(
        ledger[s]["status"] == "completed" and ledger[s]["price"] == "-0.01400" for s in sids
    )


def test_an_answered_calls_voice_twiml_stream_is_opened_as_twilio_does() -> None:
    """fetch_twiml: the voice Url is fetched signed when the call is answered, its
    <Connect><Stream> opened with a signed upgrade: connected, start (customParameters), 20 ms
    frames of silence until the call ends, then stop; marks come back; the ledger says when the
    agent was first heard after the stream's start. Without fetch_twiml, no request at all."""
    import asyncio
    import json
    import threading

    from aiohttp import WSMsgType, web
    from flask import Flask, request
    from werkzeug.serving import make_server

    from tests.support.services import free_port

    ws_port, voice_port = free_port(), free_port()
    ws_url = f"ws://127.0.0.1:{ws_port}/ws/media"
    voice_posts: list[tuple[str, dict[str, str], str]] = []
    events: list[dict[str, object]] = []
    upgrades: list[str] = []
    greetings: list[asyncio.Task[None]] = []  # held: a task nobody references may be collected
    receiver = Flask("voice")

    @receiver.post("/voice")
    def voice() -> str:
        voice_posts.append(
            (request.url, request.form.to_dict(), request.headers["X-Twilio-Signature"])
        )
        if request.args.get("plain"):
            return "<Response><Say>Hello</Say></Response>"
        return (f'<Response><Connect><Stream url="{ws_url}"><Parameter name="call_id" '
                'value="42"/></Stream></Connect></Response>')  # fmt: skip

    async def media(req: web.Request) -> web.WebSocketResponse:
        upgrades.append(req.headers.get("X-Twilio-Signature", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        greeted = False
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            events.append(event)
            if event["event"] == "start" and not greeted:
                greeted = True
                sid = event["streamSid"]

                async def greet(sid: str = str(sid)) -> None:
                    await asyncio.sleep(0.3)  # the agent is slow to speak
                    await ws.send_str(json.dumps({"event": "media", "streamSid": sid,
                                                  "media": {"payload": "/w=="}}))  # fmt: skip
                    await ws.send_str(json.dumps({"event": "mark", "streamSid": sid,
                                                  "mark": {"name": "greeting"}}))  # fmt: skip

                greetings.append(asyncio.ensure_future(greet()))
            elif event["event"] == "stop":
                await ws.close()
        return ws

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/ws/media", media)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", ws_port).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    server = make_server("127.0.0.1", voice_port, receiver, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    voice_url = f"http://127.0.0.1:{voice_port}/voice"
    try:
        with simulator_thread() as sim:
            sim.scenario(default={"ring_s": 0.05, "talk_s": 1.0, "fetch_twiml": True},
                         numbers={"+14155550101": {"fetch_twiml": False}})  # fmt: skip
            client = _client(sim.base_url)
            streamed = client.calls.create(to="+14155550100", from_="+15005550006",
                                           url=voice_url).sid  # fmt: skip
            plain = client.calls.create(to="+14155550102", from_="+15005550006",
                                        url=voice_url + "?plain=1").sid  # fmt: skip
            client.calls.create(to="+14155550101", from_="+15005550006", url=voice_url)

            def ended() -> dict[str, dict[str, object]] | None:
                calls = {c["sid"]: c for c in sim.ledger()["calls"]}
                stream = calls[streamed]["stream"]
                done = all(c["status"] == "completed" for c in calls.values())
                return calls if done and stream and stream["stopped_at"] else None

            deadline = time.monotonic() + 15
            while (ledger := ended()) is None:
                assert time.monotonic() < deadline, sim.ledger()
                time.sleep(0.05)
    finally:
        server.shutdown()
        loop.call_soon_threadsafe(loop.stop)
    assert len(voice_posts) == 2  # not for the number without fetch_twiml
    for url, params, signature in voice_posts:
        assert sign(AUTH_TOKEN, url, params) == signature
        assert params["Direction"] == "outbound-api" and params["CallStatus"] == "in-progress"
    assert upgrades == [sign(AUTH_TOKEN, ws_url, {})]
    stream = ledger[streamed]["stream"]
    assert isinstance(stream, dict)
    assert stream["url"] == ws_url and stream["parameters"] == {"call_id": "42"}
    assert stream["error"] is None and stream["marks"] == 1 and stream["agent_media"] == 1
    first = stream["first_agent_audio_s"]
    assert isinstance(first, float) and 0.3 <= first < 1.0
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["connected", "start"] and kinds[-1] == "stop"
    start = events[1]["start"]
    assert isinstance(start, dict) and start["callSid"] == streamed
    assert start["customParameters"] == {"call_id": "42"}
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                    "channels": 1}  # fmt: skip
    # About 1 s of 20 ms frames (the call's talk time from the answer), and the echoed mark.
    assert 30 <= kinds.count("media") <= 60
    assert {"event": "mark", "streamSid": stream["stream_sid"],
            "mark": {"name": "greeting"}} in events  # fmt: skip
    assert ledger[plain]["stream"] is None and "<Say>" in ledger[plain]["twiml"][0]
