"""Phone numbers are validated and stored as E.164."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    pass


def to_e164(raw: object, default_region: str = "US") -> str:
    """Normalise ``raw`` to E.164 (``+14155550123``) or raise InvalidPhone saying why."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("a phone number is required")
    text = raw.strip()
    if len(text) > 40:
        raise InvalidPhone("phone number is too long")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{text!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
