"""The simulator's HTTP face: Twilio's REST paths for calls, plus /_sim/ control endpoints."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, Response, g, jsonify, request

from libs.telephony.phones import InvalidPhone, to_e164
from simulators.twilio.engine import FINAL, CallFilter, Network
from simulators.twilio.recordings import wav_bytes
from simulators.twilio.scenario import Scenario

API = "/2010-04-01/Accounts/<account_sid>"


def twilio_error(status: int, code: int, message: str) -> Response:
    """Twilio's error body: the SDK turns it into a TwilioRestException with this code."""
    response = jsonify(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )
    response.status_code = status
    return response


def create_app(account_sid: str, auth_token: str, scenario: Scenario | None = None) -> Flask:
    app = Flask(__name__)
    network = Network(account_sid, auth_token, scenario or Scenario())
    app.extensions["network"] = network
    in_flight = {"n": 0}
    in_flight_lock = threading.Lock()

    @app.before_request
    def _limits() -> Response | None:
        if request.path.startswith("/_sim/"):
            return None
        auth = request.authorization
        if auth is None or auth.username != account_sid or auth.password != auth_token:
            return twilio_error(401, 20003, "Authenticate")
        with in_flight_lock:
            if in_flight["n"] >= network.scenario.max_concurrent_requests:
                return twilio_error(429, 20429, "Too Many Requests")
            in_flight["n"] += 1
        g.counted = True
        return None

    def _leave() -> None:
        with in_flight_lock:
            in_flight["n"] -= 1

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        if g.pop("counted", False):
            _leave()

    @app.post(f"{API}/Calls.json")
    def create_call(account_sid: str) -> tuple[Response, int] | Response:
        form = request.form
        to, from_ = form.get("To", ""), form.get("From", "")
        if not form.get("Url") and not form.get("Twiml") and not form.get("ApplicationSid"):
            return twilio_error(400, 21205, "Url parameter is required.")
        with network.lock:
            if network.scenario.reject_creates_with_429 > 0:
                network.scenario.reject_creates_with_429 -= 1
                return twilio_error(429, 20429, "Too Many Requests")
        try:
            to = to_e164(to)
        except InvalidPhone:
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if network.scenario.behaviour_for(to).outcome == "invalid":
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        events = {e.strip() for e in form.getlist("StatusCallbackEvent") for e in e.split(" ")}
        amd = form.get("MachineDetection") in ("Enable", "DetectMessageEnd")
        if amd and (form.get("AsyncAmd", "").lower() != "true"
                    or not form.get("AsyncAmdStatusCallback")):  # fmt: skip
            return twilio_error(400, 21626, "the simulator only does asynchronous AMD")
        call = network.create(to, from_, form.get("StatusCallback"), {e for e in events if e},
                              form.get("Url") or None)  # fmt: skip
        if form.get("Record", "").lower() == "true" and form.get("RecordingStatusCallback"):
            network.base_url = network.base_url or request.host_url.rstrip("/")
            call.recording_channels = 2 if form.get("RecordingChannels") == "dual" else 1
            call.recording_callback = form["RecordingStatusCallback"]
        if amd:
            call.amd_mode = form["MachineDetection"]
            call.amd_callback = form["AsyncAmdStatusCallback"]
        if form.get("Twiml"):
            network.redirect(call, form["Twiml"])
        return jsonify(call.to_json()), 201

    @app.get(f"{API}/Calls.json")
    def list_calls(account_sid: str) -> tuple[Response, int] | Response:
        """Twilio's Calls list with its filters (To, From, Status, StartTime, StartTime>=,
        StartTime<=), newest first, paged."""
        try:
            filters = CallFilter.from_args(request.args)
        except ValueError as exc:
            return twilio_error(400, 20001, str(exc))
        page_size = min(int(request.args.get("PageSize", "50")), 1000)
        page = int(request.args.get("Page", "0"))
        with network.lock:
            matching = [c for c in network.calls.values() if filters.matches(c)]
        matching.sort(key=lambda c: c.created_at, reverse=True)
        chunk = matching[page * page_size : (page + 1) * page_size]
        uri = f"/2010-04-01/Accounts/{account_sid}/Calls.json"
        more = (page + 1) * page_size < len(matching)
        return jsonify(
            {
                "calls": [c.to_json() for c in chunk],
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "end": page * page_size + max(len(chunk) - 1, 0),
                "uri": f"{uri}?PageSize={page_size}&Page={page}",
                "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
                "previous_page_uri": None,
                "next_page_uri": f"{uri}?PageSize={page_size}&Page={page + 1}" if more else None,
            }
        )

    @app.get(f"{API}/Calls/<sid>.json")
    def fetch_call(account_sid: str, sid: str) -> Response:
        call = network.calls.get(sid)
        if call is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return jsonify(call.to_json())

    @app.post(f"{API}/Calls/<sid>.json")
    def update_call(account_sid: str, sid: str) -> Response:
        call = network.calls.get(sid)
        if call is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        status = request.form.get("Status")
        if status not in (None, "canceled", "completed"):
            return twilio_error(400, 21218, "Invalid Status: must be canceled or completed")
        twiml = request.form.get("Twiml")
        if twiml is not None:
            if call.status in FINAL:
                return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
            network.redirect(call, twiml)
        if status:
            network.hang_up(call, status)
        return jsonify(call.to_json())

    @app.get(f"{API}/Recordings/<sid>.wav")
    def fetch_recording(account_sid: str, sid: str) -> Response:
        recording = network.recordings.get(sid)
        if recording is None or account_sid != network.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return Response(wav_bytes(recording), mimetype="audio/x-wav")

    @app.post("/_sim/inbound")
    def inbound() -> tuple[Response, int]:
        """A caller dials in: Twilio knows the call (its REST API can then redirect it)."""
        data = request.get_json(force=True)
        call = network.register_inbound(str(data["sid"]), str(data.get("from", "")),
                                        str(data.get("to", "")))  # fmt: skip
        return jsonify(call.to_json()), 201

    @app.get("/_sim/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/_sim/ledger")
    def ledger() -> Response:
        data: dict[str, Any] = network.ledger()
        data["active"] = sum(1 for c in data["calls"] if c["status"] not in FINAL)
        return jsonify(data)

    @app.post("/_sim/scenario")
    def set_scenario() -> tuple[Response, int] | Response:
        try:
            network.scenario.update(request.get_json(force=True))
        except (ValueError, TypeError, AttributeError) as exc:
            return jsonify({"error": {"code": "bad_scenario", "message": str(exc)}}), 400
        return jsonify({"status": "ok"})

    @app.post("/_sim/reset")
    def reset() -> Response:
        network.reset()
        return jsonify({"status": "ok"})

    return app
