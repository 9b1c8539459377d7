"""Certificates of an environment's domains: an upload, and what `certs` lists (never a key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr

from shipyard.shared import constants
from shipyard.shared.schemas.common import Input

Pem = Annotated[str, Field(min_length=1, max_length=constants.CERTIFICATE_MAX_PEM_CHARS)]


class CertificateUpload(Input):
    """Your own certificate for one or more of the environment's domains (`certs add`)."""

    cert: Pem = Field(description="The PEM chain: the certificate first, then intermediates.")
    # A SecretStr: a log line or a repr of the request shows `**********`, never the key.
    key: Annotated[
        SecretStr, Field(min_length=1, max_length=constants.CERTIFICATE_MAX_PEM_CHARS)
    ] = Field(description="The certificate's private key, PEM, without a passphrase.")


class CertificatePublic(BaseModel):
    """A domain's certificate as `certs` lists it."""

    domain: str
    source: str  # acme, uploaded
    status: str  # pending, issued, failed
    issuer: str | None
    fingerprint: str | None  # SHA-256 of the leaf certificate, hex
    not_before: datetime | None
    not_after: datetime | None
    days_left: int | None  # whole days until not_after (negative: expired)
    error: str | None  # why its last order failed (a renewal's too, while it stays issued)
    attempts: int  # failed orders in a row
    next_attempt_at: datetime | None  # when the next order is due, after a failure or a renew
    updated_at: datetime
