"""`switchboard business create|add-number` and `switchboard token create`."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from sqlalchemy import select

from libs.common import repositories
from libs.common.db import Database
from libs.common.models import Business, PhoneNumber, TokenRole
from libs.common.settings import Settings
from libs.telephony.phones import InvalidPhone, to_e164


def _timezone(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not an IANA time zone (e.g. America/New_York)"
        ) from None
    return value


@click.group()
def business() -> None:
    """Businesses (tenants)."""


@business.command("create")
@click.option("--name", required=True, help="Display name.")
@click.option("--timezone", default="UTC", show_default=True, callback=_timezone)
@click.option("--max-concurrent-calls", default=3, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def create_business(
    settings: Settings, name: str, timezone: str, max_concurrent_calls: int, as_json: bool
) -> None:
    """Create a business and print its id."""
    database = Database(settings.database_url)
    with database.session() as session:
        row = repositories.create_business(session, name.strip(), timezone, max_concurrent_calls)
        session.commit()
        business_id = row.id
    database.dispose()
    if as_json:
        click.echo(json.dumps({"id": business_id, "name": name, "timezone": timezone}))
    else:
        click.echo(f"business {business_id} created: {name} ({timezone})")


@business.command("add-number")
@click.option("--business-id", type=int, required=True, help="The business that owns it.")
@click.option("--number", required=True, help="The Twilio number callers dial, e.g. +14155550100.")
@click.option("--label", default="", help="A label, e.g. 'Support line'.")
@click.pass_obj
def add_number(settings: Settings, business_id: int, number: str, label: str) -> None:
    """Route inbound calls to NUMBER to a business (a number belongs to one business)."""
    try:
        e164 = to_e164(number)
    except InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="--number") from None
    database = Database(settings.database_url)
    with database.session() as session:
        if session.get(Business, business_id) is None:
            raise click.BadParameter(f"no business {business_id}", param_hint="--business-id")
        owner = session.scalar(select(PhoneNumber).where(PhoneNumber.number_e164 == e164))
        if owner is not None and owner.business_id != business_id:
            raise click.UsageError(f"{e164} already belongs to business {owner.business_id}")
        if owner is None:
            session.add(PhoneNumber(business_id=business_id, number_e164=e164, label=label))
        session.commit()
    database.dispose()
    click.echo(f"{e164} now routes inbound calls to business {business_id}")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--business-id", type=int, help="Business the token acts for.")
@click.option("--operator", is_flag=True, help="A platform operator token (no business).")
@click.option("--name", default="", help="A label to recognise the token by.")
@click.pass_obj
def create_token(settings: Settings, business_id: int | None, operator: bool, name: str) -> None:
    """Create a token. The secret is printed once, to stdout, and never stored."""
    if operator == (business_id is not None):
        raise click.UsageError("give exactly one of --business-id N or --operator")
    database = Database(settings.database_url)
    with database.session() as session:
        if business_id is not None and session.get(Business, business_id) is None:
            raise click.BadParameter(f"no business {business_id}", param_hint="--business-id")
        role = TokenRole.OPERATOR if operator else TokenRole.BUSINESS
        _, secret = repositories.create_token(session, role, business_id, name)
        session.commit()
    database.dispose()
    click.echo(secret)
