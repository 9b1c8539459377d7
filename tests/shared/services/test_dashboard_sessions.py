"""Dashboard sessions on the server: opened at sign-in, closed at sign-out, swept when expired."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from shipyard.shared.models import DashboardSession
from shipyard.shared.services import dashboard_sessions

_DAY = timedelta(hours=12)


def test_an_opened_session_is_live_and_only_its_hash_is_stored(session: Session) -> None:
    session_id = dashboard_sessions.open_session(session=session, lifetime=_DAY)
    session.commit()

    assert dashboard_sessions.session_is_live(session=session, session_id=session_id)
    stored = session.exec(select(DashboardSession)).all()
    assert len(stored) == 1 and session_id not in stored[0].id_hash


def test_a_closed_session_is_no_longer_live_and_others_are_kept(session: Session) -> None:
    closed = dashboard_sessions.open_session(session=session, lifetime=_DAY)
    kept = dashboard_sessions.open_session(session=session, lifetime=_DAY)

    dashboard_sessions.close_session(session=session, session_id=closed)
    session.commit()

    assert not dashboard_sessions.session_is_live(session=session, session_id=closed)
    assert dashboard_sessions.session_is_live(session=session, session_id=kept)


def test_an_unknown_or_expired_session_is_not_live_and_expired_ones_are_swept(
    session: Session,
) -> None:
    expired = dashboard_sessions.open_session(session=session, lifetime=timedelta(seconds=-1))
    session.commit()

    assert not dashboard_sessions.session_is_live(session=session, session_id=expired)
    assert not dashboard_sessions.session_is_live(session=session, session_id="made-up")
    dashboard_sessions.open_session(session=session, lifetime=_DAY)
    session.commit()
    assert len(session.exec(select(DashboardSession)).all()) == 1
