"""API tokens: scoped, stored as SHA-256 hashes, shown once at creation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from shipyard.shared.exceptions import NotFound
from shipyard.shared.models import ApiToken, utcnow

TOKEN_PREFIX = "shp_"
_LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The stored form of a token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(*, session: Session, name: str, scopes: list[str]) -> tuple[ApiToken, str]:
    """A new token; returns the row and the token itself, which is never stored or shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, token_hash=hash_token(token), prefix=token[:12], scopes=sorted(set(scopes))
    )
    session.add(row)
    session.flush()
    return row, token


def authenticate(*, session: Session, token: str) -> ApiToken | None:
    """The live token row matching `token`, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_PRECISION:
        row.last_used_at = now  # at most one write a minute per token
        session.add(row)
        session.commit()
    return row


def list_tokens(*, session: Session) -> list[ApiToken]:
    """Every token, newest first (hashes are never shown)."""
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.created_at).desc())))


def revoke_token(*, session: Session, token_id: uuid.UUID) -> ApiToken:
    """Revoke a token; it stops working at once."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    return row
