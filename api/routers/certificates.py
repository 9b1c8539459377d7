"""Certificates of an environment's domains: `/v1/apps/{app}/environments/{env}/certs`."""

from __future__ import annotations

from fastapi import APIRouter, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import PublisherDep, SecretBoxDep, SessionDep, SettingsDep
from shipyard.shared.models import utcnow
from shipyard.shared.schemas import CertificatePublic, CertificateUpload
from shipyard.shared.services import apps, certificates

router = APIRouter(prefix="/apps/{app}/environments/{env}/certs", tags=["certificates"])


@router.get("")
def list_certificates(app: str, env: str, session: SessionDep) -> list[CertificatePublic]:
    """Each domain's certificate: source, status, issuer, expiry and days left, and why its
    last order failed (never a key)."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return certificates.of_environment(session=session, environment=environment)


@router.post("", status_code=status.HTTP_201_CREATED)
@deploy_scoped
def upload_certificate(
    app: str,
    env: str,
    data: CertificateUpload,
    session: SessionDep,
    box: SecretBoxDep,
    principal: PrincipalDep,
) -> list[CertificatePublic]:
    """Your own certificate (PEM chain and key) for each of the environment's domains it names;
    422 with the reason if the key does not match, it is expired or not yet valid, or it names
    none of the domains. Never renewed by Shipyard; a later upload replaces it."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    stored = certificates.upload(
        session=session,
        environment=environment,
        chain_text=data.cert,
        key_text=data.key.get_secret_value(),
        box=box,
    )
    session.commit()
    now = utcnow()
    return [certificates.public(row, now) for row in stored]


@router.delete("/{domain}")
@deploy_scoped
def remove_certificate(
    app: str,
    env: str,
    domain: str,
    session: SessionDep,
    publish: PublisherDep,
    principal: PrincipalDep,
) -> CertificatePublic:
    """Drop the uploaded certificate of `domain`: the domain goes back to the ACME CA, which is
    asked for one at once."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    row = certificates.remove_upload(session=session, environment=environment, domain=domain)
    session.commit()
    certificates.ask_for_orders(publish)
    return certificates.public(row, utcnow())


@router.post("/{domain}/renew", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def renew_certificate(
    app: str,
    env: str,
    domain: str,
    session: SessionDep,
    settings: SettingsDep,
    publish: PublisherDep,
    principal: PrincipalDep,
) -> CertificatePublic:
    """Order a new certificate for `domain` from the ACME CA now, whatever its expiry or its
    backoff; the one it has keeps serving until the new one is issued."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    row = certificates.force_renewal(
        session=session,
        environment=environment,
        domain=domain,
        acme_enabled=bool(settings.acme_directory_url),
    )
    session.commit()
    certificates.ask_for_orders(publish)
    return certificates.public(row, utcnow())
