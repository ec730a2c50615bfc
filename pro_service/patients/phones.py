"""Phone numbers: validated and normalised to E.164 with the ``phonenumbers`` library."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    pass


def normalise_phone(raw: str, default_region: str) -> str:
    """Return the E.164 form of ``raw``; ``default_region`` is the site's country (SE, FI)."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("the phone number is empty")
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{text!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{text!r} is not a valid phone number")
    number_type = phonenumbers.number_type(parsed)
    if number_type not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhoneNumber(f"{text!r} is not a mobile number and cannot receive SMS")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
