"""E-mail addresses of people and of sites' contacts: checked once (email-validator, RFC 5321/5322 syntax)
and kept in the library's normalized form, so a stored address is one a mail server takes.

No DNS look-up: the control plane often runs where the province's mail domain does not resolve, and a
booking must not wait on a resolver. Special-use domains (.invalid, .local, .test, .localhost) are
refused: mail to them never arrives; documentation examples use `*.example`.
"""
from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

MAX_LENGTH = 254  # RFC 5321's path limit less the angle brackets


class EmailError(ValueError):
    pass


def normalized_email(address: str) -> str:
    """The address in normal form, or EmailError saying in words what is wrong with it."""
    if not isinstance(address, str) or not address.strip():
        raise EmailError("an e-mail address is needed, e.g. olga@jl.example")
    if len(address) > MAX_LENGTH:
        raise EmailError(f"an e-mail address has at most {MAX_LENGTH} characters")
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise EmailError(f"{address[:80]!r} is not an e-mail address: {exc}") from None


def _checked(address: str) -> str:
    try:
        return normalized_email(address)
    except EmailError as exc:
        raise ValueError(str(exc)) from None  # pydantic reports it under the field's name


# A body's or a document's address field: normalized, or refused with the reason (a 422 at the API).
EmailAddress = Annotated[str, Field(min_length=3, max_length=MAX_LENGTH, json_schema_extra={"format": "email"}),
                         AfterValidator(_checked)]
