"""Signing in with a token: an encrypted HttpOnly, SameSite=Strict cookie; signing out."""

from __future__ import annotations

from http.cookies import SimpleCookie

from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.api.ui import sessions
from shipyard.shared.db import get_engine
from shipyard.shared.services import tokens
from shipyard.shared.settings import Settings
from tests.api.ui.conftest import csrf_of, make_token, sign_in


def _set_cookies(response: object) -> dict[str, SimpleCookie]:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    parsed = {}
    for header in headers:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        parsed.update({name: cookie for name in cookie})
    return parsed


def test_a_page_without_a_session_redirects_to_the_sign_in_form(browser: TestClient) -> None:
    response = browser.get("/ui/apps/web", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/sign-in?next=/ui/apps/web"
    form = browser.get(response.headers["location"])
    assert form.status_code == 200
    assert '<label for="token">API token</label>' in form.text
    assert 'name="next" value="/ui/apps/web"' in form.text


def test_signing_in_sets_an_encrypted_httponly_strict_cookie(
    browser: TestClient, settings: Settings
) -> None:
    token = settings.api_token()
    form = browser.get("/ui/sign-in?next=/ui/apps/web")

    response = browser.post(
        "/ui/sign-in",
        data={"token": token, "csrf": csrf_of(form.text), "next": "/ui/apps/web"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/apps/web"
    cookie = _set_cookies(response)[sessions.SESSION_COOKIE][sessions.SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/ui"
    assert not cookie["secure"]  # plain http here; see the https test
    assert token not in cookie.value and token not in response.headers.get("set-cookie", "")
    assert "Signed in as <strong>admin</strong>" in browser.get("/ui").text


def test_over_https_the_cookie_is_secure(anonymous: TestClient, settings: Settings) -> None:
    browser = TestClient(anonymous.app, base_url="https://testserver")
    form = browser.get("/ui/sign-in")

    response = browser.post(
        "/ui/sign-in",
        data={"token": settings.api_token(), "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )

    cookie = _set_cookies(response)[sessions.SESSION_COOKIE][sessions.SESSION_COOKIE]
    assert cookie["secure"] is True


def test_a_wrong_token_shows_the_form_again_with_the_reason(browser: TestClient) -> None:
    form = browser.get("/ui/sign-in")

    response = browser.post("/ui/sign-in", data={"token": "shp_nope", "csrf": csrf_of(form.text)})

    assert response.status_code == 401
    assert "That token is not valid, or was revoked." in response.text
    assert sessions.SESSION_COOKIE not in _set_cookies(response)
    assert browser.get("/ui", follow_redirects=False).status_code == 303


def test_a_sign_in_without_the_forms_csrf_token_is_refused(
    browser: TestClient, settings: Settings
) -> None:
    browser.get("/ui/sign-in")

    response = browser.post("/ui/sign-in", data={"token": settings.api_token(), "csrf": "forged"})

    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert sessions.SESSION_COOKIE not in _set_cookies(response)


def test_after_sign_in_only_dashboard_paths_are_followed(
    browser: TestClient, settings: Settings
) -> None:
    form = browser.get("/ui/sign-in")

    response = browser.post(
        "/ui/sign-in",
        data={
            "token": settings.api_token(),
            "csrf": csrf_of(form.text),
            "next": "//evil.example/ui",
        },
        follow_redirects=False,
    )

    assert response.headers["location"] == "/ui"


def test_a_tampered_cookie_is_no_session(browser: TestClient, settings: Settings) -> None:
    sign_in(browser, settings.api_token())
    sealed = browser.cookies[sessions.SESSION_COOKIE]
    browser.cookies.set(sessions.SESSION_COOKIE, sealed[:-4] + "AAAA", path="/ui")

    assert browser.get("/ui", follow_redirects=False).status_code == 303


def test_a_revoked_token_signs_its_sessions_out(browser: TestClient, settings: Settings) -> None:
    token = make_token(settings, "read")
    sign_in(browser, token)
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        row = tokens.authenticate(session=session, token=token)
        assert row is not None
        tokens.revoke_token(session=session, token_id=row.id)
        session.commit()

    response = browser.get("/ui", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/sign-in")


def test_a_token_without_a_reading_scope_cannot_sign_in(
    browser: TestClient, settings: Settings
) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        _row, token = tokens.create_token(session=session, name="none", scopes=[])
        session.commit()
    form = browser.get("/ui/sign-in")

    response = browser.post("/ui/sign-in", data={"token": token, "csrf": csrf_of(form.text)})

    assert response.status_code == 403
    assert "no scope that reads the dashboard" in response.text


def test_signing_out_needs_the_csrf_token_and_ends_the_session(
    browser: TestClient, settings: Settings
) -> None:
    csrf = sign_in(browser, settings.api_token())

    refused = browser.post("/ui/sign-out", data={"csrf": "forged"})
    still_in = browser.get("/ui", follow_redirects=False)
    signed_out = browser.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)

    assert refused.status_code == 403
    assert "CSRF token is missing or wrong" in refused.text
    assert still_in.status_code == 200
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/ui/sign-in"
    assert browser.get("/ui", follow_redirects=False).status_code == 303


def test_a_signed_out_cookie_is_refused_even_when_copied_before(
    browser: TestClient, anonymous: TestClient, settings: Settings
) -> None:
    token = make_token(settings, "read")
    csrf = sign_in(browser, token)
    copied = browser.cookies[sessions.SESSION_COOKIE]
    elsewhere = TestClient(anonymous.app)
    elsewhere.cookies.set(sessions.SESSION_COOKIE, copied, path="/ui")
    assert elsewhere.get("/ui", follow_redirects=False).status_code == 200

    browser.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)

    # The token itself stays valid; only this session ended.
    assert (
        anonymous.get("/v1/apps", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    replayed = elsewhere.get("/ui", follow_redirects=False)
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/ui/sign-in")
    refused_form = elsewhere.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert refused_form.status_code == 303
    assert refused_form.headers["location"].startswith("/ui/sign-in")


def test_signing_out_ends_only_that_session(
    browser: TestClient, anonymous: TestClient, settings: Settings
) -> None:
    token = settings.api_token()
    other = TestClient(anonymous.app)
    sign_in(other, token)
    csrf = sign_in(browser, token)

    browser.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)

    assert other.get("/ui", follow_redirects=False).status_code == 200


def test_a_cookie_without_a_server_side_session_is_refused(
    browser: TestClient, settings: Settings
) -> None:
    # Sealed with the installation's key: one made before sessions were kept in the store (no
    # id), and one whose id the store does not know.
    token = settings.api_token()
    for payload in ({"token": token, "csrf": "c"}, {"token": token, "csrf": "c", "sid": "x"}):
        browser.cookies.set(sessions.SESSION_COOKIE, sessions._seal(settings, payload), path="/ui")

        assert browser.get("/ui", follow_redirects=False).status_code == 303


def test_pages_send_security_headers(browser: TestClient, settings: Settings) -> None:
    sign_in(browser, settings.api_token())

    headers = browser.get("/ui").headers

    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
