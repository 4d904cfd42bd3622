"""What an agent's actions do to the call: call-log writes (``call_log``) and Twilio REST calls,
both blocking, so both run in the media server's thread pool.

Transfers: Media Streams cannot hand a call on by itself, so the call is redirected with new
TwiML through Twilio's REST call update. Cold: ``<Dial>`` the person at once. Warm: the person
is called first with TwiML that reads them the summary and then waits in a conference named
after the call; once they have answered, the caller's call is redirected into that conference.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import Dial, VoiceResponse

from libs.common import metrics
from libs.common.settings import Settings
from libs.telephony.phones import InvalidPhone, to_e164
from libs.telephony.twilio_provider import make_client
from services.calls.media import call_log
from services.calls.media.frames import (
    Action,
    CallInfo,
    HangUp,
    OptOut,
    RequestCallback,
    SetDisposition,
    Transfer,
    UpdateLead,
)

if TYPE_CHECKING:
    from services.calls.media.context import MediaContext
    from services.calls.media.line import Line

logger = logging.getLogger(__name__)

#: How often a warm transfer asks Twilio whether the person has answered, and for how long.
WARM_POLL_S = 0.5
ANSWERED = "in-progress"
NOT_ANSWERED = {"busy", "no-answer", "failed", "canceled", "completed"}


class ActionFailed(Exception):
    """The action could not be done (the reason is safe to tell the model and the log)."""


async def perform(ctx: MediaContext, info: CallInfo, line: Line, action: Action) -> None:
    kind = type(action).__name__
    try:
        await _perform(ctx, info, line, action)
    except ActionFailed as exc:
        metrics.AGENT_ACTIONS.labels(kind, "failed").inc()
        line.transcript("system", f"{kind} failed: {exc}")
        raise
    metrics.AGENT_ACTIONS.labels(kind, "ok").inc()


async def _perform(ctx: MediaContext, info: CallInfo, line: Line, action: Action) -> None:
    db = ctx.database
    if isinstance(action, UpdateLead):
        lead_id = await ctx.blocking(call_log.update_lead, db, info.call_id, dict(action.fields))
        if lead_id is None:
            raise ActionFailed("the caller's number is withheld: no lead can be made")
        line.transcript("system", f"lead {lead_id} updated: {', '.join(sorted(action.fields))}")
    elif isinstance(action, RequestCallback):
        await ctx.blocking(call_log.record_choice, db, info.call_id, callback=True)
        if action.when:
            await ctx.blocking(
                call_log.update_lead, db, info.call_id, {"callback_when": action.when}
            )
        line.transcript(
            "system", "callback requested" + (f": {action.when}" if action.when else "")
        )
        logger.info("call %s: caller asked for a callback", info.call_sid)
    elif isinstance(action, OptOut):
        await ctx.blocking(call_log.record_choice, db, info.call_id, opt_out=True)
        line.transcript("system", "caller opted out (number added to the do-not-call list)")
        logger.info("call %s: caller opted out", info.call_sid)
    elif isinstance(action, SetDisposition):
        await ctx.blocking(call_log.update_call, db, info.call_id, disposition=action.value[:32])
    elif isinstance(action, HangUp):
        line.transcript("system", f"agent hung up: {action.reason}")
        await ctx.blocking(_update, ctx.settings, info.call_sid, {"status": "completed"})
    elif isinstance(action, Transfer):
        await _transfer(ctx, info, line, action)


async def _transfer(ctx: MediaContext, info: CallInfo, line: Line, action: Transfer) -> None:
    try:
        number = to_e164(action.number)
    except InvalidPhone:
        raise ActionFailed(f"{action.number[:30]!r} is not a phone number") from None
    if not action.warm:
        twiml = VoiceResponse()
        twiml.dial(number, caller_id=info.to_number or None)
        await ctx.blocking(_update, ctx.settings, info.call_sid, {"twiml": str(twiml)})
        await ctx.blocking(call_log.record_transfer, ctx.database, info.call_id, number, "cold")
        line.transcript("system", f"transferred to {number} (cold)")
        return
    room = f"transfer-{info.call_sid}"
    human_leg = VoiceResponse()
    human_leg.say(action.summary or "Transferring a caller to you now.")
    dial = Dial()
    dial.conference(room, end_conference_on_exit=True, beep=False)
    human_leg.append(dial)
    sid = await ctx.blocking(_create, ctx.settings, number, info.to_number, str(human_leg))
    line.transcript("system", f"calling {number} for a warm transfer")
    deadline = asyncio.get_running_loop().time() + ctx.settings.ring_timeout_s + 30
    status = "queued"
    while asyncio.get_running_loop().time() < deadline:
        status = await ctx.blocking(_status, ctx.settings, sid)
        if status == ANSWERED or status in NOT_ANSWERED:
            break
        await asyncio.sleep(WARM_POLL_S)
    if status != ANSWERED:
        raise ActionFailed(f"{number} did not answer ({status})")
    caller_leg = VoiceResponse()
    dial = Dial()
    dial.conference(room, end_conference_on_exit=True, beep=False)
    caller_leg.append(dial)
    await ctx.blocking(_update, ctx.settings, info.call_sid, {"twiml": str(caller_leg)})
    await ctx.blocking(call_log.record_transfer, ctx.database, info.call_id, number, "warm")
    line.transcript("system", f"transferred to {number} (warm)")


# -- Twilio REST (blocking) ---------------------------------------------------------------


def _update(settings: Settings, call_sid: str, params: dict[str, str]) -> None:
    try:
        make_client(settings).calls(call_sid).update(**params)
    except TwilioRestException as exc:
        raise ActionFailed(f"Twilio refused the call update: {exc.code} {exc.msg}") from None


def _create(settings: Settings, to: str, from_: str, twiml: str) -> str:
    try:
        call = make_client(settings).calls.create(
            to=to,
            from_=from_ or settings.twilio_from_number,
            twiml=twiml,
            timeout=settings.ring_timeout_s,
        )
    except TwilioRestException as exc:
        raise ActionFailed(f"Twilio refused the call: {exc.code} {exc.msg}") from None
    return str(call.sid)


def _status(settings: Settings, sid: str) -> str:
    try:
        return str(make_client(settings).calls(sid).fetch().status)
    except TwilioRestException as exc:
        raise ActionFailed(f"Twilio could not say how the call went: {exc.code}") from None
