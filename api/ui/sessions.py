"""The dashboard's session: an API token exchanged for an encrypted, HttpOnly cookie.

The cookie holds the token, the session's CSRF token and its server-side id, encrypted (Fernet)
under a key derived from the installation's secret key, so none is readable in the browser. Each
request checks the token again, so a revoked token signs its sessions out at once, and the id
against the store (shared/services/dashboard_sessions.py), so signing out ends the session on the
server and a copy of the cookie stops working with it. Before sign-in, a second
cookie carries the sign-in form's own CSRF token (SameSite=Strict keeps the session cookie off
cross-site navigations; the sign-in page must not overwrite it then).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request, Response

from shipyard.shared.settings import Settings

SESSION_COOKIE = "shipyard_session"
SIGN_IN_COOKIE = "shipyard_sign_in"
COOKIE_PATH = "/ui"
# A session lasts a working day; signing in again needs the token again.
SESSION_SECONDS = 12 * 3600
# A sign-in form is good for an hour after the page was shown.
SIGN_IN_SECONDS = 3600
# Key derivation label: the session key is never the key that encrypts secret config.
_KEY_INFO = b"shipyard dashboard session cookie v1"


@dataclass(frozen=True)
class SessionData:
    """What the session cookie carries."""

    token: str
    csrf: str
    session_id: str  # the server-side session's id (the store keeps only its hash)


def new_csrf() -> str:
    """A fresh CSRF token."""
    return secrets.token_urlsafe(32)


def _cipher(settings: Settings) -> Fernet:
    newest = settings.fernet_key().split(b",")[0].strip()
    derived = HKDF(algorithm=SHA256(), length=32, salt=None, info=_KEY_INFO).derive(newest)
    return Fernet(base64.urlsafe_b64encode(derived))


def _seal(settings: Settings, payload: dict[str, str]) -> str:
    return _cipher(settings).encrypt(json.dumps(payload).encode()).decode()


def _open(settings: Settings, sealed: str | None, max_age: int) -> dict[str, str] | None:
    if not sealed:
        return None
    try:
        payload = json.loads(_cipher(settings).decrypt(sealed.encode(), ttl=max_age))
    except (InvalidToken, ValueError):
        return None
    if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
        return None
    return payload


def read_session(request: Request, settings: Settings) -> SessionData | None:
    """The request's session, or None (no cookie, expired, or not made by this installation)."""
    payload = _open(settings, request.cookies.get(SESSION_COOKIE), SESSION_SECONDS)
    if payload is None or not {"token", "csrf", "sid"} <= payload.keys():
        return None
    return SessionData(token=payload["token"], csrf=payload["csrf"], session_id=payload["sid"])


def read_sign_in_csrf(request: Request, settings: Settings) -> str | None:
    """The CSRF token the sign-in form was given, if its cookie is still good."""
    payload = _open(settings, request.cookies.get(SIGN_IN_COOKIE), SIGN_IN_SECONDS)
    return payload.get("csrf") if payload else None


def _set(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def start_session(
    request: Request, response: Response, settings: Settings, token: str, session_id: str
) -> None:
    """Sign in: the session cookie with the token, a new CSRF token and the server-side
    session's id; the form's cookie goes."""
    sealed = _seal(settings, {"token": token, "csrf": new_csrf(), "sid": session_id})
    _set(request, response, SESSION_COOKIE, sealed, SESSION_SECONDS)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)


def give_sign_in_csrf(request: Request, response: Response, settings: Settings, csrf: str) -> None:
    """The sign-in form's CSRF token, in its own short-lived cookie."""
    _set(request, response, SIGN_IN_COOKIE, _seal(settings, {"csrf": csrf}), SIGN_IN_SECONDS)


def end_session(response: Response) -> None:
    """Sign out in the browser: the session cookie is removed (the caller closes the server-side
    session, which is what makes a copy of the cookie useless)."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def same_token(presented: str, expected: str) -> bool:
    """Whether a form's CSRF token is the session's (in constant time)."""
    return bool(presented) and secrets.compare_digest(presented.encode(), expected.encode())
