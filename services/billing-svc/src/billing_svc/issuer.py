"""The invoice issuer: name and qualified-invoice registration number (T + corporate number)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdnum.exceptions import ValidationError
from stdnum.jp import cn

_REGISTRATION = re.compile(r"^T(\d{13})$")


class InvalidRegistrationNumberError(ValueError):
    """Not `T` followed by a valid 13-digit corporate number (法人番号)."""


def validate_registration_number(value: str) -> str:
    match = _REGISTRATION.match(value.strip())
    if match is None:
        raise InvalidRegistrationNumberError(
            f"registration number must be T + 13 digits: {value!r}"
        )
    try:
        cn.validate(match.group(1))
    except ValidationError as error:
        raise InvalidRegistrationNumberError(f"{value!r}: {error}") from None
    return value.strip()


@dataclass(frozen=True)
class Issuer:
    name: str
    registration_number: str

    def __post_init__(self) -> None:
        validate_registration_number(self.registration_number)
