"""Dashboard sessions on the server: signing in records one, signing out deletes it.

The cookie still carries the token (encrypted) so that a revoked token signs its sessions out at
once; the session id beside it must also name a live row here, so a signed-out cookie, or a copy
of it, is refused even while its token stays valid.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, col, delete

from shipyard.shared.models import DashboardSession, utcnow


def _hash(session_id: str) -> str:
    # Ids are random, so a plain SHA-256 suffices; the store never holds a usable id.
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(*, session: Session, lifetime: timedelta) -> str:
    """Record a new dashboard session lasting `lifetime`; returns its id (for the cookie only).
    Sessions that expired are swept on the way."""
    now = utcnow()
    session.exec(delete(DashboardSession).where(col(DashboardSession.expires_at) <= now))
    session_id = secrets.token_urlsafe(32)
    session.add(
        DashboardSession(id_hash=_hash(session_id), created_at=now, expires_at=now + lifetime)
    )
    session.flush()
    return session_id


def session_is_live(*, session: Session, session_id: str) -> bool:
    """Whether `session_id` names a session that was neither closed nor let expire."""
    row = session.get(DashboardSession, _hash(session_id))
    return row is not None and row.expires_at > utcnow()


def close_session(*, session: Session, session_id: str) -> None:
    """End a session: its cookie, and every copy of it, stops working."""
    session.exec(delete(DashboardSession).where(col(DashboardSession.id_hash) == _hash(session_id)))
    session.flush()
