"""Rows the service tests build on: an app with a staging and a production environment."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.models import App, Environment
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.services import apps


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
def app(session: Session) -> App:
    app = apps.create_app(session=session, data=AppCreate(name="web", repo="/srv/web"))
    session.commit()
    return app


@pytest.fixture
def staging(session: Session, app: App) -> Environment:
    environment = apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="staging")
    )
    session.commit()
    return environment


@pytest.fixture
def production(session: Session, app: App) -> Environment:
    environment = apps.create_environment(
        session=session, app=app, data=EnvironmentCreate(name="production")
    )
    session.commit()
    return environment
