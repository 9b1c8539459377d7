"""`shipyard domains` and `shipyard certs` against the in-process API."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from shipyard.cli.client import ApiError, CliError
from shipyard.shared.db import get_engine
from shipyard.shared.models import Certificate, utcnow
from shipyard.shared.services import certificates
from shipyard.shared.settings import Settings
from tests.certificate_support import TestCA, other_key
from tests.cli.conftest import Shipyard

pytestmark = pytest.mark.usefixtures("staging")

ENV = ("-a", "web", "-e", "staging")


@pytest.fixture
def shop(run: Shipyard) -> None:
    assert run("domains", "add", "shop.example.com", *ENV).exit_code == 0


def _files(tmp_path: Path, cert: str, key: str) -> tuple[str, str]:
    (tmp_path / "chain.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    return str(tmp_path / "chain.pem"), str(tmp_path / "key.pem")


def test_domains_add_list_and_remove(run: Shipyard) -> None:
    empty = run("domains", *ENV)
    added = run("domains", "add", "Shop.Example.com", *ENV)
    again = run("domains", "add", "shop.example.com", *ENV)
    listed = run("domains", *ENV)
    removed = run("domains", "remove", "shop.example.com", *ENV)

    assert "staging has no custom domain" in empty.output
    assert "URL is plain HTTP" in empty.output
    assert added.exit_code == 0, added.output
    assert "Added shop.example.com to staging: a certificate is being ordered" in added.output
    assert isinstance(again.exception, CliError)
    assert str(again.exception) == "shop.example.com is already a domain of staging"
    assert "shop.example.com" in listed.output
    assert "HTTP → HTTPS redirect: on (once a domain has a certificate); HSTS: off" in (
        listed.output
    )
    assert removed.exit_code == 0 and "Removed shop.example.com from staging" in removed.output
    assert "staging has no custom domain" in removed.output


def test_domains_options_change_redirect_and_hsts(run: Shipyard, shop: None) -> None:
    result = run("domains", *ENV, "--no-https-redirect", "--hsts")

    assert result.exit_code == 0, result.output
    assert "HTTP → HTTPS redirect: off (once a domain has a certificate); HSTS: on" in (
        result.output
    )


def test_a_localhost_domain_is_refused(run: Shipyard) -> None:
    result = run("domains", "add", "shop.localhost", *ENV)

    assert isinstance(result.exception, ApiError)
    assert "domains under .localhost are given to environments by their names" in str(
        result.exception
    )


def test_certs_lists_a_pending_domain(run: Shipyard, shop: None) -> None:
    result = run("certs", *ENV)

    assert result.exit_code == 0, result.output
    assert "Certificates of web/staging" in result.output
    row = next(line for line in result.output.splitlines() if "shop.example.com" in line)
    assert row.split() == ["shop.example.com", "acme", "pending", "-", "-", "-"]


def test_certs_without_a_domain_says_localhost_stays_plain_http(run: Shipyard) -> None:
    result = run("certs", *ENV)

    assert result.exit_code == 0
    assert "staging has no custom domain" in result.output
    assert "*.localhost URL stays plain HTTP" in result.output


def test_certs_add_reads_the_files_and_never_prints_the_key(
    run: Shipyard, shop: None, tmp_path: Path
) -> None:
    issued = TestCA().issue("shop.example.com")
    chain, key = _files(tmp_path, issued.chain, issued.key)

    result = run("certs", "add", *ENV, "--cert", chain, "--key", key)

    assert result.exit_code == 0, result.output
    assert "Certificate stored for shop.example.com" in result.output
    assert "PRIVATE" not in result.output
    listed = run("certs", *ENV).output
    row = next(line for line in listed.splitlines() if "shop.example.com" in line)
    assert row.split()[:4] == ["shop.example.com", "uploaded", "issued", "Shipyard"]
    assert row.split()[-1] in ("88", "89")


def test_certs_add_with_a_key_that_does_not_match_says_so(
    run: Shipyard, shop: None, tmp_path: Path
) -> None:
    issued = TestCA().issue("shop.example.com")
    chain, key = _files(tmp_path, issued.chain, other_key())

    result = run("certs", "add", *ENV, "--cert", chain, "--key", key)

    assert isinstance(result.exception, ApiError)
    assert str(result.exception).startswith("the key does not match the certificate")
    assert str(result.exception).endswith("(HTTP 422)")


def test_certs_add_with_a_missing_file_is_an_error(run: Shipyard, shop: None) -> None:
    result = run("certs", "add", *ENV, "--cert", "/nonexistent.pem", "--key", "/nonexistent")

    assert isinstance(result.exception, CliError)
    assert "cannot read the certificate file /nonexistent.pem" in str(result.exception)


def test_certs_shows_why_an_order_failed(run: Shipyard, shop: None, settings: Settings) -> None:
    error = "urn:ietf:params:acme:error:dns :: DNS problem: NXDOMAIN looking up A [shop]"
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        row = session.exec(select(Certificate)).one()
        order = certificates.claim(
            session=session, certificate_id=row.id, now=utcnow(), renew_days=30
        )
        assert order is not None
        certificates.record_failure(session=session, order=order, error=error)
        session.commit()

    result = run("certs", *ENV)

    assert result.exit_code == 0, result.output
    assert "shop.example.com: its last order failed (1 in a row; next try " in result.output
    assert error in result.output


def test_certs_renew_and_remove(run: Shipyard, shop: None, tmp_path: Path) -> None:
    renewed = run("certs", "renew", "shop.example.com", *ENV)
    issued = TestCA().issue("shop.example.com")
    chain, key = _files(tmp_path, issued.chain, issued.key)
    run("certs", "add", *ENV, "--cert", chain, "--key", key)
    removed = run("certs", "remove", "shop.example.com", *ENV)

    assert renewed.exit_code == 0, renewed.output
    assert "Ordering a new certificate for shop.example.com" in renewed.output
    assert removed.exit_code == 0, removed.output
    assert "Removed the uploaded certificate of shop.example.com" in removed.output
    listed = run("certs", *ENV).output
    row = next(line for line in listed.splitlines() if "shop.example.com" in line)
    assert row.split()[:3] == ["shop.example.com", "acme", "pending"]
