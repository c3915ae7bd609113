"""Phone numbers as the programme stores them: digits with the country code."""

import re

_NON_DIGITS = re.compile(r"\D+")


def phone_normalise(raw: str, *, default_country_code: str = "7") -> str:
    """Return ``raw`` as digits with the country code, or "" when it holds no digits.

    "+7 (912) 345-67-89", "8 912 345 67 89" and "9123456789" all give "79123456789":
    the Russian trunk prefix 8 becomes 7 and a ten-digit national number gets the
    default country code.
    """
    digits = _NON_DIGITS.sub("", raw or "")
    if len(digits) == 11 and digits.startswith("8") and default_country_code == "7":
        return "7" + digits[1:]
    if len(digits) == 10:
        return default_country_code + digits
    return digits


def phone_display(digits: str) -> str:
    """Return stored digits formatted for reading, e.g. "+7 912 345-67-89"."""
    if len(digits) == 11 and digits.startswith("7"):
        return f"+7 {digits[1:4]} {digits[4:7]}-{digits[7:9]}-{digits[9:]}"
    return f"+{digits}" if digits else ""
